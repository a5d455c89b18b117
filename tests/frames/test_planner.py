"""frames/planner.py: the strategy the planner chooses, shown by explain(), and results equal to polars'."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framelab.frames import Frame, agg
from framelab.frames import planner as planner_module
from framelab.frames.planner import plan


def _steps(frame: Frame) -> list[tuple[str, str]]:
    """(step name, where) of every line of the frame's physical plan, top first."""
    out = []
    for line in frame.explain().splitlines():
        name, where = line.strip().split("  ")[:2]
        out.append((name, where.lstrip("@")))
    return out


@pytest.fixture()
def small() -> Frame:
    return Frame({"k": [1, 2, 1, 3], "x": [1.0, 2.0, 3.0, 4.0], "s": ["a", "b", "c", "d"]})


@pytest.fixture()
def cluster(small: Frame) -> Frame:
    return small.repartition(2)


def test_every_operation_on_a_small_frame_runs_in_the_driver(small: Frame):
    frames = {
        "map": small.filter(pl.col("x") > 1).with_column("y", pl.col("x") * 2).select("k", "y"),
        "sort": small.sort("x"),
        "unique": small.select("k").unique(),
        "union": small.union(small),
        "join": small.join(Frame({"k": [1], "v": ["one"]}), on="k"),
        "aggregate": small.groupby("k").agg(n=agg.count()),
        "number rows": small.add_row_number(),
    }
    for name, frame in frames.items():
        assert {where for _, where in _steps(frame)} == {"driver"}, (name, frame.explain())
        assert frame._is_local()
    assert _steps(frames["join"])[0][0] == "Join"


def test_block_wise_steps_on_the_cluster_run_as_one_stage(cluster: Frame):
    frame = cluster.filter(pl.col("x") > 1).with_column("y", pl.col("x") * 2).select("k", "y")
    assert _steps(frame) == [("Map", "cluster"), ("Repartition", "cluster"), ("InMemory", "driver")]
    assert "filter" in frame.explain() and "with_column(y) | Project([k, y])" in frame.explain()
    assert sorted(frame.to_pydict()["y"]) == [4.0, 6.0, 8.0]


def test_whole_frame_operations_on_the_cluster(cluster: Frame):
    assert _steps(cluster.sort("x"))[0] == ("Sort", "cluster")
    assert "range-partitioned" in cluster.sort("x").explain()
    unique = cluster.select("k").unique()
    assert _steps(unique)[0] == ("Unique", "driver") and "per block on the cluster" in unique.explain()
    grouped = cluster.groupby("k").agg(n=agg.count(), m=agg.mean("x"))
    assert _steps(grouped)[:2] == [("Aggregate", "driver"), ("PartialAggregate", "cluster")]
    assert _steps(cluster.add_row_number())[0] == ("NumberRows", "cluster")
    assert _steps(cluster.union(Frame({"k": [9], "x": [9.0], "s": ["z"]})))[0] == ("Union", "cluster")
    want = pl.DataFrame(cluster.to_arrow()).group_by("k").agg(n=pl.len(), m=pl.col("x").mean()).sort("k")
    got = grouped.sort("k").to_polars()
    assert got["k"].to_list() == want["k"].to_list() and got["n"].to_list() == want["n"].to_list()
    assert got["m"].to_list() == want["m"].to_list()


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_a_small_frame_joined_to_a_big_one_is_broadcast_either_way(cluster: Frame, how: str):
    lookup = Frame({"k": [1, 9], "v": ["one", "nine"]})
    for frame, side in ((cluster.join(lookup, on="k", how=how), "right"), (lookup.join(cluster, on="k", how=how), "left")):
        assert _steps(frame)[0] == ("BroadcastJoin", "cluster")
        assert f"the driver-side {side} frame (2 rows) goes once to every worker, no shuffle" in frame.explain()
    left, right = pl.DataFrame(cluster.to_arrow()), pl.DataFrame(lookup.to_arrow())
    polars_how = "full" if how == "outer" else how
    for got, want in (
        (cluster.join(lookup, on="k", how=how), left.join(right, on="k", how=polars_how, coalesce=True)),
        (lookup.join(cluster, on="k", how=how), right.join(left, on="k", how=polars_how, coalesce=True)),
    ):
        got_rows = sorted(got.to_polars().select(sorted(want.columns)).rows(), key=repr)
        assert got_rows == sorted(want.select(sorted(want.columns)).rows(), key=repr)


