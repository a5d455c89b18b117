"""The planner: one place that decides, for a whole plan, what runs in the driver and what on the cluster.

A Frame's methods only add logical nodes (:mod:`framelab.frames.logical`).
When a result is asked for, the planner walks the tree once from the root:

* **What is needed.** Each node says which input columns it needs for the
  columns asked of it, so reads fetch only those columns, a count reads none
  it does not need, and maps whose output nobody uses are left out. Filters
  right above a Parquet read (past row-wise maps that do not touch their
  columns) are pushed into it, so row groups their statistics rule out are
  skipped (:mod:`framelab.frames.predicates`).
* **Where it runs.** Data small enough for one machine (at most
  ``FRAMELAB_LOCAL_BYTES``, 256 MiB by default) or already in the driver
  runs there with polars and pyarrow, with no Ray job; larger data, data
  read as a Ray Dataset, and anything after ``repartition`` runs as Ray Data
  stages. Consecutive block-wise steps run as one stage.
* **By which strategy.** A join of a cluster frame with a driver-side one
  broadcasts the small side (no shuffle); two cluster frames shuffle. A
  group-by on the cluster runs pyarrow per block and polars once in the
  driver. A map through actors runs a small driver frame through one warm
  actor and anything else through a warm pool fed by decode tasks, both sized
  by :mod:`framelab.platform.resources`.

The result is a tree of physical steps; :func:`explain` prints it, and
:mod:`framelab.frames.execution` carries each step out.

Example:
    >>> from framelab.frames import Frame
    >>> big = Frame({"k": list(range(1000)), "x": [1.0] * 1000}).repartition(4)
    >>> small = Frame({"k": [1, 2], "name": ["one", "two"]})
    >>> print(big.join(small, on="k").explain())
    BroadcastJoin  @cluster  on ['k'], how 'inner': the driver-side right frame (2 rows) goes once to every worker, no shuffle
      Repartition  @cluster  4 blocks, pinned to the cluster
        InMemory  @driver  1,000 rows, 0.0 MB
      InMemory  @driver  2 rows, 0.0 MB
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from framelab.frames import execution, io, logical
from framelab.frames.aggregates import PartialAggregate, aggregate_table, finalize
from framelab.frames.blocks import concat, fetch_blocks, window
from framelab.frames.blockwise import RenameColumns, SelectColumns, distinct_rows, number_rows
from framelab.frames.expressions import expr_columns
from framelab.frames.joins import join_tables
from framelab.frames.predicates import Pushdown, pushdown
from framelab.frames.sources import READ_RETRIES, reread_saved
from framelab.platform.client import in_client_session, on_cluster
from framelab.platform.resources import cluster_facts, plan_feeding_tasks, plan_model_pool

# Frames whose data is at most this many bytes run in the driver.
LOCAL_BYTES = int(os.environ.get("FRAMELAB_LOCAL_BYTES", 256 * 1024 * 1024))
DRIVER, CLUSTER = "driver", "cluster"

Needed = frozenset | None  # output columns asked of a node; None: all of them


@dataclass(eq=False)
class Step:
    """One physical step: what runs, where, on which inputs' results."""

    name: str
    where: str
    detail: str
    inputs: list[Step]
    run: Callable[..., Any]
    fns: tuple = ()
    pinned: bool = False
    rows: int | None = None
    source: Any = None
    pushed: Pushdown | None = None
    note: Callable[[], str] | None = None

    def lines(self, depth: int = 0) -> list[str]:
        """The step and its inputs, one indented line each.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.frames.planner import plan
            >>> plan(Frame({"x": [1]})._node).lines()
            ['InMemory  @driver  1 rows, 0.0 MB']
        """
        detail = self.detail + (f"; {self.note()}" if self.note is not None else "")
        out = ["  " * depth + f"{self.name}  @{self.where}  {detail}".rstrip()]
        for i in self.inputs:
            out += i.lines(depth + 1)
        return out


# ------------------------------------------------------------------ actions
def plan(node: logical.Node, needed: Needed = None) -> Step:
    """The physical plan for ``node``'s columns in ``needed`` (None: all of them).

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import plan
        >>> plan(Frame({"x": [1, 2]}).filter(pl.col("x") > 1)._node).where
        'driver'
    """
    return _Builder().build(node, needed, ())


