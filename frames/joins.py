"""Joins computed on key columns only, so every other column keeps its exact Arrow type."""

from __future__ import annotations

import polars as pl
import pyarrow as pa

from framelab.frames.errors import InputError

HOWS = {"inner": "inner", "left": "left", "right": "right", "outer": "full"}


def check_how(how: str) -> str:
    if how not in HOWS:
        raise InputError(f"join(how={how!r}) is not supported; use one of {sorted(HOWS)}")
    return how


def join_tables(left: pa.Table, right: pa.Table, on: list[str], how: str, suffix: str = "_right") -> pa.Table:
    """Join two tables on ``on`` (polars finds the matching row pairs, pyarrow takes them).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.joins import join_tables
        >>> join_tables(pa.table({"k": [1, 2]}), pa.table({"k": [2], "v": ["b"]}), ["k"], "inner").to_pydict()
        {'k': [2], 'v': ['b']}
    """
    lk = pl.from_arrow(left.select(on)).with_row_index("__l")
    rk = pl.from_arrow(right.select(on)).with_row_index("__r")
    pairs = lk.join(rk, on=on, how=HOWS[how], coalesce=True, nulls_equal=False, maintain_order="left_right")
    li = pa.array(pairs["__l"].to_numpy(), type=pa.uint32()) if pairs["__l"].null_count() == 0 else pairs["__l"].to_arrow()
    ri = pairs["__r"].to_arrow()
    fields, columns = [], []
    for field in left.schema:
        if field.name in on:
            column = _key_column(pairs, field.name, field.type)
        else:
            column = left.column(field.name).take(li)
        fields.append(field.with_type(column.type))
        columns.append(column)
    for field in right.schema:
        if field.name in on:
            continue
        column = right.column(field.name).take(ri)
        name = field.name + suffix if field.name in left.column_names else field.name
        fields.append(field.with_name(name).with_type(column.type))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _key_column(pairs: pl.DataFrame, name: str, dtype: pa.DataType) -> pa.Array:
    from framelab.frames.expressions import normalize_array

    return normalize_array(pairs[name].to_arrow()).cast(dtype)
