"""Nearest neighbours across the cluster: exact brute force by default, per-shard HNSW on request.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import nearest_neighbors
    >>> model = nearest_neighbors.create(Frame({"x": [0.0, 1.0, 3.0]}), verbose=False)
    >>> model.query(Frame({"x": [2.9]}), k=1).to_pydict()["reference_label"]
    [2]
"""

from framelab.toolkits.nearest_neighbors.distances import DISTANCES
from framelab.toolkits.nearest_neighbors.nearest_neighbors import (
    METHODS,
    NearestNeighborsModel,
    create,
)

__all__ = ["DISTANCES", "METHODS", "NearestNeighborsModel", "create"]
