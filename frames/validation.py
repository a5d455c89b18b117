"""Argument checks shared by every layer above the platform: one rule, one message, per kind of argument.

Each check returns the value in its canonical form (an ``int`` seed, a
``float`` fraction, a list of column names) or raises :class:`InputError`
saying what was expected and what was given, so frames and toolkits refuse
the same bad value with the same words.

Example:
    >>> from framelab.frames.validation import check_fraction, check_seed
    >>> check_fraction(0.8, "random_split"), check_seed(7)
    (0.8, 7)
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    framelab.frames.errors.InputError: seed must be a non-negative integer or None, got -1
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from framelab.frames.errors import InputError


def check_seed(seed: Any, name: str = "seed") -> int:
    """A non-negative integer seed; None draws a fresh one from the operating system.

    Example:
        >>> from framelab.frames.validation import check_seed
        >>> check_seed(np.int64(3)), 0 <= check_seed(None) < 2**32
        (3, True)
    """
    if seed is None:
        return int.from_bytes(os.urandom(4), "little")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"{name} must be a non-negative integer or None, got {seed!r}")
    return int(seed)


def check_fraction(fraction: Any, method: str) -> float:
    """A number between 0 and 1 (both included).

    Example:
        >>> from framelab.frames.validation import check_fraction
        >>> check_fraction(1, "sample")
        1.0
        >>> check_fraction(1.5, "sample")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: sample(fraction=...) must be a number between 0 and 1, got 1.5
    """
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.number)) or not (
        0.0 <= float(fraction) <= 1.0
    ):
        raise InputError(f"{method}(fraction=...) must be a number between 0 and 1, got {fraction!r}")
    return float(fraction)


def check_positive_int(value: Any, name: str) -> int:
    """An integer of at least 1 (a size, a count of blocks, a batch size).

    Example:
        >>> from framelab.frames.validation import check_positive_int
        >>> check_positive_int(4, "num_blocks")
        4
        >>> check_positive_int(0, "batch_size")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: batch_size must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices``.

    Example:
        >>> from framelab.frames.validation import check_choice
        >>> check_choice("how", "left", ("inner", "left"))
        'left'
        >>> check_choice("device", "tpu", ("cpu", "cuda"))
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: device must be one of 'cpu', 'cuda'; got 'tpu'
    """
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def union_schema(schemas: Sequence[Any], how: str) -> Any:
    """The schema of a union of frames matched by column name: the first frame's order, then new columns (diagonal).

    "vertical" needs the same column names (in any order); "diagonal" takes every column. A
    column must have one type in every frame that has it.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.validation import union_schema
        >>> union_schema([pa.schema([("x", pa.int64())]), pa.schema([("y", pa.string())])], "diagonal").names
        ['x', 'y']
        >>> union_schema([pa.schema([("x", pa.int64())]), pa.schema([("x", pa.float64())])], "vertical")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.SchemaMismatchError: union: column 'x' is int64 in one frame but double in another; cast one (with_column('x', pl.col('x').cast(...)))
    """
    import pyarrow as pa

    from framelab.frames.errors import SchemaMismatchError

    fields: dict[str, Any] = {}
    for schema in schemas:
        if how == "vertical" and fields and set(schema.names) != set(fields):
            raise SchemaMismatchError(
                f"union needs the same columns in every frame: {list(fields)} vs {schema.names}; "
                f"use how='diagonal' to take every column, with nulls where a frame lacks one")
        for f in schema:
            if f.name in fields and fields[f.name].type != f.type:
                raise SchemaMismatchError(
                    f"union: column {f.name!r} is {fields[f.name].type} in one frame but {f.type} in another; "
                    f"cast one (with_column({f.name!r}, pl.col({f.name!r}).cast(...)))")
            fields.setdefault(f.name, f)
    return pa.schema(list(fields.values()), metadata=schemas[0].metadata)


def column_list(columns: Sequence[Any]) -> list[str]:
    """Column names given as strings or (nested) lists of strings, flattened in order.

    Example:
        >>> from framelab.frames.validation import column_list
        >>> column_list(["a", ["b", "c"]])
        ['a', 'b', 'c']
    """
    names: list[str] = []
    for c in columns:
        if isinstance(c, str):
            names.append(c)
        elif isinstance(c, Sequence):
            names.extend(column_list(c))
        else:
            raise InputError(f"column names must be strings, got {c!r}")
    return names


def check_distinct_columns(names: list[str], method: str) -> list[str]:
    """Refuse a column named twice: a table of two columns ``a`` loses one in every dict it becomes.

    Example:
        >>> from framelab.frames.validation import check_distinct_columns
        >>> check_distinct_columns(["a", "b", "a"], "select")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: select names 'a' more than once; name each column once (to copy one, use with_column('a_copy', pl.col('a')))
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InputError(f"{method} names {name!r} more than once; name each column once "
                             f"(to copy one, use with_column({name + '_copy'!r}, pl.col({name!r})))")
        seen.add(name)
    return names


#: The kinds of join :meth:`Frame.join` takes.
JOIN_KINDS = ("inner", "left", "right", "outer")


def check_join_keys(left: Any, right: Any, keys: list[str]) -> list[str]:
    """Join key columns present in both schemas with one type.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.validation import check_join_keys
        >>> check_join_keys(pa.schema([("k", pa.int64())]), pa.schema([("k", pa.string())]), ["k"])
        Traceback (most recent call last):
        ...
        framelab.frames.errors.SchemaMismatchError: join key 'k' is int64 on the left but string on the right; cast one side
    """
    from framelab.frames.errors import SchemaMismatchError, check_columns

    check_columns(keys, left.names)
    check_columns(keys, right.names)
    for k in keys:
        lt, rt = left.field(k).type, right.field(k).type
        if lt != rt:
            raise SchemaMismatchError(f"join key {k!r} is {lt} on the left but {rt} on the right; cast one side")
    return keys
