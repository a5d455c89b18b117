"""Join kernels: tables joined on key columns only, so every other column keeps its exact Arrow type.

:func:`join_tables` joins two tables in one process. :class:`BroadcastJoin`
is the per-block step of a join between a frame spread over the cluster and
a small one: every block is joined with the small table, which each worker
fetches once from the object store; :func:`unmatched` finds the small
table's rows that no block matched, for the join kinds that keep them.

Example:
    >>> import pyarrow as pa
    >>> from framelab.frames.joins import join_tables
    >>> people = pa.table({"city": ["rome", "oslo"], "name": ["ann", "bob"]})
    >>> join_tables(people, pa.table({"city": ["rome"], "country": ["it"]}), ["city"], "left").to_pydict()
    {'city': ['rome', 'oslo'], 'name': ['ann', 'bob'], 'country': ['it', None]}
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

HOWS = {"inner": "inner", "left": "left", "right": "right", "outer": "full"}
# How each kind of join treats the small side's unmatched rows when that side is
# broadcast: the per-block join, and whether the unmatched rows are added once.
_PER_BLOCK = {
    # (how, small side): (per-block how, add the small side's unmatched rows)
    ("inner", "right"): ("inner", False),
    ("left", "right"): ("left", False),
    ("right", "right"): ("inner", True),
    ("outer", "right"): ("left", True),
    ("inner", "left"): ("inner", False),
    ("right", "left"): ("right", False),
    ("left", "left"): ("inner", True),
    ("outer", "left"): ("right", True),
}


def broadcast_plan(how: str, small_side: str) -> tuple[str, bool]:
    """(the per-block join kind, whether the small side's unmatched rows are added once) for a broadcast join.

    Example:
        >>> from framelab.frames.joins import broadcast_plan
        >>> broadcast_plan("right", small_side="right")
        ('inner', True)
    """
    return _PER_BLOCK[(how, small_side)]


def join_tables(left: pa.Table, right: pa.Table, on: list[str], how: str, suffix: str = "_right") -> pa.Table:
    """Join two tables on ``on`` (polars finds the matching row pairs, pyarrow takes them).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.joins import join_tables
        >>> join_tables(pa.table({"k": [1, 2]}), pa.table({"k": [2], "v": ["b"]}), ["k"], "inner").to_pydict()
        {'k': [2], 'v': ['b']}
    """
    import polars as pl

    lk = pl.from_arrow(left.select(on)).with_row_index("__l")
    rk = pl.from_arrow(right.select(on)).with_row_index("__r")
    pairs = lk.join(rk, on=on, how=HOWS[how], coalesce=True, nulls_equal=False, maintain_order="left_right")
    li = pa.array(pairs["__l"].to_numpy(), type=pa.uint32()) if pairs["__l"].null_count() == 0 else pairs["__l"].to_arrow()
    ri = pairs["__r"].to_arrow()
    fields, columns = [], []
    for field in left.schema:
        if field.name in on:
            column = _key_column(pairs, field.name, field.type)
        else:
            column = left.column(field.name).take(li)
        fields.append(field.with_type(column.type))
        columns.append(column)
    for field in right.schema:
        if field.name in on:
            continue
        column = right.column(field.name).take(ri)
        name = field.name + suffix if field.name in left.column_names else field.name
        fields.append(field.with_name(name).with_type(column.type))
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


class BroadcastJoin:
    """Join each block with a small table that every worker fetches once (the broadcast join's per-block step).

    ``small_side`` says which side of the join the small table is; the block
    is the other side, so columns come out in the frame's order.

    Example:
        >>> import ray, pyarrow as pa
        >>> from framelab.frames.joins import BroadcastJoin
        >>> step = BroadcastJoin(ray.put(pa.table({"k": [1], "v": ["one"]})), ["k"], "inner", small_side="right")
        >>> step(pa.table({"k": [1, 2], "x": [10, 20]})).to_pydict()
        {'k': [1], 'x': [10], 'v': ['one']}
    """

    def __init__(self, small_ref: Any, keys: list[str], how: str, small_side: str = "right"):
        self.small_ref = small_ref
        self.keys = keys
        self.how = how
        self.small_side = small_side

    def __call__(self, block: pa.Table) -> pa.Table:
        import ray

        small = ray.get(self.small_ref)
        if self.small_side == "right":
            return join_tables(block, small, self.keys, self.how)
        return join_tables(small, block, self.keys, self.how)


def unmatched(small: pa.Table, seen: pa.Table, keys: list[str]) -> pa.Table:
    """Rows of ``small`` whose keys are not among the ``seen`` keys (null keys never match).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.joins import unmatched
        >>> unmatched(pa.table({"k": [1, 2, None]}), pa.table({"k": [2]}), ["k"]).to_pydict()
        {'k': [1, None]}
    """
    import polars as pl

    index = (
        pl.from_arrow(small.select(keys)).with_row_index("__r")
        .join(pl.from_arrow(seen.select(keys)), on=keys, how="anti", nulls_equal=False)["__r"].to_arrow()
    )
    return small.take(index)


def _key_column(pairs: Any, name: str, dtype: pa.DataType) -> pa.Array:
    from framelab.frames.expressions import normalize_array

    return normalize_array(pairs[name].to_arrow()).cast(dtype)