def explain(node: logical.Node) -> str:
    """The physical plan as text: each step, where it runs (@driver or @cluster) and how.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import explain
        >>> print(explain(Frame({"x": [1]}).select("x")._node))
        Map  @driver  Project([x])
          InMemory  @driver  1 rows, 0.0 MB
    """
    return "\n".join(plan(node).lines())


def schema(node: logical.Node) -> pa.Schema:
    """The frame's schema: from the plan alone, unless a step only knows its output from data (then one row runs).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import schema
        >>> schema(Frame({"x": [1]}).with_column("y", lambda row: str(row["x"]))._node).field("y").type
        DataType(string)
    """
    if node.schema_from_data():
        return head(node, 1).schema
    with execution.surfaced_errors():
        return node.schema()


def placement(node: logical.Node) -> str:
    """Where the frame's result is computed: ``"driver"`` or ``"cluster"``.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import placement
        >>> placement(Frame({"x": [1]})._node), placement(Frame({"x": [1, 2]}).repartition(2)._node)
        ('driver', 'cluster')
    """
    return plan(node).where


def result(node: logical.Node) -> Any:
    """Run the plan: a driver-side table, or a Ray Dataset on the cluster.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import result
        >>> result(Frame({"x": [1]})._node).to_pydict()
        {'x': [1]}
    """
    return run(plan(node))


def dataset(node: logical.Node) -> Any:
    """Run the plan and return the result as a Ray Dataset (a driver-side result is put on the cluster).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import dataset
        >>> dataset(Frame({"x": [1, 2]})._node).count()
        2
    """
    return execution.as_dataset(result(node))


@on_cluster
def table(node: logical.Node, schema: pa.Schema | None = None) -> pa.Table:
    """Run the plan and bring the whole result to the driver (``schema`` types an empty result).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import table
        >>> table(Frame({"x": [1, 2]}).repartition(2)._node).num_rows
        2
    """
    for attempt in range(READ_RETRIES + 1):
        try:
            return execution.as_table(result(node), schema, label(node), known_rows(node))
        except FileNotFoundError:
            fresh = reread_saved(node)  # a loaded frame whose folder a save replaced since: read the new one, whole
            if fresh is None or attempt == READ_RETRIES:
                raise
            node = fresh
    raise AssertionError("unreachable")


def label(node: logical.Node) -> str:
    """What a progress display calls the frame's job: its model stage, its reader, or its last named step.

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import label
        >>> label(Frame({"x": [1]}).filter(pl.col("x") > 0).select("x")._node)
        'filter([(col("x")) > (dyn int: 0)])'
    """
    top = None
    while True:
        if isinstance(node, logical.ActorMap):
            return node.stage.label
        if isinstance(node, logical.DatasetScan):
            return node.label
        if top is None and isinstance(node, logical.Map):
            top = node.label
        if len(node.inputs) != 1:
            return top or type(node).__name__
        node = node.inputs[0]


def known_rows(node: logical.Node) -> int | None:
    """The frame's row count when known without running anything (for a progress display's total).

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import known_rows
        >>> f = Frame({"x": [1, 2, 3]})
        >>> known_rows(f.with_column("y", pl.col("x") * 2)._node), known_rows(f.filter(pl.col("x") > 1)._node)
        (3, None)
    """
    while _keeps_count(node) and len(node.inputs) == 1:
        node = node.inputs[0]
    if isinstance(node, logical.InMemory):
        return node.table.num_rows
    if isinstance(node, logical.DatasetScan):
        return node.known_rows()
    return None


@on_cluster
def count(node: logical.Node) -> int:
    """Rows of the frame, reading no column a count does not need.

    Maps that keep one row per row are left out; a plain Parquet read is
    counted from its footers; a filter reads only its own columns.

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import count, plan
        >>> frame = Frame({"x": [1, 2, 3], "y": ["a", "b", "c"]}).with_column("z", pl.col("x") * 2)
        >>> count(frame._node), plan(frame._node, frozenset()).name      # the with_column is left out
        (3, 'InMemory')
    """
    step = plan(node, frozenset())
    source = step.source
    if step.name == "Read" and source.kind == "parquet" and step.pushed is None:
        return io.parquet_rows(source.fs, source.files)
    if isinstance(source, logical.DatasetScan) and not step.inputs and source.known_rows() is not None:
        return source.known_rows()
    return execution.count(run(step))


