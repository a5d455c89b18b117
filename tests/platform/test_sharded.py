"""framelab.platform.sharded: blocks held by actors for many passes."""

from __future__ import annotations

import numpy as np
import pytest
import ray

import framelab.platform.sharded as sharded
from framelab.platform.sharded import ShardedArrays, _assign_blocks

# Ray workers cannot import this test module: send its functions by value.
ray.cloudpickle.register_pickle_by_value(__import__(__name__))


def _load(blocks, offsets):
    return {"x": np.concatenate(blocks) if blocks else np.zeros(0), "offsets": offsets}


def _sum(state, scale=1.0):
    return float(state["x"].sum() * scale)


def test_map_runs_on_every_shard_and_keeps_state_between_passes():
    refs = [ray.put(np.full(10, float(i))) for i in range(4)]
    with ShardedArrays(refs, _load, num_shards=2) as shards:
        assert shards.num_rows == 40
        assert sum(shards.map(_sum)) == 60.0
        weights = np.ones(100_000)  # large: shared through the object store
        assert sum(shards.map(lambda s, w: float(s["x"].sum() * w[0]), weights)) == 60.0

        def double(state):
            state["x"] = state["x"] * 2

        shards.map(double)
        assert sum(shards.map(_sum, 0.5)) == 60.0


def test_offsets_are_global_row_positions():
    refs = [ray.put(np.zeros(n)) for n in (3, 5, 2)]
    with ShardedArrays(refs, _load, num_shards=3) as shards:
        offsets = sorted(o for s in shards.map(lambda s: s["offsets"]) for o in s)
    assert offsets == [0, 3, 8]


def test_input_errors_in_a_shard_surface_as_themselves():
    def refuse(state):
        raise ValueError("column 'x' has NaN")

    with ShardedArrays([ray.put(np.zeros(3))], _load) as shards:
        with pytest.raises(ValueError, match="column 'x' has NaN") as info:
            shards.map(refuse)
    assert "RayTaskError" not in type(info.value).__name__


def test_closed_shards_refuse_work_and_small_data_gets_one_shard():
    shards = ShardedArrays([ray.put(np.zeros(3)), ray.put(np.zeros(3))], _load)
    assert shards.num_shards == 1 and shards.in_process  # far below MIN_SHARD_BYTES: no actor
    assert sum(shards.map(lambda s: len(s["x"]))) == 6
    shards.close()
    with pytest.raises(RuntimeError, match="closed"):
        shards.map(_sum)


def test_blocks_stay_on_their_node_while_loads_stay_even():
    sizes = [(100, {"a"}), (100, {"a"}), (100, {"b"}), (100, {"b"}), (100, {"a"}), (100, {"a"})]
    assignment = _assign_blocks(sizes, ["a", "b"])
    assert sorted(len(a) for a in assignment) == [3, 3]
    assert {2, 3} <= set(assignment[1])


@pytest.mark.multinode
def test_shards_spread_over_nodes_and_read_local_blocks(two_node_cluster, monkeypatch):
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)

    @ray.remote(num_cpus=0)
    def make(i):
        return np.full(1000, float(i))

    refs = [make.options(resources={node: 0.01}).remote(i)
            for i, node in enumerate(["node_a", "node_b", "node_a", "node_b"])]
    ray.wait(refs, num_returns=len(refs))
    with ShardedArrays(refs, _load) as shards:
        assert shards.num_shards == 2 and len(set(shards.nodes)) == 2
        assert sum(shards.map(_sum)) == 1000.0 * (0 + 1 + 2 + 3)
        per_shard = shards.map(lambda s: sorted(set(s["x"].tolist())))
    # Each actor holds the two blocks made on its own node.
    assert sorted(per_shard) == [[0.0, 2.0], [1.0, 3.0]]
