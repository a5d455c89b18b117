"""framelab.platform.resources: pool sizes as functions of the cluster's shape, whatever machine runs the tests."""

from __future__ import annotations

import pytest

from framelab.platform.resources import plan_feeding_tasks, plan_model_pool, plan_pool, threads_for


@pytest.mark.parametrize(
    ("cpus", "actors", "per_actor", "feeders"),
    [
        (2, 2, 0.5, 1),   # a laptop: two half-CPU actors, one CPU left for one decode task
        (4, 4, 0.75, 1),
        (16, 7, 2.0, 2),  # two-thread actors, an eighth of the CPUs for decoding
        (64, 28, 2.0, 8),
    ],
)
def test_cpu_model_pools_leave_their_decode_tasks_the_cpus_the_actors_leave(cpus, actors, per_actor, feeders):
    pool = plan_model_pool("cpu", cpus=cpus, gpus=0)
    assert (pool.max_size, pool.num_cpus) == (actors, per_actor)
    assert pool.initial_size == pool.max_size  # loading a network is slow: start them all at once
    assert pool.max_size * pool.num_cpus + pool.spare_cpus == cpus
    assert plan_feeding_tasks(pool, "cpu", nodes=1) == {"num_cpus": 0.25, "concurrency": feeders}


def test_every_node_gets_a_decode_task_to_feed_its_actors():
    pool = plan_model_pool("cpu", cpus=2, gpus=0)  # e.g. two nodes of one CPU
    assert plan_feeding_tasks(pool, "cpu", nodes=2)["concurrency"] == 2


def test_gpu_pools_take_one_actor_per_gpu_and_leave_decoding_uncapped():
    pool = plan_model_pool("cuda", cpus=16, gpus=4)
    assert (pool.max_size, pool.num_gpus, pool.num_cpus) == (4, 1.0, 0.25)
    assert plan_feeding_tasks(pool, "cuda", nodes=1) == {"num_cpus": 1.0}
    with pytest.raises(RuntimeError, match="device='cpu'"):
        plan_model_pool("cuda", cpus=16, gpus=0)


def test_plain_pools_keep_the_reserve_for_their_feeders():
    assert plan_pool(2, 0, use_gpu=False).max_size == 1
    assert plan_pool(2, 0, use_gpu=False, reserve_cpus=0).max_size == 2
    assert plan_pool(32, 0, use_gpu=False, max_actors=4).max_size == 4
    assert threads_for(1.0) == 1 and threads_for(0.25) == 1 and threads_for(2.0) == 2
