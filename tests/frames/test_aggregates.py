"""frames/aggregates.py: the cluster's per-block step needs no polars, and both paths agree with polars."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from framelab.frames import Frame, InputError, agg
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


@pytest.mark.parametrize("blocks", [1, 2])
def test_the_mean_of_a_group_of_nulls_is_null_as_in_polars(blocks):
    # Regression: 0 / 0 gave NaN on both paths; polars gives null.
    data = {"k": ["a", "a", "b"], "x": [None, None, 1.5]}
    frame = Frame(data) if blocks == 1 else Frame(data).repartition(blocks)
    got = frame.groupby("k").agg(m=agg.mean("x")).sort("k").to_pydict()
    want = pl.DataFrame(data).group_by("k").agg(m=pl.col("x").mean()).sort("k").to_dict(as_series=False)
    assert got == want == {"k": ["a", "b"], "m": [None, 1.5]}


def _rows_with_nulls(n=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 40, n).astype(float)  # ties, so argmax must pick the first
    x[rng.random(n) < 0.15] = np.nan
    data = {
        "k": rng.choice(["a", "b", "c", "d"], n).tolist(),
        "x": [None if np.isnan(v) else v for v in x],
        "name": [f"r{i}" for i in range(n)],
        "v": rng.normal(size=(n, 3)).astype(np.float64),
    }
    data["x"] = [None if k == "d" else v for k, v in zip(data["k"], data["x"])]  # a group of nulls only
    return data


@pytest.mark.parametrize("blocks", [1, 4])
def test_new_aggregates_match_polars_on_the_driver_and_on_the_cluster(blocks):
    data = _rows_with_nulls()
    frame = Frame(data)
    frame = frame if blocks == 1 else frame.repartition(blocks)
    got = frame.groupby("k").agg(
        var=agg.var("x"), var0=agg.var("x", ddof=0), sd0=agg.std("x", ddof=0),
        q=agg.quantile("x", 0.3, "linear"), qn=agg.quantile("x", 0.75),
        hi=agg.argmax("x", "name"), lo=agg.argmin("x", "name"),
        c=agg.collect("x", drop_nulls=True),
    ).sort("k").to_polars()
    x = pl.col("x")
    want = pl.DataFrame({k: v for k, v in data.items() if k != "v"}).group_by("k").agg(
        var=x.var(), var0=x.var(ddof=0), sd0=x.std(ddof=0),
        q=x.quantile(0.3, interpolation="linear"), qn=x.quantile(0.75),
        hi=pl.col("name").get(x.arg_max()), lo=pl.col("name").get(x.arg_min()),
        c=x.drop_nulls(),
    ).sort("k")
    for name in ("var", "var0", "sd0", "q", "qn"):
        np.testing.assert_allclose(got[name].to_numpy().astype(float), want[name].to_numpy().astype(float),
                                   rtol=1e-9, err_msg=name)
    assert got["hi"].to_list() == want["hi"].to_list() and got["lo"].to_list() == want["lo"].to_list()
    assert got["hi"].to_list()[-1] is None  # group "d" is all null
    assert [sorted(c) for c in got["c"].to_list()] == [sorted(c) for c in want["c"].to_list()]


@pytest.mark.parametrize("blocks", [1, 3])
def test_sum_and_mean_of_a_vector_column_are_element_wise(blocks):
    # Regression: agg.sum over a vector column leaked polars' InvalidOperationError.
    data = _rows_with_nulls(120, seed=1)
    frame = Frame(data)
    frame = frame if blocks == 1 else frame.repartition(blocks)
    got = frame.groupby("k").agg(s=agg.sum("v"), m=agg.mean("v")).sort("k").to_pydict()
    keys = np.array(data["k"])
    for i, k in enumerate(got["k"]):
        rows = data["v"][keys == k]
        np.testing.assert_allclose(got["s"][i], rows.sum(axis=0), rtol=1e-9)
        np.testing.assert_allclose(got["m"][i], rows.mean(axis=0), rtol=1e-9)


def test_aggregates_that_do_not_apply_say_what_to_use_instead():
    frame = Frame({"k": ["a"], "v": np.ones((1, 2), dtype="float32"), "s": ["x"]})
    with pytest.raises(InputError, match=r"agg.max\('v'\): 'v' is a vector column.*agg.sum or agg.mean"):
        frame.groupby("k").agg(agg.max("v"))
    with pytest.raises(InputError, match=r"agg.mean\('s'\) needs a numeric column.*cast it first"):
        frame.groupby("k").agg(agg.mean("s"))
    with pytest.raises(InputError, match="ddof must be a non-negative integer"):
        agg.std("x", ddof=-1)
    with pytest.raises(InputError, match=r"quantile\('x', q\)"):
        agg.quantile("x", 1.5)
    with pytest.raises(InputError, match="needs ``of``"):
        agg.argmax("x", None)
