"""A served image classifier under load on loopback, against the same model's offline rate in the same run.

The anchor: ``model.predict(frame)`` over a materialised Frame of the same JPEGs (deep features on the
warm model pool, then the classifier), the rate a batch job gets on this cluster. Measured before the
application starts and again after it is taken down (the replicas hold the CPUs the offline pool
needs); the ratio uses their mean, with the ratio to each beside it as [min, max].

The load: ``framelab.toolkits.serving.deploy`` with its defaults (replicas sized as the offline pool),
then N client threads (1, 8, 32), each POSTing image bytes over one keep-alive connection to
127.0.0.1, a bounded number of requests per level, no retry. Printed per level: images/s, latency
p50/p95/p99 and failed requests. Then one more run at the highest level during which one replica
is killed (``ray.kill`` on its actor) a third of the way in: failed requests without and with one
client retry. Answers are checked: the served top class equals ``predict`` on every distinct image.

    python benchmarks/serving.py --requests 600
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests

from framelab.frames import read_images
from framelab.platform.session import connect, session_info
from framelab.toolkits import datasets, image_classifier, load_model, serving


def images(n: int) -> list[str]:
    files = sorted(datasets.caltech101_path().glob("*/*.jpg"))
    step = max(1, len(files) // n)  # spread over the classes
    return sorted({str(files[(i * step) % len(files)]) for i in range(n)})


def offline_rate(model, paths: list[str]) -> float:
    frame = read_images(paths).materialize()
    start = time.perf_counter()
    model.predict(frame).to_pylist()
    return len(paths) / (time.perf_counter() - start)


def load(url: str, bodies: list[bytes], clients: int, total: int, retry: bool = False,
         midway=None) -> dict:
    """``total`` POSTs from ``clients`` threads (one keep-alive session each); latencies and failures."""
    latencies: list[float] = []
    failed_first = failed_final = 0
    lock = threading.Lock()
    counter = iter(range(total))
    local = threading.local()

    def post(body: bytes) -> bool:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        try:
            return session.post(url, data=body, headers={"Content-Type": "image/jpeg"}, timeout=120).ok
        except requests.RequestException:
            local.session = None
            return False

    def client() -> None:
        nonlocal failed_first, failed_final
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            if midway is not None and i == total // 3:
                midway()
            body = bodies[i % len(bodies)]
            start = time.perf_counter()
            ok = post(body)
            first_ok = ok
            if not ok and retry:
                ok = post(body)
            with lock:
                latencies.append(time.perf_counter() - start)
                failed_first += not first_ok
                failed_final += not ok

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for f in [pool.submit(client) for _ in range(clients)]:
            f.result()
    seconds = time.perf_counter() - start
    p50, p95, p99 = np.percentile(np.array(latencies) * 1000, [50, 95, 99])
    return {"rate": total / seconds, "p50": p50, "p95": p95, "p99": p99,
            "failed": failed_first, "failed_after_retry": failed_final}


def kill_one_replica(app_name: str) -> str:
    import ray

    actors = [a for a in ray.util.list_named_actors(all_namespaces=True)
              if a["name"].startswith(f"SERVE_REPLICA::{app_name}#")]
    victim = actors[0]
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=True)
    return victim["name"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="distinct images sent (cycled)")
    parser.add_argument("--requests", type=int, default=600, help="requests per concurrency level")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--port", type=int, default=0, help="Serve's HTTP port (0: a free one)")
    args = parser.parse_args()

    connect()  # Ray start-up stays outside every timed region
    info = session_info()
    paths = images(args.images)
    bodies = [open(p, "rb").read() for p in paths]
    train = datasets.caltech101(classes=["ewer", "sunflower", "Leopards", "Motorbikes"], per_class=10)
    folder = os.path.join(tempfile.mkdtemp(), "caltech4")
    image_classifier.create(train, "label", seed=0, verbose=False).save(folder)
    model = load_model(folder)

    offline_rate(model, paths[:16])  # warm-up: the pool starts
    before = offline_rate(model, paths)
    # Before the replicas hold their CPUs: a cluster read task needs a whole one.
    expected = model.predict(read_images(paths).materialize()).to_pylist()
    port = args.port or _free_port()
    started = time.perf_counter()
    app = serving.deploy(folder, name="bench", port=port)
    cold = time.perf_counter() - started
    served = [app.predict(body, k=1)["predictions"][0]["class"] for body in bodies]
    mismatches = sum(a != b for a, b in zip(served, expected))
    load(app.url, bodies, max(args.clients), min(64, args.requests))  # warm-up: connections, batches
    results = {c: load(app.url, bodies, c, args.requests) for c in args.clients}
    killed: list[str] = []
    fault = load(app.url, bodies, max(args.clients), args.requests, retry=True,
                 midway=lambda: killed.append(kill_one_replica("bench")))
    replicas = serving.status()[0]["replicas"] if serving.status() else {}
    app.shutdown()
    time.sleep(10)  # the replicas' CPUs return to the cluster
    after = offline_rate(model, paths)
    anchor = statistics.mean([before, after])

    print(f"# {info.num_cpus:g} CPUs, {info.num_gpus:g} GPUs; {len(paths)} distinct Caltech JPEGs; "
          f"{args.requests} requests per level; deploy to first answer {cold:.1f} s; "
          f"served top-1 == predict on {len(paths) - mismatches}/{len(paths)} images")
    print(f"# offline model.predict(frame): {before:.1f} images/s before, {after:.1f} after (anchor {anchor:.1f})")
    print("| clients | images/s | vs offline | p50 ms | p95 ms | p99 ms | p99/p50 | failed |")
    print("|---|---|---|---|---|---|---|---|")
    for c, r in results.items():
        print(f"| {c} | {r['rate']:.1f} | {r['rate'] / anchor:.2f} [{r['rate'] / max(before, after):.2f}, "
              f"{r['rate'] / min(before, after):.2f}] | {r['p50']:.0f} | {r['p95']:.0f} | {r['p99']:.0f} | "
              f"{r['p99'] / r['p50']:.1f} | {r['failed']} |")
    print(f"# fault: {max(args.clients)} clients, replica {killed[0] if killed else '?'} killed after "
          f"{args.requests // 3} requests: {fault['failed']} failed without retry, "
          f"{fault['failed_after_retry']} with one retry; {fault['rate']:.1f} images/s, p99 {fault['p99']:.0f} ms; "
          f"replicas after: {replicas}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