@on_cluster
def head(node: logical.Node, n: int, schema: pa.Schema | None = None) -> pa.Table:
    """The first ``n`` rows; only as much of the plan runs as they need.

    Block-wise steps over a driver table run on a growing prefix of it; a map
    through actors (a model) runs on the first ``n`` rows only.

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import head
        >>> head(Frame({"x": list(range(10**6))}).filter(pl.col("x") % 2 == 1)._node, 3).to_pydict()
        {'x': [1, 3, 5]}
    """
    chain, below = _row_for_row(node)
    if any(isinstance(c, logical.ActorMap) for c in chain):
        top: logical.Node = logical.InMemory(head(below, n))
        for c in reversed(chain):
            top = c.with_input(top)
        return table(top, schema)
    step = plan(node)
    if step.where == DRIVER and step.name == "Map" and step.inputs[0].where == DRIVER:
        source = execution.as_table(run(step.inputs[0]))
        take = max(n, 1)
        while True:
            out = execution.apply(window(source, 0, take), step.fns)
            if out.num_rows >= n or take >= source.num_rows:
                return window(out, 0, n)
            take *= 4
    return execution.head(run(step), n, schema)


def iter_batches(node: logical.Node | pa.Table, batch_size: int) -> Iterator[pa.Table]:
    """Stream the result (or a table already computed) in Arrow batches of ``batch_size`` rows.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import iter_batches
        >>> [b.num_rows for b in iter_batches(Frame({"x": list(range(5))})._node, 2)]
        [2, 2, 1]
    """
    if isinstance(node, pa.Table):
        return execution.iter_batches(node, batch_size)
    if in_client_session():
        # Ray Data cannot stream into a Ray Client driver: the blocks are made on the cluster, then
        # fetched here one at a time.
        return execution.rebatch(execution.fetch_each(blocks(node)), batch_size)
    return execution.iter_batches(result(node), batch_size)


@on_cluster
def blocks(node: logical.Node) -> list:
    """The result's blocks: object refs to Arrow tables on the cluster (or the driver table itself).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import blocks
        >>> [b.num_rows for b in blocks(Frame({"x": [1, 2]})._node)]
        [2]
    """
    out = result(node)
    if execution.is_table(out):
        return [out]
    refs, _ = execution.run_to_end(out, label(node), known_rows(node))
    return refs


@on_cluster
def materialized(node: logical.Node) -> logical.Node:
    """A source node holding the computed result (a driver table, or a materialised dataset on the cluster).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import materialized
        >>> type(materialized(Frame({"x": [1]}).select("x")._node)).__name__
        'InMemory'
    """
    step = plan(node)
    out = run(step)
    if execution.is_table(out):
        return logical.InMemory(out)
    schema = None if node.schema_from_data() else node.schema()
    refs, rows = execution.run_to_end(out, label(node), known_rows(node))
    if not refs:
        return logical.InMemory((schema or pa.schema([])).empty_table())
    dataset = execution.ray_data_from_refs(refs)
    return logical.DatasetScan(dataset, schema=schema, pinned=step.pinned, label="materialized", num_rows=rows)


def run(step: Step) -> Any:
    """Carry out a physical plan, each step once (a step shared by two parents runs once).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.planner import plan, run
        >>> run(plan(Frame({"x": [1]})._node)).num_rows
        1
    """
    done: dict[int, Any] = {}

    def go(s: Step) -> Any:
        if id(s) not in done:
            args = [go(i) for i in s.inputs]
            with execution.surfaced_errors():
                done[id(s)] = s.run(*args)
        return done[id(s)]

    return go(step)


