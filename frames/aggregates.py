"""Group-by aggregations that run in two phases: per block, then once over the partials.

Each aggregator says how to summarise one block (``partial``) and how to
combine those summaries (``final``); the same two steps serve a frame in the
driver and a frame spread over the cluster, so both give the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class Aggregator:
    """One aggregate of a group-by: ``agg.sum("x")``, ``agg.count()``, ..."""

    kind: str
    column: str | None = None

    def default_name(self) -> str:
        return self.kind if self.column is None else f"{self.column}_{self.kind}"

    def columns(self) -> list[str]:
        return [] if self.column is None else [self.column]

    def partial(self, out: str) -> list[pl.Expr]:
        c = pl.col(self.column) if self.column is not None else None
        p = f"__{out}"
        if self.kind == "count":
            return [pl.len().alias(p)]
        if self.kind in ("sum", "min", "max"):
            return [getattr(c, self.kind)().alias(p)]
        if self.kind == "mean":
            return [c.sum().alias(p + "_s"), c.count().alias(p + "_n")]
        if self.kind == "std":
            return [
                c.count().alias(p + "_n"),
                c.mean().alias(p + "_m"),
                ((c - c.mean()) ** 2).sum().alias(p + "_q"),
            ]
        if self.kind in ("count_distinct", "collect"):
            return [(c.unique() if self.kind == "count_distinct" else c).alias(p)]
        raise ValueError(f"unknown aggregate {self.kind!r}")

    def final(self, out: str) -> pl.Expr:
        p = f"__{out}"
        if self.kind == "count":
            return pl.col(p).sum().cast(pl.Int64).alias(out)
        if self.kind == "sum":
            return pl.col(p).sum().alias(out)
        if self.kind in ("min", "max"):
            return getattr(pl.col(p), self.kind)().alias(out)
        if self.kind == "mean":
            return (pl.col(p + "_s").sum() / pl.col(p + "_n").sum()).alias(out)
        if self.kind == "std":
            # Chan et al.: combine per-block counts, means and squared deviations.
            n, m, q = pl.col(p + "_n"), pl.col(p + "_m"), pl.col(p + "_q")
            total = n.sum()
            mean = (n * m.fill_null(0)).sum() / total
            m2 = q.fill_null(0).sum() + (n * (m.fill_null(0) - mean) ** 2).sum()
            return pl.when(total > 1).then((m2 / (total - 1)).sqrt()).otherwise(None).alias(out)
        if self.kind == "count_distinct":
            return pl.col(p).explode().n_unique().cast(pl.Int64).alias(out)
        if self.kind == "collect":
            return pl.col(p).explode().alias(out)
        raise ValueError(f"unknown aggregate {self.kind!r}")


def count() -> Aggregator:
    """Number of rows in each group.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"]}).groupby("k").agg(n=agg.count()).sort("k").to_pydict()
        {'k': ['a', 'b'], 'n': [2, 1]}
    """
    return Aggregator("count")


def sum(column: str) -> Aggregator:  # noqa: A001 - mirrors the aggregate's name
    """Sum of a column in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.sum("x").default_name()
        'x_sum'
    """
    return Aggregator("sum", column)


def mean(column: str) -> Aggregator:
    """Mean of a column's non-null values in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.mean("x").kind
        'mean'
    """
    return Aggregator("mean", column)


def min(column: str) -> Aggregator:  # noqa: A001
    """Smallest value of a column in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.min("x").column
        'x'
    """
    return Aggregator("min", column)


def max(column: str) -> Aggregator:  # noqa: A001
    """Largest value of a column in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.max("x").column
        'x'
    """
    return Aggregator("max", column)


def std(column: str) -> Aggregator:
    """Sample standard deviation (ddof=1) of a column in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.std("x").kind
        'std'
    """
    return Aggregator("std", column)


def count_distinct(column: str) -> Aggregator:
    """Number of distinct values (null counts as one) of a column in each group.

    Example:
        >>> from framelab.frames import agg
        >>> agg.count_distinct("x").kind
        'count_distinct'
    """
    return Aggregator("count_distinct", column)


def collect(column: str) -> Aggregator:
    """All values of a column in each group, as a list (order not guaranteed across blocks).

    Example:
        >>> from framelab.frames import agg
        >>> agg.collect("x").kind
        'collect'
    """
    return Aggregator("collect", column)


def partial_exprs(aggs: dict[str, Aggregator]) -> list[pl.Expr]:
    """The per-block expressions for a set of named aggregates."""
    return [e for name, a in aggs.items() for e in a.partial(name)]


def final_exprs(aggs: dict[str, Aggregator]) -> list[pl.Expr]:
    """The expressions that combine per-block partials into the result."""
    return [a.final(name) for name, a in aggs.items()]
