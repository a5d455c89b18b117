"""``method="ann"``: an HNSW graph per shard (faiss ``IndexHNSWFlat``), candidates re-ranked exactly.

Each shard indexes its own rows; a query batch asks every shard's index for
its ``k`` approximate neighbours, their exact distances are computed from the
vectors (as brute force does), and the shards' lists are merged. Only which
rows are found is approximate; the distances returned are exact.

Why faiss's HNSW (measured on this project's 2-core shared machine, 30,000 to
50,000 x 1,280 clustered float32 vectors, 500 queries, k=10, two threads; the
README has the table): hnswlib reached a given recall with about half the
search effort, but faiss built its graph 1.2-3.3x faster, has metrics
hnswlib lacks (L1 for ``manhattan``), ships wheels (hnswlib 0.8.0 compiled
from source here, so every node would need a C++ toolchain), and is already
the reference library of framelab's tests and benchmarks: one vector library,
not two. An inverted-file index (IVF) built fastest but needed many probes
for the same recall on the harder data set.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.vector_shards import Segment
    >>> from framelab.toolkits.nearest_neighbors.ann import HnswIndex
    >>> X = np.eye(4, dtype=np.float32)
    >>> seg = Segment(X, np.ones(4), np.ones(4, bool), np.arange(4), 0)
    >>> q, pos = HnswIndex([seg], "euclidean", 4).candidates(X[:1], 1)
    >>> pos.tolist()
    [0]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from framelab.frames.errors import InputError

# Graph degree and build effort: faiss's defaults for M=32 (efConstruction 40);
# efSearch 128 reached recall@10 of 0.98-0.996 on the measurements above.
HNSW_M = 32
EF_CONSTRUCTION = 40
EF_SEARCH = 128


def faiss_module():
    """faiss, or an InputError that says how to get it.

    Example:
        >>> from framelab.toolkits.nearest_neighbors.ann import faiss_module
        >>> faiss_module().__name__
        'faiss'
    """
    try:
        import faiss
    except ImportError:
        raise InputError("method='ann' needs faiss: pip install faiss-cpu") from None
    return faiss


class HnswIndex:
    """One shard's HNSW index over its present rows, answering with shard positions."""

    def __init__(self, segments: list, distance: str, dim: int, *, m: int = HNSW_M,
                 ef_construction: int = EF_CONSTRUCTION, ef_search: int = EF_SEARCH):
        faiss = faiss_module()
        metric = {
            "euclidean": faiss.METRIC_L2, "squared_euclidean": faiss.METRIC_L2,
            "cosine": faiss.METRIC_INNER_PRODUCT, "dot_product": faiss.METRIC_INNER_PRODUCT,
            "manhattan": faiss.METRIC_L1,
        }[distance]
        self.distance = distance
        self.ef_search = int(ef_search)
        started = time.perf_counter()
        self.index = faiss.IndexHNSWFlat(dim, int(m), metric)
        self.index.hnsw.efConstruction = int(ef_construction)
        present = [(seg, np.flatnonzero(seg.present)) for seg in segments]
        _reserve(self.index, sum(len(rows) for _, rows in present))
        positions = []
        for seg, rows in present:
            if len(rows):
                # faiss keeps its own copy: the one copy of the vectors the index costs.
                self.index.add(self._prepare(seg.X[rows]))
                positions.append(seg.start + rows)
        self.positions = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
        self.build_seconds = time.perf_counter() - started

    def _prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.distance == "cosine":
            norms = np.linalg.norm(X.astype(np.float64), axis=1)
            X = (X / np.where(norms > 0, norms, 1.0)[:, None]).astype(np.float32)
        return X

    def candidates(self, Q: np.ndarray, want: int) -> tuple[np.ndarray, np.ndarray]:
        """(query index, shard position) of each query's ``want`` approximate neighbours."""
        faiss = faiss_module()
        if self.index.ntotal == 0:
            return np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
        want = min(int(want), self.index.ntotal)
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, want))
        _, found = self.index.search(self._prepare(Q), want, params=params)
        ok = found >= 0
        q = np.repeat(np.arange(len(Q), dtype=np.int32), want)[ok.ravel()]
        return q, self.positions[found[ok]]


def _reserve(index: Any, rows: int) -> None:
    """Size the index's vector storage for ``rows`` once, before adding the shard segment by segment.

    faiss grows the storage by doubling, so at its last growth it held the
    old and the new buffer: measured, a 60,000-row index peaked at 1.53x its
    vectors; sized first, at 1.05x (the vectors plus one segment's copy).
    """
    faiss = faiss_module()
    storage = faiss.downcast_index(index.storage)
    room = faiss.UInt8Vector()
    room.resize(rows * storage.code_size)
    room.resize(0)  # a vector keeps its capacity: the adds fill it without moving it
    storage.codes.owned_data.swap(room)


def shard_build_index(state: dict, distance: str, threads: int | None, options: dict) -> dict:
    """Build the shard's index (kept in its state); return build time and size."""
    if threads is not None:
        faiss_module().omp_set_num_threads(int(threads))
    index = HnswIndex(state["segments"], distance, state["dim"], **options)
    state["ann"] = index
    return {"seconds": index.build_seconds, "rows": int(index.index.ntotal)}
