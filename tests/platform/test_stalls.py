"""A job whose tasks can never be placed fails within the stall limit, naming what holds the CPUs."""

from __future__ import annotations

import time

import pytest


def test_a_job_that_cannot_be_placed_fails_in_time_naming_the_holders(monkeypatch):
    import ray
    import ray.data

    from framelab.frames.execution import run_to_end
    from framelab.platform.errors import StalledError

    monkeypatch.setenv("FRAMELAB_STALL_S", "3")

    @ray.remote
    class CpuHog:
        def ready(self) -> bool:
            return True

    hog = CpuHog.options(num_cpus=ray.cluster_resources()["CPU"]).remote()
    ray.get(hog.ready.remote())
    try:
        start = time.monotonic()
        with pytest.raises(StalledError) as caught:
            run_to_end(ray.data.range(4, override_num_blocks=2).map_batches(lambda b: b, num_cpus=1), "stuck job")
        assert time.monotonic() - start < 60
    finally:
        ray.kill(hog)
    message = str(caught.value)
    assert "stuck job" in message and "CpuHog" in message and "FRAMELAB_STALL_S" in message
    assert "{'CPU': 1.0}" in message
