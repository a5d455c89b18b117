"""Compute sizing: the one place that decides how many actors, tasks and threads a stage gets.

Actor pools that take every CPU starve the tasks that feed them and the
pipeline stalls; every pool in framelab is sized here so upstream stages
always keep room. The decisions are pure functions of what the cluster has
(:func:`plan_pool`, :func:`plan_model_pool`, :func:`plan_feeding_tasks`), so
they are tested with any cluster shape; thin wrappers read the connected
cluster once (:func:`cluster_facts`).

Sizing a pool is also where CPUs held by warm model actors
(:mod:`framelab.platform.warm_pools`) are given back when the new pool would
not fit beside them (:func:`reclaim`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace
from typing import Any

# Logical CPUs of one task feeding a model pool (decoding images): small, so
# feeding always fits beside the model actors, even on a node running one.
FEEDER_CPUS = {"cpu": 0.25, "cuda": 1.0}
# CPU pools hold at least this many CPUs back for their feeders on small clusters.
_SMALL_CLUSTER_CPUS = 8


@dataclass(frozen=True)
class PoolSize:
    """How an actor pool should be started.

    Example:
        >>> from framelab.platform.resources import PoolSize
        >>> PoolSize(min_size=1, max_size=2, num_cpus=0.5, num_gpus=0.0).max_size * 0.5
        1.0
    """

    min_size: int
    max_size: int
    num_cpus: float
    num_gpus: float
    # Actors started up front (None: Ray Data's default, the minimum).
    initial_size: int | None = None
    # CPUs of the cluster a full pool leaves to the tasks that feed it.
    spare_cpus: float = 0.0

    def ray_kwargs(self) -> dict:
        """Keyword arguments for ``Dataset.map_batches`` with a callable class.

        Example:
            >>> from framelab.platform.resources import PoolSize
            >>> PoolSize(min_size=1, max_size=2, num_cpus=1.0, num_gpus=0.0).ray_kwargs()["scheduling_strategy"]
            'SPREAD'
        """
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


@dataclass(frozen=True)
class ClusterFacts:
    """What sizing needs to know about the cluster: its CPUs, GPUs and live nodes."""

    cpus: float
    gpus: float
    nodes: int


def cluster_facts() -> ClusterFacts:
    """CPUs, GPUs and live nodes of the connected cluster (connecting if needed).

    Example:
        >>> from framelab.platform.resources import cluster_facts
        >>> facts = cluster_facts()
        >>> facts.nodes >= 1 and facts.cpus >= 1
        True
    """
    import ray

    from framelab.platform.session import ensure_connected

    ensure_connected()
    resources = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return ClusterFacts(float(resources.get("CPU", 0)), float(resources.get("GPU", 0)), max(1, nodes))


def cluster_cpus() -> float:
    """CPUs in the connected cluster (connecting if needed; see :func:`cluster_facts`).

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


def plan_pool(
    cpus: float,
    gpus: float,
    *,
    use_gpu: bool,
    cpus_per_actor: float = 1.0,
    reserve_cpus: float = 1.0,
    max_actors: int | None = None,
) -> PoolSize:
    """Size an actor pool for a cluster of ``cpus`` and ``gpus`` so its feeders keep CPUs.

    GPU pools get one actor per GPU (a sliver of CPU each, so they never
    compete with decoding). CPU pools leave ``reserve_cpus`` for upstream read
    and decode tasks: on a 2-CPU cluster that is one actor, not two.

    Example:
        >>> from framelab.platform.resources import plan_pool
        >>> plan_pool(2, 0, use_gpu=False).max_size, plan_pool(16, 0, use_gpu=False).max_size
        (1, 15)
    """
    if use_gpu:
        if gpus < 1:
            raise RuntimeError(
                "device='cuda' was requested but the Ray cluster has no GPU; "
                "use device='cpu' (or 'auto') or connect to a cluster with GPUs."
            )
        size = int(gpus) if max_actors is None else max(1, min(int(gpus), max_actors))
        return PoolSize(min_size=1, max_size=size, num_cpus=0.25, num_gpus=1.0)
    free = max(cpus - reserve_cpus, cpus_per_actor)
    size = max(1, math.floor(free / cpus_per_actor))
    if max_actors is not None:
        size = max(1, min(size, max_actors))
    return PoolSize(
        min_size=1, max_size=size, num_cpus=cpus_per_actor, num_gpus=0.0, spare_cpus=cpus - size * cpus_per_actor
    )


