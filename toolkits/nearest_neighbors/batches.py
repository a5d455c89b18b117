"""Query batches through every shard, a bounded number at a time, merged in a tree on the shards.

The driver only passes object refs around: a batch's vectors go from where
they are (the driver for new queries, a shard for the similarity graph) to
every shard; each shard's list goes to a merging shard, in groups of at most
:data:`MERGE_FAN_IN`, until one list is left, turned into result rows on a
shard. At most ``window`` batches are in flight, so no process holds more
than its shard, a few batches and their lists.

Example:
    >>> from framelab.toolkits.nearest_neighbors.batches import batch_rows
    >>> batch_rows(k=10, dim=1280, num_shards=2) >= 64
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pyarrow as pa

from framelab.toolkits.nearest_neighbors import search

MERGE_FAN_IN = 8
# Elements of one batch's (queries x k) lists and (queries x dim) vectors to aim for.
_LIST_BUDGET = 1 << 20
_VECTOR_BUDGET = 16 << 20


def batch_rows(k: int | None, dim: int, num_shards: int) -> int:
    """Queries per batch: large enough for efficient matrix products, small enough to bound lists.

    Example:
        >>> from framelab.toolkits.nearest_neighbors.batches import batch_rows
        >>> batch_rows(k=100_000, dim=8, num_shards=1)
        16
    """
    per_query = max(k or 64, 1) * max(1, min(num_shards, MERGE_FAN_IN))
    rows = min(1024, _LIST_BUDGET // per_query, _VECTOR_BUDGET // max(4 * dim, 1))
    return max(16, int(rows))


class BatchRunner:
    """Runs query batches through a model's shards and collects one result ref per batch."""

    def __init__(self, shards: Any, distance: str, k: int | None, radius: float | None,
                 exclude_self: bool, label_type: pa.DataType, *, method: str = "brute_force",
                 finish: Callable | None = None, window: int | None = None):
        self.shards = shards
        self.distance = distance
        self.k = k
        self.radius = radius
        self.exclude_self = exclude_self
        self.label_type = label_type
        self.method = method
        # finish(state, batch, k, label_type, *lists) turns a batch's lists into its result.
        self.finish = finish or _finish
        self.window = window or max(2, 2 * shards.num_shards)
        self._next = 0
        self.results: list = []

    def _merger(self) -> int:
        # Round robin, so merging work spreads over the shards as evenly as searching.
        self._next = (self._next + 1) % self.shards.num_shards
        return self._next

    def run(self, batches: Iterable[Any]) -> list:
        """Every batch (a dict or an object ref of one) through every shard; result refs in batch order."""
        import ray

        in_flight: list = []
        for batch in batches:
            lists = self.shards.submit(search.shard_search, batch, self.distance, self.k, self.radius,
                                       self.exclude_self, self.method)
            while len(lists) > MERGE_FAN_IN:
                lists = [
                    self.shards.submit(_merge, *lists[i:i + MERGE_FAN_IN], self.k, shard=self._merger())[0]
                    for i in range(0, len(lists), MERGE_FAN_IN)
                ]
            [result] = self.shards.submit(self.finish, batch, self.k, self.label_type, *lists, shard=self._merger())
            self.results.append(result)
            in_flight.append(result)
            if len(in_flight) >= self.window:
                _, in_flight = ray.wait(in_flight, num_returns=1)
        if in_flight:
            ray.wait(in_flight, num_returns=len(in_flight))
        return self.results


def _merge(state: dict, *args: Any) -> pa.Table:
    *lists, k = args
    return search.merge_lists(*lists, k=k)


def _finish(state: dict, batch: dict, k: int | None, label_type: pa.DataType, *lists: pa.Table) -> pa.Table:
    return search.finish_batch(batch, *lists, k=k, label_type=label_type)
