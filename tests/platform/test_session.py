"""framelab.platform.session and resources against the real session Ray."""

from __future__ import annotations

import subprocess
import sys

from framelab.platform.resources import actor_pool, threads_for
from framelab.platform.session import connect, session_info


def test_connect_is_idempotent_and_describes_the_session():
    first = connect()
    second = connect()
    assert first.num_cpus == second.num_cpus >= 1
    assert session_info().num_nodes == 1
    assert "CPU" in repr(first)


def test_cpu_pools_leave_room_for_the_stages_that_feed_them():
    pool = actor_pool(use_gpu=False)
    assert pool.max_size == 1  # the test session has 2 CPUs: one actor, one CPU left for reads
    assert pool.ray_kwargs()["num_cpus"] == 1.0
    assert pool.ray_kwargs()["compute"].max_size == 1
    assert threads_for(1.0) == 1 and threads_for(0.25) == 1


def test_the_session_configures_ray_data_for_frames():
    import ray.data

    connect()
    ctx = ray.data.DataContext.get_current()
    assert ctx.execution_options.preserve_order is True  # frames keep their row order
    assert ctx.wait_for_min_actors_s > 0  # pools are placed before the tasks that feed them


def test_asking_for_gpus_on_a_cpu_cluster_says_what_to_do():
    import pytest

    with pytest.raises(RuntimeError, match="device='cpu'"):
        actor_pool(use_gpu=True)


def test_frame_operations_connect_lazily_and_quietly(tmp_path):
    script = (
        "import ray\n"
        "from framelab.frames import Frame\n"
        "assert not ray.is_initialized()\n"
        "print(Frame({'x': [1, 2, 3]}).repartition(2).num_rows())\n"
        "assert ray.is_initialized()\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "3"
    assert "INFO" not in out.stdout


def test_address_comes_from_the_argument_then_the_environment(monkeypatch):
    from framelab.platform.session import ADDRESS_ENV, resolve_address

    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    assert resolve_address(None) is None
    monkeypatch.setenv(ADDRESS_ENV, "ray://head:10001")
    assert resolve_address(None) == "ray://head:10001"
    assert resolve_address("auto") == "auto"
