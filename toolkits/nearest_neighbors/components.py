"""Connected components of a similarity graph, reduced on the cluster as forests of (node, root) pairs.

Each batch's edges become a *forest*: one (node, root) pair per row the
edges touch, the root being the smallest row id of its component. Two
forests merge into one by treating their pairs as edges again, so forests
reduce in a tree on the shards, never all in one place; the last one maps
every row that has a near neighbour to its group. Rows it does not name are
alone in their group.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.nearest_neighbors.components import forest_of
    >>> forest_of(np.array([5, 7, 9]), np.array([7, 5, 2])).to_pydict()
    {'node': [2, 5, 7, 9], 'root': [2, 5, 5, 2]}
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

FOREST_SCHEMA = pa.schema([("node", pa.int64()), ("root", pa.int64())])


def forest_of(u: np.ndarray, v: np.ndarray) -> pa.Table:
    """The (node, root) forest of the undirected edges ``u[i] - v[i]`` (root: the component's smallest id).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.components import forest_of
        >>> forest_of(np.array([1]), np.array([0])).column("root").to_pylist()
        [0, 0]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    if len(u) == 0:
        return FOREST_SCHEMA.empty_table()
    nodes = np.unique(np.concatenate([u, v]))
    iu, iv = np.searchsorted(nodes, u), np.searchsorted(nodes, v)
    graph = coo_matrix((np.ones(len(u), dtype=np.int8), (iu, iv)), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    smallest = np.full(labels.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(smallest, labels, nodes)
    return pa.table({"node": pa.array(nodes), "root": pa.array(smallest[labels])}, schema=FOREST_SCHEMA)


def merge_forests(*forests: pa.Table) -> pa.Table:
    """One forest with the components of several (each pair is an edge).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.components import forest_of, merge_forests
        >>> a, b = forest_of(np.array([1]), np.array([2])), forest_of(np.array([2]), np.array([3]))
        >>> merge_forests(a, b).column("root").to_pylist()
        [1, 1, 1]
    """
    table = pa.concat_tables([f for f in forests if f.num_rows] or [FOREST_SCHEMA.empty_table()])
    return forest_of(table.column("node").to_numpy(), table.column("root").to_numpy())


def group_sizes(forest: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(nodes, roots, size of each node's group), nodes sorted."""
    nodes = forest.column("node").to_numpy()
    roots = forest.column("root").to_numpy()
    order = np.argsort(nodes, kind="stable")
    nodes, roots = nodes[order], roots[order]
    unique_roots, inverse, counts = np.unique(roots, return_inverse=True, return_counts=True)
    return nodes, roots, counts[inverse]


def groups_of_rows(ids: np.ndarray, present: np.ndarray, forest: pa.Table) -> tuple[pa.Array, pa.Array]:
    """(group_id, group_size) of rows ``ids``: from the forest, else alone; null where ``present`` is False.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.nearest_neighbors.components import forest_of, groups_of_rows
        >>> forest = forest_of(np.array([3]), np.array([1]))
        >>> g, n = groups_of_rows(np.array([0, 1, 3]), np.array([True, True, True]), forest)
        >>> g.to_pylist(), n.to_pylist()
        ([0, 1, 1], [1, 2, 2])
    """
    nodes, roots, sizes = group_sizes(forest)
    group = ids.astype(np.int64).copy()
    size = np.ones(len(ids), dtype=np.int64)
    if len(nodes):
        at = np.minimum(np.searchsorted(nodes, ids), len(nodes) - 1)
        hit = nodes[at] == ids
        group[hit] = roots[at[hit]]
        size[hit] = sizes[at[hit]]
    mask = ~np.asarray(present, dtype=bool)
    return pa.array(group, mask=mask), pa.array(size, mask=mask)
