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

from framelab.frames.errors import InputError, check_columns
from framelab.frames.validation import check_choice, check_fraction
from framelab.frames.vectors import is_vector_type

KINDS = ("count", "sum", "mean", "min", "max", "std", "var", "quantile", "argmax", "argmin", "count_distinct",
         "collect")
#: Kinds that need a numeric column (sum and mean also take a vector column, element-wise).
NUMERIC_KINDS = ("sum", "mean", "std", "var", "quantile")
#: How :func:`quantile` picks between two values (polars' names; "nearest" is polars' default).
INTERPOLATIONS = ("nearest", "higher", "lower", "midpoint", "linear")


@dataclass(frozen=True)
class Aggregator:
    """One aggregate of a group-by: ``agg.sum("x")``, ``agg.count()``, ... (see :func:`count` and its siblings).

    ``of`` is the column :func:`argmax` / :func:`argmin` return a value of; ``ddof``, ``q``,
    ``interpolation`` and ``drop_nulls`` are the options of :func:`std` / :func:`var`,
    :func:`quantile` and :func:`collect`; ``dim`` is set by :meth:`checked` for a vector column.
    """

    kind: str
    column: str | None = None
    of: str | None = None
    ddof: int = 1
    q: float = 0.5
    interpolation: str = "nearest"
    drop_nulls: bool = False
    dim: int | None = None

    def default_name(self) -> str:
        """The output column's name when none is given: ``x_sum``, ``count``.

        Example:
            >>> from framelab.frames import agg
            >>> agg.sum("x").default_name(), agg.count().default_name(), agg.argmax("x", "name").default_name()
            ('x_sum', 'count', 'name_at_x_argmax')
        """
        if self.column is None:
            return self.kind
        if self.of is not None:
            return f"{self.of}_at_{self.column}_{self.kind}"
        return f"{self.column}_{self.kind}"

    def columns(self) -> list[str]:
        """The input columns it reads.

        Example:
            >>> from framelab.frames import agg
            >>> agg.mean("x").columns(), agg.count().columns(), agg.argmin("x", "y").columns()
            (['x'], [], ['x', 'y'])
        """
        return [c for c in (self.column, self.of) if c is not None]

    def checked(self, schema: pa.Schema) -> Aggregator:
        """The aggregator checked against the input schema (a vector column's length recorded), or an error saying what to use.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.frames import agg
            >>> agg.sum("v").checked(pa.schema([("v", pa.list_(pa.float32(), 3))])).dim
            3
            >>> agg.std("s").checked(pa.schema([("s", pa.string())]))
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: agg.std('s') needs a numeric column, but 's' is string; cast it first (with_column('s', pl.col('s').cast(pl.Float64)))
        """
        from dataclasses import replace

        check_columns(self.columns(), schema.names)
        if self.column is None:
            return self
        dtype = schema.field(self.column).type
        call = f"agg.{self.kind}({self.column!r})"
        if is_vector_type(dtype):
            if self.kind in ("sum", "mean"):
                return replace(self, dim=dtype.list_size)
            if self.kind not in ("count_distinct", "collect"):
                raise InputError(f"{call}: {self.column!r} is a vector column, which {self.kind} does not order or "
                                 f"combine; use agg.sum or agg.mean (element-wise), or take one element first "
                                 f"(with_column('v0', pl.col({self.column!r}).arr.get(0)))")
        elif self.kind in NUMERIC_KINDS and not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype)
                                                 or pa.types.is_decimal(dtype) or pa.types.is_boolean(dtype)):
            raise InputError(f"{call} needs a numeric column, but {self.column!r} is {dtype}; cast it first "
                             f"(with_column({self.column!r}, pl.col({self.column!r}).cast(pl.Float64)))")
        return self

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
        if self.dim is not None:  # a vector column, element by element
            sums = [c.arr.get(i).sum().alias(f"{p}_{i}") for i in range(self.dim)]
            return sums + ([c.count().alias(p + "_n")] if self.kind == "mean" else [])
        if self.kind in ("sum", "min", "max"):
            return [getattr(c, self.kind)().alias(p)]
        if self.kind == "mean":
            return [c.sum().alias(p + "_s"), c.count().alias(p + "_n")]
        if self.kind in ("std", "var"):
            return [
                c.count().alias(p + "_n"),
                c.mean().alias(p + "_m"),
                ((c - c.mean()) ** 2).sum().alias(p + "_q"),
            ]
        if self.kind in ("argmax", "argmin"):
            best = c.max() if self.kind == "argmax" else c.min()
            return [best.alias(p + "_m"), _value_at_best(pl.col(self.of), c, self.kind).alias(p + "_v")]
        if self.kind in ("count_distinct", "collect", "quantile"):
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
        keep_nulls_out = pc.ScalarAggregateOptions(min_count=0)  # an all-null group sums to 0, as polars sums it
        if self.kind == "count":
            return [(p, ([], "count_all"))]
        if self.dim is not None:  # the element columns :meth:`arrow_inputs` added
            sums = [(f"{p}_{i}", (f"{p}_in{i}", "sum", keep_nulls_out)) for i in range(self.dim)]
            return sums + ([(p + "_n", (c, "count"))] if self.kind == "mean" else [])
        if self.kind == "sum":
            return [(p, (c, "sum", keep_nulls_out))]
        if self.kind in ("min", "max"):
            return [(p, (c, self.kind))]
        if self.kind == "mean":
            return [(p + "_s", (c, "sum", keep_nulls_out)), (p + "_n", (c, "count"))]
        if self.kind in ("std", "var"):
            # The sum of squared deviations is variance(ddof=0) times the count; combined as in finalize().
            return [
                (p + "_n", (c, "count")),
                (p + "_m", (c, "mean")),
                (p + "_q", (c, "variance", pc.VarianceOptions(ddof=0))),
            ]
        if self.kind in ("argmax", "argmin"):
            # The best value, and the smallest rank (see arrow_inputs) of a row holding it; PartialAggregate
            # turns the rank into the value of ``of`` there.
            return [(p + "_m", (c, "max" if self.kind == "argmax" else "min")), (p + "_v", (p + "_rank", "min"))]
        if self.kind == "count_distinct":
            return [(p, (c, "distinct", every))]
        if self.kind in ("collect", "quantile"):
            return [(p, (c, "list"))]
        raise ValueError(f"unknown aggregate {self.kind!r}")

    def arrow_inputs(self, out: str, block: pa.Table) -> list[tuple[str, Any]]:
        """Columns the pyarrow step adds to a block before grouping: a vector's elements, an argmax's ranks.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.frames import agg
            >>> block = pa.table({"x": [3, 9, 9]})
            >>> [(n, a.to_pylist()) for n, a in agg.argmax("x", "x").arrow_inputs("b", block)]
            [('__b_rank', [3, 1, 2])]
        """
        p = f"__{out}"
        if self.dim is not None:
            return [(f"{p}_in{i}", pc.list_element(block.column(self.column), i)) for i in range(self.dim)]
        if self.kind in ("argmax", "argmin"):
            order = "descending" if self.kind == "argmax" else "ascending"
            # Rank 1 is the block's best row (nulls rank last); ties go to the first row, as polars' arg_max gives them.
            return [(p + "_rank", pc.rank(block.column(self.column), sort_keys=order,
                                          tiebreaker="first"))]
        return []

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
        if self.dim is not None:
            sums = [pl.col(f"{p}_{i}").sum() for i in range(self.dim)]
            if self.kind == "mean":
                n = pl.col(p + "_n").sum()
                sums = [pl.when(n > 0).then(s / n).otherwise(None) for s in sums]
            return pl.concat_list(sums).list.to_array(self.dim).alias(out)
        if self.kind == "sum":
            return pl.col(p).sum().alias(out)
        if self.kind in ("min", "max"):
            return getattr(pl.col(p), self.kind)().alias(out)
        if self.kind == "mean":
            # A group of nulls only has no mean: null, as polars says, not 0 / 0 = NaN.
            n = pl.col(p + "_n").sum()
            return pl.when(n > 0).then(pl.col(p + "_s").sum() / n).otherwise(None).alias(out)
        if self.kind in ("std", "var"):
            # Chan et al.: combine per-block counts, means and squared deviations.
            n, m, q = pl.col(p + "_n"), pl.col(p + "_m"), pl.col(p + "_q")
            total = n.sum()
            mean = (n * m.fill_null(0)).sum() / total
            m2 = q.fill_null(0).sum() + (n * (m.fill_null(0) - mean) ** 2).sum()
            var = m2 / (total - self.ddof)
            return pl.when(total > self.ddof).then(var.sqrt() if self.kind == "std" else var).otherwise(None).alias(out)
        if self.kind in ("argmax", "argmin"):
            return _value_at_best(pl.col(p + "_v"), pl.col(p + "_m"), self.kind).alias(out)
        if self.kind == "quantile":
            return pl.col(p).explode().quantile(self.q, interpolation=self.interpolation).alias(out)
        if self.kind == "count_distinct":
            return pl.col(p).explode().n_unique().cast(pl.Int64).alias(out)
        if self.kind == "collect":
            values = pl.col(p).explode()
            return (values.drop_nulls() if self.drop_nulls else values).alias(out)
        raise ValueError(f"unknown aggregate {self.kind!r}")


