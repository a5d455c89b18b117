"""Filters pushed into Parquet reads: the parts of a polars predicate a reader can apply itself.

A filter right above a Parquet read lets the reader skip row groups whose
statistics rule them out and drop rows before they reach the cluster. Only
the conjuncts (the ``&``-ed parts) of a predicate that compare a column with
a literal (``==, !=, <, <=, >, >=``, ``is_between``, ``is_in``, ``is_null``,
``is_not_null``) are pushed; the Frame still applies its whole predicate
afterwards, so pushing down changes how much is read, never the result.

A pushed conjunct must never drop a row that polars would keep. Polars ranks
NaN above every number (``NaN > 0.5`` is true) while Arrow and Parquet
statistics follow IEEE (false, and NaN left out of min/max), so on float
columns only ``<``, ``<=``, ``==``, ``is_between``, ``is_in`` and the null
tests are pushed.

Example:
    >>> import polars as pl, pyarrow as pa
    >>> from framelab.frames.predicates import pushdown
    >>> schema = pa.schema([("day", pa.int64()), ("x", pa.float64())])
    >>> pushed = pushdown(pl.col("day") >= 300, schema)
    >>> pushed.text, pushed.columns
    ('day >= 300', ('day',))
    >>> pushdown(pl.col("x") > 0.5, schema) is None      # NaN > 0.5 in polars: not pushed
    True
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

_COMPARISONS = {"Eq": "==", "NotEq": "!=", "Lt": "<", "LtEq": "<=", "Gt": ">", "GtEq": ">="}
_MIRROR = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
# Operators true for NaN in polars (NaN is the largest value): never pushed on floats.
_NAN_TRUE = {"!=", ">", ">="}
_AND = {"And", "LogicalAnd"}


@dataclass(frozen=True)
class Term:
    """One pushable conjunct: ``column op value`` (op is a comparison, ``between``, ``in``, ``null``, ``not_null``)."""

    column: str
    op: str
    value: Any = None

    def text(self) -> str:
        """How explain() shows it.

        Example:
            >>> from framelab.frames.predicates import Term
            >>> Term("day", "between", (1, 5)).text()
            'day between 1 and 5'
        """
        if self.op == "between":
            return f"{self.column} between {self.value[0]!r} and {self.value[1]!r}"
        if self.op in ("null", "not_null"):
            return f"{self.column} is {'not ' if self.op == 'not_null' else ''}null"
        if self.op == "in":
            return f"{self.column} in {list(self.value)!r}"
        return f"{self.column} {self.op} {self.value!r}"


@dataclass(frozen=True)
class Pushdown:
    """The pushable part of a predicate, ready for pyarrow and for Ray Data."""

    terms: tuple[Term, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns the pushed filter reads."""
        return tuple(dict.fromkeys(t.column for t in self.terms))

    @property
    def text(self) -> str:
        """The pushed filter as explain() shows it."""
        return " and ".join(t.text() for t in self.terms)

    def to_pyarrow(self) -> Any:
        """A ``pyarrow.dataset`` expression (for row-group pruning and row filtering in the driver).

        Example:
            >>> import polars as pl, pyarrow as pa
            >>> from framelab.frames.predicates import pushdown
            >>> pushdown(pl.col("k") < 3, pa.schema([("k", pa.int64())])).to_pyarrow()
            <pyarrow.compute.Expression (k < 3)>
        """
        import pyarrow.compute as pc

        return self._combine(pc.field, lambda f: f.is_null(), lambda f: f.is_valid(), lambda f, v: f.isin(v))

    def to_ray(self) -> Any:
        """A Ray Data expression, for ``Dataset.filter(expr=...)`` right after ``read_parquet``.

        Example:
            >>> import polars as pl, pyarrow as pa
            >>> from framelab.frames.predicates import pushdown
            >>> type(pushdown(pl.col("k") < 3, pa.schema([("k", pa.int64())])).to_ray()).__name__
            'BinaryExpr'
        """
        from ray.data.expressions import col

        return self._combine(col, lambda c: c.is_null(), lambda c: c.is_not_null(), lambda c, v: c.is_in(v))

    def _combine(self, column: Callable, is_null: Callable, is_valid: Callable, isin: Callable) -> Any:
        # The same conjunction in either expression language; only these four spellings differ.
        out = None
        for term in self.terms:
            c = column(term.column)
            if term.op == "null":
                e = is_null(c)
            elif term.op == "not_null":
                e = is_valid(c)
            elif term.op == "in":
                e = isin(c, list(term.value))
            elif term.op == "between":
                e = (c >= term.value[0]) & (c <= term.value[1])
            else:
                e = _compare(c, term.op, term.value)
            out = e if out is None else out & e
        return out


