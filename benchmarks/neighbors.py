"""Benchmark: framelab's exact nearest neighbours against faiss (exact flat index) and scikit-learn (brute force).

One run, per size (``--rows``, default 100,000; the issue's sizes are 100,000
and 1,000,000) of ``--dim`` (1,280) float32 vectors shaped like pooled deep
features (non-negative, clustered):

* build: ``nearest_neighbors.create`` on a frame whose blocks are already in
  Ray's object store (as extracted features are), against ``faiss.IndexFlatL2.add``
  and ``NearestNeighbors(algorithm="brute").fit``;
* queries per second for k=10 (``--queries`` queries), outputs checked equal;
* framelab's similarity graph (k=10) and near-duplicate groups over every row,
  with time and peak memory per process (``--graph-method``: "brute_force" up
  to 200,000 rows, "ann" above, by default);
* ``--two-nodes``: the same queries on a two-node Ray cluster on loopback.

Rounds are interleaved (framelab, faiss, scikit-learn, repeated ``--pairs``
times after a warm-up) and ratios are medians of per-round ratios with
[min, max]. Each side uses every core of the machine (framelab: one shard
per CPU, one BLAS thread each; faiss and scikit-learn: their own threads).
Data enters the object store once, block by block, from Ray tasks; framelab's
shards view it where it lies, and the anchors share one copy (faiss's index
storage, viewed by scikit-learn), so 1M x 1,280 (4.9 GB) fits in 24 GiB.

Run:
    python benchmarks/neighbors.py --rows 20000 --pairs 2       # quick
    python benchmarks/neighbors.py --rows 100000,1000000        # the issue's table (1M: hours on 2 cores)
    python benchmarks/neighbors.py --rows 1000000 --graph-only  # the 1M graph and groups, peak memory
"""

from __future__ import annotations

import argparse
import os
import platform as _stdlib_platform  # noqa: F401  (the stdlib module, not framelab's folder)
import statistics
import time

import numpy as np

BLOCK_ROWS = 25_000


def make_block(seed: int, rows: int, dim: int, clusters: int = 1000):
    """Pooled-ReLU-like vectors: a non-negative profile per cluster plus noise, clipped at 0 (an Arrow table)."""
    import pyarrow as pa

    from framelab.frames import vectors_from_numpy

    profile_rng = np.random.default_rng(12345)
    profiles = profile_rng.gamma(0.6, 0.8, size=(clusters, dim)).astype(np.float32)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, clusters, rows)
    X = profiles[which] + rng.standard_normal((rows, dim), dtype=np.float32)
    np.maximum(X, 0.0, out=X)
    return pa.table({"features": vectors_from_numpy(X)})


def frame_of(rows: int, dim: int):
    """A Frame over blocks made by Ray tasks straight into the object store (the driver never holds them)."""
    import ray

    from framelab.frames import Frame

    make = ray.remote(num_cpus=1)(make_block)
    sizes = [min(BLOCK_ROWS, rows - s) for s in range(0, rows, BLOCK_ROWS)]
    refs = [make.remote(i, n, dim) for i, n in enumerate(sizes)]
    ray.wait(refs, num_returns=len(refs))
    return Frame.from_ray(ray.data.from_arrow_refs(refs)), refs


def memory() -> dict:
    """This process's peak resident memory and current private memory, in GiB (Linux /proc)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "RssAnon")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) / 2**20
    return out


def shard_memory(state) -> dict:
    return memory()


def build_faiss(refs, dim: int):
    import faiss
    import ray

    index = faiss.IndexFlatL2(dim)
    for ref in refs:  # one block at a time: faiss keeps the one copy
        index.add(ray.get(ref).column("features").combine_chunks().flatten().to_numpy().reshape(-1, dim))
    return index


def faiss_view(index, dim: int) -> np.ndarray:
    """faiss's stored vectors as a numpy array, without a copy (scikit-learn fits on it)."""
    import faiss

    return faiss.rev_swig_ptr(index.get_xb(), index.ntotal * dim).reshape(index.ntotal, dim)


def ratio_line(name: str, ours: list, theirs: list) -> str:
    ratios = [a / b for a, b in zip(ours, theirs)]
    return f"{statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]"