def actor_pool(
    *,
    use_gpu: bool,
    cpus_per_actor: float = 1.0,
    reserve_cpus: float = 1.0,
    max_actors: int | None = None,
) -> PoolSize:
    """Size an actor pool for the connected cluster (see :func:`plan_pool`) and make room for it.

    Warm model actors that would stand in the new pool's way are released
    first (:func:`reclaim`): a pool must never wait on actors that sit idle.

    Example:
        >>> from framelab.platform.resources import actor_pool
        >>> pool = actor_pool(use_gpu=False)
        >>> pool.max_size >= 1
        True
    """
    facts = cluster_facts()
    pool = plan_pool(
        facts.cpus, facts.gpus, use_gpu=use_gpu, cpus_per_actor=cpus_per_actor,
        reserve_cpus=reserve_cpus, max_actors=max_actors,
    )
    reclaim(cpus=pool.max_size * pool.num_cpus, gpus=pool.max_size * pool.num_gpus)
    return pool


def plan_model_pool(device: str, cpus: float, gpus: float) -> PoolSize:
    """The pool of model actors (deep features and other networks) for a cluster, started whole.

    On a GPU cluster, one actor per GPU. On small CPU clusters, one
    single-threaded actor per CPU with one whole CPU of Ray's accounting left
    free, so decode tasks always get scheduled (physically the actors share
    cores with decoding, which is ~10x less work per image than the network).
    On bigger ones, two-thread actors and an eighth of the CPUs for decoding.

    Example:
        >>> from framelab.platform.resources import plan_model_pool
        >>> pool = plan_model_pool("cpu", cpus=2, gpus=0)
        >>> pool.max_size, pool.num_cpus, pool.spare_cpus
        (2, 0.5, 1.0)
    """
    if device == "cuda":
        return plan_pool(cpus, gpus, use_gpu=True)
    if cpus < _SMALL_CLUSTER_CPUS:
        reserve = 1.0
        # At most 1 - a feeder's share: a node of 1 CPU running one actor keeps room for a feeding task
        # (the reserve is summed over the cluster, and a pool spread over small nodes splits it in slivers).
        per_actor = min(max(0.5, (cpus - reserve) / max(1.0, cpus)), 1.0 - FEEDER_CPUS["cpu"])
        pool = plan_pool(cpus, gpus, use_gpu=False, cpus_per_actor=per_actor, reserve_cpus=reserve)
    else:
        pool = plan_pool(cpus, gpus, use_gpu=False, cpus_per_actor=2.0, reserve_cpus=cpus / 8)
    # Loading a network is the slow part of an actor's life: start them all at once.
    return replace(pool, initial_size=pool.max_size)


def plan_feeding_tasks(pool: PoolSize, device: str, nodes: int) -> dict:
    """Ray Data task arguments for the stage that feeds a model pool (decoding images).

    On CPUs the feeders get only the CPUs the actors leave: unbounded, decode
    tasks ran four to a core beside the actors and cost the model stage 18% of
    its speed (1,200 Caltech images on 2 cores: 31 images/s unbounded, 45 with
    one decode task). At least one per node, so every node's actors are fed
    from local blocks. On GPUs decoding is the bottleneck: no cap.

    Example:
        >>> from framelab.platform.resources import plan_feeding_tasks, plan_model_pool
        >>> plan_feeding_tasks(plan_model_pool("cpu", cpus=2, gpus=0), "cpu", nodes=1)
        {'num_cpus': 0.25, 'concurrency': 1}
    """
    if device == "cuda":
        return {"num_cpus": FEEDER_CPUS["cuda"]}
    return {"num_cpus": FEEDER_CPUS["cpu"], "concurrency": max(1, nodes, int(pool.spare_cpus))}


