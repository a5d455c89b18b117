"""A Frame on a real two-node Ray cluster: work reaches both nodes and every row comes back once."""

from __future__ import annotations

import os

import pyarrow as pa
import pytest

from framelab.frames import Frame


@pytest.mark.multinode
def test_transform_runs_on_both_nodes_and_returns_every_row_once(two_node_cluster):
    import ray

    def tag_node(table: pa.Table) -> pa.Table:
        import time

        time.sleep(0.2)  # long enough that one node cannot take every block
        node = ray.get_runtime_context().get_node_id()
        return table.append_column("node", pa.array([node] * table.num_rows)).append_column(
            "pid", pa.array([os.getpid()] * table.num_rows)
        )

    n = 2_000
    frame = Frame({"x": list(range(n))}).repartition(16).map_batches(tag_node, preserves_rows=True)
    out = frame.to_polars()
    assert sorted(out["x"].to_list()) == list(range(n))
    assert out["node"].n_unique() == 2