# ------------------------------------------------------------------ building
@dataclass
class _Builder:
    steps: dict = field(default_factory=dict)

    def build(self, node: logical.Node, needed: Needed, filters: tuple) -> Step:
        key = (id(node), needed, tuple(id(f) for f in filters))
        if key not in self.steps:
            self.steps[key] = self._build(node, needed, filters)
        return self.steps[key]

    def _build(self, node: logical.Node, needed: Needed, filters: tuple) -> Step:
        if needed == frozenset() and _keeps_count(node):
            return self.build(node.inputs[0], needed, filters if _passes_filters(node) else ())
        kind = type(node).__name__
        return getattr(self, f"_{kind}")(node, needed, filters)

    # sources ------------------------------------------------------------
    def _InMemory(self, node: logical.InMemory, needed: Needed, filters: tuple) -> Step:
        return Step("InMemory", DRIVER, node.describe().split("(", 1)[1].rstrip(")"), [], lambda: node.table,
                    rows=node.table.num_rows, source=node)

    def _FileScan(self, node: logical.FileScan, needed: Needed, filters: tuple) -> Step:
        schema = node.schema()
        columns = node.columns if needed is None else tuple(c for c in schema.names if c in needed)
        pushed = _combine([pushdown(f, schema) for f in filters]) if node.kind == "parquet" else None
        spec = io.ReadSpec(columns=columns, pushed=pushed)
        small = node.total_bytes <= LOCAL_BYTES
        detail = f"{node.describe()[4:]} {spec.describe()}".rstrip()
        how = {"schema": node.file_schema(), "partitions": node.partitions}
        if small:
            def read() -> pa.Table:
                return node.remember(("read", spec), lambda: io.read_table(node.kind, node.fs, node.files, spec, **how))
        else:
            def read() -> Any:
                return io.read_dataset(node.kind, node.fs, node.files, spec, uniform=node.uniform(), **how)
        note = None
        if pushed is not None:
            def note() -> str:
                kept, total = io.row_groups(node.fs, node.files, spec)
                return f"row groups read: {kept} of {total}"
        return Step("Read", DRIVER if small else CLUSTER, detail, [], read, source=node, pushed=pushed, note=note)

    def _DatasetScan(self, node: logical.DatasetScan, needed: Needed, filters: tuple) -> Step:
        if not node.pinned:
            dataset = node.dataset()
            size = _materialized_size(dataset)
            if size is not None and size <= LOCAL_BYTES:
                def fetch() -> pa.Table:
                    return node.remember("fetch", lambda: fetch_blocks(dataset.to_arrow_refs(), dataset.schema()))
                return Step(node.label, DRIVER, f"materialised, {size / 1e6:.1f} MB: fetched to the driver", [], fetch, source=node)
        detail = "pinned to the cluster" if node.pinned else "lazy Ray Data pipeline"
        return Step(node.label, CLUSTER, detail, [], node.dataset, pinned=node.pinned, source=node)

    # block-wise ---------------------------------------------------------
    def _Map(self, node: logical.Map, needed: Needed, filters: tuple) -> Step:
        if needed is not None and node.keeps_rows and node.rowwise and node.writes and not (needed & set(node.writes)):
            return self.build(node.input, needed, _without(filters, node.writes))  # its output is not used
        if node.reads is None or needed is None:
            need_in: Needed = None
        else:
            need_in = frozenset((needed - set(node.writes)) | set(node.reads))
        passed = _without(filters, node.writes) if node.rowwise else ()
        return self._map(self.build(node.input, need_in, passed), node.fn, node.label)

    def _Filter(self, node: logical.Filter, needed: Needed, filters: tuple) -> Step:
        need_in = None if node.reads is None or needed is None else frozenset(needed | set(node.reads))
        passed = filters + ((node.predicate,) if node.predicate is not None else ())
        return self._map(self.build(node.input, need_in, passed), node.fn, node.label)

    def _Project(self, node: logical.Project, needed: Needed, filters: tuple) -> Step:
        columns = [c for c in node.columns if needed is None or c in needed]
        return self._map(self.build(node.input, frozenset(columns), filters), SelectColumns(columns), node.describe())

    def _Rename(self, node: logical.Rename, needed: Needed, filters: tuple) -> Step:
        back = {new: old for old, new in node.mapping.items()}
        need_in = None if needed is None else frozenset(back.get(c, c) for c in needed)
        touched = tuple(node.mapping) + tuple(node.mapping.values())
        return self._map(self.build(node.input, need_in, _without(filters, touched)), RenameColumns(node.mapping), node.describe())

    def _map(self, child: Step, fn: Callable, label: str) -> Step:
        if child.name == "Map":  # consecutive block-wise steps: one stage
            return Step("Map", child.where, f"{child.detail} | {label}", child.inputs, _run_map(child.fns + (fn,)),
                        fns=child.fns + (fn,), pinned=child.pinned)
        return Step("Map", child.where, label, [child], _run_map((fn,)), fns=(fn,), pinned=child.pinned)

    # whole frame ----------------------------------------------------------
    def _Sort(self, node: logical.Sort, needed: Needed, filters: tuple) -> Step:
        need_in = None if needed is None else frozenset(needed | set(node.keys))
        child = self.build(node.input, need_in, filters)
        keys, desc = node.keys, node.descending

        def sort(r: Any) -> Any:
            if execution.is_table(r):
                return node.remember(("sort", need_in), lambda: execution.sort_table(r, keys, desc))
            return execution.sort_dataset(r, keys, desc)

        how = "in the driver (pyarrow)" if child.where == DRIVER else "Ray Data's range-partitioned sort"
        return Step("Sort", child.where, f"by {keys}: {how}", [child], sort)

    def _Unique(self, node: logical.Unique, needed: Needed, filters: tuple) -> Step:
        child = self.build(node.input, None, ())
        schema = node.schema()

        def unique(r: Any) -> pa.Table:
            if execution.is_table(r):
                return node.remember("unique", lambda: distinct_rows(r, node.subset))
            return node.remember("unique", lambda: execution.distinct_dataset(r, schema, node.subset))

        how = "in the driver" if child.where == DRIVER else "distinct per block on the cluster, then once in the driver"
        return Step("Unique", DRIVER, how, [child], unique)

    def _Union(self, node: logical.Union, needed: Needed, filters: tuple) -> Step:
        children = [self.build(i, needed, ()) for i in node.inputs]
        if all(c.where == DRIVER for c in children):
            return Step("Union", DRIVER, "concatenated in the driver", children,
                        lambda *ts: node.remember(("union", needed), lambda: concat(list(ts))))
        return Step("Union", CLUSTER, "Ray Data union (driver-side parts are put on the cluster)", children,
                    lambda *rs: execution.union_results(list(rs)))

    def _Join(self, node: logical.Join, needed: Needed, filters: tuple) -> Step:
        left, right = self.build(node.left, None, ()), self.build(node.right, None, ())
        keys, how = node.keys, node.how
        what = f"on {keys}, how {how!r}"
        if left.where == DRIVER and right.where == DRIVER:
            def local(lt: pa.Table, rt: pa.Table) -> pa.Table:
                return node.remember("join", lambda: join_tables(lt, rt, keys, how))
            return Step("Join", DRIVER, f"{what}: in the driver (polars pairs the keys, pyarrow takes the rows)", [left, right], local)
        if left.where == DRIVER or right.where == DRIVER:
            small_side = "right" if right.where == DRIVER else "left"
            small, big = (right, left) if small_side == "right" else (left, right)
            big_schema = (node.left if small_side == "right" else node.right).schema()
            rows = f"{small.rows:,} rows" if small.rows is not None else "in the driver"

            def broadcast(lr: Any, rr: Any) -> Any:
                small_t, big_r = (rr, lr) if small_side == "right" else (lr, rr)
                return execution.broadcast_join(execution.as_dataset(big_r), execution.as_table(small_t), keys, how, small_side, big_schema)

            detail = f"{what}: the driver-side {small_side} frame ({rows}) goes once to every worker, no shuffle"
            return Step("BroadcastJoin", CLUSTER, detail, [left, right], broadcast, pinned=big.pinned)

        def shuffle(lr: Any, rr: Any) -> Any:
            return execution.shuffle_join(execution.as_dataset(lr), execution.as_dataset(rr), keys, how)

        return Step("ShuffleJoin", CLUSTER, f"{what}: both sides on the cluster, Ray Data hash shuffle", [left, right], shuffle)

    def _Aggregate(self, node: logical.Aggregate, needed: Needed, filters: tuple) -> Step:
        child = self.build(node.input, frozenset(node.input_columns()), ())
        keys, spec, schema = node.keys, node.spec, node.schema()
        if child.where == DRIVER:
            def local(t: pa.Table) -> pa.Table:
                return node.remember("aggregate", lambda: aggregate_table(t, keys, spec))
            return Step("Aggregate", DRIVER, f"by {keys}: both phases in the driver (polars)", [child], local)
        partial = PartialAggregate(tuple(keys), tuple(spec.items()))

        def per_block(r: Any) -> Any:
            return execution.apply(r, [partial]) if execution.is_table(r) else execution.map_dataset(r, [partial])

        def final(r: Any) -> pa.Table:
            return node.remember("aggregate", lambda: finalize(execution.as_table(r), keys, spec, schema))

        partials = Step("PartialAggregate", CLUSTER, "pyarrow group_by on each block (no polars on the workers)", [child], per_block)
        return Step("Aggregate", DRIVER, f"by {keys}: partials gathered, combined once in the driver (polars)", [partials], final)

    def _NumberRows(self, node: logical.NumberRows, needed: Needed, filters: tuple) -> Step:
        need_in = None if needed is None else frozenset(needed - {node.name})
        child = self.build(node.input, need_in, ())
        name, start = node.name, node.start

        def number(r: Any) -> Any:
            if execution.is_table(r):
                return node.remember(("rows", need_in), lambda: number_rows(r, start, name))
            return node.remember(("rows", need_in), lambda: execution.number_dataset(r, name, start))

        how = "in the driver" if child.where == DRIVER else "rows counted per block, then each block numbered from its offset"
        return Step("NumberRows", child.where, f"{name!r} from {start}: {how}", [child], number)

    def _Repartition(self, node: logical.Repartition, needed: Needed, filters: tuple) -> Step:
        child = self.build(node.input, needed, filters)
        n = node.num_blocks
        return Step("Repartition", CLUSTER, f"{n} blocks, pinned to the cluster", [child],
                    lambda r: execution.repartition(r, n), pinned=True)

    def _ActorMap(self, node: logical.ActorMap, needed: Needed, filters: tuple) -> Step:
        stage = node.stage
        child = self.build(node.input, None, ())
        # The block-wise steps right below feed the pool (decoding): they run as its feeding tasks.
        feeders, base = (child.fns, child.inputs[0]) if child.name == "Map" else ((), child)
        facts = cluster_facts()
        pool = plan_model_pool(stage.device, facts.cpus, facts.gpus)
        feeding = plan_feeding_tasks(pool, stage.device, facts.nodes)
        schema = node.schema()
        direct = base.where == DRIVER and base.rows is not None and base.rows <= stage.rows_per_call

        total = known_rows(node.input)

        def actor_map(r: Any) -> Any:
            if execution.is_table(r) and r.num_rows <= stage.rows_per_call:
                return execution.actor_map_driver(r, feeders, stage, pool)
            rows = r.num_rows if execution.is_table(r) else total
            return execution.actor_map_dataset(execution.as_dataset(r), feeders, stage, pool, feeding, schema, rows)

        gpus = f", {pool.num_gpus:g} GPU" if pool.num_gpus else ""
        fed = f"; fed by [{child.detail}]" if feeders else ""
        if direct:
            how = f"{base.rows} rows: feeders in the driver, one call to a warm actor"
        else:
            how = f"feeding tasks of {feeding['num_cpus']:g} CPU" + (
                f" (at most {feeding['concurrency']} at a time)" if "concurrency" in feeding else "")
        detail = f"{stage.label}: warm pool of {pool.max_size} actor(s) x {pool.num_cpus:g} CPU{gpus}; {how}{fed}"
        return Step("ActorMap", DRIVER if direct else CLUSTER, detail, [base], actor_map)


