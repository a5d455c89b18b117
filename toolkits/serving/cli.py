"""``framelab serve``: deploy a saved model, list what is served (``--status``), take one down (``--shutdown``).

On the embedded local Ray the cluster lives in this command's process, so
the command serves in the foreground until Ctrl-C (then takes the application
down). With ``--address`` (or ``FRAMELAB_RAY_ADDRESS``), or when this process
was already connected, it returns once the application answers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

from framelab.frames.errors import FramelabError
from framelab.platform.errors import PlatformError
from framelab.platform.session import connect, resolve_address
from framelab.toolkits.serving import app as serving


def parser() -> argparse.ArgumentParser:
    """The ``framelab serve`` argument parser.

    Example:
        >>> from framelab.toolkits.serving.cli import parser
        >>> args = parser().parse_args(["models/caltech", "--replicas", "2", "--max-batch-size", "8"])
        >>> args.model_url, args.replicas, args.max_batch_size
        ('models/caltech', '2', 8)
    """
    p = argparse.ArgumentParser(
        prog="framelab serve",
        description="Serve a saved image model (image_classifier, image_similarity, image_tagger, kmeans on "
        "images) over HTTP on Ray Serve: POST an image's bytes to the printed URL.",
    )
    p.add_argument("model_url", nargs="?", help="the model's folder (path or fsspec URL), as model.save() wrote it")
    p.add_argument("--address", default=None, help="Ray address to join (default: FRAMELAB_RAY_ADDRESS, else an "
                   "embedded local Ray, served in the foreground until Ctrl-C)")
    p.add_argument("--name", default=None, help="the application's name (default: the folder's name)")
    p.add_argument("--route-prefix", default=None, help="URL path of the application (default: /NAME)")
    p.add_argument("--replicas", default="auto", help="replica count, or auto: one per GPU, else the CPU pool a "
                   "batch extraction would start")
    p.add_argument("--cpus-per-replica", type=float, default=None, help="CPUs each CPU replica holds (default: "
                   "as the offline model actors)")
    p.add_argument("--max-batch-size", type=int, default=None, help="images per pass through the network "
                   "(default 16 on CPU, 64 on GPU)")
    p.add_argument("--batch-wait-ms", type=float, default=serving.DEFAULT_BATCH_WAIT_MS,
                   help="longest wait for a batch to fill (default %(default)s)")
    p.add_argument("--max-pixels", type=int, default=serving.uploads.MAX_PIXELS,
                   help="larger images are refused from their header (413)")
    p.add_argument("--max-request-bytes", type=int, default=serving.uploads.DEFAULT_MAX_REQUEST_BYTES,
                   help="larger request bodies are refused (413)")
    p.add_argument("--host", default=serving.DEFAULT_HOST, help="where Serve's HTTP proxy listens "
                   "(default %(default)s; 0.0.0.0 inside a cluster)")
    p.add_argument("--port", type=int, default=serving.DEFAULT_PORT, help="HTTP port (default %(default)s)")
    p.add_argument("--status", action="store_true", help="list the applications served on the cluster")
    p.add_argument("--shutdown", metavar="NAME", default=None, help="take the application NAME down")
    return p


def main(argv: Sequence[str]) -> int:
    """Run ``framelab serve``; returns the exit code (2 with a one-line message for bad input).

    Example:
        >>> from framelab.toolkits.serving.cli import main
        >>> main(["/no/such/model"])  # doctest: +ELLIPSIS
        2
    """
    import ray

    args = parser().parse_args(list(argv))
    if not args.status and args.shutdown is None and args.model_url is None:
        print("framelab serve: give the model's folder (framelab serve MODEL_URL), --status or --shutdown NAME",
              file=sys.stderr)
        return 2
    # The embedded Ray lives in this process: if this command starts it, the command must stay up.
    foreground = not ray.is_initialized() and resolve_address(args.address) is None
    try:
        if foreground and (args.status or args.shutdown):
            raise PlatformError("--status and --shutdown need the cluster the application runs on: pass "
                                "--address (or set FRAMELAB_RAY_ADDRESS)")
        connect(args.address)
        if args.status:
            for app in serving.status():
                print(json.dumps(app))
            return 0
        if args.shutdown is not None:
            serving.shutdown(args.shutdown)
            print(f"framelab serve: {args.shutdown} is down")
            return 0
        replicas = args.replicas if args.replicas == "auto" else _int(args.replicas)
        served = serving.deploy(
            args.model_url, name=args.name, route_prefix=args.route_prefix, replicas=replicas,
            cpus_per_replica=args.cpus_per_replica, max_batch_size=args.max_batch_size, batch_wait_ms=args.batch_wait_ms, max_pixels=args.max_pixels,
            max_request_bytes=args.max_request_bytes, host=args.host, port=args.port,
        )
    except (FramelabError, PlatformError) as exc:
        print(f"framelab serve: {exc}", file=sys.stderr)
        return 2
    print(f"{served.name} ({served.kind}) is served at {served.url}", flush=True)
    if foreground:
        _serve_until_interrupted(served)
    return 0


def _serve_until_interrupted(served: serving.ServedModel) -> None:
    print("serving on the embedded local Ray until Ctrl-C", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        served.shutdown()


def _int(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text  # deploy() names what it accepts
