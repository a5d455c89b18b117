"""Property tests: Frame's filter, with_column, groupby and join agree with polars on the same data."""

from __future__ import annotations

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framelab.frames import Frame, agg

rows = st.lists(
    st.fixed_dictionaries(
        {
            "k": st.sampled_from(["a", "b", "c", "d"]),
            "x": st.one_of(st.none(), st.integers(-1000, 1000)),
            "y": st.floats(-1e6, 1e6, allow_nan=False),
        }
    ),
    min_size=0,
    max_size=60,
)
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
SCHEMA = {"k": pl.String, "x": pl.Int64, "y": pl.Float64}


def _both(data: list[dict], blocks: int) -> tuple[Frame, pl.DataFrame]:
    df = pl.DataFrame(data, schema=SCHEMA)
    frame = Frame(df)
    return (frame.repartition(blocks) if blocks > 1 else frame), df


def _rows(df: pl.DataFrame) -> list[tuple]:
    return sorted(df.rows(), key=repr)


@SETTINGS
@given(rows, st.integers(-100, 100), st.sampled_from([1, 3]))
def test_filter_and_with_column_match_polars(data, threshold, blocks):
    frame, df = _both(data, blocks)
    expr = (pl.col("x") > threshold) | (pl.col("k") == "a")
    new = (pl.col("y") * 2 + pl.col("x").fill_null(0)).alias("z")
    got = frame.filter(expr).with_column("z", new).to_polars()
    want = df.filter(expr).with_columns(new)
    assert _rows(got) == _rows(want)


@SETTINGS
@given(rows, st.sampled_from([1, 3]))
def test_groupby_matches_polars(data, blocks):
    frame, df = _both(data, blocks)
    got = frame.groupby("k").agg(
        n=agg.count(), s=agg.sum("x"), m=agg.mean("y"), lo=agg.min("x"), hi=agg.max("y"),
        sd=agg.std("y"), d=agg.count_distinct("x"),
    ).sort("k").to_polars()
    want = df.group_by("k").agg(
        n=pl.len(), s=pl.col("x").sum(), m=pl.col("y").mean(), lo=pl.col("x").min(), hi=pl.col("y").max(),
        sd=pl.col("y").std(), d=pl.col("x").n_unique(),
    ).sort("k")
    assert got["k"].to_list() == want["k"].to_list()
    for name in ["n", "s", "lo", "d"]:
        assert got[name].to_list() == want[name].to_list(), name
    for name in ["m", "hi", "sd"]:
        for a, b in zip(got[name].to_list(), want[name].to_list()):
            assert (a is None and b is None) or abs(a - b) <= 1e-6 * max(1.0, abs(b)), name


@SETTINGS
@given(rows, rows, st.sampled_from(["inner", "left", "right", "outer"]), st.sampled_from([1, 2]))
def test_join_matches_polars(left, right, how, blocks):
    lf, ldf = _both(left, blocks)
    rf, rdf = _both(right, 1)
    rf, rdf = rf.select("k", "y"), rdf.select("k", "y")
    got = lf.join(rf, on="k", how=how).to_polars()
    want = ldf.join(rdf, on="k", how="full" if how == "outer" else how, coalesce=True)
    assert sorted(got.columns) == sorted(want.columns)
    assert _rows(got.select(sorted(got.columns))) == _rows(want.select(sorted(want.columns)))
