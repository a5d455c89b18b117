"""frames/predicates.py: which parts of a polars predicate a Parquet read may apply itself."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from framelab.frames.predicates import pushdown

SCHEMA = pa.schema([("day", pa.int64()), ("x", pa.float64()), ("s", pa.string()), ("ok", pa.bool_()),
                    ("t", pa.timestamp("us"))])


@pytest.mark.parametrize(
    ("predicate", "text"),
    [
        (pl.col("day") >= 3, "day >= 3"),
        (3 <= pl.col("day"), "day >= 3"),  # literal on the left
        (pl.col("x") < 0.5, "x < 0.5"),
        ((pl.col("s") == "a") & (pl.col("day") != 2), "s == 'a' and day != 2"),
        (pl.col("day").is_between(1, 5), "day between 1 and 5"),
        (pl.col("s").is_in(["a", "b"]), "s in ['a', 'b']"),
        (pl.col("x").is_null(), "x is null"),
        (pl.col("ok") == True, "ok == True"),  # noqa: E712 - a polars expression, not a Python test
        ((pl.col("day") > 1) & (pl.col("s").str.len_chars() > 2), "day > 1"),  # only the pushable part
    ],
)
def test_comparisons_with_literals_are_pushed(predicate: pl.Expr, text: str):
    assert pushdown(predicate, SCHEMA).text == text


@pytest.mark.parametrize(
    "predicate",
    [
        pl.col("x") > 0.5,  # polars ranks NaN above every number; Parquet statistics leave NaN out
        pl.col("x") >= 0.5,
        pl.col("x") != 0.5,
        (pl.col("day") > 1) | (pl.col("x") < 0),  # an OR is not split
        pl.col("day") > pl.col("x"),  # two columns
        pl.col("s") > 3,  # a literal of another type
        pl.col("nope") == 1,  # not in the file
        pl.col("t") > 3,  # temporal literals are not pushed
        pl.col("day").map_elements(lambda v: v > 1, return_dtype=pl.Boolean),
    ],
)
def test_what_could_drop_a_row_polars_keeps_is_not_pushed(predicate: pl.Expr):
    assert pushdown(predicate, SCHEMA) is None


def test_the_pushed_filter_keeps_every_row_polars_keeps():
    table = pa.table({"day": [1, 2, 3, None], "x": [0.1, float("nan"), -1.0, None], "s": ["a", "b", "a", None]})
    predicate = (pl.col("x") < 0.2) & (pl.col("s") == "a") & (pl.col("day").is_between(0, 5))
    kept = table.filter(pushdown(predicate, table.schema).to_pyarrow())
    assert pl.from_arrow(kept).filter(predicate).equals(pl.from_arrow(table).filter(predicate))
    assert pc.sum(pc.is_nan(kept.column("x"))).as_py() in (0, None)
