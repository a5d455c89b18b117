"""Behaviour of frames/frame.py on a real local Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from framelab.frames import (
    ColumnNotFoundError,
    ExpressionError,
    Frame,
    InputError,
    SchemaMismatchError,
    agg,
)


@pytest.fixture(params=["local", "distributed"])
def people(request) -> Frame:
    frame = Frame(
        {
            "name": ["ann", "bob", "cid", "dee", "eve", "fay"],
            "age": [31, 25, None, 40, 25, 33],
            "city": ["rome", "oslo", "rome", "lima", "oslo", "rome"],
            "score": [1.5, float("nan"), 3.0, 4.0, 5.0, 6.0],
        }
    )
    return frame if request.param == "local" else frame.repartition(3)


def test_builds_from_every_in_memory_form():
    expected = {"x": [1, 2], "y": ["a", "b"]}
    sources = [
        expected,
        [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}],
        pa.table(expected),
        pl.DataFrame(expected),
        pd.DataFrame(expected),
    ]
    for source in sources:
        frame = Frame(source)
        assert frame.to_pydict() == expected
        assert frame.schema.field("y").type == pa.string()


def test_inspection(people: Frame):
    assert people.columns == ["name", "age", "city", "score"]
    assert people.num_rows() == len(people) == 6
    assert people.head(2).to_pydict()["name"] == ["ann", "bob"]
    assert people.tail(1).to_pydict()["name"] == ["fay"]
    text = repr(people)
    assert "age: int64" in text and "ann" in text
    assert "<table" in people._repr_html_()


def test_select_drop_rename_keep_order_and_metadata():
    field = pa.field("v", pa.float64(), metadata={b"note": b"kept"})
    frame = Frame(pa.table([pa.array([1.0]), pa.array([2])], schema=pa.schema([field, pa.field("w", pa.int64())])))
    assert frame.select("w", "v").columns == ["w", "v"]
    assert frame.drop("v").columns == ["w"]
    renamed = frame.rename({"v": "value"})
    assert renamed.columns == ["value", "w"]
    assert renamed.schema.field("value").metadata == {b"note": b"kept"}


def test_unknown_column_names_the_columns_that_exist(people: Frame):
    with pytest.raises(ColumnNotFoundError, match="no column named 'agee'.*'age'"):
        people.select("agee")
    with pytest.raises(ColumnNotFoundError, match="'nope'"):
        people.filter(pl.col("nope") > 1)


def test_filter_and_with_column_with_polars_expressions(people: Frame):
    out = people.filter(pl.col("city") == "rome").with_column("age2", pl.col("age") * 2)
    assert out.to_pydict()["name"] == ["ann", "cid", "fay"]
    assert out.to_pydict()["age2"] == [62, None, 66]


def test_row_functions_and_apply(people: Frame):
    out = people.with_column("initial", lambda row: row["name"][0].upper(), dtype=str)
    assert out.to_pydict()["initial"] == ["A", "B", "C", "D", "E", "F"]
    assert people.apply(lambda row: len(row["city"]), int).to_pydict() == {"value": [4, 4, 4, 4, 4, 4]}
    assert people.filter(lambda row: row["city"] == "oslo").num_rows() == 2


def test_whole_column_expressions_are_refused_with_the_method_to_use(people: Frame):
    with pytest.raises(ExpressionError, match="groupby"):
        people.with_column("m", pl.col("age").mean())
    with pytest.raises(ExpressionError, match="whole column"):
        people.filter(pl.col("age") > pl.col("age").mean())
    with pytest.raises(ExpressionError):
        people.with_column("r", pl.col("age").rank())
    with pytest.raises(ExpressionError):
        people.with_column("w", pl.col("age").sum().over("city"))


def test_map_batches_in_every_format(people: Frame):
    def double(df: pl.DataFrame) -> pl.DataFrame:
        return df.with_columns(pl.col("score") * 2)

    assert people.map_batches(double, format="polars").to_pydict()["score"][0] == 3.0
    out = people.select("age").map_batches(lambda b: {"n": np.ones(len(b["age"]))}, format="numpy")
    assert out.to_pydict() == {"n": [1.0] * 6}


def test_sort_unique_dropna_fillna(people: Frame):
    assert people.sort("name", descending=True).to_pydict()["name"][0] == "fay"
    assert people.sort(["city", "name"]).to_pydict()["name"] == ["dee", "bob", "eve", "ann", "cid", "fay"]
    assert sorted(people.select("city").unique().to_pydict()["city"]) == ["lima", "oslo", "rome"]
    assert people.dropna().num_rows() == 4
    assert people.dropna("age").num_rows() == 5
    assert people.fillna("age", 0).to_pydict()["age"][2] == 0
    assert people.fillna("score", 0.0).to_pydict()["score"][1] == 0.0


def test_groupby_aggregates(people: Frame):
    out = people.groupby("city").agg(
        n=agg.count(),
        total=agg.sum("age"),
        mean_age=agg.mean("age"),
        youngest=agg.min("age"),
        oldest=agg.max("age"),
        sd=agg.std("age"),
        names=agg.count_distinct("name"),
        everyone=agg.collect("name"),
    ).sort("city").to_pydict()
    assert out["city"] == ["lima", "oslo", "rome"]
    assert out["n"] == [1, 2, 3]
    assert out["total"] == [40, 50, 64]
    assert out["mean_age"] == [40.0, 25.0, 32.0]
    assert out["youngest"] == [40, 25, 31]
    assert out["sd"][1] == 0.0 and out["sd"][0] is None
    assert out["names"] == [1, 2, 3]
    assert sorted(out["everyone"][2]) == ["ann", "cid", "fay"]


def test_join_every_kind(people: Frame):
    cities = Frame({"city": ["rome", "oslo", "paris"], "country": ["it", "no", "fr"]})
    assert people.join(cities, on="city").num_rows() == 5
    assert people.join(cities, on="city", how="left").num_rows() == 6
    assert people.join(cities, on="city", how="right").num_rows() == 6
    outer = people.join(cities, on="city", how="outer")
    assert outer.num_rows() == 7
    with pytest.raises(InputError, match="inner"):
        people.join(cities, on="city", how="cross")
    with pytest.raises(SchemaMismatchError, match="int64"):
        people.join(Frame({"city": [1]}), on="city")


def test_union_checks_schemas(people: Frame):
    assert people.union(people).num_rows() == 12
    with pytest.raises(SchemaMismatchError):
        people.union(Frame({"x": [1]}))


def test_random_split_is_deterministic_and_exhaustive():
    frame = Frame({"x": list(range(1000)), "dup": [7] * 1000})
    a1, b1 = frame.random_split(0.7, seed=42)
    a2, b2 = frame.repartition(5).random_split(0.7, seed=42)
    left = sorted(a1.to_pydict()["x"])
    assert left == sorted(a2.to_pydict()["x"])
    assert sorted(b1.to_pydict()["x"]) == sorted(b2.to_pydict()["x"])
    assert sorted(left + b1.to_pydict()["x"]) == list(range(1000))
    assert 600 < len(left) < 800
    # identical rows still split independently
    same = Frame({"v": [1] * 1000}).random_split(0.5, seed=1)
    assert 400 < same[0].num_rows() < 600
    assert frame.sample(0.1, seed=3).num_rows() < 200
    with pytest.raises(ValueError, match="between 0 and 1"):
        frame.sample(1.5)


def test_add_row_number_counts_across_blocks():
    frame = Frame({"x": list("abcdefghij")}).repartition(3).add_row_number("id", start=1)
    assert frame.sort("id").to_pydict()["id"] == list(range(1, 11))


def test_vector_columns_round_trip_numpy_without_copy():
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    frame = Frame({"v": matrix, "y": [0, 1, 0, 1]})
    assert pa.types.is_fixed_size_list(frame.schema.field("v").type)
    out = frame.to_numpy("v")
    np.testing.assert_array_equal(out, matrix)
    batch = next(iter(frame.to_torch(batch_size=4)))
    assert tuple(batch["v"].shape) == (4, 3)
    assert frame.repartition(2).to_numpy("v").shape == (4, 3)


def test_leaving_the_frame(people: Frame):
    assert people.to_arrow().num_rows == 6
    assert people.to_polars().shape == (6, 4)
    assert people.to_pandas().shape == (6, 4)
    sizes = [b.num_rows for b in people.iter_batches(batch_size=4)]
    assert sum(sizes) == 6 and max(sizes) <= 4
    assert isinstance(next(people.iter_batches(2, format="pandas")), pd.DataFrame)
    assert people.materialize().num_rows() == 6


def test_empty_frames_give_zero_rows_not_crashes():
    empty = Frame({"x": pa.array([], pa.int64()), "s": pa.array([], pa.string())})
    assert empty.num_rows() == 0
    assert empty.filter(pl.col("x") > 1).num_rows() == 0
    assert empty.with_column("y", pl.col("x") + 1).columns == ["x", "s", "y"]
    assert empty.groupby("s").agg(n=agg.count()).num_rows() == 0
    assert empty.head(5).num_rows() == 0
    assert empty.sort("x").num_rows() == 0
    assert [len(p) for p in empty.random_split(0.5, seed=0)] == [0, 0]
    assert "(no rows)" in repr(empty)
    assert Frame().columns == []


def test_bad_construction_input_is_explained():
    with pytest.raises(InputError, match="same length"):
        Frame({"a": [1, 2], "b": [1]})
    with pytest.raises(InputError, match="dict of columns"):
        Frame(42)
    with pytest.raises(InputError, match="dtype"):
        Frame({"a": [1]}).apply(lambda r: r, dtype="no-such-type")


def test_repartition_keeps_a_small_frame_on_the_cluster_even_when_materialized():
    frame = Frame({"x": list(range(100))}).repartition(4).materialize()
    assert not frame._is_local()
    assert frame.filter(pl.col("x") < 10).num_rows() == 10


@pytest.mark.parametrize("empty", [Frame(), Frame().with_column("c", 1), Frame({"x": []}).repartition(2)])
def test_head_of_an_empty_frame_has_no_rows(empty):
    # Regression: pyarrow's slice of a table without columns reports the length asked for (10 rows).
    assert empty.num_rows() == 0
    assert empty.head().num_rows() == 0 and empty.head(3).num_rows() == 0
    assert empty.tail().num_rows() == 0
    assert [b.num_rows for b in empty.iter_batches(4)] in ([], [0])


def test_select_refuses_a_column_named_twice_and_says_how_to_copy_one():
    # Regression: select(["a", "b", "a"]) gave two columns "a"; to_pydict dropped one, to_polars raised.
    frame = Frame({"a": [1, 2], "b": [3, 4]})
    with pytest.raises(InputError, match=r"select names 'a' more than once.*with_column\('a_copy', pl.col\('a'\)\)"):
        frame.select(["a", "b", "a"])
    with pytest.raises(InputError, match="more than once"):
        frame[["b", "b"]]
    assert frame.select(["b", "a"]).to_polars().equals(pl.DataFrame({"b": [3, 4], "a": [1, 2]}))


@pytest.mark.parametrize("path", ["driver", "cluster"])
def test_unique_on_a_subset_keeps_the_first_row_of_each_as_polars_does(path):
    data = {"k": [3, 1, 3, 2, 1, 3], "j": ["a", "b", "a", "b", "b", "c"], "v": [0, 1, 2, 3, 4, 5]}
    frame = Frame(data) if path == "driver" else Frame(data).repartition(3)
    df = pl.DataFrame(data)
    for subset in ("k", ["k", "j"]):
        got = frame.unique(subset=subset).to_polars()
        assert got.equals(df.unique(subset=subset, keep="first", maintain_order=True)), subset
    with pytest.raises(ColumnNotFoundError):
        frame.unique(subset="nope")


@pytest.mark.parametrize("path", ["driver", "cluster"])
def test_join_on_the_common_columns_and_on_differently_named_keys_matches_polars(path):
    left = {"k": [1, 2, 3, 4], "j": ["a", "b", "a", "b"], "x": [0.1, 0.2, 0.3, 0.4]}
    right = {"k": [2, 3, 9], "j": ["b", "b", "a"], "y": [True, False, True]}
    frame = Frame(left) if path == "driver" else Frame(left).repartition(2)
    lf, rf = pl.DataFrame(left), pl.DataFrame(right)
    got = frame.join(Frame(right), how="left").sort("k").to_polars()
    assert got.equals(lf.join(rf, on=["k", "j"], how="left").sort("k"))
    renamed = Frame(right).rename({"k": "id"})
    got = frame.join(renamed, on={"k": "id"}, how="inner").sort("k").to_polars()
    want = lf.join(rf.rename({"k": "id"}), left_on="k", right_on="id", how="inner").sort("k")
    assert got.rename({"j_right": "j_right"}).select(want.columns).equals(want)
    with pytest.raises(InputError, match=r"share none; name the keys with on=\{'left_key': 'right_key'\}"):
        frame.join(Frame({"z": [1]}))


@pytest.mark.parametrize("path", ["driver", "cluster"])
def test_union_matches_columns_by_name_vertically_and_diagonally_as_polars_does(path):
    a = {"x": [1, 2], "y": ["a", "b"]}
    frame = Frame(a) if path == "driver" else Frame(a).repartition(2)
    b = Frame({"y": ["c"], "x": [3]})
    c = Frame({"z": [0.5], "x": [4]})
    # Row order is compared sorted: Ray Data's union on the cluster does not keep the frames' order.
    got = frame.union(b, Frame()).to_polars().sort("x")
    assert got.equals(pl.concat([pl.DataFrame(a), b.to_polars().select("x", "y")], how="vertical"))
    got = frame.union(c, how="diagonal").to_polars().sort("x")
    assert got.equals(pl.concat([pl.DataFrame(a), c.to_polars()], how="diagonal"))
    with pytest.raises(SchemaMismatchError, match="use how='diagonal'"):
        frame.union(c)
    with pytest.raises(SchemaMismatchError, match=r"'x' is int64 in one frame but double"):
        frame.union(Frame({"x": [0.5], "y": ["q"]}))
    assert Frame().union(Frame(a)).to_polars().equals(pl.DataFrame(a))


@pytest.mark.parametrize("path", ["driver", "cluster"])
def test_to_numpy_of_several_columns_is_polars_2d_array(path):
    data = {"a": [1, 2, 3], "b": [0.5, None, 1.5], "s": ["p", "q", "r"]}
    frame = Frame(data) if path == "driver" else Frame(data).repartition(2)
    np.testing.assert_array_equal(frame.to_numpy(["b", "a"]), pl.DataFrame(data).select("b", "a").to_numpy())
    assert frame.to_numpy(["a"]).shape == (3, 1)
    with pytest.raises(InputError, match="'s' is string; select numeric columns"):
        frame.to_numpy()
    with pytest.raises(InputError, match=r"to_numpy\('v'\) for its \(rows, dim\) array"):
        Frame({"v": np.ones((2, 2), dtype="float32"), "a": [1, 2]}).to_numpy(["v", "a"])
