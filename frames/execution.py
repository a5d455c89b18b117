"""How a plan runs: the physical operators, in the driver (pyarrow, polars) and on the cluster (Ray Data).

The planner (:mod:`framelab.frames.planner`) decides where each node runs
and by which strategy; this module only carries that out. A result is a
``pyarrow.Table`` in the driver or a ``ray.data.Dataset`` on the cluster;
:func:`as_table` and :func:`as_dataset` move one to the other. Errors from
inside Ray about the user's input are raised as themselves
(:mod:`framelab.platform.remote_errors`).

Example:
    >>> import pyarrow as pa
    >>> from framelab.frames import execution
    >>> from framelab.frames.blockwise import SelectColumns
    >>> dataset = execution.map_dataset(execution.to_cluster(pa.table({"x": [1, 2], "y": [3, 4]})), [SelectColumns(["y"])])
    >>> execution.as_table(dataset).to_pydict()
    {'y': [3, 4]}
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from framelab.frames import aggregates, joins
from framelab.frames.blocks import concat, fetch_blocks, split_table, window
from framelab.frames.blockwise import distinct_rows, number_rows
from framelab.platform import failures, stalls, warm_pools
from framelab.platform.progress import Progress
from framelab.platform.remote_errors import get, surfaced_errors
from framelab.platform.resources import cluster_cpus, largest_free_cpus
from framelab.platform.session import ensure_connected

Result = Any  # a pyarrow.Table (driver) or a ray.data.Dataset (cluster)


# ------------------------------------------------------------- moving results
def is_table(result: Result) -> bool:
    """True for a driver-side result.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import is_table
        >>> is_table(pa.table({"x": [1]}))
        True
    """
    return isinstance(result, pa.Table)


def to_cluster(table: pa.Table, num_blocks: int | None = None) -> Any:
    """Put a driver-side table on the cluster as a Ray Dataset of blocks sized for its parallelism.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import to_cluster
        >>> to_cluster(pa.table({"x": list(range(10))}), num_blocks=2).num_blocks()
        2
    """
    import ray.data

    ensure_connected()
    return ray.data.from_arrow(split_table(table, num_blocks))


def as_dataset(result: Result) -> Any:
    """The result as a Ray Dataset (a driver table is put on the cluster).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import as_dataset
        >>> as_dataset(pa.table({"x": [1, 2]})).count()
        2
    """
    return to_cluster(result) if is_table(result) else result


def run_to_end(dataset: Any, label: str = "framelab", total: int | None = None) -> tuple[list, int]:
    """Run a Ray Dataset to its end: references to its Arrow blocks, in order, and their rows.

    The run shows one progress display (:class:`framelab.platform.progress.Progress`,
    quiet for short jobs) and warns once about the rows its stages could not
    process (:func:`framelab.platform.failures.job`), instead of once per task.

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import run_to_end
        >>> refs, rows = run_to_end(ray.data.range(10, override_num_blocks=2), "count to ten")
        >>> len(refs), rows
        (2, 10)
    """
    refs: list = []
    with surfaced_errors(), failures.job(), Progress(label, total) as bar, stalls.watched(label) as beat:
        for bundle in dataset.iter_internal_ref_bundles():
            beat()
            slices = getattr(bundle, "slices", None) or [None] * len(bundle.block_refs)
            arrow = bundle.schema is None or isinstance(bundle.schema, pa.Schema)
            for ref, meta, piece in zip(bundle.block_refs, bundle.metadata, slices):
                if piece is not None or not arrow:
                    # A slice of a block, or a pandas block: cut and convert where the block is.
                    bounds = None if piece is None else (piece.start_offset, piece.end_offset)
                    ref = _arrow_block.remote(ref, bounds)
                refs.append(ref)
                bar.update(meta.num_rows or 0)
    return refs, bar.rows


def as_table(result: Result, schema: pa.Schema | None = None, label: str = "framelab", total: int | None = None) -> pa.Table:
    """The result as one driver-side table (a dataset is run to its end; ``schema`` types an empty one).

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import as_table
        >>> as_table(ray.data.range(3)).num_rows
        3
    """
    if is_table(result):
        return result
    refs, _ = run_to_end(result, label, total)
    table = fetch_blocks(refs, schema)
    if table.num_columns == 0 and schema is not None and schema.names:
        table = schema.empty_table()
    return table


def apply(table: pa.Table, fns: Sequence[Callable[[pa.Table], pa.Table]]) -> pa.Table:
    """Run block functions on a driver-side table, in order.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blockwise import RenameColumns, SelectColumns
        >>> from framelab.frames.execution import apply
        >>> apply(pa.table({"a": [1], "b": [2]}), [SelectColumns(["a"]), RenameColumns({"a": "z"})]).column_names
        ['z']
    """
    with surfaced_errors():
        for fn in fns:
            table = fn(table)
    return table


class Fused:
    """Block functions run one after another in one Ray Data task (picklable)."""

    def __init__(self, fns: Sequence[Callable[[pa.Table], pa.Table]]):
        self.fns = list(fns)

    def __call__(self, block: pa.Table) -> pa.Table:
        for fn in self.fns:
            block = fn(block)
        return block


def map_dataset(dataset: Any, fns: Sequence[Callable[[pa.Table], pa.Table]], **ray_args: Any) -> Any:
    """Run block functions over a dataset as one Ray Data stage (``ray_args``: task resources).

    Example:
        >>> import ray.data
        >>> from framelab.frames.blockwise import SelectColumns
        >>> from framelab.frames.execution import map_dataset
        >>> map_dataset(ray.data.range(3), [SelectColumns(["id"])]).count()
        3
    """
    return dataset.map_batches(
        Fused(fns), batch_format="pyarrow", batch_size=ray_args.pop("batch_size", None), zero_copy_batch=True, **ray_args
    )


# --------------------------------------------------------------- whole frame
def sort_table(table: pa.Table, keys: list[str], descending: list[bool]) -> pa.Table:
    """Rows of a driver-side table sorted by ``keys``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import sort_table
        >>> sort_table(pa.table({"x": [2, 1]}), ["x"], [False]).to_pydict()
        {'x': [1, 2]}
    """
    return table.sort_by([(k, "descending" if d else "ascending") for k, d in zip(keys, descending)])


def sort_dataset(dataset: Any, keys: list[str], descending: list[bool]) -> Any:
    """Ray Data's distributed sort (range-partitioned).

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import as_table, sort_dataset
        >>> as_table(sort_dataset(ray.data.from_items([{"x": 2}, {"x": 1}]), ["x"], [False])).to_pydict()
        {'x': [1, 2]}
    """
    return dataset.sort(keys, descending=descending)


def distinct_dataset(dataset: Any, schema: pa.Schema, subset: Sequence[str] | None = None) -> pa.Table:
    """Distinct rows of a dataset: distinct per block on the cluster, then once more in the driver.

    Example:
        >>> import ray.data, pyarrow as pa
        >>> from framelab.frames.execution import distinct_dataset
        >>> ds = ray.data.from_arrow([pa.table({"x": [1, 1]}), pa.table({"x": [1, 2]})])
        >>> distinct_dataset(ds, ds.schema().base_schema).to_pydict()
        {'x': [1, 2]}
    """
    per_block = functools.partial(distinct_rows, subset=subset)
    return per_block(as_table(map_dataset(dataset, [per_block]), schema, "unique"))


def aggregate_dataset(dataset: Any, keys: list[str], spec: dict[str, aggregates.Aggregator], schema: pa.Schema) -> pa.Table:
    """A group-by of a dataset: pyarrow partials per block on the cluster, polars' final step in the driver.

    Example:
        >>> import ray.data, pyarrow as pa
        >>> from framelab.frames import agg
        >>> from framelab.frames.aggregates import result_schema
        >>> from framelab.frames.execution import aggregate_dataset
        >>> ds = ray.data.from_arrow([pa.table({"k": ["a", "b"]}), pa.table({"k": ["a"]})])
        >>> spec = {"n": agg.count()}
        >>> aggregate_dataset(ds, ["k"], spec, result_schema(pa.schema([("k", pa.string())]), ["k"], spec)).to_pydict()
        {'k': ['a', 'b'], 'n': [2, 1]}
    """
    step = aggregates.PartialAggregate(tuple(keys), tuple(spec.items()))
    partials = as_table(map_dataset(dataset, [step]), None, "groupby")
    return aggregates.finalize(partials, keys, spec, schema)


def union_results(results: list[Result]) -> Result:
    """The rows of every result in order: one driver table when all are tables, else one dataset.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import union_results
        >>> union_results([pa.table({"x": [1]}), pa.table({"x": [2]})]).to_pydict()
        {'x': [1, 2]}
    """
    if all(is_table(r) for r in results):
        return concat(results)
    datasets = [as_dataset(r) for r in results]
    return datasets[0].union(*datasets[1:])


def shuffle_join(left: Any, right: Any, keys: list[str], how: str) -> Any:
    """Ray Data's hash-shuffle join of two datasets, one partition per CPU (at least two).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import as_dataset, as_table, shuffle_join
        >>> l, r = as_dataset(pa.table({"k": [1, 2]})), as_dataset(pa.table({"k": [2], "v": ["b"]}))
        >>> as_table(shuffle_join(l, r, ["k"], "inner")).to_pydict()
        {'k': [2], 'v': ['b']}
    """
    ray_how = {"inner": "inner", "left": "left_outer", "right": "right_outer", "outer": "full_outer"}[how]
    return left.join(right, ray_how, num_partitions=max(2, int(cluster_cpus())), on=tuple(keys), right_suffix="_right")


def broadcast_join(big: Any, small: pa.Table, keys: list[str], how: str, small_side: str, big_schema: pa.Schema) -> Result:
    """Join a dataset with a small driver table sent once to every worker; no shuffle.

    Each block is joined with the small table; for the join kinds that keep
    the small side's unmatched rows, those are found from the big side's
    distinct keys and added once, from the driver.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import as_dataset, as_table, broadcast_join
        >>> big = pa.table({"k": [1, 2, 3], "x": [10, 20, 30]})
        >>> out = broadcast_join(as_dataset(big), pa.table({"k": [3, 4], "v": ["c", "d"]}), ["k"], "right", "right", big.schema)
        >>> sorted(as_table(out).to_pylist(), key=lambda r: r["k"])
        [{'k': 3, 'x': 30, 'v': 'c'}, {'k': 4, 'x': None, 'v': 'd'}]
    """
    import ray

    per_block, add_unmatched = joins.broadcast_plan(how, small_side)
    matched = map_dataset(big, [joins.BroadcastJoin(ray.put(small), keys, per_block, small_side)])
    if not add_unmatched:
        return matched
    seen = distinct_dataset(map_dataset(big, [functools.partial(_select, keys=keys)]), big_schema.empty_table().select(keys).schema)
    extra = joins.unmatched(small, seen, keys)
    empty = big_schema.empty_table()
    if small_side == "right":
        extra = joins.join_tables(empty, extra, keys, "right")
    else:
        extra = joins.join_tables(extra, empty, keys, "left")
    return matched.union(to_cluster(extra)) if extra.num_rows else matched


def number_dataset(dataset: Any, name: str, start: int) -> Any:
    """Number a dataset's rows in order: count each block, then number each from its offset (two passes).

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import as_table, number_dataset
        >>> as_table(number_dataset(ray.data.from_items([{"x": "a"}, {"x": "b"}]), "id", 1)).to_pydict()
        {'id': [1, 2], 'x': ['a', 'b']}
    """
    refs, _ = run_to_end(dataset, "add_row_number")
    counts = get([_num_rows.remote(r) for r in refs])
    offsets = np.concatenate([[start], start + np.cumsum(counts)[:-1]]).astype(int) if counts else []
    numbered = [_number_block.remote(r, int(o), name) for r, o in zip(refs, offsets)]
    return ray_data_from_refs(numbered)


def ray_data_from_refs(refs: list) -> Any:
    """A Ray Dataset over block references already in the object store.

    Example:
        >>> import ray, pyarrow as pa
        >>> from framelab.frames.execution import ray_data_from_refs
        >>> ray_data_from_refs([ray.put(pa.table({"x": [1]}))]).count()
        1
    """
    import ray.data

    try:
        from ray.data._internal.logical.interfaces import LogicalPlan
        from ray.data._internal.logical.operators.from_operators import FromArrow
        from ray.data._internal.stats import DatasetStats
        from ray.data.dataset import MaterializedDataset
    except ImportError:  # Ray's internals moved: its own call, whose metadata tasks each take a CPU
        return ray.data.from_arrow_refs(refs)
    # ray.data.from_arrow_refs reads each block's metadata in a task of one whole CPU. Beside a warm
    # pool of fractional actors no node may have a whole CPU free (2 of 3 CPUs held, a third left on
    # each node), and the job waited for ever: these tasks only read a block's header, so take none.
    metadata = get([_block_metadata.remote(r) for r in refs])
    context = ray.data.DataContext.get_current().copy()
    plan = LogicalPlan(FromArrow(refs, metadata), context)
    return MaterializedDataset(plan, context, DatasetStats(metadata={"FromArrow": metadata}, parent=None))


def repartition(result: Result, num_blocks: int) -> Result:
    """The rows spread over ``num_blocks`` blocks on the cluster (an empty driver table stays: Ray would lose its schema).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import repartition
        >>> repartition(pa.table({"x": list(range(10))}), 2).num_blocks()
        2
    """
    if is_table(result):
        if result.num_rows == 0:
            return result
        return to_cluster(result, num_blocks)
    return result.repartition(num_blocks)


def head(result: Result, n: int, schema: pa.Schema) -> pa.Table:
    """The first ``n`` rows of a result, in the driver (a dataset runs only as far as it must).

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import head
        >>> head(ray.data.range(100), 2, None).to_pydict()
        {'id': [0, 1]}
    """
    if is_table(result):
        return window(result, 0, n)
    with surfaced_errors():
        refs = result.limit(n).to_arrow_refs()
    return fetch_blocks(refs, schema) if refs else schema.empty_table()


def iter_batches(result: Result, batch_size: int) -> Iterator[pa.Table]:
    """Stream a result in Arrow batches of ``batch_size`` rows.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import iter_batches
        >>> [b.num_rows for b in iter_batches(pa.table({"x": list(range(5))}), 2)]
        [2, 2, 1]
    """
    if is_table(result):
        for i in range(0, result.num_rows, batch_size):
            yield window(result, i, batch_size)
        return
    with surfaced_errors():
        yield from result.iter_batches(batch_size=batch_size, batch_format="pyarrow")


def fetch_each(blocks: Sequence[Any]) -> Iterator[pa.Table]:
    """Each block as an Arrow table, fetched from the object store one at a time (tables pass as they are).

    Example:
        >>> import pyarrow as pa, ray
        >>> from framelab.frames.execution import fetch_each
        >>> [t.num_rows for t in fetch_each([ray.put(pa.table({"x": [1]})), pa.table({"x": [2, 3]})])]
        [1, 2]
    """
    import ray

    for block in blocks:
        yield block if isinstance(block, pa.Table) else ray.get(block)


def rebatch(tables: Iterable[pa.Table], batch_size: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into batches of exactly ``batch_size`` rows (the last may be shorter).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import rebatch
        >>> [b.num_rows for b in rebatch([pa.table({"x": [1, 2, 3]}), pa.table({"x": [4, 5]})], 2)]
        [2, 2, 1]
    """
    held: list[pa.Table] = []
    rows = 0
    for table in tables:
        held.append(table)
        rows += table.num_rows
        while rows >= batch_size:
            whole = pa.concat_tables(held)
            yield whole.slice(0, batch_size)
            rest = whole.slice(batch_size)
            held, rows = [rest], rest.num_rows
    if rows:
        yield pa.concat_tables(held)