def run_size(rows: int, args) -> dict:
    import ray
    from sklearn.neighbors import NearestNeighbors

    from framelab.frames import Frame
    from framelab.toolkits import nearest_neighbors

    frame, refs = frame_of(rows, args.dim)
    Q = make_block(10**6 + rows, args.queries, args.dim).column("features").combine_chunks()
    Qn = Q.flatten().to_numpy().reshape(-1, args.dim)
    queries = Frame({"features": Qn})
    times = {"build": ([], [], []), "query": ([], [], [])}
    model = index = sk = None
    for round_ in range(0 if args.graph_only else args.pairs + 1):  # round 0 warms up
        if model is not None:
            model._vectors.close()
        del model, sk, index
        t = time.perf_counter()
        model = nearest_neighbors.create(frame, verbose=False)
        t_fl = time.perf_counter() - t
        t = time.perf_counter()
        index = build_faiss(refs, args.dim)
        t_fa = time.perf_counter() - t
        t = time.perf_counter()
        sk = NearestNeighbors(n_neighbors=args.k, algorithm="brute").fit(faiss_view(index, args.dim))
        t_sk = time.perf_counter() - t
        t = time.perf_counter()
        ours = model.query(queries, k=args.k).to_arrow()
        q_fl = time.perf_counter() - t
        t = time.perf_counter()
        _, faiss_ids = index.search(Qn, args.k)
        q_fa = time.perf_counter() - t
        t = time.perf_counter()
        _, sk_ids = sk.kneighbors(Qn, n_neighbors=args.k)
        q_sk = time.perf_counter() - t
        if round_ > 0:
            for key, values in (("build", (t_fl, t_fa, t_sk)), ("query", (q_fl, q_fa, q_sk))):
                for store, value in zip(times[key], values):
                    store.append(value)
        print(f"# {rows:,} round {round_}: build fl {t_fl:.2f}s faiss {t_fa:.2f}s sklearn {t_sk:.2f}s; "
              f"{args.queries} queries fl {q_fl:.2f}s faiss {q_fa:.2f}s sklearn {q_sk:.2f}s", flush=True)
    result = {"rows": rows, "times": times}
    if model is not None:
        got = np.asarray(ours.column("reference_label").to_pylist()).reshape(-1, args.k)
        result.update(agree_faiss=float((got == faiss_ids).mean()), agree_sklearn=float((got == sk_ids).mean()),
                      shards=model.training["num_shards"])
    del index, sk
    if args.graph_method != "none":
        method = args.graph_method
        if method == "auto":
            method = "brute_force" if rows <= 200_000 else "ann"
        if model is None or method != model.method:
            if model is not None:
                model._vectors.close()
            model = nearest_neighbors.create(frame, method=method, seed=0, verbose=False)
        build_s = model.training.get("build_time_s")
        if args.graph_sample and args.graph_sample < rows:
            # The graph's work is one k=10 search per row (itself excluded): timed on the first
            # ``graph_sample`` rows of the data, scaled to every row; the groups are not run.
            sample = Frame(ray.get(refs[0]).slice(0, args.graph_sample))
            t = time.perf_counter()
            edges = model.query(sample, k=11).num_rows()
            t_graph = (time.perf_counter() - t) * rows / args.graph_sample
            t_groups, grouped = float("nan"), 0
            print(f"# {rows:,} graph ({method}): {args.graph_sample:,} rows searched in "
                  f"{t_graph * args.graph_sample / rows:.1f}s: every row would take {t_graph:.0f}s", flush=True)
        else:
            t = time.perf_counter()
            graph = model.similarity_graph(k=10)
            edges = graph.num_rows()
            t_graph = time.perf_counter() - t
            print(f"# {rows:,} graph ({method}): {edges:,} edges in {t_graph:.1f}s; {memory()} driver, "
                  f"{model._vectors.shards.map(shard_memory)} shards", flush=True)
            del graph
            t = time.perf_counter()
            groups = model.connected_components(radius=args.radius, k=10 if method == "ann" else None)
            grouped = groups.num_rows()
            t_groups = time.perf_counter() - t
        shard_mem = model._vectors.shards.map(shard_memory)
        store = ray.cluster_resources().get("object_store_memory", 0) - ray.available_resources().get(
            "object_store_memory", 0)
        result.update(graph_method=method, graph_s=t_graph, edges=edges, groups_s=t_groups, grouped=grouped,
                      build_s=build_s,
                      recall=model.training.get("recall"), driver_mem=memory(), shard_mem=shard_mem,
                      store_gib=store / 2**30)
        if grouped:
            print(f"# {rows:,} graph ({method}): {edges:,} edges in {t_graph:.1f}s; groups of {grouped:,} rows "
                  f"in {t_groups:.1f}s", flush=True)
    if model is not None:
        model._vectors.close()
    del frame, refs
    return result


