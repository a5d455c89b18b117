"""Benchmark: framelab's k-means against faiss's k-means and scikit-learn's KMeans (Lloyd), same start, same data.

Per size (``--rows``, default 100,000; the issue's sizes are 100,000 and
1,000,000) of ``--dim`` (1,280) float32 vectors shaped like pooled deep
features, the three run ``--iterations`` Lloyd iterations from the same
initial centres (``--k`` rows of the data), interleaved over ``--pairs``
rounds after a warm-up. Printed: time per iteration (framelab: measured
inside its loop, the data already in shard memory; its one-off loading is
printed apart), the ratios (median [min, max] of per-round ratios) and the
final inertia of each, all evaluated the same way (exact squared distances
to the nearest final centre, with faiss's flat index). faiss runs on every
row (``max_points_per_centroid`` raised: by default it would subsample).

Run:
    python benchmarks/kmeans.py --rows 20000 --pairs 2      # quick
    python benchmarks/kmeans.py --rows 100000,1000000       # the issue's table
"""

from __future__ import annotations

import argparse
import os
import platform as _stdlib_platform  # noqa: F401  (the stdlib module, not framelab's folder)
import statistics
import time
import warnings

import numpy as np
from neighbors import BLOCK_ROWS, make_block


def data(rows: int, dim: int):
    """The vectors in the driver (for the anchors) and the same blocks in the object store (for framelab)."""
    import ray

    from framelab.frames import Frame

    blocks = [make_block(i, min(BLOCK_ROWS, rows - s), dim) for i, s in enumerate(range(0, rows, BLOCK_ROWS))]
    X = np.empty((rows, dim), dtype=np.float32)
    for i, block in enumerate(blocks):
        X[i * BLOCK_ROWS:i * BLOCK_ROWS + block.num_rows] = (
            block.column("features").combine_chunks().flatten().to_numpy().reshape(-1, dim))
    refs = [ray.put(b) for b in blocks]
    del blocks
    return X, Frame.from_ray(ray.data.from_arrow_refs(refs))


def inertia(X: np.ndarray, centers: np.ndarray) -> float:
    import faiss

    index = faiss.IndexFlatL2(X.shape[1])
    index.add(np.ascontiguousarray(centers, dtype=np.float32))
    total = 0.0
    for s in range(0, len(X), 65536):
        D, _ = index.search(X[s:s + 65536], 1)
        total += float(D.sum(dtype=np.float64))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    args = parser.parse_args()

    import faiss
    from sklearn.cluster import KMeans

    from framelab.platform.session import connect
    from framelab.toolkits import kmeans

    info = connect()
    cores = os.cpu_count()
    faiss.omp_set_num_threads(cores)
    warnings.filterwarnings("ignore", message=".*Number of distinct clusters.*")
    print(f"# kmeans benchmark: {info!r}; {cores} cores, no GPU; k={args.k}, {args.iterations} Lloyd iterations, "
          f"{args.pairs} rounds after a warm-up")
    rows_table = []
    for rows in map(int, args.rows.split(",")):
        X, frame = data(rows, args.dim)
        start = X[np.linspace(0, rows - 1, args.k).astype(int)].astype(np.float64)
        per_iter = ([], [], [])
        final = {}
        for round_ in range(args.pairs + 1):
            t = time.perf_counter()
            model = kmeans.create(frame, args.k, initial_centers=start, max_iterations=args.iterations,
                                  verbose=False)
            total_fl = time.perf_counter() - t
            steps = model.training["progress"]
            it_fl = steps[-1]["elapsed_s"] / len(steps)
            setup_fl = total_fl - steps[-1]["elapsed_s"]
            t = time.perf_counter()
            fk = faiss.Kmeans(args.dim, args.k, niter=args.iterations, max_points_per_centroid=rows, seed=1)
            fk.train(X, init_centroids=start.astype(np.float32))
            it_fa = (time.perf_counter() - t) / args.iterations
            t = time.perf_counter()
            sk = KMeans(args.k, init=start, n_init=1, max_iter=args.iterations, tol=0.0, algorithm="lloyd").fit(X)
            it_sk = (time.perf_counter() - t) / max(sk.n_iter_, 1)
            print(f"# {rows:,} round {round_}: per iteration framelab {it_fl:.3f}s (+{setup_fl:.1f}s loading, "
                  f"{len(steps)} iterations), faiss {it_fa:.3f}s, sklearn {it_sk:.3f}s ({sk.n_iter_})", flush=True)
            if round_ > 0:
                for store, value in zip(per_iter, (it_fl, it_fa, it_sk)):
                    store.append(value)
            final = {"framelab": inertia(X, model.centers), "faiss": inertia(X, fk.centroids),
                     "sklearn": inertia(X, sk.cluster_centers_), "setup": setup_fl,
                     "shards": model.training["num_shards"]}
        rows_table.append((rows, per_iter, final))
        del X, frame
    print()
    print("| rows x dim, k | framelab s / iteration | faiss s / iteration | sklearn s / iteration | "
          "framelab / faiss | framelab / sklearn | final inertia framelab / faiss / sklearn | "
          "framelab loading s | machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for rows, (fl, fa, sk), f in rows_table:
        r_fa = [a / b for a, b in zip(fl, fa)]
        r_sk = [a / b for a, b in zip(fl, sk)]
        print(f"| {rows:,} x {args.dim}, {args.k} | {statistics.median(fl):.3f} | {statistics.median(fa):.3f} | "
              f"{statistics.median(sk):.3f} | {statistics.median(r_fa):.2f} [{min(r_fa):.2f}, {max(r_fa):.2f}] | "
              f"{statistics.median(r_sk):.2f} [{min(r_sk):.2f}, {max(r_sk):.2f}] | "
              f"{f['framelab']:.6g} / {f['faiss']:.6g} / {f['sklearn']:.6g} | {f['setup']:.1f} | "
              f"{cores} cores, {f['shards']} shard(s) |")


if __name__ == "__main__":
    main()
