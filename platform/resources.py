"""Compute sizing: the one place that decides how many actors and threads a stage gets.

Ray Data actor pools that take every CPU starve the read tasks that feed them
and the pipeline stalls; every pool in framelab is sized here so upstream
stages always keep room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PoolSize:
    """How an actor pool should be started."""

    min_size: int
    max_size: int
    num_cpus: float
    num_gpus: float
    # Actors started up front (None: Ray Data's default, the minimum).
    initial_size: int | None = None
    # CPUs of the cluster a full pool leaves to the tasks that feed it.
    spare_cpus: float = 0.0

    def ray_kwargs(self) -> dict:
        """Keyword arguments for ``Dataset.map_batches`` with a callable class."""
        from ray.data import ActorPoolStrategy

        # A CPU actor's task is long (a model on a batch): two in flight keep it
        # busy, and more let Ray Data's locality pile queued work on one node's
        # actor while another node's sits idle.
        in_flight = 2 if self.num_gpus == 0 else None
        compute = ActorPoolStrategy(
            min_size=self.min_size, max_size=self.max_size, initial_size=self.initial_size,
            max_tasks_in_flight_per_actor=in_flight,
        )
        # Fractional-CPU actors would otherwise pack onto whichever node had room first.
        return {"compute": compute, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "scheduling_strategy": "SPREAD"}


def cluster_cpus() -> float:
    """CPUs in the connected cluster (connecting if needed).

    Example:
        >>> from framelab.platform.resources import cluster_cpus
        >>> cluster_cpus() >= 1
        True
    """
    import ray

    from framelab.platform.session import ensure_connected

    ensure_connected()
    return float(ray.cluster_resources().get("CPU", 0))


def cluster_gpus() -> float:
    """GPUs in the connected cluster (connecting if needed).

    Example:
        >>> from framelab.platform.resources import cluster_gpus
        >>> cluster_gpus() >= 0
        True
    """
    import ray

    from framelab.platform.session import ensure_connected

    ensure_connected()
    return float(ray.cluster_resources().get("GPU", 0))


def actor_pool(
    *,
    use_gpu: bool,
    cpus_per_actor: float = 1.0,
    reserve_cpus: float = 1.0,
    max_actors: int | None = None,
) -> PoolSize:
    """Size an actor pool so the stages feeding it always have CPUs left.

    GPU pools get one actor per GPU (a sliver of CPU each, so they never
    compete with decoding). CPU pools leave ``reserve_cpus`` for upstream read
    and decode tasks: on a 2-core machine that is one actor, not two.

    Example:
        >>> from framelab.platform.resources import actor_pool
        >>> pool = actor_pool(use_gpu=False)
        >>> pool.max_size >= 1
        True
    """
    if use_gpu:
        gpus = int(cluster_gpus())
        if gpus < 1:
            raise RuntimeError(
                "device='cuda' was requested but the Ray cluster has no GPU; "
                "use device='cpu' (or 'auto') or connect to a cluster with GPUs."
            )
        size = gpus if max_actors is None else max(1, min(gpus, max_actors))
        return PoolSize(min_size=1, max_size=size, num_cpus=0.25, num_gpus=1.0)
    cpus = cluster_cpus()
    free = max(cpus - reserve_cpus, cpus_per_actor)
    size = max(1, math.floor(free / cpus_per_actor))
    if max_actors is not None:
        size = max(1, min(size, max_actors))
    return PoolSize(
        min_size=1, max_size=size, num_cpus=cpus_per_actor, num_gpus=0.0, spare_cpus=cpus - size * cpus_per_actor
    )


def threads_for(num_cpus: float) -> int:
    """Threads a worker should give torch/BLAS, from the CPUs Ray granted it.

    Example:
        >>> from framelab.platform.resources import threads_for
        >>> threads_for(1.0)
        1
    """
    return max(1, int(round(num_cpus)))
