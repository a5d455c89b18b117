"""What a Frame means: a tree of logical nodes, and nothing about where they run.

A Frame is the root of a tree. Leaves read data (a table in memory, files, a
Ray Dataset); every method of a Frame adds one node above: a block-wise map
or filter, a projection, a sort, distinct rows, a union, a join, a group-by
aggregate, row numbers, a repartition, or a map through a pool of actors.
Each node knows its output schema from its inputs' schemas alone (so asking
a frame for its columns runs nothing) and which input columns it reads (so
the planner can read fewer). Where and how each node runs is decided for
the whole tree by :mod:`framelab.frames.planner`.

Nodes are immutable once built. A node may remember a result it computed
(:meth:`Node.remember`), so frames that share it share the work.

Example:
    >>> import polars as pl
    >>> from framelab.frames import Frame
    >>> from framelab.frames.logical import Filter, InMemory
    >>> frame = Frame({"x": [1, 2, 3]}).filter(pl.col("x") > 1)
    >>> node = frame._node
    >>> type(node).__name__, type(node.input).__name__, node.reads
    ('Filter', 'InMemory', ('x',))
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from framelab.frames import aggregates, io, joins
from framelab.frames.errors import check_columns


class Node:
    """A step of a frame's plan; ``inputs`` are the nodes it reads from."""

    inputs: tuple[Node, ...] = ()

    def __init__(self) -> None:
        self._schema: pa.Schema | None = None
        self._memo: dict[Hashable, Any] = {}
        self._lock = threading.RLock()

    def __getstate__(self) -> dict:
        # A plan travels to the cluster (a Ray Client session's calls run there): everything but the lock.
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def schema(self) -> pa.Schema:
        """The node's output schema, from its inputs' schemas (nothing runs).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).select("x")._node.schema().names
            ['x']
        """
        if self._schema is None:
            self._schema = self._compute_schema()
        return self._schema

    def schema_from_data(self) -> bool:
        """True when the output schema is only known by running on real rows (a row function without dtype).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).with_column("y", lambda row: row["x"])._node.schema_from_data()
            True
        """
        return any(i.schema_from_data() for i in self.inputs)

    def describe(self) -> str:
        """One line saying what the node means (explain() adds where it runs).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [3, 1]}).sort("x")._node.describe()
            "Sort(by=['x'], descending=[False])"
        """
        return type(self).__name__

    def remember(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time, the same result afterwards (per ``key``; thread-safe).

        Example:
            >>> from framelab.frames import Frame
            >>> node = Frame({"x": [1]})._node
            >>> node.remember("answer", lambda: 42), node.remember("answer", lambda: 0)
            (42, 42)
        """
        with self._lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def with_input(self, input: Node) -> Node:
        """The same step over another input (a one-input node; nothing it remembered is kept).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.frames.logical import InMemory
            >>> node = Frame({"x": [1]}).select("x")._node
            >>> node.with_input(InMemory(Frame({"x": [2]}).to_arrow())).input.table.num_rows
            1
        """
        import copy

        out = copy.copy(self)
        out.input = input
        out.inputs = (input,)
        out._memo = {}
        out._lock = threading.RLock()
        return out

    def _compute_schema(self) -> pa.Schema:
        return self.inputs[0].schema()


# ----------------------------------------------------------------- sources
class InMemory(Node):
    """A table held by the driver."""

    def __init__(self, table: pa.Table):
        super().__init__()
        self.table = table

    def _compute_schema(self) -> pa.Schema:
        return self.table.schema

    def describe(self) -> str:
        return f"InMemory({self.table.num_rows:,} rows, {self.table.nbytes / 1e6:.1f} MB)"


class FileScan(Node):
    """Files of one kind (parquet, csv, json), found when the frame was built.

    ``partitions`` holds each file's hive partition values (``key=value``
    folders); ``union_schemas`` reads every column of files that disagree;
    ``known_schema`` (a saved frame's) is trusted instead of the files' footers.
    """

    def __init__(self, kind: str, fs: Any, files: list[str], total_bytes: int, columns: list[str] | None = None,
                 partitions: dict[str, dict[str, str]] | None = None, union_schemas: bool = False,
                 known_schema: pa.Schema | None = None):
        super().__init__()
        if known_schema is not None:  # a saved frame's manifest gives it: no footer needs reading
            self._memo["files_schema"] = io.FilesSchema(known_schema, True)
        self.kind = kind
        self.fs = fs
        self.files = files
        self.total_bytes = total_bytes
        self.columns = None if columns is None else tuple(columns)
        self.partitions = partitions or {}
        self.union_schemas = union_schemas

    def file_schema(self) -> pa.Schema:
        """Every column the files give (before ``columns`` picks some), checked across the files."""
        return self._files_schema().schema

    def uniform(self) -> bool:
        """True when every file has exactly the schema (the cluster may then read them with Ray Data's reader)."""
        return self._files_schema().uniform

    def _files_schema(self) -> io.FilesSchema:
        return self.remember("files_schema", lambda: io.files_schema(
            self.kind, self.fs, self.files, self.partitions, self.union_schemas))

    def _compute_schema(self) -> pa.Schema:
        schema = self.file_schema()
        if self.columns is not None:
            check_columns(self.columns, schema.names)
            schema = pa.schema([schema.field(c) for c in self.columns], metadata=schema.metadata)
        return schema

    def describe(self) -> str:
        return f"Read{self.kind.capitalize()}({len(self.files)} file(s), {self.total_bytes / 1e6:.1f} MB)"


class DatasetScan(Node):
    """A Ray Dataset: given, or built on first use by ``factory`` (a reader's pipeline).

    ``pinned`` marks data the user put on the cluster (``repartition``): it
    is never fetched to the driver, however small.
    """

    def __init__(
        self,
        dataset: Any = None,
        *,
        factory: Callable[[], Any] | None = None,
        schema: pa.Schema | None = None,
        pinned: bool = False,
        label: str = "RayDataset",
        num_rows: int | None = None,
    ):
        super().__init__()
        self._dataset = dataset
        self._factory = factory
        self.declared_schema = schema
        self.pinned = pinned
        self.label = label
        self.num_rows = num_rows

    @property
    def schema_declared(self) -> pa.Schema | None:
        """The schema given up front (a reader knows its columns), or None."""
        return self.declared_schema

    def known_rows(self) -> int | None:
        """Rows the dataset gives when known without running it (given, or a materialised dataset's count).

        Example:
            >>> import ray
            >>> from framelab.frames.logical import DatasetScan
            >>> DatasetScan(ray.data.range(3).materialize()).known_rows(), DatasetScan(factory=lambda: None).known_rows()
            (3, None)
        """
        from ray.data.dataset import MaterializedDataset

        if self.num_rows is not None:
            return self.num_rows
        if isinstance(self._dataset, MaterializedDataset):
            return self._dataset.count()
        return None

    def dataset(self) -> Any:
        """The Ray Dataset (built by the factory on first use).

        Example:
            >>> import ray.data
            >>> from framelab.frames.logical import DatasetScan
            >>> DatasetScan(factory=lambda: ray.data.range(3)).dataset().count()
            3
        """
        if self._dataset is None:
            with self._lock:
                if self._dataset is None:
                    self._dataset = self._factory()
        return self._dataset

    def _compute_schema(self) -> pa.Schema:
        if self.declared_schema is not None:
            return self.declared_schema
        ray_schema = self.dataset().schema()
        if ray_schema is None:
            return pa.schema([])
        base = getattr(ray_schema, "base_schema", ray_schema)
        if not isinstance(base, pa.Schema):
            base = pa.schema([(n, t) for n, t in zip(ray_schema.names, ray_schema.types)])
        return base

    def describe(self) -> str:
        return f"{self.label}({'pinned to the cluster' if self.pinned else 'lazy' if self._dataset is None else 'dataset'})"


# ------------------------------------------------------------ block-wise
class Map(Node):
    """A function applied to every block independently.

    ``reads`` lists the columns it reads (None: every column); ``writes`` the
    columns it adds or replaces. ``rowwise`` means each output row depends on
    its input row alone (so a filter may run before it); ``keeps_rows`` means
    one output row per input row, in order.
    """

    def __init__(
        self,
        input: Node,
        fn: Callable[[pa.Table], pa.Table],
        label: str,
        *,
        reads: tuple[str, ...] | None = None,
        writes: tuple[str, ...] = (),
        rowwise: bool = True,
        keeps_rows: bool = True,
        schema_from_data: bool = False,
        schema: pa.Schema | None = None,
    ):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.fn = fn
        self.declared = schema  # the output schema the caller gave: nothing runs to find it
        self.label = label
        self.reads = reads
        self.writes = writes
        self.rowwise = rowwise
        self.keeps_rows = keeps_rows
        self._from_data = schema_from_data

    def schema_from_data(self) -> bool:
        return self._from_data or self.input.schema_from_data()

    def _compute_schema(self) -> pa.Schema:
        if self.declared is not None:
            return self.declared
        return self.fn(self.input.schema().empty_table()).schema

    def describe(self) -> str:
        return self.label


class Filter(Map):
    """A map that keeps some rows; ``predicate`` is the polars expression when there is one (for pushdown)."""

    def __init__(self, input: Node, fn: Callable[[pa.Table], pa.Table], label: str, *, reads: tuple[str, ...] | None, predicate: Any = None):
        super().__init__(input, fn, label, reads=reads, keeps_rows=False)
        self.predicate = predicate


class Project(Node):
    """Keep some columns, in a given order."""

    def __init__(self, input: Node, columns: list[str]):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.columns = tuple(columns)

    def _compute_schema(self) -> pa.Schema:
        schema = self.input.schema()
        return pa.schema([schema.field(c) for c in self.columns], metadata=schema.metadata)

    def describe(self) -> str:
        return f"Project([{', '.join(self.columns)}])"


class Rename(Node):
    """Rename columns with ``{old: new}``."""

    def __init__(self, input: Node, mapping: dict[str, str]):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.mapping = dict(mapping)

    def _compute_schema(self) -> pa.Schema:
        schema = self.input.schema()
        return pa.schema([f.with_name(self.mapping.get(f.name, f.name)) for f in schema], metadata=schema.metadata)

    def describe(self) -> str:
        return f"Rename({self.mapping})"


# -------------------------------------------------------- whole-frame nodes
class Sort(Node):
    """Rows ordered by key columns."""

    def __init__(self, input: Node, keys: list[str], descending: list[bool]):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.keys = list(keys)
        self.descending = list(descending)

    def describe(self) -> str:
        return f"Sort(by={self.keys}, descending={self.descending})"


class Unique(Node):
    """Distinct rows: the first of each set of rows equal in the ``subset`` columns (None: all)."""

    def __init__(self, input: Node, subset: list[str] | None = None):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.subset = None if subset is None else tuple(subset)

    def describe(self) -> str:
        return "Unique" if self.subset is None else f"Unique(subset={list(self.subset)})"


class Union(Node):
    """The rows of several frames with the same columns, one after another."""

    def __init__(self, inputs: list[Node]):
        super().__init__()
        self.inputs = tuple(inputs)

    def describe(self) -> str:
        return f"Union({len(self.inputs)} frames)"


class Join(Node):
    """Rows of two frames matched on key columns (inner, left, right or outer)."""

    def __init__(self, left: Node, right: Node, keys: list[str], how: str):
        super().__init__()
        self.left = left
        self.right = right
        self.inputs = (left, right)
        self.keys = list(keys)
        self.how = how

    def _compute_schema(self) -> pa.Schema:
        return joins.join_tables(self.left.schema().empty_table(), self.right.schema().empty_table(), self.keys, self.how).schema

    def describe(self) -> str:
        return f"Join(on={self.keys}, how={self.how!r})"


class Aggregate(Node):
    """One row per group of key columns, with named aggregates."""

    def __init__(self, input: Node, keys: list[str], spec: dict[str, aggregates.Aggregator]):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.keys = list(keys)
        self.spec = dict(spec)

    def input_columns(self) -> tuple[str, ...]:
        """The input columns the group-by needs: its keys and what its aggregates read.

        Example:
            >>> from framelab.frames import Frame, agg
            >>> Frame({"k": [1], "x": [2], "y": [3]}).groupby("k").agg(s=agg.sum("x"))._node.input_columns()
            ('k', 'x')
        """
        return tuple(dict.fromkeys(self.keys + [c for a in self.spec.values() for c in a.columns()]))

    def _compute_schema(self) -> pa.Schema:
        return aggregates.result_schema(self.input.schema(), self.keys, self.spec)

    def describe(self) -> str:
        aggs = ", ".join(f"{name}={a.kind}({a.column or ''})" for name, a in self.spec.items())
        return f"Aggregate(by={self.keys}, {aggs})"


class NumberRows(Node):
    """A first column numbering the rows in order."""

    def __init__(self, input: Node, name: str, start: int):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.name = name
        self.start = start

    def _compute_schema(self) -> pa.Schema:
        schema = self.input.schema()
        return pa.schema([pa.field(self.name, pa.int64()), *schema], metadata=schema.metadata)

    def describe(self) -> str:
        return f"NumberRows({self.name!r} from {self.start})"


class Repartition(Node):
    """The rows spread over a number of blocks on the cluster (the user asked for the cluster)."""

    def __init__(self, input: Node, num_blocks: int):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.num_blocks = num_blocks

    def describe(self) -> str:
        return f"Repartition({self.num_blocks} blocks)"


@dataclass(frozen=True)
class ActorStage:
    """A map through a pool of long-lived actors (a model on each batch), as a toolkit describes it.

    ``factory()`` runs once in each actor and returns the worker, a function
    of one Arrow table. ``key`` names what the worker is (a model, its
    weights, its device): actors are kept warm between calls and reused for
    the same key. ``output_schema`` gives the result's schema from the input
    schema, so nothing runs to learn it. ``device`` ("cpu" or "cuda") sizes
    the pool; ``batch_rows`` is the batch of the tasks feeding it (decoding),
    ``rows_per_call`` how many rows an actor gets at a time.

    Example:
        >>> import pyarrow as pa, pyarrow.compute as pc
        >>> from framelab.frames import ActorStage, Frame
        >>> def doubler():
        ...     return lambda t: t.append_column("y", pc.multiply(t.column("x"), 2))
        >>> stage = ActorStage("doubler", doubler, lambda s: s.append(pa.field("y", pa.int64())), "cpu", 32)
        >>> Frame({"x": [1, 2]}).map_actors(stage).to_pydict()
        {'x': [1, 2], 'y': [2, 4]}
    """

    key: Hashable
    factory: Callable[[], Callable[[pa.Table], pa.Table]]
    output_schema: Callable[[pa.Schema], pa.Schema]
    device: str = "cpu"
    batch_rows: int = 32
    rows_per_call: int = 32
    label: str = "actors"


class ActorMap(Node):
    """Every block through a worker held by a pool of actors (see :class:`ActorStage`)."""

    def __init__(self, input: Node, stage: ActorStage):
        super().__init__()
        self.input = input
        self.inputs = (input,)
        self.stage = stage

    def schema_from_data(self) -> bool:
        return False  # declared by the stage

    def _compute_schema(self) -> pa.Schema:
        return self.stage.output_schema(self.input.schema())

    def describe(self) -> str:
        return f"ActorMap({self.stage.label}, device={self.stage.device})"


def walk(node: Node) -> list[Node]:
    """Every node of the tree under ``node`` (itself included), each once, inputs first.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.logical import walk
        >>> [type(n).__name__ for n in walk(Frame({"x": [1]}).select("x")._node)]
        ['InMemory', 'Project']
    """
    seen: dict[int, Node] = {}

    def visit(n: Node) -> None:
        if id(n) in seen:
            return
        for i in n.inputs:
            visit(i)
        seen[id(n)] = n

    visit(node)
    return list(seen.values())