def count(result: Result) -> int:
    """Rows of a result (a dataset counts from block metadata where Ray knows it).

    Example:
        >>> import ray.data
        >>> from framelab.frames.execution import count
        >>> count(ray.data.range(4))
        4
    """
    if is_table(result):
        return result.num_rows
    with surfaced_errors():
        return result.count()


# ------------------------------------------------------------ actor stages
class TableWorker:
    """What an actor of a model pool holds: the stage's worker, fed whole or sliced blocks.

    ``slices`` gives, per block, None (the whole block) or (start, end) rows.
    """

    def __init__(self, factory: Callable[[], Callable[[pa.Table], pa.Table]]):
        self.worker = factory()

    def __call__(self, slices: list, *blocks: pa.Table) -> pa.Table:
        parts = [b if s is None else b.slice(s[0], s[1] - s[0]) for s, b in zip(slices, blocks)]
        table = parts[0] if len(parts) == 1 else pa.concat_tables(parts).combine_chunks()
        return self.worker(table)


def actor_map_driver(table: pa.Table, feeders: Sequence[Callable], stage: Any, pool_size: Any) -> pa.Table:
    """A small driver-side table through one warm actor: feeders run here, the worker there, no Ray Data job.

    Example:
        >>> import pyarrow as pa, pyarrow.compute as pc
        >>> from framelab.frames.execution import actor_map_driver
        >>> from framelab.frames.logical import ActorStage
        >>> from framelab.platform.resources import PoolSize
        >>> stage = ActorStage("add-one", lambda: (lambda t: t.set_column(0, "x", pc.add(t["x"], 1))), lambda s: s)
        >>> actor_map_driver(pa.table({"x": [1]}), [], stage, PoolSize(1, 1, 0.25, 0.0)).to_pydict()
        {'x': [2]}
    """
    table = apply(table, feeders)
    with warm_pools.use(stage.key, functools.partial(TableWorker, stage.factory), pool_size) as pool:
        return pool.call([None], table)


