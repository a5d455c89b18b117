"""platform/warm_pools.py: model actors outlive their call, and give their CPUs back when not needed."""

from __future__ import annotations

import os
import time

import pytest
import ray

from framelab.platform import warm_pools
from framelab.platform.resources import PoolSize, actor_pool

# Ray workers cannot import this test module: send its classes by value.
ray.cloudpickle.register_pickle_by_value(__import__(__name__))
ONE_CPU = PoolSize(min_size=1, max_size=1, num_cpus=1.0, num_gpus=0.0)


class _Counter:
    """A worker that remembers how many calls it served (state that only a warm actor keeps)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return (os.getpid(), self.calls, x)


def _wait_until(condition, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture(autouse=True)
def _no_pools_left():
    warm_pools.release()
    yield
    warm_pools.release()


def test_a_second_use_finds_the_same_actor_still_warm():
    with warm_pools.use("counter", _Counter, ONE_CPU) as pool:
        pid, calls, _ = pool.call("a")
    with warm_pools.use("counter", _Counter, ONE_CPU) as pool:
        again, more, _ = pool.call("b")
    assert (again, more) == (pid, calls + 1)
    assert [x for *_, x in ray.get(warm_pools.find("counter").map([["c"], ["d"]]))] == ["c", "d"]


def test_an_idle_pool_is_released_after_its_idle_time(monkeypatch):
    monkeypatch.setattr(warm_pools, "IDLE_SECONDS", 1.0)
    with warm_pools.use("short-lived", _Counter, ONE_CPU) as pool:
        pool.call(1)
    assert _wait_until(lambda: warm_pools.find("short-lived") is None, timeout=30)


def test_an_idle_pool_gives_its_cpu_to_work_that_waits_for_it():
    with warm_pools.use("holder", _Counter, ONE_CPU) as pool:
        pool.call(1)
    cpus = ray.cluster_resources()["CPU"]

    @ray.remote(num_cpus=cpus)
    def needs_every_cpu() -> str:
        return "ran"

    # While the pool lives the task cannot start; Ray reports its demand and the pool lets go.
    assert ray.get(needs_every_cpu.remote(), timeout=120) == "ran"
    assert warm_pools.find("holder") is None


def test_sizing_another_pool_releases_idle_model_actors_that_would_stand_in_its_way():
    with warm_pools.use("model", _Counter, PoolSize(1, 2, 1.0, 0.0)) as pool:
        pool.call(1)
    assert "model" in warm_pools.warm_keys()
    actor_pool(use_gpu=False, reserve_cpus=0)  # a pool of every CPU is about to start
    assert warm_pools.find("model") is None


def test_a_pool_in_use_is_never_released():
    with warm_pools.use("busy", _Counter, ONE_CPU) as pool:
        warm_pools.release("busy")
        actor_pool(use_gpu=False, reserve_cpus=0)
        assert warm_pools.find("busy") is pool
        assert pool.call(1)[2] == 1


def test_a_pool_whose_results_are_still_held_is_kept_for_waiting_work_then_released():
    """Results lost with a node are rebuilt through the actor that made them: it must outlive their readers."""
    with warm_pools.use("maker", _Counter, ONE_CPU) as pool:
        results = pool.map([[1], [2]])

        class Holder:  # stands for the Dataset over the results
            refs = results

        holder = Holder()
        pool.keep_for(holder)
    cpus = ray.cluster_resources()["CPU"]

    @ray.remote(num_cpus=cpus)
    def needs_every_cpu() -> str:
        return "ran"

    waiting = needs_every_cpu.remote()
    time.sleep(3 * warm_pools._WATCH_SECONDS)  # the watcher has seen the waiting task
    assert warm_pools.find("maker") is pool
    del holder
    assert ray.get(waiting, timeout=120) == "ran"  # gone with its results' holder, the pool lets go
    assert warm_pools.find("maker") is None


def test_a_pool_whose_results_are_held_still_gives_way_to_another_pool_that_needs_its_room():
    with warm_pools.use("read-only", _Counter, PoolSize(1, 2, 1.0, 0.0)) as pool:
        held = type("Holder", (), {"refs": pool.map([[1]])})()
        pool.keep_for(held)
    actor_pool(use_gpu=False, reserve_cpus=0)  # a pool of every CPU is about to start
    assert warm_pools.find("read-only") is None
    del held