def _value_at_best(value: Any, by: Any, kind: str) -> Any:
    """The polars expression for ``value`` at the first row where ``by`` is largest (argmax) or smallest; null when ``by`` is."""
    return value.get(by.arg_max() if kind == "argmax" else by.arg_min())


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


def std(column: str, ddof: int = 1) -> Aggregator:
    """Standard deviation of a column in each group, with ``ddof`` (1: the sample's; 0: the population's); null for ``ddof`` or fewer values.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a", "b"], "x": [1.0, 3.0, 5.0]}).groupby("k").agg(agg.std("x")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'x_std': [1.4142135623730951, None]}
    """
    return Aggregator("std", column, ddof=_check_ddof(ddof))


def var(column: str, ddof: int = 1) -> Aggregator:
    """Variance of a column in each group, with ``ddof`` as in :func:`std`.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> Frame({"k": ["a", "a"], "x": [1.0, 3.0]}).groupby("k").agg(agg.var("x"), p=agg.var("x", ddof=0)).to_pydict()
        {'k': ['a'], 'x_var': [2.0], 'p': [1.0]}
    """
    return Aggregator("var", column, ddof=_check_ddof(ddof))


def quantile(column: str, q: float, interpolation: str = "nearest") -> Aggregator:
    """The ``q`` quantile of a column in each group, exactly as polars computes it (``interpolation`` as polars names it).

    Exact on the cluster too, at a cost: each block sends its group's values
    (not a sketch) to the driver, so a group's values must fit in the driver's memory.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a"] * 4, "x": [1.0, 2.0, 3.0, 4.0]})
        >>> f.groupby("k").agg(med=agg.quantile("x", 0.5, "linear"), p90=agg.quantile("x", 0.9)).to_pydict()
        {'k': ['a'], 'med': [2.5], 'p90': [4.0]}
    """
    q = check_fraction(q, f"quantile({column!r}, q)")
    return Aggregator("quantile", column, q=q, interpolation=check_choice("interpolation", interpolation, INTERPOLATIONS))


