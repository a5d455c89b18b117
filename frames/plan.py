"""What a Frame is made of: a source and a chain of block operations, and where they run.

The user builds a plan; :func:`run_local` runs it in the driver (polars and
pyarrow, no Ray job) when the source is small or already materialised, and
:func:`to_dataset` turns it into a Ray Data pipeline otherwise. Keeping the
two apart is what lets ``head()`` on a small frame answer in milliseconds.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from framelab.platform.session import ensure_connected

# Frames whose data is at most this many bytes run in the driver.
LOCAL_BYTES = int(os.environ.get("FRAMELAB_LOCAL_BYTES", 256 * 1024 * 1024))
# Target size of a block when a driver-side table is handed to Ray.
BLOCK_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class BlockOp:
    """One step applied to every block independently."""

    fn: Callable[[pa.Table], pa.Table]
    name: str
    preserves_rows: bool = True
    # False for steps that must always run on the cluster (model inference, user actors).
    local: bool = True
    ray_args: dict[str, Any] = field(default_factory=dict)
    # True when the output schema is only known after running on real rows.
    schema_from_data: bool = False


class TableSource:
    """Data held by the driver: a table, or a deferred computation of one (memoised)."""

    def __init__(self, table: pa.Table | None = None, thunk: Callable[[], pa.Table] | None = None):
        self._table = table
        self._thunk = thunk
        self._lock = threading.Lock()

    def table(self) -> pa.Table:
        with self._lock:
            if self._table is None:
                assert self._thunk is not None
                self._table = self._thunk()
                self._thunk = None
            return self._table

    @property
    def ready(self) -> bool:
        return self._table is not None


class DatasetSource:
    """Data on the cluster: a (lazy or materialised) Ray Dataset."""

    def __init__(self, dataset: Any, distributed: bool = False, schema: pa.Schema | None = None):
        self.dataset = dataset
        # Set by repartition(): the user asked for the cluster, so never pull the data to the driver.
        self.distributed = distributed
        # Known up front (read_images knows its columns), so asking for it runs nothing.
        self.schema = schema
        self._fetched: pa.Table | None = None
        self._lock = threading.Lock()

    @property
    def materialized(self) -> bool:
        from ray.data.dataset import MaterializedDataset

        return isinstance(self.dataset, MaterializedDataset)

    def local_table(self) -> pa.Table | None:
        """The whole dataset in the driver, when it is materialised and small enough."""
        if self.distributed or not self.materialized:
            return None
        with self._lock:
            if self._fetched is None:
                size = self.dataset.size_bytes()
                if size is None or size > LOCAL_BYTES:
                    return None
                self._fetched = fetch_blocks(self.dataset.to_arrow_refs(), self.dataset.schema())
            return self._fetched


def fetch_blocks(refs: list, schema: Any = None) -> pa.Table:
    """Bring block references to the driver as one table."""
    import ray

    tables = [t for t in ray.get(refs) if t is not None]
    tables = [t if isinstance(t, pa.Table) else pa.Table.from_pandas(t) for t in tables]
    if not tables:
        arrow_schema = getattr(schema, "base_schema", schema)
        if isinstance(arrow_schema, pa.Schema):
            return arrow_schema.empty_table()
        return pa.table({})
    return concat(tables)


def concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate blocks, keeping the first block's field metadata."""
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    out = pa.concat_tables(tables, promote_options="permissive")
    if out.schema.equals(first, check_metadata=False):
        out = pa.Table.from_arrays(out.columns, schema=first)
    return out


def apply_ops(table: pa.Table, ops: tuple[BlockOp, ...]) -> pa.Table:
    """Run block operations on one table, in order."""
    for op in ops:
        table = op.fn(table)
    return table


def split_table(table: pa.Table, num_blocks: int | None = None) -> list[pa.Table]:
    """Cut a driver-side table into blocks sized for the cluster's parallelism."""
    if num_blocks is None:
        from framelab.platform.resources import cluster_cpus

        by_size = math.ceil(table.nbytes / BLOCK_BYTES)
        num_blocks = max(by_size, int(cluster_cpus()) * 2)
    num_blocks = max(1, min(num_blocks, table.num_rows))
    step = math.ceil(table.num_rows / num_blocks) if table.num_rows else 1
    return [table.slice(i, step) for i in range(0, max(table.num_rows, 1), step)]


class _BlockFn:
    """A picklable wrapper that runs a block op inside a Ray Data task."""

    def __init__(self, fn: Callable[[pa.Table], pa.Table]):
        self.fn = fn

    def __call__(self, batch: pa.Table) -> pa.Table:
        return self.fn(batch)


def to_dataset(source: TableSource | DatasetSource, ops: tuple[BlockOp, ...]) -> Any:
    """The Ray Data pipeline for a plan."""
    import ray.data

    ensure_connected()
    if isinstance(source, TableSource):
        dataset = ray.data.from_arrow(split_table(source.table()))
    else:
        dataset = source.dataset
    for op in ops:
        args = dict(op.ray_args)
        fn = op.fn if isinstance(op.fn, type) else _BlockFn(op.fn)
        dataset = dataset.map_batches(
            fn,
            batch_format="pyarrow",
            batch_size=args.pop("batch_size", None),
            zero_copy_batch=True,
            **args,
        )
    return dataset
