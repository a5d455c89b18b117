"""Exact k-nearest and radius search of one query batch, inside a shard, and the merge of shards' lists.

A shard scores the batch against each of its segments with one float32
matrix product and keeps every row whose score is within twice the rounding
bound of the k-th best (see :mod:`.distances`); those few candidates get
their exact float64 distance, and the shard returns its own top k, sorted by
(distance, row id). :func:`merge_lists` keeps the best k of several shards'
lists, so merging in a tree of any shape gives the same answer.

Lists are Arrow tables with columns ``query`` (position in the batch),
``reference`` (global row id), ``distance`` and, when the model has labels,
``reference_label``.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.nearest_neighbors.search import top_k_per_query
    >>> q, d, r = np.array([0, 0, 0]), np.array([3.0, 1.0, 2.0]), np.array([7, 8, 9])
    >>> top_k_per_query(q, d, r, 2).tolist()
    [1, 2]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from framelab.toolkits.nearest_neighbors import distances as dist
from framelab.toolkits.vector_shards import rows_at, shard_labels

LIST_SCHEMA = pa.schema([("query", pa.int32()), ("reference", pa.int64()), ("distance", pa.float64())])


def make_batch(X: np.ndarray, present: np.ndarray, ids: np.ndarray, labels: pa.Array | None,
               null_rows: bool = False) -> dict:
    """A query batch: vectors, which rows have them, their global ids (or -1) and labels.

    ``null_rows``: a query without vector gets one result row of nulls
    (user queries: no row is lost), instead of none (the similarity graph).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.search import make_batch
        >>> sorted(make_batch(np.zeros((1, 2)), np.ones(1, bool), np.array([-1]), None))
        ['X', 'ids', 'labels', 'null_rows', 'present']
    """
    return {"X": X, "present": present, "ids": ids, "labels": labels, "null_rows": null_rows}


def shard_batch(state: dict, segment_index: int, start: int, stop: int) -> dict:
    """Rows ``start:stop`` of one of the shard's segments, as a query batch (the similarity graph's queries)."""
    seg = state["segments"][segment_index]
    positions = np.arange(seg.start + start, seg.start + stop)
    labels = shard_labels(state, positions)
    return make_batch(np.array(seg.X[start:stop]), seg.present[start:stop], seg.ids[start:stop],
                      labels if labels is not None else pa.array(seg.ids[start:stop]))


def shard_search(
    state: dict, batch: dict, distance: str, k: int | None, radius: float | None, exclude_self: bool,
    method: str = "brute_force",
) -> pa.Table:
    """This shard's top ``k`` (and/or all within ``radius``) for each query of the batch.

    ``method="ann"`` takes the candidates from the shard's HNSW index
    (:mod:`.ann`) instead of scoring every row; distances are exact either way.
    """
    queries = np.flatnonzero(batch["present"])
    if len(queries) == 0 or not state["segments"]:
        return _empty_list(state)
    Q = batch["X"][queries]
    q_ids = batch["ids"][queries]
    want = None if k is None else k + (1 if exclude_self else 0)
    q_terms = dist.query_terms(distance, Q)
    ann = state.get("ann") if method == "ann" else None
    if ann is not None and want is not None:
        cand_q, cand_pos = ann.candidates(Q, want)
    else:
        cand_q, cand_pos = _exact_candidates(state, distance, q_terms, want, radius)
    return _finish(state, distance, Q, q_ids, queries, cand_q, cand_pos, k, radius, exclude_self)


def _exact_candidates(
    state: dict, distance: str, q_terms: dict, want: int | None, radius: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """(query index, shard position) of every row that may be among the top ``want`` / within ``radius``."""
    segments = state["segments"]
    m = len(q_terms["offset"])
    dim = state["dim"]
    limit_radius = None
    if radius is not None:
        limit_radius = dist.to_internal(distance, radius) - q_terms["offset"]
    tau = np.full(m, np.inf)  # an upper bound on each query's k-th internal value, minus its offset
    widest = np.zeros(m)  # each query's largest error bound over the segments
    q = np.zeros(0, dtype=np.int32)
    pos = np.zeros(0, dtype=np.int64)
    score = np.zeros(0)
    bound_of = np.zeros(0)
    for seg in segments:
        s_terms = dist.segment_terms(distance, seg.sq_norms, seg.present)
        S = dist.scores(distance, q_terms["left"], seg.X, s_terms)
        if not seg.all_present:
            S[:, ~seg.present] = np.inf
        bound = dist.error_bound(distance, dim, q_terms["scale"], s_terms["max_scale"])
        widest = np.maximum(widest, bound)
        if want is not None and want <= int(seg.present.sum()) and not np.isfinite(tau).all():
            # Only until every query has k candidates: afterwards the pool's k-th bounds them.
            kth = np.partition(S, want - 1, axis=1)[:, want - 1].astype(np.float64)
            tau = np.minimum(tau, kth + bound)
        limit = tau + bound
        if limit_radius is not None:
            limit = np.minimum(limit, limit_radius + bound)
        # Rounded up into the scores' type, so the comparison never loses a candidate.
        qi, j = np.nonzero(S <= np.nextafter(limit.astype(S.dtype), np.inf)[:, None])
        q = np.concatenate([q, qi.astype(np.int32)])
        pos = np.concatenate([pos, (seg.start + j).astype(np.int64)])
        score = np.concatenate([score, S[qi, j].astype(np.float64)])
        bound_of = np.concatenate([bound_of, bound[qi]])
        if want is not None and len(q):
            # The pool holds the k best scores of every row seen so far: its k-th is the tightest
            # bound, and rows above it (by more than the rounding) can never enter the top k.
            order = np.lexsort((score, q))
            q, pos, score, bound_of = q[order], pos[order], score[order], bound_of[order]
            starts = np.searchsorted(q, np.arange(m))
            counts = np.bincount(q, minlength=m)
            has = counts >= want
            kth = np.full(m, np.inf)
            kth[has] = score[starts[has] + want - 1]
            tau = np.minimum(tau, kth + widest)
            keep = score <= kth[q] + widest[q] + bound_of
            q, pos, score, bound_of = q[keep], pos[keep], score[keep], bound_of[keep]
    return q, pos


def _finish(
    state: dict, distance: str, Q: np.ndarray, q_ids: np.ndarray, queries: np.ndarray,
    cand_q: np.ndarray, cand_pos: np.ndarray, k: int | None, radius: float | None, exclude_self: bool,
) -> pa.Table:
    """Exact distances of the candidates, then this shard's top k per query."""
    ids, X = rows_at(state, cand_pos)
    d = dist.exact_distances(distance, Q, X, rows=cand_q)
    keep = np.ones(len(d), dtype=bool)
    if exclude_self:
        keep &= ids != q_ids[cand_q]
    if radius is not None:
        keep &= d <= radius
    cand_q, cand_pos, ids, d = cand_q[keep], cand_pos[keep], ids[keep], d[keep]
    order = np.lexsort((ids, d, cand_q))
    cand_q, cand_pos, ids, d = cand_q[order], cand_pos[order], ids[order], d[order]
    if k is not None:
        first = top_k_per_query(cand_q, d, ids, k, presorted=True)
        cand_q, cand_pos, ids, d = cand_q[first], cand_pos[first], ids[first], d[first]
    columns: dict[str, Any] = {
        "query": pa.array(queries[cand_q].astype(np.int32)),
        "reference": pa.array(ids),
        "distance": pa.array(d),
    }
    labels = shard_labels(state, cand_pos)
    if labels is not None:
        columns["reference_label"] = labels
    return pa.table(columns)


