"""Frame operations: framelab vs raw Ray Data vs polars, on the same rows, in the same run.

Work (checked equal on every side):

* filter + select + count on ``--rows`` rows (int64 key with 1,000 groups, float64 x, a string column);
* group-by key with count, sum(x), mean(x) on the same rows;
* an inner join of two ``--join-rows`` frames on an int64 key (row count checked);
* a Parquet read with a filter and a projection: the same rows written to a file of 20 row
  groups, sorted by an int64 ``day``; keep ``day >= 95%`` and two of five columns, result in the
  driver (every side pushes both into its reader: polars ``scan_parquet``, Ray Data
  ``read_parquet().filter(expr=).select_columns()``); row groups and columns framelab read are printed;
* interactive latency on a 100,000-row frame in a warm session: ``head()`` and ``filter(...).num_rows()``;
* cold start in a fresh process: ``connect()`` plus the first small operations.

framelab is measured twice: the frame as built in memory (it runs in the driver
with polars/pyarrow) and the same frame pushed onto the cluster with
``repartition(blocks).materialize()`` (it runs as Ray Data tasks). The Ray Data
anchor runs on exactly those materialised blocks, written as a Ray user would
(``filter(expr=...)``, ``groupby().aggregate(Count(), Sum(), Mean())``,
``join``); the polars anchor runs on a ``pl.DataFrame`` in the driver. Every
round runs all sides one after another (F F R P, F F R P, ...) after one warm-up
round; a ratio is framelab seconds / anchor seconds within a round (below 1:
framelab is faster), reported as median [min, max]. Ray is started before the
timed region; its start-up is reported once, as cold start.

    python benchmarks/frames.py [--rows 10_000_000] [--join-rows 1_000_000] [--pairs 3] [--mode both]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

# A Frame built in memory always runs in the driver whatever its size; this
# knob only decides whether a *materialised cluster* frame is fetched back to
# the driver. Setting it to 0 keeps the "cluster" frame on the cluster at any
# --rows, so that side is always compared with Ray Data on the same blocks.
os.environ.setdefault("FRAMELAB_LOCAL_BYTES", "0")

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute  # noqa: E402,F401

GROUPS = 1_000
THRESHOLD = 0.5  # keeps ~31% of standard-normal rows
INTERACTIVE_ROWS = 100_000
SEED = 0
SETTLE_WAITS: dict[str, float] = {}  # untimed seconds spent waiting for Ray CPUs before each side


# ------------------------------------------------------------------- data
def make_table(rows: int, seed: int = SEED) -> pa.Table:
    """``key`` int64 in [0, 1000), ``x`` float64 ~ N(0, 1), ``s`` a short string (100 distinct)."""
    rng = np.random.default_rng(seed)
    vocab = pa.array([f"category_{i:03d}" for i in range(100)])
    return pa.table(
        {
            "key": rng.integers(0, GROUPS, rows, dtype=np.int64),
            "x": rng.standard_normal(rows),
            "s": vocab.take(pa.array(rng.integers(0, 100, rows))),
        }
    )


def make_join_tables(rows: int, seed: int = SEED) -> tuple[pa.Table, pa.Table, int]:
    """Two ``rows``-row tables with unique int64 keys that overlap on about half of them."""
    rng = np.random.default_rng(seed + 1)
    left_keys = rng.permutation(rows).astype(np.int64)
    right_keys = rng.permutation(np.arange(rows // 2, rows // 2 + rows, dtype=np.int64))
    left = pa.table({"k": left_keys, "a": rng.standard_normal(rows)})
    right = pa.table({"k": right_keys, "b": rng.standard_normal(rows)})
    expected = int(np.isin(left_keys, right_keys).sum())
    return left, right, expected


# ------------------------------------------------------------- the work
def fl_filter_count(frame: Any) -> int:
    return frame.filter(pl.col("x") > THRESHOLD).select("key", "s").num_rows()


def ray_filter_count(ds: Any) -> int:
    from ray.data.expressions import col

    return ds.filter(expr=col("x") > THRESHOLD).select_columns(["key", "s"]).count()


def pl_filter_count(df: pl.DataFrame) -> int:
    return df.filter(pl.col("x") > THRESHOLD).select("key", "s").height


def fl_groupby(frame: Any) -> pa.Table:
    from framelab.frames import agg

    out = frame.groupby("key").agg(count=agg.count(), sum=agg.sum("x"), mean=agg.mean("x"))
    return out.to_arrow()


def ray_groupby(ds: Any) -> pa.Table:
    import ray
    from ray.data.aggregate import Count, Mean, Sum

    out = ds.groupby("key").aggregate(Count(), Sum("x"), Mean("x"))
    table = pa.concat_tables(ray.get(out.to_arrow_refs()))
    return table.rename_columns(["key", "count", "sum", "mean"])


def pl_groupby(df: pl.DataFrame) -> pa.Table:
    out = df.group_by("key").agg(
        pl.len().alias("count"), pl.col("x").sum().alias("sum"), pl.col("x").mean().alias("mean")
    )
    return out.to_arrow()


def fl_join(left: Any, right: Any) -> int:
    return left.join(right, on="k").num_rows()


def ray_join(left: Any, right: Any, partitions: int) -> int:
    return left.join(right, "inner", num_partitions=partitions, on=("k",)).count()


def pl_join(left: pl.DataFrame, right: pl.DataFrame) -> int:
    return left.join(right, on="k").height


def fl_parquet(path: str, day: int, where: str) -> pa.Table:
    from framelab.frames import Frame, planner

    # Files up to FRAMELAB_LOCAL_BYTES are read in the driver, bigger ones on the cluster; pin each side.
    before = planner.LOCAL_BYTES
    planner.LOCAL_BYTES = 1 << 62 if where == "local" else 0
    try:
        return Frame.read_parquet(path).filter(pl.col("day") >= day).select("key", "x").to_arrow()
    finally:
        planner.LOCAL_BYTES = before


def ray_parquet(path: str, day: int) -> pa.Table:
    import ray
    from ray.data.expressions import col

    ds = ray.data.read_parquet(path).filter(expr=col("day") >= day).select_columns(["key", "x"])
    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


def pl_parquet(path: str, day: int) -> pa.Table:
    return pl.scan_parquet(path).filter(pl.col("day") >= day).select("key", "x").collect().to_arrow()


def fl_head(frame: Any) -> int:
    return frame.head(10).to_arrow().num_rows


def ray_head(ds: Any) -> int:
    return ds.take_batch(10, batch_format="pyarrow").num_rows


def pl_head(df: pl.DataFrame) -> int:
    return df.head(10).height


# ------------------------------------------------------------ checking
def same_groups(tables: dict[str, pa.Table]) -> str:
    """Check every side found the same groups, counts, sums and means; say so in one line."""
    sorted_ = {
        k: pl.from_arrow(t).select("key", "count", "sum", "mean").sort("key")
        for k, t in tables.items()
    }
    ref_name, ref = next(iter(sorted_.items()))
    for name, df in sorted_.items():
        if (
            df["key"].to_list() != ref["key"].to_list()
            or df["count"].cast(pl.Int64).to_list() != ref["count"].cast(pl.Int64).to_list()
        ):
            raise SystemExit(f"groupby: {name} found other groups or counts than {ref_name}")
        for column in ("sum", "mean"):
            if not np.allclose(df[column].to_numpy(), ref[column].to_numpy(), rtol=1e-9, atol=1e-9):
                raise SystemExit(f"groupby: {name} {column} differs from {ref_name}")
    return f"{ref.height} groups, counts equal, sums/means equal to 1e-9"


def same_value(name: str, values: dict[str, int], expected: int | None = None) -> str:
    distinct = set(values.values()) | ({expected} if expected is not None else set())
    if len(distinct) != 1:
        raise SystemExit(f"{name}: sides disagree: {values} (expected {expected})")
    return f"{next(iter(distinct)):,} rows on every side"


# ------------------------------------------------------------- timing
def settle(timeout: float = 20.0) -> float:
    """Wait (untimed) until every Ray CPU is free again; return how long that took.

    Ray Data's hash-shuffle groupby and join leave aggregator actors holding a
    CPU for seconds after the result is back, which would bill the next side
    for the previous one's clean-up.
    """
    import ray

    start = time.perf_counter()
    total = ray.cluster_resources().get("CPU", 0)
    while time.perf_counter() - start < timeout and ray.available_resources().get("CPU", 0) < total:
        time.sleep(0.05)
    return time.perf_counter() - start


def rounds(
    sides: dict[str, Callable[[], Any]], pairs: int
) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """Run every side once per round, one warm-up round then ``pairs`` timed rounds."""
    times: dict[str, list[float]] = {k: [] for k in sides}
    outputs: dict[str, Any] = {}
    for round_ in range(pairs + 1):
        for name, fn in sides.items():
            SETTLE_WAITS[name] = SETTLE_WAITS.get(name, 0.0) + settle()
            start = time.perf_counter()
            outputs[name] = fn()
            elapsed = time.perf_counter() - start
            if round_:
                times[name].append(elapsed)
    return times, outputs


def ratio_text(num: list[float], den: list[float]) -> str:
    r = [a / b for a, b in zip(num, den)]

    def fmt(v: float) -> str:
        return f"{v:.2f}" if v >= 0.1 else f"{v:.2g}"

    return f"{fmt(statistics.median(r))} [{fmt(min(r))}, {fmt(max(r))}]"


def seconds(ts: list[float]) -> str:
    m = statistics.median(ts)
    return f"{m:.3f}" if m < 10 else f"{m:.1f}"


# ----------------------------------------------------------- cold start
COLD_FRAMELAB = """
import json, os, time
t0 = time.perf_counter()
import numpy as np, polars as pl
from framelab.frames import Frame
t1 = time.perf_counter()
f = Frame({{"x": np.random.default_rng(0).standard_normal({rows})}})
f.head(10); f.filter(pl.col("x") > 0.5).num_rows()
t2 = time.perf_counter()
from framelab.platform.session import connect
connect({address!r})
t3 = time.perf_counter()
f.repartition(2).filter(pl.col("x") > 0.5).num_rows()
t4 = time.perf_counter()
print("COLD " + json.dumps({{"import": t1 - t0, "first_driver_ops": t2 - t1, "connect": t3 - t2, "first_cluster_op": t4 - t3}}))
"""

COLD_RAY = """
import json, time
t0 = time.perf_counter()
import numpy as np, pyarrow as pa, ray, ray.data
from ray.data.expressions import col
t1 = time.perf_counter()
ray.init(address={address!r}, include_dashboard=False, logging_level="WARNING")
ray.data.DataContext.get_current().enable_progress_bars = False
t2 = time.perf_counter()
ds = ray.data.from_arrow(pa.table({{"x": np.random.default_rng(0).standard_normal({rows})}}))
ds.filter(expr=col("x") > 0.5).count()
t3 = time.perf_counter()
print("COLD " + json.dumps({{"import": t1 - t0, "connect": t2 - t1, "first_cluster_op": t3 - t2}}))
"""


def cold_start(address: str | None) -> dict[str, dict[str, float]]:
    """Each side once in a fresh Python process (nothing else of ours is running yet)."""
    out = {}
    for name, code in (("framelab", COLD_FRAMELAB), ("ray", COLD_RAY)):
        script = code.format(address=address, rows=INTERACTIVE_ROWS)
        proc = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
        )
        lines = [line for line in proc.stdout.splitlines() if line.startswith("COLD ")]
        if proc.returncode or not lines:
            raise SystemExit(f"cold start ({name}) failed:\n{proc.stderr[-3000:]}")
        out[name] = json.loads(lines[-1][5:])
    return out


# ------------------------------------------------------------------ main
class Runner:
    """Builds the sides of each work item, runs the rounds, and keeps the rows of the table."""

    def __init__(self, modes: list[str], blocks: int, pairs: int):
        self.modes = modes
        self.blocks = blocks
        self.pairs = pairs
        self.rows: list[tuple[str, ...]] = []
        self.checks: list[str] = []
        self.paths: list[str] = []
        self.latency: list[tuple[str, dict[str, list[float]]]] = []
        self.notes: list[str] = []

    def build(self, table: pa.Table) -> tuple[dict[str, Any], Any, pl.DataFrame]:
        """framelab's frames (as built, and on the cluster), the Ray Dataset of the same blocks, the polars frame."""
        from framelab.frames import Frame

        cluster = Frame(table).repartition(self.blocks).materialize()
        frames = {"local": Frame(table), "distributed": cluster}
        frames = {k: v for k, v in frames.items() if k in self.modes}
        for name, f in frames.items():
            # A private look, only to print where the work really ran.
            where = "in the driver" if f._is_local() else "on Ray Data"
            self.paths.append(f"{name} frame of {table.num_rows:,} rows runs {where}")
        return frames, cluster.to_ray(), pl.from_arrow(table)

    def measure(
        self, work: str, size: str, sides: dict[str, Callable[[], Any]], pairs: int | None = None
    ) -> dict[str, Any]:
        times, outputs = rounds(sides, self.pairs if pairs is None else pairs)
        for fl in (k for k in ("local", "distributed") if k in times):
            for anchor, label in (("ray", "Ray Data"), ("polars", "polars")):
                self.rows.append(
                    (
                        work,
                        size,
                        f"framelab {fl}",
                        seconds(times[fl]),
                        label,
                        seconds(times[anchor]),
                        ratio_text(times[fl], times[anchor]),
                    )
                )
        if pairs is not None:
            self.latency.append((work, times))
        return outputs


