"""The distances nearest neighbours measures, each computed two ways.

*Scores* are what the shards rank with: one float32 matrix product per
segment (the ``||a||^2 - 2ab + ||b||^2`` identity for Euclidean distances),
shifted by a per-query constant, with a bound on their rounding error.
*Exact* distances are then computed in float64 from the vectors themselves,
only for the few candidates whose score could reach the top k: every
neighbour a float64 computation would return is among them, so results are
those of scikit-learn's brute force (which works in float64), ties aside.

=====================  ============================================  ===================
distance               value                                         scikit-learn metric
=====================  ============================================  ===================
``euclidean``          ``sqrt(sum((a - b)^2))``                      ``euclidean``
``squared_euclidean``  ``sum((a - b)^2)``                            ``sqeuclidean``
``cosine``             ``1 - a.b / (|a| |b|)`` (a zero vector: 1)    ``cosine``
``dot_product``        ``-a.b`` (the largest inner product first)    (none)
``manhattan``          ``sum(|a - b|)``                              ``manhattan``
=====================  ============================================  ===================

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.nearest_neighbors.distances import exact_distances
    >>> a, b = np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]])
    >>> float(exact_distances("euclidean", a, b)[0]), float(exact_distances("manhattan", a, b)[0])
    (5.0, 7.0)
"""

from __future__ import annotations

import numpy as np

from framelab.frames.errors import InputError

DISTANCES = ("euclidean", "squared_euclidean", "cosine", "dot_product", "manhattan")
# Distances whose scores come from a matrix product (manhattan has none).
PRODUCT_DISTANCES = ("euclidean", "squared_euclidean", "cosine", "dot_product")
_UNIT = 2.0 ** -24  # float32 unit roundoff


def check_distance(distance: str) -> str:
    """The distance's name ("auto" is euclidean), refusing unknown ones.

    Example:
        >>> from framelab.toolkits.nearest_neighbors.distances import check_distance
        >>> check_distance("auto")
        'euclidean'
    """
    if isinstance(distance, (list, tuple)):
        # Turi Create's composite distances ([[columns, distance, weight], ...]) are not offered: the search
        # ranks by one matrix product with a bound on its rounding error, which a sum of distances lacks.
        raise InputError(
            "composite distances (a list of [columns, distance, weight]) are not supported; for a weighted sum "
            "of squared Euclidean distances, scale each column by sqrt(weight) (with_column), give them all as "
            "features and use distance='squared_euclidean'; otherwise build one model per column")
    if distance == "auto":
        return "euclidean"
    if distance not in DISTANCES:
        raise InputError(f"distance must be 'auto' or one of {', '.join(DISTANCES)}; got {distance!r}")
    return distance


def error_factor(dim: int) -> float:
    """Bound on the relative rounding error of a float32 dot product of ``dim`` terms, and of the score.

    The classic ``dim * u`` bound for a sum of ``dim`` products (any
    summation order), plus the few roundings around it, with a margin.

    Example:
        >>> from framelab.toolkits.nearest_neighbors.distances import error_factor
        >>> error_factor(1280) < 1e-4
        True
    """
    return 1.05 * (dim + 8) * _UNIT


def query_terms(distance: str, Q: np.ndarray) -> dict:
    """What a batch of queries brings to every segment: the float32 left factor and per-query terms.

    ``offset``: added to a score to give the distance's internal value
    (the squared distance for ``euclidean``); ``scale``: the query's share
    of the error bound.
    """
    Q64 = Q.astype(np.float64)
    sq = np.einsum("ij,ij->i", Q64, Q64)
    norms = np.sqrt(sq)
    if distance in ("euclidean", "squared_euclidean"):
        left = (-2.0 * Q).astype(np.float32)  # exact: a power of two
        offset, scale = sq, sq
    elif distance == "cosine":
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        left = -(Q64 * inv[:, None]).astype(np.float32)
        offset, scale = np.ones(len(Q)), np.ones(len(Q))
    elif distance == "dot_product":
        left = -Q.astype(np.float32)
        offset, scale = np.zeros(len(Q)), norms
    else:
        left = Q64
        offset, scale = np.zeros(len(Q)), np.zeros(len(Q))
    return {"Q": Q64, "left": np.ascontiguousarray(left), "offset": offset, "scale": scale}


