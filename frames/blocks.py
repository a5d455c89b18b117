"""Blocks: how a driver-side table is cut for the cluster, and how blocks come back as one table.

Example:
    >>> import pyarrow as pa
    >>> from framelab.frames.blocks import concat, split_table
    >>> parts = split_table(pa.table({"x": list(range(10))}), num_blocks=3)
    >>> [p.num_rows for p in parts], concat(parts).num_rows
    ([4, 4, 2], 10)
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa

from framelab.platform.remote_errors import get
from framelab.platform.resources import cluster_cpus

# Target size of a block when a driver-side table is handed to Ray.
BLOCK_BYTES = 64 * 1024 * 1024


def concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate blocks, keeping the first block's field metadata.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blocks import concat
        >>> concat([pa.table({"x": [1]}), pa.table({"x": [2]})]).to_pydict()
        {'x': [1, 2]}
    """
    if len(tables) == 1:
        return tables[0]
    first = tables[0].schema
    out = pa.concat_tables(tables, promote_options="permissive")
    if out.schema.equals(first, check_metadata=False):
        out = pa.Table.from_arrays(out.columns, schema=first)
    return out


def window(table: pa.Table, start: int, length: int) -> pa.Table:
    """Rows ``start`` to ``start + length`` of a table, never more than it has.

    pyarrow's ``slice`` of a table without columns reports the length asked for,
    not the rows it has (``pa.table({}).slice(0, 10).num_rows`` is 10): every
    slice of a driver table that may be empty goes through here.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blocks import window
        >>> window(pa.table({}), 0, 10).num_rows, window(pa.table({"x": [1, 2, 3]}), 1, 10).to_pydict()
        (0, {'x': [2, 3]})
    """
    start = min(start, table.num_rows)
    return table.slice(start, max(0, min(length, table.num_rows - start)))


def split_table(table: pa.Table, num_blocks: int | None = None) -> list[pa.Table]:
    """Cut a driver-side table into blocks: ``num_blocks``, or enough for the cluster's parallelism.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.blocks import split_table
        >>> len(split_table(pa.table({"x": list(range(100))}), num_blocks=4))
        4
    """
    if num_blocks is None:
        by_size = math.ceil(table.nbytes / BLOCK_BYTES)
        num_blocks = max(by_size, int(cluster_cpus()) * 2)
    num_blocks = max(1, min(num_blocks, table.num_rows))
    step = math.ceil(table.num_rows / num_blocks) if table.num_rows else 1
    return [window(table, i, step) for i in range(0, max(table.num_rows, 1), step)]


def fetch_blocks(refs: list, schema: Any = None) -> pa.Table:
    """Bring block references to the driver as one table (typed by ``schema`` when there are none).

    Example:
        >>> import ray, pyarrow as pa
        >>> from framelab.frames.blocks import fetch_blocks
        >>> fetch_blocks([ray.put(pa.table({"x": [1]})), ray.put(pa.table({"x": [2]}))]).num_rows
        2
    """
    tables = [t for t in get(refs) if t is not None]
    tables = [t if isinstance(t, pa.Table) else pa.Table.from_pandas(t) for t in tables]
    if not tables:
        arrow_schema = getattr(schema, "base_schema", schema)
        if isinstance(arrow_schema, pa.Schema):
            return arrow_schema.empty_table()
        return pa.table({})
    return concat(tables)