def _row_for_row(node: logical.Node) -> tuple[list[logical.Node], logical.Node]:
    """The nodes from ``node`` down that give one output row per input row, in order, and the node below them."""
    chain = []
    while (isinstance(node, logical.Map) and node.keeps_rows and not isinstance(node, logical.Filter)) or isinstance(
        node, (logical.Project, logical.Rename, logical.ActorMap)
    ):
        chain.append(node)
        node = node.inputs[0]
    return chain, node


def _run_map(fns: tuple) -> Callable[[Any], Any]:
    def run_map(r: Any) -> Any:
        if execution.is_table(r):
            return execution.apply(r, fns)
        return execution.map_dataset(r, fns)

    return run_map


def _keeps_count(node: logical.Node) -> bool:
    """True for nodes that never change the number of rows (a count can skip them)."""
    if isinstance(node, logical.Filter):
        return False
    if isinstance(node, logical.Map):
        return node.keeps_rows
    return isinstance(node, (logical.Project, logical.Rename, logical.Sort, logical.NumberRows,
                             logical.Repartition, logical.ActorMap))


def _passes_filters(node: logical.Node) -> bool:
    if isinstance(node, logical.Map):
        return node.rowwise
    return isinstance(node, (logical.Project, logical.Sort, logical.Repartition))


def _without(filters: tuple, columns: tuple) -> tuple:
    """The filters that read none of ``columns`` (those written or renamed below them stay put)."""
    return tuple(f for f in filters if not set(expr_columns(f)) & set(columns))


def _combine(parts: list[Pushdown | None]) -> Pushdown | None:
    terms = tuple(t for p in parts if p is not None for t in p.terms)
    return Pushdown(tuple(dict.fromkeys(terms))) if terms else None


def _materialized_size(dataset: Any) -> int | None:
    from ray.data.dataset import MaterializedDataset

    if not isinstance(dataset, MaterializedDataset):
        return None
    return dataset.size_bytes()
