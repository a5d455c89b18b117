"""Deploy a saved image model as a Ray Serve application, see what is served, and take it down.

:func:`deploy` checks the model folder in the caller first (the checks and
messages of ``load_model``: a folder that fails them stops here, before any
replica starts), sizes the replicas for the cluster, starts the application
on the session's Ray, and returns once it answers over HTTP.

Example:
    >>> from framelab.toolkits.serving.app import plan_replicas
    >>> plan_replicas("auto", cpus=2, gpus=0).max_size, plan_replicas("auto", cpus=0, gpus=4).max_size
    (2, 4)
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framelab.frames.errors import InputError
from framelab.platform.resources import PoolSize, cluster_facts, plan_model_pool, plan_pool, reclaim
from framelab.platform.session import ensure_connected
from framelab.toolkits import load_model
from framelab.toolkits.serving import uploads
from framelab.toolkits.serving.answers import servable_kind

DEFAULT_PORT = 8000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_BATCH = {"cpu": 16, "cuda": 64}
DEFAULT_BATCH_WAIT_MS = 10.0
# How long deploy() waits for a new application to answer over HTTP.
READY_TIMEOUT_S = 300.0
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


@dataclass(frozen=True)
class ServedModel:
    """A deployed model: its application name, URL and kind; ``predict`` calls it over HTTP.

    Example:
        >>> from framelab.toolkits.serving import ServedModel
        >>> ServedModel("caltech", "http://127.0.0.1:8000/caltech", "image_classifier")
        ServedModel('caltech' at http://127.0.0.1:8000/caltech, image_classifier)
    """

    name: str
    url: str
    kind: str

    def predict(self, image: str | Path | bytes, timeout: float = 60.0, **params: Any) -> dict:
        """POST one image (a path or the file's bytes); the model's answer, or an InputError with the server's message.

        ``params`` go in the query string (``k=5``).

        Example:
            >>> app.predict("photo.jpg", k=3)  # doctest: +SKIP
            {'predictions': [{'class': 'ewer', 'probability': 0.91}, ...]}
        """
        import requests

        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        response = requests.post(self.url, data=data, params=params, timeout=timeout,
                                 headers={"Content-Type": "image/" + _image_subtype(data)})
        return _json_or_raise(response)

    def predict_batch(self, images: Iterable[str | Path | bytes], timeout: float = 60.0, **params: Any) -> list[dict]:
        """POST several images as one batch request: one answer (or ``{"error": ...}``) per image, in order.

        Example:
            >>> app.predict_batch(["a.jpg", "b.jpg"], k=1)  # doctest: +SKIP
        """
        import base64

        import requests

        encoded = [base64.b64encode(x if isinstance(x, bytes) else Path(x).read_bytes()).decode() for x in images]
        response = requests.post(self.url + "/batch", json={"images": encoded}, params=params, timeout=timeout)
        return _json_or_raise(response)["results"]

    def shutdown(self) -> None:
        """Delete this application from the cluster (see :func:`shutdown`)."""
        shutdown(self.name)

    def __repr__(self) -> str:
        return f"ServedModel({self.name!r} at {self.url}, {self.kind})"


def plan_replicas(replicas: int | str, cpus: float, gpus: float, cpus_per_replica: float | None = None) -> PoolSize:
    """How many replicas, and what each holds: one per GPU where there are GPUs, else the offline model pool's CPUs.

    ``replicas`` is a count or ``"auto"``. On GPUs "auto" is one replica per
    GPU. On CPUs it is the pool the offline extraction would start on this
    cluster (:func:`~framelab.platform.resources.plan_model_pool`), so a served
    model gets the compute a batch job gets; ``cpus_per_replica`` overrides
    what each replica holds.

    Example:
        >>> from framelab.toolkits.serving.app import plan_replicas
        >>> size = plan_replicas("auto", cpus=16, gpus=0)
        >>> size.max_size, size.num_cpus
        (7, 2.0)
        >>> plan_replicas(3, cpus=2, gpus=0, cpus_per_replica=0.25).max_size
        3
    """
    count = None if replicas == "auto" else _positive_int("replicas", replicas)
    if gpus >= 1:
        return plan_pool(cpus, gpus, use_gpu=True, max_actors=count)
    if cpus_per_replica is not None:
        if isinstance(cpus_per_replica, bool) or not isinstance(cpus_per_replica, (int, float)) or cpus_per_replica <= 0:
            raise InputError(f"cpus_per_replica must be a positive number, got {cpus_per_replica!r}")
        pool = plan_pool(cpus, gpus, use_gpu=False, cpus_per_actor=float(cpus_per_replica), reserve_cpus=1.0)
    else:
        pool = plan_model_pool("cpu", cpus, gpus)
    if count is not None:
        return PoolSize(min_size=count, max_size=count, num_cpus=pool.num_cpus, num_gpus=0.0)
    return pool


def deploy(
    model: str | Any,
    *,
    name: str | None = None,
    route_prefix: str | None = None,
    replicas: int | str = "auto",
    max_batch_size: int | None = None,
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS,
    max_pixels: int = uploads.MAX_PIXELS,
    max_request_bytes: int = uploads.DEFAULT_MAX_REQUEST_BYTES,
    cpus_per_replica: float | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    storage_options: dict | None = None,
) -> ServedModel:
    """Serve a saved image model (a folder URL, or a model object) over HTTP on the session's Ray cluster.

    Works for ``image_classifier``, ``image_similarity``, ``image_tagger`` and
    ``kmeans`` built on images. ``name`` (default: the folder's name) names
    the application; deploying again under the same name replaces it with no
    failed request (Ray Serve starts the new replicas, then drains the old).
    ``route_prefix`` defaults to ``/<name>``. ``replicas``: a count or
    ``"auto"`` (:func:`plan_replicas`). Requests arriving together are run
    through the network as one batch of at most ``max_batch_size`` images
    (16 on CPU, 64 on GPU), waiting at most ``batch_wait_ms`` to fill it.
    ``max_pixels`` and ``max_request_bytes`` bound what one request may make a
    replica do. Serve's HTTP proxy listens on ``host:port`` (loopback by
    default; the first deployment on a cluster sets it for all).

    Returns once the application answers over HTTP.

    Example:
        >>> from framelab.toolkits import serving
        >>> app = serving.deploy("models/caltech", name="caltech")  # doctest: +SKIP
        >>> app.url  # doctest: +SKIP
        'http://127.0.0.1:8000/caltech'
    """
    from ray import serve

    from framelab.toolkits.serving.deployment import ReplicaOptions

    source = model
    if isinstance(model, (str, Path)):
        source = str(model)
        model = load_model(source, storage_options)  # the same checks and messages, before any replica starts
    kind = servable_kind(model)
    name = _check_name(name if name is not None else _default_name(source, kind))
    route_prefix = _check_route_prefix(route_prefix if route_prefix is not None else "/" + name)
    _positive_int("max_pixels", max_pixels)
    _positive_int("max_request_bytes", max_request_bytes)
    if isinstance(batch_wait_ms, bool) or not isinstance(batch_wait_ms, (int, float)) or not 0 <= batch_wait_ms <= 10_000:
        raise InputError(f"batch_wait_ms must be a number of milliseconds from 0 to 10000, got {batch_wait_ms!r}")
    ensure_connected()
    facts = cluster_facts()
    size = plan_replicas(replicas, facts.cpus, facts.gpus, cpus_per_replica)
    device = "cuda" if size.num_gpus else "cpu"
    batch = DEFAULT_BATCH[device] if max_batch_size is None else _positive_int("max_batch_size", max_batch_size)
    version = str(time.time_ns())
    options = ReplicaOptions(
        max_batch_size=batch, batch_wait_ms=float(batch_wait_ms), max_pixels=int(max_pixels),
        max_request_bytes=int(max_request_bytes), device=device, num_cpus=size.num_cpus, version=version,
    )
    # Warm model actors this process keeps idle give their CPUs back if the replicas need them.
    reclaim(cpus=size.max_size * size.num_cpus, gpus=size.max_size * size.num_gpus)
    # Serve's per-request INFO access log would print a line per request into the user's console (Ray
    # forwards replica logs to the driver); warnings and errors still come through.
    quiet = {"log_level": "WARNING", "enable_access_log": False}
    serve.start(http_options={"host": host, "port": int(port)}, logging_config=quiet)
    application = _bind(source if isinstance(source, str) else model, storage_options, options, size)
    try:
        serve.run(application, name=name, route_prefix=route_prefix, logging_config=quiet)
    except Exception as err:  # noqa: BLE001 - Ray wraps the replica's error; say it in one line
        _delete_quietly(name)
        raise InputError(f"the application {name!r} did not start: {_first_line(err)}") from None
    url = f"http://{_url_host(host)}:{int(port)}{route_prefix.rstrip('/')}"
    _wait_ready(url, version)
    return ServedModel(name, url, kind)


def application(args: dict) -> Any:
    """A Ray Serve application builder, for Serve config files (``serve deploy``, a KubeRay RayService).

    ``import_path: framelab.toolkits.serving:application``, with ``args``:
    ``model_url`` (required), and optionally ``max_batch_size``,
    ``batch_wait_ms``, ``max_pixels``, ``max_request_bytes``, ``device``
    ("cpu" or "cuda") and ``num_cpus`` (per replica). The config's
    ``deployments`` entry for ``ImageModel`` sets replicas and resources.

    Example:
        >>> from framelab.toolkits.serving import application
        >>> application({"model_url": "s3://bucket/models/caltech", "colour": "red"})
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: unknown application argument 'colour'; known: batch_wait_ms, ...
    """
    from framelab.toolkits.serving.deployment import ReplicaOptions

    known = {"model_url", "max_batch_size", "batch_wait_ms", "max_pixels", "max_request_bytes", "device", "num_cpus"}
    for key in args:
        if key not in known:
            raise InputError(f"unknown application argument {key!r}; known: {', '.join(sorted(known))}")
    url = args.get("model_url")
    if not isinstance(url, str) or not url:
        raise InputError("the application needs args.model_url: the saved model's folder (path or fsspec URL)")
    device = args.get("device", "cpu")
    if device not in DEFAULT_BATCH:
        raise InputError(f"args.device must be 'cpu' or 'cuda', got {device!r}")
    options = ReplicaOptions(
        max_batch_size=_positive_int("max_batch_size", args.get("max_batch_size", DEFAULT_BATCH[device])),
        batch_wait_ms=float(args.get("batch_wait_ms", DEFAULT_BATCH_WAIT_MS)),
        max_pixels=_positive_int("max_pixels", args.get("max_pixels", uploads.MAX_PIXELS)),
        max_request_bytes=_positive_int("max_request_bytes", args.get("max_request_bytes",
                                                                     uploads.DEFAULT_MAX_REQUEST_BYTES)),
        device=device, num_cpus=float(args.get("num_cpus", 1.0)), version=url,
    )
    size = PoolSize(1, 1, options.num_cpus, 1.0 if device == "cuda" else 0.0)
    return _bind(url, None, options, size)


def _bind(source: Any, storage_options: dict | None, options: Any, size: PoolSize) -> Any:
    from framelab.toolkits.serving.deployment import ImageModelDeployment

    return ImageModelDeployment.options(
        num_replicas=size.max_size,
        ray_actor_options={"num_cpus": size.num_cpus, "num_gpus": size.num_gpus},
        # One batch runs while the next one fills.
        max_ongoing_requests=2 * options.max_batch_size,
        health_check_period_s=10,
    ).bind(source, storage_options, options)


def status() -> list[dict]:
    """Every Serve application on the cluster: its name, status, replicas by state, and Serve's message.

    Example:
        >>> from framelab.toolkits import serving
        >>> serving.status()  # doctest: +SKIP
        [{'name': 'caltech', 'status': 'RUNNING', 'replicas': {'RUNNING': 1}, 'message': ''}]
    """
    from ray import serve

    ensure_connected()
    out = []
    for name, app in serve.status().applications.items():
        replicas: dict[str, int] = {}
        for deployment in app.deployments.values():
            for state, n in deployment.replica_states.items():
                replicas[str(getattr(state, "value", state))] = replicas.get(str(getattr(state, "value", state)), 0) + n
        out.append({
            "name": name,
            "status": str(getattr(app.status, "value", app.status)),
            "replicas": replicas,
            "message": app.message or "",
        })
    return out


def shutdown(name: str) -> None:
    """Delete one application (its replicas drain their requests first); an unknown name lists the ones there are.

    Example:
        >>> from framelab.toolkits import serving
        >>> serving.shutdown("no-such-app")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: no application named 'no-such-app' is served on this cluster; ...
    """
    from ray import serve

    names = [app["name"] for app in status()]
    if name not in names:
        listed = ", ".join(map(repr, names)) or "none"
        raise InputError(f"no application named {name!r} is served on this cluster; served: {listed}")
    serve.delete(name)


# ------------------------------------------------------------------ helpers
def _wait_ready(url: str, version: str, timeout: float = READY_TIMEOUT_S) -> None:
    """Wait until the proxy routes GET <url> to a replica of this version."""
    import requests

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = requests.get(url, timeout=10)
            if response.ok and response.json().get("version") == version:
                return
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        except (requests.RequestException, ValueError) as err:
            last = _first_line(err)
        time.sleep(0.5)
    raise InputError(
        f"the application started but {url} did not answer within {timeout:.0f} s ({last}); if Serve was "
        "already running on this cluster, its HTTP port and host were set then: pass port= and host= as they are"
    )


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        import ray

        return ray.util.get_node_ip_address()
    return host


def _delete_quietly(name: str) -> None:
    from ray import serve

    try:
        serve.delete(name)
    except Exception:  # noqa: BLE001 - cleaning up after a failure already being reported
        pass


def _default_name(source: Any, kind: str) -> str:
    if isinstance(source, str):
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", source.rstrip("/").rsplit("/", 1)[-1]).strip("-_")
        if stem:
            return stem[:63]
    return kind


def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"name must be letters, digits, '-' or '_' (at most 63, not starting with '-'), got {name!r}")
    return name


def _check_route_prefix(prefix: Any) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/") or any(c in prefix for c in "?#{} "):
        raise InputError(f"route_prefix must be a URL path starting with '/', like '/caltech'; got {prefix!r}")
    return prefix if prefix == "/" else prefix.rstrip("/")


def _positive_int(what: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{what} must be a positive integer, got {value!r}")
    return value


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    # Ray prints the replica's traceback; its last line is the error itself.
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]*(Error|Exception)\b", line)]
    return (errors[-1] if errors else (lines[0] if lines else type(err).__name__))[:500]


def _image_subtype(data: bytes) -> str:
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    return "octet-stream"


def _json_or_raise(response: Any) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.ok and body is not None:
        return body
    message = (body or {}).get("error", {}).get("message") if isinstance(body, dict) else None
    raise InputError(f"HTTP {response.status_code}: {message or response.text[:300]}")


__all__ = ["ServedModel", "application", "deploy", "plan_replicas", "shutdown", "status"]
