"""frames/aggregates.py: the cluster's per-block step needs no polars, and both paths agree with polars."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pyarrow as pa

from framelab.frames import agg
from framelab.frames.aggregates import PartialAggregate, aggregate_table, finalize, result_schema

SPEC = {
    "n": agg.count(), "s": agg.sum("x"), "m": agg.mean("y"), "lo": agg.min("x"), "hi": agg.max("y"),
    "sd": agg.std("y"), "d": agg.count_distinct("x"), "all": agg.collect("x"),
}


def test_the_per_block_step_runs_where_polars_cannot_be_imported():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["polars"] = None  # any import of polars now fails
        import pyarrow as pa
        from framelab.frames import agg
        from framelab.frames.aggregates import PartialAggregate
        step = PartialAggregate(("k",), (("n", agg.count()), ("m", agg.mean("x")), ("sd", agg.std("x"))))
        print(step(pa.table({"k": ["a", "b", "a"], "x": [1.0, 2.0, 3.0]})).to_pydict())
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "'__n': [2, 1]" in out.stdout


def test_pyarrow_partials_combined_by_polars_equal_the_driver_path_and_polars():
    rng = np.random.default_rng(0)
    n = 500
    table = pa.table({
        "k": rng.choice(["a", "b", "c"], n),
        "x": pa.array([None if v < 0.1 else int(v * 100) for v in rng.random(n)], pa.int64()),
        "y": rng.standard_normal(n),
    })
    blocks = [table.slice(i, 97) for i in range(0, n, 97)]
    step = PartialAggregate(("k",), tuple(SPEC.items()))
    partials = pa.concat_tables([step(b) for b in blocks])
    cluster = finalize(partials, ["k"], SPEC, result_schema(table.schema, ["k"], SPEC)).sort_by("k")
    driver = aggregate_table(table, ["k"], SPEC).sort_by("k")
    assert cluster.schema == driver.schema
    want = pl.from_arrow(table).group_by("k").agg(
        n=pl.len(), s=pl.col("x").sum(), m=pl.col("y").mean(), lo=pl.col("x").min(), hi=pl.col("y").max(),
        sd=pl.col("y").std(), d=pl.col("x").n_unique(),
    ).sort("k")
    for result in (cluster, driver):
        got = pl.from_arrow(result)
        for name in ("n", "s", "lo", "d"):
            assert got[name].to_list() == want[name].to_list(), name
        for name in ("m", "hi", "sd"):
            np.testing.assert_allclose(got[name].to_numpy(), want[name].to_numpy(), rtol=1e-9)
        assert sorted(len(v) for v in got["all"].to_list()) == sorted(
            pl.from_arrow(table).group_by("k").len()["len"].to_list()
        )
