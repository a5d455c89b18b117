"""framelab.platform.sharded: blocks held by actors for many passes."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import ray

import framelab.platform.sharded as sharded
from framelab.platform.errors import NodeLostError
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


def _note(state, tag):
    state.setdefault("notes", []).append(tag)


def _notes(state):
    return list(state.get("notes", []))


def _die_once(state, marker):
    """Exit this actor's process the first time any shard runs it (the marker file says it happened)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return float(state["x"].sum())
    os._exit(1)


def _die_always(state):
    os._exit(1)


def _kill(actor) -> None:
    """Kill ``actor`` and return once it is gone: ``ray.kill`` only asks the GCS, and on a busy machine a call
    sent right after it can still run on the old actor."""
    ray.kill(actor)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get(actor.node_id.remote(), timeout=30)
        except ray.exceptions.RayActorError:
            return
    raise AssertionError("the killed shard actor still answers after 60 s")


def test_a_killed_shard_is_rebuilt_with_its_blocks_and_state_changes():
    refs = [ray.put(np.full(10, float(i))) for i in range(4)]
    with ShardedArrays(refs, _load, num_shards=2, max_restarts=2) as shards:
        shards.map(_note, "encoded")
        assert shards.map(_notes, changes_state=False) == [["encoded"], ["encoded"]]
        _kill(shards._actors[0])
        # The rebuilt shard replays the state change, not the read-only call.
        assert shards.map(_notes, changes_state=False) == [["encoded"], ["encoded"]]
        assert sum(shards.map(_sum, changes_state=False)) == 60.0
        assert shards.restarts == 1
        assert sorted(o for s in shards.map(lambda s: s["offsets"], changes_state=False) for o in s) == [0, 10, 20, 30]


def test_a_shard_that_dies_during_a_call_is_rebuilt_and_the_call_answers(tmp_path):
    refs = [ray.put(np.full(10, float(i))) for i in range(4)]
    with ShardedArrays(refs, _load, num_shards=2, max_restarts=1) as shards:
        before = shards.map(_sum, changes_state=False)
        marker = str(tmp_path / "died")
        assert shards.map(_die_once, marker, changes_state=False) == before
        assert os.path.exists(marker) and shards.restarts == 1


def test_a_shard_that_keeps_dying_raises_once_its_restarts_are_spent():
    refs = [ray.put(np.zeros(3)), ray.put(np.ones(3))]
    with ShardedArrays(refs, _load, num_shards=2, max_restarts=1) as shards:
        with pytest.raises(NodeLostError, match="1 of 2 shard"):
            shards.map(_die_always, changes_state=False)
        assert shards.restarts == 1


def test_without_restarts_a_dead_shard_is_a_clear_error():
    with ShardedArrays([ray.put(np.zeros(3)), ray.put(np.ones(3))], _load, num_shards=2) as shards:
        _kill(shards._actors[1])
        with pytest.raises(NodeLostError, match="Run it again"):
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


def test_a_shard_lost_mid_pass_is_a_clear_error_at_once_not_a_ray_traceback():
    import threading
    import time

    import numpy as np
    import pytest
    import ray

    from framelab.platform.errors import NodeLostError
    from framelab.platform.sharded import ShardedArrays

    refs = [ray.put(np.ones(10)), ray.put(np.ones(10))]
    shards = ShardedArrays(refs, lambda blocks, offsets: blocks[0], num_shards=2, cpus_per_shard=0.5,
                           in_process=False)
    try:
        # What a node's death does to the actor on it, done here to one actor.
        killer = threading.Timer(2.0, ray.kill, args=(shards._actors[0],))
        killer.start()
        started = time.monotonic()
        with pytest.raises(NodeLostError, match=r"1 of 2 shard\(s\) .* was lost .* Run it again"):
            shards.map(lambda x: time.sleep(60))
        assert time.monotonic() - started < 30
    finally:
        shards.close()
def test_submitted_work_feeds_other_shards_by_reference():
    refs = [ray.put(np.full(10, float(i))) for i in range(4)]
    with ShardedArrays(refs, _load, num_shards=2) as shards:
        parts = shards.submit(_sum)  # not waited for
        total = shards.submit(lambda state, *sums: float(sum(sums)), *parts, shard=1)
        assert shards.get(total) == [60.0]


def test_resident_shards_reserve_a_sliver_but_compute_on_a_thread(monkeypatch):
    from framelab.platform.resources import RESIDENT_ACTOR_CPUS, resident_pool

    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    pool = resident_pool()
    refs = [ray.put(np.zeros(10)) for _ in range(2)]
    with ShardedArrays(refs, _load, num_shards=2, cpus_per_shard=pool.num_cpus, threads_per_shard=1) as shards:
        assert pool.num_cpus == RESIDENT_ACTOR_CPUS
        # The pool holds almost no CPU: a task still gets scheduled while the shards live.
        assert ray.get(ray.remote(num_cpus=1)(lambda: 7).remote()) == 7
        assert sum(shards.map(lambda s: len(s["x"]))) == 20


def test_kmeans_with_a_live_nearest_neighbors_model_on_a_2_cpu_session_finishes():
    """The model's resident shards hold a sliver of each CPU; a fit sized to whole CPUs would wait forever."""
    from framelab.frames import Frame
    from framelab.toolkits import kmeans, nearest_neighbors

    assert ray.cluster_resources().get("CPU") == 2
    x = np.random.default_rng(0).normal(size=(100_000, 96)).astype(np.float32)   # 38 MB: more than one shard
    frame = Frame({"v": x})
    model = nearest_neighbors.create(frame, verbose=False)
    assert model is not None
    clusters = kmeans.create(frame, num_clusters=100, max_iterations=2, seed=0, verbose=False)
    assert clusters.num_clusters == 100


def test_every_way_ray_reports_a_lost_actor_or_node_is_a_node_loss():
    from ray import exceptions as rex

    from framelab.platform.sharded import node_loss

    lost = [rex.ActorUnavailableError("unreachable", None), rex.ActorDiedError(), rex.RayActorError(),
            rex.NodeDiedError("node gone"), rex.WorkerCrashedError(), rex.ObjectLostError("ab" * 14, "owner", "")]
    for err in lost:
        wrapped = rex.RayTaskError("run", "traceback", err).as_instanceof_cause()
        outer = RuntimeError("while awaiting")
        outer.__cause__ = wrapped
        assert node_loss(err) is err and node_loss(wrapped) is not None and node_loss(outer) is not None, err
    assert node_loss(ValueError("bad input")) is None