def top_k_per_query(q: np.ndarray, d: np.ndarray, ids: np.ndarray, k: int, presorted: bool = False) -> np.ndarray:
    """Indices of each query's ``k`` best rows, by (distance, row id), in (query, rank) order.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.search import top_k_per_query
        >>> top_k_per_query(np.array([1, 0, 1]), np.array([0.5, 0.2, 0.1]), np.array([0, 1, 2]), 1).tolist()
        [1, 2]
    """
    order = np.arange(len(q)) if presorted else np.lexsort((ids, d, q))
    sorted_q = q[order]
    if len(sorted_q) == 0:
        return order
    first = np.r_[True, sorted_q[1:] != sorted_q[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(sorted_q)), 0))
    rank = np.arange(len(sorted_q)) - group_start
    return order[rank < k]


def merge_lists(*lists: pa.Table, k: int | None) -> pa.Table:
    """The best ``k`` per query of several shards' lists (all of them when ``k`` is None).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.nearest_neighbors.search import merge_lists
        >>> a = pa.table({"query": pa.array([0], pa.int32()), "reference": [5], "distance": [0.3]})
        >>> b = pa.table({"query": pa.array([0], pa.int32()), "reference": [9], "distance": [0.1]})
        >>> merge_lists(a, b, k=1).column("reference").to_pylist()
        [9]
    """
    table = pa.concat_tables([t for t in lists if t.num_rows] or [lists[0]])
    q = table.column("query").to_numpy()
    d = table.column("distance").to_numpy()
    ids = table.column("reference").to_numpy()
    order = np.lexsort((ids, d, q))
    if k is not None:
        order = order[top_k_per_query(q[order], d[order], ids[order], k, presorted=True)]
    return table.take(pa.array(order))


def finish_batch(batch: dict, *lists: pa.Table, k: int | None, label_type: pa.DataType) -> pa.Table:
    """The merged lists of one batch as result rows: query_label, reference_label, distance, rank."""
    table = merge_lists(*lists, k=k)
    q = table.column("query").to_numpy()
    if len(q):
        first = np.r_[True, q[1:] != q[:-1]]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(q)), 0))
        rank = np.arange(len(q)) - group_start + 1
    else:
        rank = np.zeros(0, dtype=np.int64)
    query_labels = batch["labels"]
    if query_labels is None:
        query_labels = pa.array(batch["ids"])
    if "reference_label" in table.column_names:
        reference = table.column("reference_label").combine_chunks()
    else:
        reference = table.column("reference").combine_chunks()
    reference = reference.cast(label_type)
    distance = table.column("distance").combine_chunks()
    rank = pa.array(rank.astype(np.int64))
    absent = np.flatnonzero(~np.asarray(batch["present"], dtype=bool)) if batch.get("null_rows") else []
    if len(absent):
        # A query without features keeps one row, of nulls, in its place among the others.
        q = np.concatenate([q, absent])
        order = pa.array(np.argsort(q, kind="stable"))
        q = q[order.to_numpy()]
        reference, distance, rank = (
            pa.concat_arrays([a, pa.nulls(len(absent), a.type)]).take(order) for a in (reference, distance, rank)
        )
    return pa.table({
        "query_label": query_labels.take(pa.array(q, pa.int64())),
        "reference_label": reference,
        "distance": distance,
        "rank": rank,
    })


def _empty_list(state: dict) -> pa.Table:
    table = LIST_SCHEMA.empty_table()
    labels = state.get("labels")
    if labels is not None:
        table = table.append_column("reference_label", pa.array([], labels.type))
    return table