def argmax(column: str, of: str) -> Aggregator:
    """The value of column ``of`` at the row where ``column`` is largest in each group (the first such row; null when ``column`` is all null).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "a", "b"], "score": [0.2, 0.9, 0.5], "name": ["ann", "bob", "cid"]})
        >>> f.groupby("k").agg(best=agg.argmax("score", "name")).sort("k").to_pydict()
        {'k': ['a', 'b'], 'best': ['bob', 'cid']}
    """
    return Aggregator("argmax", column, of=_check_of(of, "argmax"))


def argmin(column: str, of: str) -> Aggregator:
    """The value of column ``of`` at the row where ``column`` is smallest in each group (as :func:`argmax`).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "a"], "score": [0.2, 0.9], "name": ["ann", "bob"]})
        >>> f.groupby("k").agg(worst=agg.argmin("score", "name")).to_pydict()
        {'k': ['a'], 'worst': ['ann']}
    """
    return Aggregator("argmin", column, of=_check_of(of, "argmin"))


def count_distinct(column: str) -> Aggregator:
    """Number of distinct values of a column in each group (null counts as one value).

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "a", "a"], "who": ["ann", "bob", "ann"]})
        >>> f.groupby("k").agg(people=agg.count_distinct("who")).to_pydict()
        {'k': ['a'], 'people': [2]}
    """
    return Aggregator("count_distinct", column)