def bench_big(run: Runner, rows: int) -> None:
    table = make_table(rows)
    frames, ds, df = run.build(table)
    size = f"{rows:,} rows ({table.nbytes / 1e6:.0f} MB)"
    sides = {k: (lambda f=f: fl_filter_count(f)) for k, f in frames.items()}
    sides |= {"ray": lambda: ray_filter_count(ds), "polars": lambda: pl_filter_count(df)}
    out = run.measure("filter(x>0.5)+select+count", size, sides)
    run.checks.append("filter+select+count: " + same_value("filter", out))
    sides = {k: (lambda f=f: fl_groupby(f)) for k, f in frames.items()}
    sides |= {"ray": lambda: ray_groupby(ds), "polars": lambda: pl_groupby(df)}
    out = run.measure("groupby(key).agg(count,sum,mean)", size, sides)
    run.checks.append("groupby count/sum/mean: " + same_groups(out))
    if "distributed" in frames:
        # In the rounds this side follows Ray Data's hash-shuffle groupby, which
        # replaces Ray's worker processes; a back-to-back repeat shows the cost
        # on workers that already ran framelab (one shot, not a paired figure).
        fl_groupby(frames["distributed"])
        start = time.perf_counter()
        fl_groupby(frames["distributed"])
        run.notes.append(
            f"framelab distributed groupby repeated back-to-back (warm workers, single shot): "
            f"{time.perf_counter() - start:.3f} s"
        )


