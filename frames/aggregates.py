"""Group-by aggregations that run in two phases: per block, then once over the partials.

Each aggregator says how to summarise one block (its partial columns) and how
to combine those summaries (its final expression). On the cluster the
per-block step runs with pyarrow's ``group_by`` (:class:`PartialAggregate`),
so a fresh worker loads no polars; the partials come to the driver, where
polars combines them (:func:`finalize`). A frame in the driver runs both
steps in polars on its one table (:func:`aggregate_table`). Both give the
answer polars' own ``group_by`` gives, with the same types.

Example:
    >>> from framelab.frames import Frame, agg
    >>> sales = Frame({"shop": ["a", "b", "a", "a"], "amount": [10.0, 5.0, 30.0, 20.0]})
    >>> sales.groupby("shop").agg(n=agg.count(), mean=agg.mean("amount")).sort("shop").to_pydict()
    {'shop': ['a', 'b'], 'n': [3, 1], 'mean': [20.0, 5.0]}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

KINDS = ("count", "sum", "mean", "min", "max", "std", "count_distinct", "collect")


@dataclass(frozen=True)
class Aggregator:
    """One aggregate of a group-by: ``agg.sum("x")``, ``agg.count()``, ... (see :func:`count` and its siblings)."""

    kind: str
    column: str | None = None

    def default_name(self) -> str:
        """The output column's name when none is given: ``x_sum``, ``count``.

        Example:
            >>> from framelab.frames import agg
            >>> agg.sum("x").default_name(), agg.count().default_name()
            ('x_sum', 'count')
        """
        return self.kind if self.column is None else f"{self.column}_{self.kind}"

    def columns(self) -> list[str]:
        """The input columns it reads.

        Example:
            >>> from framelab.frames import agg
            >>> agg.mean("x").columns(), agg.count().columns()
            (['x'], [])
        """
        return [] if self.column is None else [self.column]

    def partial(self, out: str) -> list[Any]:
        """Polars expressions summarising one table (the driver's per-block step).

        Example:
            >>> from framelab.frames import agg
            >>> [str(e) for e in agg.mean("x").partial("m")]
            ['col("x").sum().alias("__m_s")', 'col("x").count().alias("__m_n")']
        """
        import polars as pl

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

    def arrow_partial(self, out: str) -> list[tuple[str, tuple]]:
        """(partial column, pyarrow aggregation) pairs: the same summaries as :meth:`partial`, without polars.

        Example:
            >>> from framelab.frames import agg
            >>> [name for name, _ in agg.mean("x").arrow_partial("m")]
            ['__m_s', '__m_n']
        """
        c, p = self.column, f"__{out}"
        every = pc.CountOptions(mode="all")
        if self.kind == "count":
            return [(p, ([], "count_all"))]
        if self.kind == "sum":
            # min_count=0: an all-null group sums to 0, as polars sums it.
            return [(p, (c, "sum", pc.ScalarAggregateOptions(min_count=0)))]
        if self.kind in ("min", "max"):
            return [(p, (c, self.kind))]
        if self.kind == "mean":
            return [(p + "_s", (c, "sum", pc.ScalarAggregateOptions(min_count=0))), (p + "_n", (c, "count"))]
        if self.kind == "std":
            # The sum of squared deviations is variance(ddof=0) times the count; combined as in finalize().
            return [
                (p + "_n", (c, "count")),
                (p + "_m", (c, "mean")),
                (p + "_q", (c, "variance", pc.VarianceOptions(ddof=0))),
            ]
        if self.kind == "count_distinct":
            return [(p, (c, "distinct", every))]
        if self.kind == "collect":
            return [(p, (c, "list"))]
        raise ValueError(f"unknown aggregate {self.kind!r}")

    def final(self, out: str) -> Any:
        """The polars expression combining partials into the result column ``out``.

        Example:
            >>> from framelab.frames import agg
            >>> str(agg.sum("x").final("total"))
            'col("__total").sum().alias("total")'
        """
        import polars as pl

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
    """Sum of a column in each group (0 for a group of nulls only).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"], "x": [1, 2, None]}).groupby("k").agg(agg.sum("x")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'x_sum': [3, 0]}
    """
    return Aggregator("sum", column)


def mean(column: str) -> Aggregator:
    """Mean of a column's non-null values in each group.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"], "x": [1, None, 4]}).groupby("k").agg(agg.mean("x")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'x_mean': [1.0, 4.0]}
    """
    return Aggregator("mean", column)


def min(column: str) -> Aggregator:  # noqa: A001
    """Smallest value of a column in each group.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a"], "day": ["tue", "mon"]}).groupby("k").agg(first=agg.min("day")).to_pydict()
        {'k': ['a'], 'first': ['mon']}
    """
    return Aggregator("min", column)


def max(column: str) -> Aggregator:  # noqa: A001
    """Largest value of a column in each group.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"], "x": [3, 7, 5]}).groupby("k").agg(top=agg.max("x")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'top': [7, 5]}
    """
    return Aggregator("max", column)


def std(column: str) -> Aggregator:
    """Sample standard deviation (ddof=1) of a column in each group; null for a group of one.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]}).groupby("k").agg(agg.std("x")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'x_std': [1.4142135623730951, None]}
    """
    return Aggregator("std", column)


def count_distinct(column: str) -> Aggregator:
    """Number of distinct values of a column in each group (null counts as one value).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "a", "a"], "who": ["ann", "bob", "ann"]})
        >>> f.groupby("k").agg(people=agg.count_distinct("who")).to_pydict()
        {'k': ['a'], 'people': [2]}
    """
    return Aggregator("count_distinct", column)


def collect(column: str) -> Aggregator:
    """All values of a column in each group, as a list (order not guaranteed across blocks).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "b", "a"], "who": ["ann", "bob", "cid"]})
        >>> f.groupby("k").agg(names=agg.collect("who")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'names': [['ann', 'cid'], ['bob']]}
    """
    return Aggregator("collect", column)


@dataclass(frozen=True)
class PartialAggregate:
    """The per-block step on the cluster: one row of partials per group of the block, with pyarrow only.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames import agg
        >>> from framelab.frames.aggregates import PartialAggregate
        >>> step = PartialAggregate(("k",), (("n", agg.count()),))
        >>> step(pa.table({"k": ["a", "b", "a"]})).to_pydict()
        {'k': ['a', 'b'], '__n': [2, 1]}
    """

    keys: tuple[str, ...]
    spec: tuple[tuple[str, Aggregator], ...]

    def __call__(self, block: pa.Table) -> pa.Table:
        pairs = [pair for out, a in self.spec for pair in a.arrow_partial(out)]
        grouped = block.group_by(list(self.keys), use_threads=False).aggregate([agg for _, agg in pairs])
        # pyarrow names its outputs "x_sum", "count_all"...: rename them to the partials' names, by position.
        out = grouped.rename_columns(list(self.keys) + [name for name, _ in pairs])
        for name, (_, kind, *_) in pairs:
            if kind == "variance":  # variance(ddof=0) x count = the sum of squared deviations
                n = out.column(name[: -len("_q")] + "_n")
                out = out.set_column(out.column_names.index(name), name, pc.multiply(out.column(name), pc.cast(n, pa.float64())))
        return out


def aggregate_table(table: pa.Table, keys: list[str], spec: dict[str, Aggregator]) -> pa.Table:
    """Aggregate one table in the driver: both phases in polars.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames import agg
        >>> from framelab.frames.aggregates import aggregate_table
        >>> aggregate_table(pa.table({"k": [1, 1, 2]}), ["k"], {"n": agg.count()}).to_pydict()
        {'k': [1, 2], 'n': [2, 1]}
    """
    import polars as pl

    from framelab.frames.conversion import normalize_table

    needed = list(dict.fromkeys(keys + [c for a in spec.values() for c in a.columns()]))
    partials = (
        pl.from_arrow(table.select(needed)).group_by(keys, maintain_order=True)
        .agg([e for name, a in spec.items() for e in a.partial(name)])
    )
    return normalize_table(partials.group_by(keys, maintain_order=True).agg(_finals(spec)).to_arrow())


def finalize(partials: pa.Table, keys: list[str], spec: dict[str, Aggregator], schema: pa.Schema) -> pa.Table:
    """Combine the cluster's per-block partials into the result, typed as :func:`aggregate_table` types it.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames import agg
        >>> from framelab.frames.aggregates import finalize, result_schema
        >>> partials = pa.table({"k": ["a", "a"], "__n": [2, 3]})
        >>> schema = result_schema(pa.schema([("k", pa.string())]), ["k"], {"n": agg.count()})
        >>> finalize(partials, ["k"], {"n": agg.count()}, schema).to_pydict()
        {'k': ['a'], 'n': [5]}
    """
    import polars as pl

    if partials.num_rows == 0:
        return schema.empty_table()
    result = pl.from_arrow(partials).group_by(keys, maintain_order=True).agg(_finals(spec)).to_arrow()
    return pa.Table.from_arrays(
        [c.cast(f.type) if c.type != f.type else c for c, f in zip(result.columns, schema)], schema=schema
    )


def result_schema(schema: pa.Schema, keys: list[str], spec: dict[str, Aggregator]) -> pa.Schema:
    """The schema of a group-by's result, from the input schema alone.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames import agg
        >>> from framelab.frames.aggregates import result_schema
        >>> result_schema(pa.schema([("k", pa.string()), ("x", pa.int64())]), ["k"], {"m": agg.mean("x")}).types
        [DataType(string), DataType(double)]
    """
    return aggregate_table(schema.empty_table(), keys, spec).schema


def _finals(spec: dict[str, Aggregator]) -> list[Any]:
    return [a.final(name) for name, a in spec.items()]