def actor_map_dataset(
    dataset: Any, feeders: Sequence[Callable], stage: Any, pool_size: Any, feeding: dict, schema: pa.Schema,
    total: int | None = None,
) -> Result:
    """A dataset through a warm pool: feeders as Ray Data tasks, blocks sent to the actors as they come.

    The feeding stage streams; each of its blocks (grouped up to the stage's
    ``rows_per_call``) goes to the least busy actor, so the stages overlap and
    the feeders never run far ahead. The result stays in the object store.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.execution import actor_map_dataset, as_dataset, as_table
        >>> from framelab.frames.logical import ActorStage
        >>> from framelab.platform.resources import PoolSize
        >>> stage = ActorStage("identity", lambda: (lambda t: t), lambda s: s)
        >>> out = actor_map_dataset(as_dataset(pa.table({"x": [1, 2]})), [], stage, PoolSize(1, 1, 0.25, 0.0), {}, pa.schema([("x", pa.int64())]))
        >>> sorted(as_table(out).column("x").to_pylist())
        [1, 2]
    """
    if _has_exchange(dataset):
        # A sort, group-by or shuffle below the pool asks Ray for whole CPUs per task, and a pool of
        # fractional actors spread over small nodes leaves none whole on any node: run it first, with
        # idle warm actors let go if they fragment the room, then start the pool over its result.
        if largest_free_cpus() < 1.0:
            warm_pools.release()
        dataset = ray_data_from_refs(run_to_end(dataset, stage.label)[0])
    if feeders:
        tasks = dict(feeding)
        if "concurrency" in tasks:
            import ray.data

            tasks["compute"] = ray.data.TaskPoolStrategy(size=tasks.pop("concurrency"))
        dataset = map_dataset(dataset, feeders, batch_size=stage.batch_rows, udf_modifying_row_count=False, **tasks)
    with warm_pools.use(stage.key, functools.partial(TableWorker, stage.factory), pool_size) as pool:
        # Watched like any job: feeders that wait for CPUs the pool's actors hold fail with what holds them.
        with surfaced_errors(), failures.job(), Progress(stage.label, total) as bar, \
                stalls.watched(stage.label) as beat:
            refs = pool.map(_calls(dataset, stage.rows_per_call, bar, beat))
        if not refs:
            return schema.empty_table()
        out = ray_data_from_refs(refs)
        # A block lost with its node is rebuilt through the actor that made it: keep the pool while it is read.
        pool.keep_for(out)
    return out