def node_strategies(count: int) -> list[Any]:
    """Scheduling strategies that place ``count`` long-lived actors round-robin over the alive nodes.

    Ray's "SPREAD" is a preference that a busy moment can override (every
    actor on the node that reported room first); an affinity per actor puts
    one on each node before two on any. Soft: an actor whose node is full or
    gone goes wherever there is room. Only for actors framelab replaces itself:
    Ray restarts an actor with the same strategy, and one tied to a node that
    died stays pending.

    Example:
        >>> from framelab.platform.resources import node_strategies
        >>> len(node_strategies(3))
        3
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0)
    if not nodes:
        return ["SPREAD"] * count
    # Soft alone waits forever on a node that exists but is full; spilling lets the actor go where there is room.
    return [NodeAffinitySchedulingStrategy(nodes[i % len(nodes)], soft=True, _spill_on_unavailable=True)
            for i in range(count)]


# Holders of CPUs that can give them back on demand (warm model actors); each
# takes (cpus, gpus, keep) and releases what it holds beyond ``keep``.
_RECLAIMERS: list[Callable[[float, float, Hashable | None], None]] = []


def on_reclaim(callback: Callable[[float, float, Hashable | None], None]) -> Callable[[], None]:
    """Register a holder of idle resources that :func:`reclaim` may ask to let go; returns its unregistration.

    Example:
        >>> from framelab.platform.resources import on_reclaim, reclaim
        >>> asked = []
        >>> stop = on_reclaim(lambda cpus, gpus, keep: asked.append((cpus, gpus)))
        >>> reclaim(cpus=2.0)
        >>> stop()
        >>> asked
        [(2.0, 0.0)]
    """
    if callback not in _RECLAIMERS:
        _RECLAIMERS.append(callback)

    def stop() -> None:
        if callback in _RECLAIMERS:
            _RECLAIMERS.remove(callback)

    return stop


def reclaim(cpus: float = 0.0, gpus: float = 0.0, keep: Hashable | None = None) -> None:
    """Ask idle holders (warm model actors) to free resources so ``cpus`` and ``gpus`` fit.

    ``keep`` names a holder that must stay (the pool about to be used).

    Example:
        >>> from framelab.platform import warm_pools
        >>> from framelab.platform.resources import PoolSize, reclaim
        >>> with warm_pools.use("idle model", lambda: abs, PoolSize(1, 1, 0.25, 0.0)):
        ...     pass
        >>> reclaim(cpus=1e6)          # more than the cluster has: every idle pool lets go
        >>> "idle model" in warm_pools.warm_keys()
        False
    """
    for callback in list(_RECLAIMERS):
        callback(cpus, gpus, keep)


def threads_for(num_cpus: float) -> int:
    """Threads a worker should give torch/BLAS, from the CPUs Ray granted it.

    Example:
        >>> from framelab.platform.resources import threads_for
        >>> threads_for(1.0)
        1
    """
    return max(1, int(round(num_cpus)))


# CPUs a long-lived actor reserves while it holds data between calls (a
# model's reference vectors): a sliver, so Ray Data tasks started while it
# waits (extracting features of the next queries) are never refused a CPU.
RESIDENT_ACTOR_CPUS = 0.01


def resident_pool(*, use_gpu: bool = False) -> PoolSize:
    """Size a pool of long-lived actors that keep data in memory between calls.

    One actor per CPU of the cluster (per GPU with ``use_gpu``), each
    computing on one thread but reserving only :data:`RESIDENT_ACTOR_CPUS`:
    the pool lives as long as the model that owns it, and a pool that
    reserved whole CPUs would starve every later job of the session.

    Example:
        >>> from framelab.platform.resources import resident_pool
        >>> pool = resident_pool()
        >>> pool.max_size >= 1, pool.num_cpus < 0.1
        (True, True)
    """
    if use_gpu:
        gpus = int(cluster_gpus())
        if gpus < 1:
            raise RuntimeError("a GPU pool was requested but the Ray cluster has no GPU")
        return PoolSize(min_size=1, max_size=gpus, num_cpus=RESIDENT_ACTOR_CPUS, num_gpus=1.0)
    size = max(1, math.floor(cluster_cpus()))
    return PoolSize(min_size=1, max_size=size, num_cpus=RESIDENT_ACTOR_CPUS, num_gpus=0.0)


def largest_free_cpus() -> float:
    """The most CPUs free on any one node right now (a task asking for a whole CPU needs one such node).

    Example:
        >>> from framelab.platform.resources import largest_free_cpus
        >>> largest_free_cpus() >= 0
        True
    """
    from ray._private import state

    try:
        free = state.available_resources_per_node()
    except Exception:  # noqa: BLE001 - an internal API: assume room, as before
        return float("inf")
    return max((float(r.get("CPU", 0)) for r in free.values()), default=0.0)


def pending_demands(*, tasks: bool = False) -> str:
    """What Ray reports as waiting for resources (tasks, actors, placement groups); "" when nothing waits.

    ``tasks=True`` also asks the state API for tasks no node can take although
    the cluster has the CPUs in sum (an HTTP call: for a stall's rare check,
    not for the warm-pool watcher's every second).

    Example:
        >>> from framelab.platform.resources import pending_demands
        >>> isinstance(pending_demands(), str)
        True
    """
    try:
        from ray._private.worker import global_worker
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        state = get_cluster_resource_state(global_worker.gcs_client)
    except Exception:  # noqa: BLE001 - an internal API: without it nothing is reported as waiting
        return ""
    asks = []
    for request in state.pending_resource_requests:
        shape = dict(request.request.resources_bundle)
        asks.append(f"{request.count} request(s) of {shape}")
    if state.pending_gang_resource_requests:
        asks.append(f"{len(state.pending_gang_resource_requests)} placement group(s)")
    if not asks and tasks:
        # Enough CPUs in all but on no one node: Ray's autoscaler counts no demand, the tasks still wait.
        asks = _tasks_waiting_for_a_node()
    return ", ".join(asks)


def _tasks_waiting_for_a_node() -> list[str]:
    try:
        from ray.util.state import list_tasks

        waiting = list_tasks(filters=[("state", "=", "PENDING_NODE_ASSIGNMENT")], timeout=10,
                             raise_on_missing_output=False)
    except Exception:  # noqa: BLE001 - no dashboard (an embedded Ray): nothing more to say
        return []
    names = sorted({t.name for t in waiting})
    return [f"{len(waiting)} task(s) waiting for a node ({', '.join(names[:3])})"] if waiting else []
