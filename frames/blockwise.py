"""The block functions behind a Frame's row-wise methods: each turns one Arrow block into the next.

They are small picklable classes rather than closures, so Ray ships them to
workers cheaply and a test can run one on a table. A block function never
looks outside its block; what needs the whole frame (sorting, distinct rows,
numbering, group-by) is a node of its own in :mod:`framelab.frames.logical`.

Example:
    >>> import polars as pl, pyarrow as pa
    >>> from framelab.frames.blockwise import ExprColumn, FilterRows, SetColumn
    >>> block = pa.table({"x": [1, 2, 3]})
    >>> FilterRows(ExprColumn(pl.col("x") > 1))(SetColumn("y", ExprColumn(pl.col("x") * 10))(block)).to_pydict()
    {'x': [2, 3], 'y': [20, 30]}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framelab.frames.blocks import concat
from framelab.frames.conversion import arrow_type, check_format, from_batch, set_column, to_batch
from framelab.frames.errors import ExpressionError, InputError, check_columns
from framelab.frames.expressions import ColumnExpr, check_blockwise, evaluate, expr_columns
from framelab.frames.sampling import row_uniforms


class ExprColumn:
    """A column computed from an expression (polars, or a framelab ColumnExpr such as an image chain).

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from framelab.frames.blockwise import ExprColumn
        >>> ExprColumn(pl.col("x") + 1)(pa.table({"x": [1]})).to_pylist()
        [2]
    """

    def __init__(self, expr: Any):
        self.expr = expr

    def __call__(self, block: pa.Table) -> pa.Array | pa.ChunkedArray:
        return evaluate(block, self.expr)


class RowFunction:
    """A column computed by a Python function of one row (a dict), typed by ``dtype`` (None: inferred).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import RowFunction
        >>> RowFunction(lambda row: row["x"] * 2, pa.int64())(pa.table({"x": [1, 2]})).to_pylist()
        [2, 4]
    """

    def __init__(self, fn: Callable[[dict], Any], dtype: pa.DataType | None):
        self.fn = fn
        self.dtype = dtype

    def __call__(self, block: pa.Table) -> pa.Array:
        values = [self.fn(row) for row in block.to_pylist()]
        try:
            return pa.array(values, type=self.dtype)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ExpressionError(f"the function's results do not fit the requested type {self.dtype}: {exc}") from exc


class SetColumn:
    """Add or replace one column.

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from framelab.frames.blockwise import ExprColumn, SetColumn
        >>> SetColumn("x", ExprColumn(pl.col("x") * 2))(pa.table({"x": [1]})).to_pydict()
        {'x': [2]}
    """

    def __init__(self, name: str, compute: Callable[[pa.Table], Any]):
        self.name = name
        self.compute = compute

    def __call__(self, block: pa.Table) -> pa.Table:
        return set_column(block, self.name, self.compute(block))


class FilterRows:
    """Keep the rows where a boolean column is true (null counts as false).

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from framelab.frames.blockwise import ExprColumn, FilterRows
        >>> FilterRows(ExprColumn(pl.col("x") > 1))(pa.table({"x": [1, 2, None]})).to_pydict()
        {'x': [2]}
    """

    def __init__(self, compute: Callable[[pa.Table], Any]):
        self.compute = compute

    def __call__(self, block: pa.Table) -> pa.Table:
        mask = self.compute(block)
        if not pa.types.is_boolean(mask.type):
            raise ExpressionError(f"filter needs a boolean expression, got one of type {mask.type}")
        return block.filter(mask, null_selection_behavior="drop")


class SelectColumns:
    """Keep the named columns, in that order.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import SelectColumns
        >>> SelectColumns(["b", "a"])(pa.table({"a": [1], "b": [2]})).column_names
        ['b', 'a']
    """

    def __init__(self, names: Sequence[str]):
        self.names = list(names)

    def __call__(self, block: pa.Table) -> pa.Table:
        return block.select(self.names)


class RenameColumns:
    """Rename columns with ``{old: new}``, keeping field metadata.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import RenameColumns
        >>> RenameColumns({"a": "b"})(pa.table({"a": [1]})).column_names
        ['b']
    """

    def __init__(self, mapping: dict[str, str]):
        self.mapping = dict(mapping)

    def __call__(self, block: pa.Table) -> pa.Table:
        fields = [f.with_name(self.mapping.get(f.name, f.name)) for f in block.schema]
        return pa.Table.from_arrays(block.columns, schema=pa.schema(fields, metadata=block.schema.metadata))


class DropMissing:
    """Drop rows with a missing value (null, or NaN in float columns) in any (``how="any"``) or all named columns.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import DropMissing
        >>> DropMissing(["x"], "any")(pa.table({"x": [1.0, None, float("nan")]})).to_pydict()
        {'x': [1.0]}
    """

    def __init__(self, names: Sequence[str], how: str, keep_missing: bool = False):
        self.names = list(names)
        self.how = how
        self.keep_missing = keep_missing  # the other side: the rows dropna drops (dropna_split)

    def __call__(self, block: pa.Table) -> pa.Table:
        if not self.names or block.num_rows == 0:
            return block.slice(0, 0) if self.keep_missing else block
        missing = [is_missing(block.column(n)) for n in self.names]
        combine = pc.or_ if self.how == "any" else pc.and_
        flags = missing[0]
        for m in missing[1:]:
            flags = combine(flags, m)
        return block.filter(flags if self.keep_missing else pc.invert(flags))


class FillMissing:
    """Replace missing values (null, and NaN in float columns) of one column with ``value``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import FillMissing
        >>> FillMissing("x", 0.0)(pa.table({"x": [1.0, None]})).to_pydict()
        {'x': [1.0, 0.0]}
    """

    def __init__(self, column: str, value: Any):
        self.column = column
        self.value = value

    def __call__(self, block: pa.Table) -> pa.Table:
        col = block.column(self.column)
        filled = pc.if_else(is_missing(col), pa.scalar(self.value, type=col.type), col)
        return set_column(block, self.column, filled.cast(col.type))


class MapBatches:
    """Run a user function on batches of a block in the user's format (arrow, polars, pandas, numpy).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import MapBatches
        >>> MapBatches(lambda df: df * 2, None, "polars")(pa.table({"x": [1, 2]})).to_pydict()
        {'x': [2, 4]}
    """

    def __init__(self, fn: Callable[[Any], Any], batch_size: int | None, format: str):
        self.fn = fn
        self.batch_size = batch_size
        self.format = check_format(format)

    def __call__(self, block: pa.Table) -> pa.Table:
        size = self.batch_size
        if size is None or block.num_rows <= size:
            return from_batch(self.fn(to_batch(block, self.format)))
        return concat([
            from_batch(self.fn(to_batch(block.slice(i, size), self.format))) for i in range(0, block.num_rows, size)
        ])


class SplitPart:
    """One side of a random split: rows whose seeded draw (from their ``key``) is below ``fraction`` (``first``) or not.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import SplitPart
        >>> block = pa.table({"x": list(range(10))})
        >>> SplitPart(0.5, 1, True)(block).num_rows + SplitPart(0.5, 1, False)(block).num_rows
        10
    """

    def __init__(self, fraction: float, seed: int, first: bool, key: str | None = None):
        self.fraction = fraction
        self.seed = seed
        self.first = first
        self.key = key

    def __call__(self, block: pa.Table) -> pa.Table:
        u = row_uniforms(block, self.seed, self.key)
        return block.filter(pa.array(u < self.fraction if self.first else u >= self.fraction))


class RowDraws:
    """Add a column of each row's seeded draw in [0, 1) (:func:`~framelab.frames.sampling.row_uniforms`).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import RowDraws
        >>> RowDraws("u", 0)(pa.table({"x": [1, 2, 3]})).column("u").to_pylist()[0]
        0.287...
    """

    def __init__(self, name: str, seed: int, key: str | None = None):
        self.name = name
        self.seed = seed
        self.key = key

    def __call__(self, block: pa.Table) -> pa.Table:
        return block.append_column(self.name, pa.array(row_uniforms(block, self.seed, self.key), pa.float64()))


class NullColumns:
    """Add typed columns of nulls, then order the columns as ``schema`` (a diagonal union's missing columns).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import NullColumns
        >>> NullColumns(pa.schema([("y", pa.string()), ("x", pa.int64())]))(pa.table({"x": [1]})).to_pydict()
        {'y': [None], 'x': [1]}
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema

    def __call__(self, block: pa.Table) -> pa.Table:
        columns = [block.column(f.name) if f.name in block.column_names else pa.nulls(block.num_rows, f.type)
                   for f in self.schema]
        return pa.Table.from_arrays(columns, schema=self.schema)


class RestoreSchema:
    """Give each column the exact type and metadata a saved schema records (columns it does not know pass).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import RestoreSchema
        >>> saved = pa.schema([pa.field("x", pa.int8(), metadata={b"unit": b"cm"})])
        >>> RestoreSchema(saved)(pa.table({"x": [1]})).schema.field("x").metadata
        {b'unit': b'cm'}
    """

    def __init__(self, schema: pa.Schema):
        self.schema = schema

    def __call__(self, block: pa.Table) -> pa.Table:
        fields, columns = [], []
        for field, column in zip(block.schema, block.columns):
            saved = self.schema.field(field.name) if field.name in self.schema.names else field
            fields.append(saved)
            columns.append(column if column.type == saved.type else column.cast(saved.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields, metadata=self.schema.metadata))


def column_function(expr: Any, dtype: Any, method: str, columns: list[str]) -> tuple[Callable, tuple[str, ...] | None, bool]:
    """How ``with_column``/``filter`` compute a column from what the user gave.

    Returns (block function, the columns it reads or None for every column,
    whether the result's type is only known from data). ``expr`` is a polars
    expression (refused if it needs the whole column), a framelab column
    expression, a function of one row (typed by ``dtype``), or a constant.

    Example:
        >>> import polars as pl
        >>> from framelab.frames.blockwise import column_function
        >>> fn, reads, from_data = column_function(pl.col("x") * 2, None, "with_column", ["x", "y"])
        >>> reads, from_data
        (('x',), False)
    """
    import polars as pl

    if isinstance(expr, (pl.Expr, ColumnExpr)):
        if isinstance(expr, pl.Expr):
            check_blockwise(expr, method)
        reads = tuple(expr_columns(expr))
        check_columns(reads, columns)
        return ExprColumn(expr), reads, False
    if callable(expr):
        typed = arrow_type(dtype)
        return RowFunction(expr, typed), None, typed is None
    return ExprColumn(pl.lit(expr)), (), False


def is_missing(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """True where a value is null, or NaN in a float column.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import is_missing
        >>> is_missing(pa.array([1.0, None, float("nan")])).to_pylist()
        [False, True, True]
    """
    missing = pc.is_null(column)
    if pa.types.is_floating(column.type):
        missing = pc.or_(missing, pc.fill_null(pc.is_nan(column), False))
    return missing


def number_rows(block: pa.Table, offset: int, name: str) -> pa.Table:
    """The block with a first column ``name`` numbering its rows from ``offset``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import number_rows
        >>> number_rows(pa.table({"x": ["a", "b"]}), 5, "id").to_pydict()
        {'id': [5, 6], 'x': ['a', 'b']}
    """
    ids = pa.array(np.arange(offset, offset + block.num_rows, dtype=np.int64))
    schema = pa.schema([pa.field(name, pa.int64()), *block.schema], metadata=block.schema.metadata)
    return pa.Table.from_arrays([ids, *block.columns], schema=schema)


def distinct_rows(block: pa.Table, subset: Sequence[str] | None = None) -> pa.Table:
    """The block's distinct rows (equal in the ``subset`` columns; all by default), the first of each set, in order.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import distinct_rows
        >>> distinct_rows(pa.table({"x": [2, 1, 2]})).to_pydict()
        {'x': [2, 1]}
        >>> distinct_rows(pa.table({"x": [2, 1, 2], "y": ["a", "b", "c"]}), ["x"]).to_pydict()
        {'x': [2, 1], 'y': ['a', 'b']}
    """
    import polars as pl

    if block.num_rows == 0:
        return block
    try:
        df = pl.from_arrow(block.select(list(subset or block.column_names)))
    except Exception as exc:
        raise InputError(
            f"unique() cannot compare the columns of this frame ({exc}); select comparable columns first"
        ) from exc
    index = df.with_row_index("__i").unique(subset=df.columns, keep="first", maintain_order=True)["__i"]
    return block.take(index.to_arrow())