def segment_terms(distance: str, sq_norms: np.ndarray, present: np.ndarray) -> dict:
    """Per-row terms of a segment: what is added to each score column, and its share of the error bound."""
    norms = np.sqrt(sq_norms)
    if distance in ("euclidean", "squared_euclidean"):
        add, column_scale = sq_norms, sq_norms
        multiply = None
    elif distance == "cosine":
        add, column_scale = None, np.ones(len(norms))
        multiply = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    elif distance == "dot_product":
        add, multiply, column_scale = None, None, norms
    else:
        add, multiply, column_scale = None, None, np.zeros(len(norms))
    live = column_scale[present] if present.any() else np.zeros(1)
    return {
        "add": None if add is None else add.astype(np.float32),
        "multiply": None if multiply is None else multiply.astype(np.float32),
        "max_scale": float(live.max()) if live.size else 0.0,
    }


def error_bound(distance: str, dim: int, query_scale: np.ndarray, max_column_scale: float) -> np.ndarray:
    """Per query, a bound on |score - exact internal value| over one segment's rows."""
    c = error_factor(dim)
    if distance in ("euclidean", "squared_euclidean"):
        return c * (query_scale + max_column_scale) + 1e-300
    if distance == "cosine":
        return np.full(len(query_scale), 2.0 * c)
    if distance == "dot_product":
        return c * query_scale * max_column_scale + 1e-300
    return np.zeros(len(query_scale))


def scores(distance: str, left: np.ndarray, X: np.ndarray, terms: dict) -> np.ndarray:
    """(queries, rows) float32 scores of a segment; internal value = score + the query's offset."""
    if distance == "manhattan":
        from scipy.spatial.distance import cdist

        return cdist(left, X.astype(np.float64), metric="cityblock")
    S = left @ X.T
    if terms["multiply"] is not None:
        S *= terms["multiply"]
    if terms["add"] is not None:
        S += terms["add"]
    return S


def to_internal(distance: str, radius: float) -> float:
    """A radius in the distance's units as an internal value (a squared Euclidean radius)."""
    return radius * radius if distance == "euclidean" else radius


def exact_distances(distance: str, A: np.ndarray, B: np.ndarray, rows: np.ndarray | None = None,
                    chunk: int = 512) -> np.ndarray:
    """Row-wise distance between ``A[rows[i]]`` (``A[i]`` without ``rows``) and ``B[i]``, in float64.

    Works in small chunks, each row pair widened to float64 in one pass
    (the temporaries stay in cache: this step costs far less than scoring).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.distances import exact_distances
        >>> exact_distances("cosine", np.array([[1.0, 0.0]]), np.array([[0.0, 2.0]])).tolist()
        [1.0]
    """
    out = np.empty(len(B), dtype=np.float64)
    f64 = np.float64
    for s in range(0, len(B), chunk):
        a = A[rows[s:s + chunk]] if rows is not None else A[s:s + chunk]
        b = B[s:s + chunk]
        if distance in ("euclidean", "squared_euclidean"):
            diff = np.subtract(a, b, dtype=f64)
            value = np.einsum("ij,ij->i", diff, diff)
            out[s:s + chunk] = np.sqrt(value) if distance == "euclidean" else value
        elif distance == "cosine":
            a, b = a.astype(f64), b.astype(f64)
            dot = np.einsum("ij,ij->i", a, b)
            norms = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
            cos = np.divide(dot, norms, out=np.zeros_like(dot), where=norms > 0)
            out[s:s + chunk] = 1.0 - np.clip(cos, -1.0, 1.0)
        elif distance == "dot_product":
            out[s:s + chunk] = -np.einsum("ij,ij->i", a.astype(f64), b.astype(f64))
        else:
            out[s:s + chunk] = np.abs(np.subtract(a, b, dtype=f64)).sum(axis=1)
    return out


def internal_to_distance(distance: str, values: np.ndarray) -> np.ndarray:
    """Exact internal values (squared for euclidean) in the distance's units."""
    if distance == "euclidean":
        return np.sqrt(np.maximum(values, 0.0))
    return values
