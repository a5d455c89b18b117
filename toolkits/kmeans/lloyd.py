"""Lloyd and mini-batch iterations on sharded vectors: one pass of matrix products per iteration.

Functions prefixed ``shard_`` run inside the shards (:mod:`framelab.toolkits.vector_shards`
states); each returns a few per-cluster sums, so the driver holds only the
centres. A row's nearest centre comes from one float32 product
``X @ (-2C).T + ||c||^2`` per segment; its squared distance is then computed
directly from ``x - c`` (accurate even when it is small beside ``||x||^2``);
per-cluster sums are one sparse-by-dense product.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.kmeans.lloyd import PassStats
    >>> a = PassStats(np.ones((2, 3)), np.array([1, 0]), 0.5, 1)
    >>> total = PassStats.total([a, a])
    >>> total.counts.tolist(), total.inertia
    ([2, 0], 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from framelab.toolkits.vector_shards import present_positions
from framelab.toolkits.vector_shards import rows_at as vector_rows


def _center_terms(centers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    C = np.asarray(centers, dtype=np.float64)
    left = np.ascontiguousarray((-2.0 * C).T.astype(np.float32))
    sq = np.einsum("ij,ij->i", C, C).astype(np.float32)
    return left, sq, C.astype(np.float32)


def _assign(X: np.ndarray, left: np.ndarray, c_sq: np.ndarray, C32: np.ndarray,
            sq_norms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(nearest centre, squared distance) per row; from the product alone when ``sq_norms`` is given.

    The product's distance loses precision when it is small beside
    ``||x||^2``: iterations only need the labels (and a progress figure),
    so the exact ``x - c`` pass is kept for the final one.
    """
    if len(X) == 0:
        return np.zeros(0, dtype=np.int32), np.zeros(0)
    S = X @ left
    S += c_sq
    labels = S.argmin(axis=1).astype(np.int32)
    if sq_norms is not None:
        return labels, np.maximum(S[np.arange(len(labels)), labels].astype(np.float64) + sq_norms, 0.0)
    diff = X - C32[labels]
    d2 = np.einsum("ij,ij->i", diff, diff, dtype=np.float64)
    return labels, d2


def _sums(X: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    from scipy.sparse import csr_matrix

    if len(X) == 0:
        return np.zeros((k, X.shape[1]))
    onehot = csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                        shape=(k, len(labels)))
    return np.asarray(onehot @ X, dtype=np.float64)


@dataclass
class PassStats:
    """What one pass over the shards gives the driver: per-cluster sums and counts, inertia, changes."""

    sums: np.ndarray
    counts: np.ndarray
    inertia: float
    changed: int
    extras: dict = field(default_factory=dict)

    @classmethod
    def total(cls, parts: list[PassStats]) -> PassStats:
        """Add up the shards' parts."""
        return cls(
            sums=sum(p.sums for p in parts),
            counts=sum(p.counts for p in parts),
            inertia=float(sum(p.inertia for p in parts)),
            changed=int(sum(p.changed for p in parts)),
        )


def shard_assign(state: dict, centers: np.ndarray, exact: bool = True) -> PassStats:
    """Assign every present row to its nearest centre (kept in the state); return the pass's sums.

    ``exact=False`` takes distances from the matrix product (iterations);
    ``exact=True`` computes them from ``x - c`` (the final pass).
    """
    k = len(centers)
    terms = _center_terms(centers)
    previous = state.get("assignment")
    assignment = []
    sums = np.zeros((k, centers.shape[1]))
    counts = np.zeros(k, dtype=np.int64)
    per_cluster = np.zeros(k)
    inertia, changed = 0.0, 0
    for i, seg in enumerate(state["segments"]):
        rows = None if seg.all_present else np.flatnonzero(seg.present)
        X = seg.X if rows is None else seg.X[rows]
        norms = None if exact else (seg.sq_norms if rows is None else seg.sq_norms[rows])
        labels, d2 = _assign(X, *terms, norms)
        full_labels = np.full(len(seg.ids), -1, dtype=np.int32)
        full_d2 = np.full(len(seg.ids), np.nan)
        target = slice(None) if rows is None else rows
        full_labels[target] = labels
        full_d2[target] = d2
        if previous is not None:
            changed += int((previous[i][0] != full_labels).sum())
        else:
            changed += len(labels)
        assignment.append((full_labels, full_d2))
        sums += _sums(X, labels, k)
        counts += np.bincount(labels, minlength=k)
        inertia += float(d2.sum())
        per_cluster += np.bincount(labels, weights=d2, minlength=k)
    state["assignment"] = assignment
    return PassStats(sums, counts, inertia, changed, {"per_cluster": per_cluster})


def shard_minibatch(state: dict, centers: np.ndarray, size: int, seed: tuple) -> PassStats:
    """Sums of ``size`` rows drawn (seeded) from the shard's present rows, assigned to the centres."""
    k = len(centers)
    positions = present_positions(state)
    rng = np.random.default_rng(list(seed))
    chosen = np.sort(rng.choice(positions, size=min(size, len(positions)), replace=False))
    X = rows_at(state, chosen)
    labels, d2 = _assign(X, *_center_terms(centers))
    return PassStats(_sums(X, labels, k), np.bincount(labels, minlength=k), float(d2.sum()), 0)


def shard_farthest(state: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The shard's ``n`` rows farthest from their centre: (squared distances, vectors)."""
    d2 = np.concatenate([a[1] for a in state["assignment"]]) if state["assignment"] else np.zeros(0)
    d2 = np.where(np.isnan(d2), -np.inf, d2)
    n = min(n, int(np.isfinite(d2).sum()))
    if n == 0:
        return np.zeros(0), np.zeros((0, state["dim"]), dtype=np.float32)
    top = np.argpartition(-d2, n - 1)[:n]
    return d2[top], rows_at(state, top)


#: The hidden column of :func:`shard_cluster_table` giving each row's position, dropped once rows are in order.
ROW_POSITION = "__row_position"


def shard_cluster_table(state: dict, label: str | None) -> pa.Table:
    """Row id (and label), cluster id and distance of every row of the shard; nulls for absent rows."""
    ids = [s.ids for s in state["segments"]]
    labels = [a[0] for a in state["assignment"]]
    d2 = [a[1] for a in state["assignment"]]
    ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    cluster = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int32)
    distance = np.sqrt(np.concatenate(d2)) if d2 else np.zeros(0)
    absent = cluster < 0
    columns = {"row_id": pa.array(ids)}
    if label is not None:
        columns[label] = state["labels"].combine_chunks()  # a label named "row_id" names the rows instead
    columns["cluster_id"] = pa.array(cluster.astype(np.int64), mask=absent)
    columns["distance"] = pa.array(distance, mask=absent)
    # The gather orders rows by position; it cannot sort by "row_id", which a label may have replaced.
    columns[ROW_POSITION] = pa.array(ids)
    return pa.table(columns)


def rows_at(state: dict, positions: np.ndarray) -> np.ndarray:
    """Vectors of the shard's rows at ``positions`` (a float32 copy)."""
    return vector_rows(state, np.asarray(positions, dtype=np.int64))[1]
