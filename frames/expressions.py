"""Expressions a Frame evaluates block by block.

Three kinds are accepted wherever a Frame method takes an expression:
a polars expression (the expression language for everyday columns), a
:class:`ColumnExpr` (framelab's own Arrow-level column operations, such as the
image operations) and, for ``with_column``/``filter``/``apply``, a plain
Python function of one row.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa

from framelab.frames.errors import ExpressionError

# Nodes of a serialised polars expression whose value depends on other rows.
_WHOLE_COLUMN_NODES = {"Agg", "Over", "Window", "Sort", "SortBy", "Slice", "Len", "Gather", "Filter", "Explode", "Rolling"}
_WHOLE_COLUMN_FUNCTIONS = {
    "Shift", "ShiftAndFill", "CumSum", "CumProd", "CumMin", "CumMax", "CumCount", "Rank",
    "Diff", "RollingExpr", "RollingExprBy", "Unique", "UniqueCounts", "IsDuplicated", "IsUnique",
    "IsFirstDistinct", "IsLastDistinct", "ArgSort", "ArgUnique", "Reverse", "Interpolate",
    "FillNullWithStrategy", "ForwardFill", "BackwardFill", "PctChange", "Mode", "ValueCounts",
    "Ewm", "EwmMean", "EwmStd", "EwmVar", "Sample", "Shuffle", "TopK", "Repeat", "Hist",
}


class ColumnExpr(abc.ABC):
    """An Arrow-level expression: reads some columns of a block, returns one column.

    Subclass it for operations polars cannot express on Arrow types it does not
    know (images). ``evaluate`` receives one block and must return an array of
    the block's length.
    """

    @abc.abstractmethod
    def input_columns(self) -> list[str]:
        """Columns of the block this expression reads."""

    @abc.abstractmethod
    def evaluate(self, table: pa.Table) -> pa.Array | pa.ChunkedArray:
        """Compute the expression on one block."""

    def output_type(self, schema: pa.Schema) -> pa.DataType | None:
        """The result's type for an input schema, or None when unknown until run."""
        return None


def check_blockwise(expr: pl.Expr, method: str) -> None:
    """Refuse a polars expression whose value depends on rows outside the block.

    Example:
        >>> import polars as pl
        >>> from framelab.frames.expressions import check_blockwise
        >>> check_blockwise(pl.col("x") * 2, "with_column")      # row by row: fine
        >>> check_blockwise(pl.col("x") - pl.col("x").mean(), "with_column")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.ExpressionError: with_column() evaluates expressions block by block ... Use frame.groupby(...).agg(...) for aggregates, ...
    """
    try:
        tree = json.loads(expr.meta.serialize(format="json"))
    except Exception:  # an expression polars cannot serialise (a Python UDF) is row-wise
        return
    bad = _find_whole_column_node(tree)
    if bad is not None:
        raise ExpressionError(
            f"{method}() evaluates expressions block by block across the cluster, but "
            f"{expr} needs the whole column at once ({bad}). Use frame.groupby(...).agg(...) "
            "for aggregates, frame.sort(...) for ordering, frame.unique() for distinct rows, "
            "or frame.to_polars() to run it on one machine."
        )


def _find_whole_column_node(node: Any) -> str | None:
    if isinstance(node, str):
        return node if node in _WHOLE_COLUMN_NODES or node in _WHOLE_COLUMN_FUNCTIONS else None
    if isinstance(node, list):
        for item in node:
            found = _find_whole_column_node(item)
            if found:
                return found
        return None
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _WHOLE_COLUMN_NODES or key in _WHOLE_COLUMN_FUNCTIONS:
                return key
            if key == "function" and isinstance(value, (str, dict)):
                name = value if isinstance(value, str) else next(iter(value), "")
                if name in _WHOLE_COLUMN_FUNCTIONS:
                    return name
            if key in ("Literal",):
                continue
            found = _find_whole_column_node(value)
            if found:
                return found
    return None


def expr_columns(expr: pl.Expr | ColumnExpr) -> list[str]:
    """Names of the columns an expression reads."""
    if isinstance(expr, ColumnExpr):
        return list(expr.input_columns())
    return list(dict.fromkeys(expr.meta.root_names()))


def evaluate(table: pa.Table, expr: pl.Expr | ColumnExpr) -> pa.Array | pa.ChunkedArray:
    """Evaluate an expression on one block, returning a column of the block's length.

    Only the columns the expression reads go through polars, so extension types
    and field metadata on the other columns are never touched.

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from framelab.frames.expressions import evaluate
        >>> evaluate(pa.table({"x": [1, 2]}), pl.col("x") * 2).to_pylist()
        [2, 4]
    """
    if isinstance(expr, ColumnExpr):
        out = expr.evaluate(table)
    else:
        names = expr_columns(expr)
        df = pl.from_arrow(table.select(names)) if names else pl.DataFrame(height=table.num_rows)
        if not isinstance(df, pl.DataFrame):
            df = df.to_frame()
        series = df.select(expr).to_series()
        if len(series) == 1 and table.num_rows != 1:
            series = series.extend_constant(series[0], table.num_rows - 1) if table.num_rows else series.clear()
        out = normalize_array(series.to_arrow())
    if len(out) != table.num_rows:
        raise ExpressionError(
            f"the expression returned {len(out)} values for a block of {table.num_rows} rows; "
            "expressions must give one value per row"
        )
    return out


def row_function(fn: Callable[[dict], Any], dtype: pa.DataType | None) -> Callable[[pa.Table], pa.Array]:
    """Turn a function of one row (a dict) into a block function returning one column."""

    def run(table: pa.Table) -> pa.Array:
        values = [fn(row) for row in table.to_pylist()]
        try:
            return pa.array(values, type=dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ExpressionError(
                f"the function's results do not fit the requested type {dtype}: {exc}"
            ) from exc

    return run


def storage_table(table: pa.Table) -> pa.Table:
    """The table with extension columns (images) replaced by their storage, for polars and hashing.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.expressions import storage_table
        >>> storage_table(pa.table({"x": [1]})).column_names
        ['x']
    """
    columns = [
        pa.chunked_array([c.storage for c in col.chunks], type=col.type.storage_type)
        if isinstance(col.type, pa.ExtensionType)
        else col
        for col in table.columns
    ]
    return pa.Table.from_arrays(columns, names=table.column_names)


def normalize_array(array: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Map polars' large/view string and list types back to the plain Arrow ones."""
    target = normalize_type(array.type)
    return array if target == array.type else array.cast(target)


def normalize_type(dtype: pa.DataType) -> pa.DataType:
    """The plain Arrow type framelab stores for a type polars hands back."""
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_large_binary(dtype) or pa.types.is_binary_view(dtype):
        return pa.binary()
    if pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype) or pa.types.is_large_list_view(dtype):
        return pa.list_(normalize_type(dtype.value_type))
    if pa.types.is_list(dtype):
        return pa.list_(normalize_type(dtype.value_type))
    if pa.types.is_fixed_size_list(dtype):
        return pa.list_(normalize_type(dtype.value_type), dtype.list_size)
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, normalize_type(f.type), f.nullable) for f in dtype])
    return dtype