def two_nodes(rows: int, args) -> tuple[float, float]:
    """Median query time on one node (this session) and on a two-node loopback cluster."""
    import ray
    from ray.cluster_utils import Cluster

    from framelab.frames import Frame
    from framelab.platform.session import connect
    from framelab.toolkits import nearest_neighbors

    Qn = make_block(10**6 + rows, args.queries, args.dim).column("features").combine_chunks()
    queries = Frame({"features": Qn.flatten().to_numpy().reshape(-1, args.dim)})

    def measure() -> tuple[float, int]:
        frame, refs = frame_of(rows, args.dim)
        model = nearest_neighbors.create(frame, verbose=False)
        model.query(queries, k=args.k).to_arrow()
        spent = []
        for _ in range(args.pairs):
            t = time.perf_counter()
            model.query(queries, k=args.k).to_arrow()
            spent.append(time.perf_counter() - t)
        nodes = model.training["num_nodes"]
        model._vectors.close()
        return statistics.median(spent), nodes

    one, _ = measure()
    ray.shutdown()
    cores = os.cpu_count() or 2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": max(1, cores // 2)})
    cluster.add_node(num_cpus=max(1, cores - cores // 2))
    cluster.wait_for_nodes()
    connect(address=cluster.address)
    try:
        two, nodes = measure()
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(f"# two nodes: one node {one:.2f}s, two nodes ({nodes} used) {two:.2f}s for {args.queries} queries")
    return one, two


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000", help="comma-separated reference sizes")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--graph-method", default="auto", choices=["auto", "brute_force", "ann", "none"])
    parser.add_argument("--radius", type=float, default=1.0,
                        help="near-duplicate radius (euclidean) for the groups")
    parser.add_argument("--graph-only", action="store_true",
                        help="skip the build and query rounds: only the graph, the groups and their memory")
    parser.add_argument("--graph-sample", type=int, default=0,
                        help="time the graph's searches on this many rows and scale to all (1M ANN: hours on 2 cores)")
    parser.add_argument("--two-nodes", action="store_true", help="also time queries on two loopback nodes")
    args = parser.parse_args()

    from framelab.platform.session import connect

    info = connect()
    cores = os.cpu_count()
    print(f"# neighbors benchmark: {info!r}; {cores} cores, no GPU; k={args.k}, {args.queries} queries, "
          f"{args.pairs} rounds after a warm-up")
    results = [run_size(int(r), args) for r in args.rows.split(",")]
    print()
    if not args.graph_only:
        print("| work | rows x dim | framelab s | faiss flat s | sklearn brute s | framelab / faiss | "
              "framelab / sklearn | same neighbours as faiss / sklearn | machine |")
        print("|---|---|---|---|---|---|---|---|---|")
    for r in (r for r in results if r["times"]["build"][0]):
        for key, label in (("build", "build"), ("query", f"{args.queries} queries, k={args.k}")):
            fl, fa, sk = r["times"][key]
            extra = f"{r['agree_faiss']:.4f} / {r['agree_sklearn']:.4f}" if key == "query" else ""
            print(f"| {label} | {r['rows']:,} x {args.dim} | {statistics.median(fl):.2f} | "
                  f"{statistics.median(fa):.2f} | {statistics.median(sk):.2f} | {ratio_line('', fl, fa)} | "
                  f"{ratio_line('', fl, sk)} | {extra} | {cores} cores, {r['shards']} shard(s) |")
        if key == "query":
            fl, fa, sk = r["times"]["query"]
            print(f"| QPS | {r['rows']:,} x {args.dim} | {args.queries / statistics.median(fl):.0f} | "
                  f"{args.queries / statistics.median(fa):.0f} | {args.queries / statistics.median(sk):.0f} "
                  "| | | | |")
    graphs = [r for r in results if "graph_s" in r]
    if graphs:
        print()
        print("| rows | graph method | create s | k=10 graph s (edges) | near-duplicate groups s | recall "
              "| driver peak RSS GiB | per-shard peak RSS GiB (private now) | object store GiB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in graphs:
            shards = ", ".join(f"{m['VmHWM']:.2f} ({m['RssAnon']:.2f})" for m in r["shard_mem"])
            recall = f"{r['recall']:.3f}" if r["recall"] is not None else "exact"
            graph = (f"{r['graph_s']:.1f} ({r['edges']:,})" if r["grouped"] else
                     f"{r['graph_s']:.0f} (scaled from {args.graph_sample:,} rows)")
            print(f"| {r['rows']:,} | {r['graph_method']} | {r['build_s']:.0f} | {graph} | "
                  f"{r['groups_s']:.1f} | {recall} | {r['driver_mem']['VmHWM']:.2f} | {shards} | "
                  f"{r['store_gib']:.2f} |")
    if args.two_nodes:
        one, two = two_nodes(int(args.rows.split(",")[0]), args)
        print(f"\nTwo nodes on loopback (same {cores} cores split in two): query time {two / one:.2f}x one node's")


if __name__ == "__main__":
    main()