def _has_exchange(dataset: Any) -> bool:
    """Whether a dataset's plan holds a step that moves rows between blocks (sort, aggregate, shuffle, join)."""
    try:
        from ray.data._internal.logical.operators.all_to_all_operator import AbstractAllToAll
    except ImportError:  # Ray's internals moved: assume none, as before
        return False
    op = getattr(getattr(dataset, "_logical_plan", None), "dag", None)
    todo = [op] if op is not None else []
    while todo:
        op = todo.pop()
        if isinstance(op, AbstractAllToAll) or type(op).__name__ == "Join":
            return True
        todo.extend(getattr(op, "input_dependencies", []) or [])
    return False


def _calls(dataset: Any, rows_per_call: int, bar: Progress, beat: Callable[[], None]) -> Iterator[list]:
    """Arguments of each actor call: ([slices], *block refs), grouped up to ``rows_per_call`` rows."""
    slices: list = []
    refs: list = []
    rows = 0
    for bundle in dataset.iter_internal_ref_bundles():
        beat()
        bundle_slices = bundle.slices or [None] * len(bundle.block_refs)
        for ref, meta, piece in zip(bundle.block_refs, bundle.metadata, bundle_slices):
            n = meta.num_rows if piece is None else piece.end_offset - piece.start_offset
            if n == 0:
                continue
            slices.append(None if piece is None else (piece.start_offset, piece.end_offset))
            refs.append(ref)
            rows += rows_per_call if n is None else n  # unknown size: a call of its own
            bar.update(n or 0)
            if rows >= rows_per_call:
                yield [slices, *refs]
                slices, refs, rows = [], [], 0
    if refs:
        yield [slices, *refs]