def pushdown(predicate: Any, schema: pa.Schema) -> Pushdown | None:
    """The conjuncts of a polars predicate a Parquet read with ``schema`` can apply safely, or None.

    Example:
        >>> import polars as pl, pyarrow as pa
        >>> from framelab.frames.predicates import pushdown
        >>> schema = pa.schema([("s", pa.string()), ("k", pa.int64())])
        >>> pushdown((pl.col("s") == "a") & (pl.col("k").is_in([1, 2])) & (pl.col("s").str.len_chars() > 1), schema).text
        "s == 'a' and k in [1, 2]"
    """
    import polars as pl

    if not isinstance(predicate, pl.Expr):
        return None
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception:  # noqa: BLE001 - a Python UDF cannot be serialised: nothing to push
        return None
    terms = [t for node in _conjuncts(tree) if (t := _term(node, schema)) is not None]
    return Pushdown(tuple(terms)) if terms else None


def _conjuncts(node: Any) -> list[Any]:
    binary = node.get("BinaryExpr") if isinstance(node, dict) else None
    if binary and binary.get("op") in _AND:
        return _conjuncts(binary["left"]) + _conjuncts(binary["right"])
    return [node]


def _term(node: Any, schema: pa.Schema) -> Term | None:
    if not isinstance(node, dict):
        return None
    if "BinaryExpr" in node:
        b = node["BinaryExpr"]
        op = _COMPARISONS.get(b.get("op"))
        if op is None:
            return None
        column, value = _column(b["left"]), _literal(b["right"])
        if column is None:  # literal on the left: `3 <= col("x")`
            column, value, op = _column(b["right"]), _literal(b["left"]), _MIRROR[op]
        return _checked(Term(column, op, value), schema) if column is not None else None
    if "Function" in node:
        f = node["Function"]
        inputs, function = f.get("input") or [], f.get("function")
        boolean = function.get("Boolean") if isinstance(function, dict) else None
        column = _column(inputs[0]) if inputs else None
        if column is None:
            return None
        if boolean == "IsNull" and len(inputs) == 1:
            return _checked(Term(column, "null"), schema)
        if boolean == "IsNotNull" and len(inputs) == 1:
            return _checked(Term(column, "not_null"), schema)
        if isinstance(boolean, dict) and "IsIn" in boolean and len(inputs) == 2:
            values = _literal_list(inputs[1])
            return _checked(Term(column, "in", values), schema) if values is not None else None
        if isinstance(boolean, dict) and "IsBetween" in boolean and len(inputs) == 3:
            if boolean["IsBetween"].get("closed") != "Both":
                return None
            low, high = _literal(inputs[1]), _literal(inputs[2])
            return _checked(Term(column, "between", (low, high)), schema)
    return None


def _column(node: Any) -> str | None:
    return node["Column"] if isinstance(node, dict) and isinstance(node.get("Column"), str) else None


_MISSING = object()


def _literal(node: Any) -> Any:
    if not isinstance(node, dict) or "Literal" not in node:
        return _MISSING
    lit = node["Literal"]
    inner = lit.get("Dyn") or lit.get("Scalar") if isinstance(lit, dict) else None
    if not isinstance(inner, dict) or len(inner) != 1:
        return _MISSING
    (kind, value), = inner.items()
    if kind in ("Int", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"):
        return int(value) if isinstance(value, (int, str)) else _MISSING
    if kind in ("Float", "Float32", "Float64"):
        return float(value) if isinstance(value, (int, float)) else _MISSING
    if kind == "String":
        return value if isinstance(value, str) else _MISSING
    if kind == "Boolean":
        return value if isinstance(value, bool) else _MISSING
    return _MISSING  # nulls, lists, dates...: not pushed


def _literal_list(node: Any) -> tuple | None:
    """The values of a list literal (polars serialises it as an Arrow IPC stream); None if it has nulls."""
    try:
        raw = bytes(node["Literal"]["Scalar"]["List"])
        values = pa.ipc.open_stream(raw).read_all().column(0).to_pylist()
    except Exception:  # noqa: BLE001 - any other shape of literal is simply not pushed
        return None
    if any(v is None for v in values):
        return None
    return tuple(values)


def _checked(term: Term, schema: pa.Schema) -> Term | None:
    """The term when the column exists with a type its literal fits; else None (not pushed)."""
    if term.column not in schema.names:
        return None
    dtype = schema.field(term.column).type
    if term.op in ("between", "in"):
        values = tuple(term.value)
    else:
        values = (term.value,) if term.op not in ("null", "not_null") else ()
    if any(v is _MISSING for v in values):
        return None
    if pa.types.is_floating(dtype):
        if term.op in _NAN_TRUE or any(v != v for v in values):  # NaN literals compare oddly in polars
            return None
        ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    elif pa.types.is_integer(dtype):
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        ok = all(isinstance(v, str) for v in values)
    elif pa.types.is_boolean(dtype):
        ok = all(isinstance(v, bool) for v in values)
    else:
        ok = term.op in ("null", "not_null")
    return term if ok else None


def _compare(left: Any, op: str, value: Any) -> Any:
    if op == "==":
        return left == value
    if op == "!=":
        return left != value
    if op == "<":
        return left < value
    if op == "<=":
        return left <= value
    if op == ">":
        return left > value
    return left >= value
