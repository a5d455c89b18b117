"""Argument checks shared by every layer above the platform: one rule, one message, per kind of argument.

A public ``create`` or method declares what each argument may be, once, as a
:class:`Constraint` (:func:`integer`, :func:`number`, :func:`one_of`,
:data:`SEED`), and :func:`check_arguments` checks them all (scikit-learn's
``validate_params`` is the model). Each check returns the value in its
canonical form (an ``int`` seed, a ``float`` fraction, a list of column
names) or raises :class:`InputError` in one shape, ``<name> must be
<expected>, got <value>``, so frames and toolkits refuse the same bad value
with the same words.

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

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from framelab.frames.errors import InputError


@dataclass(frozen=True)
class Constraint:
    """What one argument may be: a test, the words for what it expects, and the value's canonical form.

    Example:
        >>> from framelab.frames.validation import integer
        >>> integer(1).check(3, "k"), integer(1).expected
        (3, 'a positive integer')
    """

    expected: str
    accepts: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value

    def check(self, value: Any, name: str) -> Any:
        """The value in canonical form, or an InputError: ``<name> must be <expected>, got <value>``.

        Example:
            >>> from framelab.frames.validation import number
            >>> number(0).check(-1.0, "l2_penalty")
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: l2_penalty must be a number >= 0, got -1.0
        """
        if not self.accepts(value):
            raise InputError(f"{name} must be {self.expected}, got {value!r}")
        return self.convert(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(value)


def integer(low: int = 1, *, none: str | None = None, meaning: str = "") -> Constraint:
    """An integer of at least ``low``; ``none`` says what None means when None is allowed.

    Example:
        >>> from framelab.frames.validation import integer
        >>> integer(0, meaning="0: no passes").expected, integer(1, none="no limit").expected
        ('a non-negative integer (0: no passes)', 'a positive integer or None (no limit)')
    """
    words = {0: "a non-negative integer", 1: "a positive integer"}.get(low, f"an integer >= {low}")
    words += f" ({meaning})" if meaning else ""
    words += f" or None ({none})" if none else ""
    return Constraint(words, lambda v: (none is not None and v is None) or (_is_integer(v) and v >= low),
                      lambda v: None if v is None else int(v))


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           none: str | None = None) -> Constraint:
    """A finite number in a range (``low_open``: ``low`` itself is refused); ``none`` as for :func:`integer`.

    Example:
        >>> from framelab.frames.validation import number
        >>> number(0, 1).expected, number(0, 1, low_open=True).expected, number(0).expected
        ('a number between 0 and 1', 'a number in (0, 1]', 'a number >= 0')
    """
    if low is not None and high is not None:
        words = f"a number in ({low}, {high}]" if low_open else f"a number between {low} and {high}"
    elif low is not None:
        words = f"a number {'>' if low_open else '>='} {low}"
    else:
        words = "a number"
    words += f" or None ({none})" if none else ""

    def accepts(value: Any) -> bool:
        if none is not None and value is None:
            return True
        if not _is_number(value):
            return False
        above = low is None or (value > low if low_open else value >= low)
        return above and (high is None or value <= high)

    return Constraint(words, accepts, lambda v: None if v is None else float(v))


def text(*, meaning: str = "", none: str | None = None) -> Constraint:
    """A non-empty string (a column name, a tag); ``meaning`` and ``none`` as for :func:`integer`.

    Example:
        >>> from framelab.frames.validation import text
        >>> text(meaning="a column name").check("", "name")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: name must be a non-empty string (a column name), got ''
    """
    words = "a non-empty string" + (f" ({meaning})" if meaning else "") + (f" or None ({none})" if none else "")
    return Constraint(words, lambda v: (none is not None and v is None) or (isinstance(v, str) and v != ""))


def one_of(*choices: Any) -> Constraint:
    """One of ``choices``.

    Example:
        >>> from framelab.frames.validation import one_of
        >>> one_of("cpu", "cuda").expected
        "one of 'cpu', 'cuda'"
    """
    return Constraint(f"one of {', '.join(map(repr, choices))}", lambda v: any(v == c for c in choices))


# The one seed rule of every frame method and toolkit: a non-negative integer (any numpy integer too), or None.
SEED = Constraint("a non-negative integer or None", lambda v: v is None or (_is_integer(v) and v >= 0),
                  lambda v: None if v is None else int(v))


def check_arguments(values: Mapping[str, Any], constraints: Mapping[str, Constraint]) -> dict[str, Any]:
    """Check each named argument against its constraint; their canonical values, by name.

    Example:
        >>> from framelab.frames.validation import SEED, check_arguments, integer
        >>> check_arguments({"k": 3, "seed": None}, {"k": integer(1), "seed": SEED})
        {'k': 3, 'seed': None}
        >>> check_arguments({"k": 0}, {"k": integer(1)})
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: k must be a positive integer, got 0
    """
    return {name: constraint.check(values[name], name) for name, constraint in constraints.items()}


def check_seed(seed: Any, name: str = "seed") -> int:
    """A non-negative integer seed (:data:`SEED`); None draws a fresh one from the operating system.

    Example:
        >>> from framelab.frames.validation import check_seed
        >>> check_seed(np.int64(3)), 0 <= check_seed(None) < 2**32
        (3, True)
    """
    seed = SEED.check(seed, name)
    return int.from_bytes(os.urandom(4), "little") if seed is None else seed


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
    return number(0, 1).check(fraction, f"{method}(fraction=...)")


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
    return integer(1).check(value, name)


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices``.

    Example:
        >>> from framelab.frames.validation import check_choice
        >>> check_choice("how", "left", ("inner", "left"))
        'left'
        >>> check_choice("device", "tpu", ("cpu", "cuda"))
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: device must be one of 'cpu', 'cuda', got 'tpu'
    """
    return one_of(*choices).check(value, name)


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