# -------------------------------------------------------------- remote helpers
def _select(block: pa.Table, keys: list[str]) -> pa.Table:
    return block.select(keys)


def _num_rows_fn(block: pa.Table) -> int:
    return block.num_rows


class _LazyRemote:
    """A Ray remote function made on first use (so importing this module never starts Ray)."""

    def __init__(self, fn: Callable, num_cpus: float = 0.5):
        self.fn = fn
        self.num_cpus = num_cpus
        self._remote = None

    def remote(self, *args: Any) -> Any:
        if self._remote is None:
            import ray

            self._remote = ray.remote(num_cpus=self.num_cpus)(self.fn)
        return self._remote.remote(*args)


def _arrow_block_fn(block: Any, bounds: tuple[int, int] | None) -> pa.Table:
    from ray.data.block import BlockAccessor

    accessor = BlockAccessor.for_block(block)
    if bounds is not None:
        accessor = BlockAccessor.for_block(accessor.slice(bounds[0], bounds[1], copy=False))
    return accessor.to_arrow()


_num_rows = _LazyRemote(_num_rows_fn)
_number_block = _LazyRemote(number_rows)
_arrow_block = _LazyRemote(_arrow_block_fn)


def _block_metadata_fn(block: pa.Table) -> Any:
    from ray.data._internal.util import get_table_block_metadata_schema

    return get_table_block_metadata_schema(block)


_block_metadata = _LazyRemote(_block_metadata_fn, num_cpus=0)