def collect(column: str, *, drop_nulls: bool = False) -> Aggregator:
    """All values of a column in each group, as a list (order not guaranteed across blocks); ``drop_nulls`` leaves out nulls.

    Example:
        >>> from framelab.frames import Frame, agg
        >>> f = Frame({"k": ["a", "b", "a"], "who": ["ann", "bob", None]})
        >>> f.groupby("k").agg(names=agg.collect("who", drop_nulls=True)).sort("k").to_pydict()
        {'k': ['a', 'b'], 'names': [['ann'], ['bob']]}
    """
    return Aggregator("collect", column, drop_nulls=bool(drop_nulls))


def _check_ddof(ddof: Any) -> int:
    if isinstance(ddof, bool) or not isinstance(ddof, int) or ddof < 0:
        raise InputError(f"ddof must be a non-negative integer (1: sample, 0: population), got {ddof!r}")
    return ddof


def _check_of(of: Any, kind: str) -> str:
    if not isinstance(of, str):
        raise InputError(f"agg.{kind}(column, of) needs ``of``, the name of the column whose value to return; got {of!r}")
    return of


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
        for out, a in self.spec:
            for name, values in a.arrow_inputs(out, block):
                block = block.append_column(name, values)
        grouped = block.group_by(list(self.keys), use_threads=False).aggregate([agg for _, agg in pairs])
        # pyarrow names its outputs "x_sum", "count_all"...: rename them to the partials' names, by position.
        out = grouped.rename_columns(list(self.keys) + [name for name, _ in pairs])
        for name, (_, kind, *_) in pairs:
            if kind == "variance":  # variance(ddof=0) x count = the sum of squared deviations
                n = out.column(name[: -len("_q")] + "_n")
                out = out.set_column(out.column_names.index(name), name, pc.multiply(out.column(name), pc.cast(n, pa.float64())))
        for name, a in self.spec:
            if a.kind in ("argmax", "argmin"):
                out = _rank_to_value(out, block, f"__{name}", a)
        return out


def _rank_to_value(out: pa.Table, block: pa.Table, p: str, a: Aggregator) -> pa.Table:
    """Replace an argmax's smallest rank per group by the value of ``a.of`` in the row of that rank."""
    order = "descending" if a.kind == "argmax" else "ascending"
    # sort_indices is stable: position r - 1 holds the row pc.rank ranked r (ties: first row first).
    rows = pc.sort_indices(block, sort_keys=[(a.column, order)])  # nulls last, as in rank
    ranks = out.column(p + "_v")
    values = block.column(a.of).take(rows.take(pc.subtract(ranks, 1)))
    # A group whose column is all null has no best row: null, as polars' arg_max gives it.
    values = pc.if_else(pc.is_null(out.column(p + "_m")), pa.nulls(len(values), values.type), values)
    return out.set_column(out.column_names.index(p + "_v"), p + "_v", values)


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