def test_two_frames_on_the_cluster_are_joined_by_a_shuffle(cluster: Frame):
    other = Frame({"k": [1, 3], "v": ["one", "three"]}).repartition(2)
    joined = cluster.join(other, on="k")
    assert _steps(joined)[0] == ("ShuffleJoin", "cluster")
    assert sorted(joined.to_pydict()["v"]) == ["one", "one", "three"]


def test_a_count_reads_only_what_it_needs(tmp_path):
    pq.write_table(pa.table({"a": np.arange(100), "b": np.arange(100.0), "c": ["x"] * 100}), tmp_path / "t.parquet")
    frame = Frame.read_parquet(str(tmp_path)).with_column("d", pl.col("b") * 2).filter(pl.col("a") < 10).select("c", "d")
    counted = plan(frame._node, frozenset())
    # The with_column and the projection are left out; the read fetches the filter's column alone.
    assert [s.name for s in (counted, counted.inputs[0])] == ["Map", "Read"]
    assert counted.inputs[0].detail.endswith("columns=[a] filter=a < 10")
    assert frame.num_rows() == 10
    assert planner_module.count(Frame.read_parquet(str(tmp_path)).select("c")._node) == 100  # footers only
    assert plan(Frame.read_parquet(str(tmp_path)).select("c")._node, frozenset()).name == "Read"


@pytest.fixture()
def days(tmp_path) -> str:
    """A Parquet file of 10 row groups, sorted by day, with NaNs among the floats."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000)
    x[::7] = np.nan
    table = pa.table({"day": np.arange(1000), "x": x, "s": [f"s{i % 5}" for i in range(1000)], "pad": ["p" * 20] * 1000})
    pq.write_table(table, tmp_path / "days.parquet", row_group_size=100)
    return str(tmp_path / "days.parquet")


def test_filters_and_projections_are_pushed_into_parquet_reads(days: str):
    frame = Frame.read_parquet(days).filter(pl.col("day") >= 950).select("day", "s")
    text = frame.explain()
    assert "columns=[day, s] filter=day >= 950" in text and "row groups read: 1 of 10" in text
    want = pl.read_parquet(days).filter(pl.col("day") >= 950).select("day", "s")
    assert frame.to_polars().equals(want)


@pytest.mark.parametrize(
    "predicate",
    [
        pl.col("x") > 0.5,  # NaN > 0.5 in polars: must not be pushed
        pl.col("x") < -0.5,
        (pl.col("day") >= 100) & (pl.col("x") != 0.0),
        pl.col("s").is_in(["s1", "s3"]) & pl.col("day").is_between(200, 420),
        pl.col("x").is_null() | (pl.col("day") < 3),
    ],
)
@pytest.mark.parametrize("where", ["driver", "cluster"])
def test_pushing_a_filter_down_never_changes_the_rows(days: str, predicate: pl.Expr, where: str, monkeypatch):
    if where == "cluster":
        monkeypatch.setattr(planner_module, "LOCAL_BYTES", 0)
    frame = Frame.read_parquet(days).filter(predicate).select("day", "x")
    assert frame.explain().splitlines()[-1].strip().split("  ")[1] == f"@{where}"
    got = frame.to_polars().sort("day")
    want = pl.read_parquet(days).filter(predicate).select("day", "x").sort("day")
    assert got.equals(want, null_equal=True), (got.height, want.height)
    assert frame.num_rows() == want.height


def test_explain_returns_the_plan_which_shows_as_itself_at_a_prompt():
    plan_text = Frame({"x": [1, 2]}).filter(pl.col("x") > 1).explain()
    assert isinstance(plan_text, str)
    # What a REPL or notebook prints for `frame.explain()`: the plan's lines, not a quoted string with "\n".
    assert repr(plan_text) == str(plan_text) and repr(plan_text).splitlines()[0].startswith("Map")