def bench_join(run: Runner, rows: int, partitions: int) -> None:
    left_t, right_t, expected = make_join_tables(rows)
    left, left_ds, left_df = run.build(left_t)
    right, right_ds, right_df = run.build(right_t)
    sides = {k: (lambda k=k: fl_join(left[k], right[k])) for k in left}
    sides |= {
        "ray": lambda: ray_join(left_ds, right_ds, partitions),
        "polars": lambda: pl_join(left_df, right_df),
    }
    out = run.measure("inner join on int64 key", f"{rows:,} x {rows:,}", sides)
    run.checks.append("inner join: " + same_value("join", out, expected))


def bench_parquet(run: Runner, rows: int) -> None:
    import tempfile

    import pyarrow.parquet as pq

    from framelab.frames import Frame

    table = make_table(rows)
    table = table.append_column("day", pa.array(np.arange(rows, dtype=np.int64)))
    table = table.append_column("note", pa.array(np.full(rows, "a longer text column nobody reads")))
    path = os.path.join(tempfile.mkdtemp(prefix="framelab-bench-"), "days.parquet")
    pq.write_table(table, path, row_group_size=max(1, rows // 20))
    day = int(rows * 0.95)
    plan = Frame.read_parquet(path).filter(pl.col("day") >= day).select("key", "x").explain()
    read = next(line.strip() for line in plan.splitlines() if line.strip().startswith("Read"))
    run.notes.append(f"parquet read plan: {read}")
    sides = {k: (lambda k=k: fl_parquet(path, day, k)) for k in run.modes}
    sides |= {"ray": lambda: ray_parquet(path, day), "polars": lambda: pl_parquet(path, day)}
    out = run.measure("parquet read: filter(day>=95%) + select(2 of 5 columns)", f"{rows:,} rows, 20 row groups", sides)
    counts = {k: t.num_rows for k, t in out.items()}
    sums = {k: round(float(pa.compute.sum(t.column("x")).as_py()), 6) for k, t in out.items()}
    if len(set(sums.values())) != 1:
        raise SystemExit(f"parquet read: sides disagree on sum(x): {sums}")
    run.checks.append("parquet read: " + same_value("parquet", counts, rows - day) + ", sum(x) equal")


def bench_interactive(run: Runner, pairs: int) -> None:
    frames, ds, df = run.build(make_table(INTERACTIVE_ROWS, seed=SEED + 2))
    size = f"{INTERACTIVE_ROWS:,} rows"
    sides = {k: (lambda f=f: fl_head(f)) for k, f in frames.items()}
    sides |= {"ray": lambda: ray_head(ds), "polars": lambda: pl_head(df)}
    out = run.measure("head(10), warm", size, sides, pairs)
    run.checks.append("head(10): " + same_value("head", out))
    sides = {k: (lambda f=f: fl_filter_count(f)) for k, f in frames.items()}
    sides |= {"ray": lambda: ray_filter_count(ds), "polars": lambda: pl_filter_count(df)}
    out = run.measure("filter(x>0.5).num_rows(), warm", size, sides, pairs)
    run.checks.append("interactive filter: " + same_value("interactive filter", out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--join-rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", type=int, default=3, help="timed rounds after one warm-up round")
    parser.add_argument("--interactive-pairs", type=int, default=10)
    parser.add_argument("--mode", choices=("local", "distributed", "both"), default="both")
    parser.add_argument(
        "--blocks", type=int, default=None, help="blocks of the cluster frame (default: 2 per CPU)"
    )
    parser.add_argument(
        "--no-cold", action="store_true", help="skip the two fresh-process cold-start runs"
    )
    args = parser.parse_args()

    # An address-less ray.init() joins any Ray another process on this machine
    # started; "local" gives this benchmark its own Ray, unless one is named.
    address = os.environ.get("FRAMELAB_RAY_ADDRESS") or "local"
    cold = None if args.no_cold else cold_start(address)

    import ray

    from framelab.platform.session import connect

    cpus = int(connect(address).num_cpus)
    blocks = args.blocks or 2 * cpus
    partitions = max(2, cpus)  # what framelab's distributed join uses
    modes = ["local", "distributed"] if args.mode == "both" else [args.mode]
    run = Runner(modes, blocks, args.pairs)
    bench_big(run, args.rows)
    bench_join(run, args.join_rows, partitions)
    bench_parquet(run, args.rows)
    bench_interactive(run, args.interactive_pairs)

    machine = (
        f"{os.cpu_count()} cores ({cpus} Ray CPUs, polars {pl.thread_pool_size()} threads), no GPU"
    )
    print(
        f"\nframelab frames benchmark, {date.today().isoformat()}, ray {ray.__version__}, polars {pl.__version__}, pyarrow {pa.__version__}"
    )
    print(f"command: python benchmarks/frames.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {machine}; cluster frame: {blocks} blocks; Ray join partitions: {partitions}")
    print(
        f"rounds: 1 warm-up + {args.pairs} timed (interactive: {args.interactive_pairs}); ratio = framelab s / anchor s per round"
    )
    for line in dict.fromkeys(run.paths):
        print(f"  path: {line}")
    for line in run.checks:
        print(f"  check: {line}")
    for line in run.notes:
        print(f"  note: {line}")
    print()
    print(
        "| work | size | framelab | framelab s | anchor | anchor s | ratio median [min, max] | machine |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in run.rows:
        print("| " + " | ".join(row) + f" | {os.cpu_count()} cores |")

    print("\ninteractive latency on a warm session (median; target: well under 1 s)")
    for work, times in run.latency:
        parts = ", ".join(f"{k} {statistics.median(v) * 1000:.1f} ms" for k, v in times.items())
        print(f"  {work}: {parts}")

    if cold is not None:
        print_cold(cold)
    waits = ", ".join(f"{k} {v:.1f} s" for k, v in SETTLE_WAITS.items())
    print(f"\nuntimed waits for Ray CPUs to come free before each side (total): {waits}")


def print_cold(cold: dict[str, dict[str, float]]) -> None:
    f, r = cold["framelab"], cold["ray"]
    print("\ncold start, one fresh process each (single shot, not paired)")
    print("| step | framelab s | raw Ray Data s |")
    print("|---|---|---|")
    print(f"| import | {f['import']:.2f} | {r['import']:.2f} |")
    print(
        f"| first head(10) + filter().num_rows() on a {INTERACTIVE_ROWS:,}-row driver frame (no Ray) | {f['first_driver_ops']:.2f} | - |"
    )
    print(f"| connect() / ray.init() | {f['connect']:.2f} | {r['connect']:.2f} |")
    print(
        f"| first filter().num_rows() on the cluster, Ray already up | {f['first_cluster_op']:.2f} | {r['first_cluster_op']:.2f} |"
    )
    driver = f["import"] + f["first_driver_ops"]
    cluster_f = f["import"] + f["connect"] + f["first_cluster_op"]
    cluster_r = r["import"] + r["connect"] + r["first_cluster_op"]
    print(f"| first answer, driver frame (import + first ops) | {driver:.2f} | - |")
    print(
        f"| first answer on the cluster (import + connect + first op) | {cluster_f:.2f} | {cluster_r:.2f} |"
    )


if __name__ == "__main__":
    main()
