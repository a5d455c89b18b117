"""Model actors kept warm between calls: a network is loaded once per session, not once per call.

Starting an actor that loads a network (a process, torch, the weights) costs
seconds; running it on two images costs milliseconds. So a pool of such
actors outlives the call that started it: the next call with the same
``key`` (a model, its weights, its device) finds it warm. A pool is released
when it has been idle for :data:`IDLE_SECONDS`, when work waits for the
resources it holds (Ray reports pending demand), when another pool is sized
and would not fit beside it (:func:`framelab.platform.resources.reclaim`), or
when the Ray session it was started in is gone.

Each actor builds its worker once with the ``factory`` it is given, then
runs ``worker(*parts)`` on every call. An actor that dies (a lost node, an
out-of-memory kill) is restarted and its call retried, so no call is lost or
run twice on a live actor. Results that lived on a lost node are rebuilt by
Ray through the actor that made them, so a pool stays in use while something
still holds its results (:meth:`WarmPool.keep_for`): released earlier, its
killed actors could rebuild nothing. Such a pool still gives way to another
pool that needs its room, as a held result is only read, not being made.

Example:
    >>> from framelab.platform import warm_pools
    >>> from framelab.platform.resources import PoolSize
    >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
    >>> with warm_pools.use("doubler", lambda: (lambda x: 2 * x), size) as pool:
    ...     pool.call(21)
    42
    >>> "doubler" in warm_pools.warm_keys()          # still warm for the next call
    True
    >>> warm_pools.release("doubler")
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from framelab.platform.remote_errors import get as _get
from framelab.platform.resources import PoolSize, on_reclaim, pending_demands

# A warm pool nobody used for this long gives its CPUs (or GPUs) back.
IDLE_SECONDS = float(os.environ.get("FRAMELAB_WARM_IDLE_S", "60"))
# Calls queued on one actor: one running and one waiting keeps it busy; more
# would pile work on one actor while another sits idle.
MAX_IN_FLIGHT = 2
_RESTARTS = 3
_WATCH_SECONDS = 1.0
_PING_SECONDS = 10.0
# Placing a pool's actors one per node: tries, and how long each waits for room.
_PLACEMENT_TRIES = 4
_PLACEMENT_WAIT_S = 5.0


class _Host:
    """One actor: builds its worker once, then runs it on every call."""

    def __init__(self, factory: Callable[[], Callable[..., Any]]):
        self.worker = factory()

    def call(self, *parts: Any) -> Any:
        return self.worker(*parts)

    def where(self) -> tuple[str, int]:
        import ray

        return ray.get_runtime_context().get_node_id(), os.getpid()


class WarmPool:
    """A fixed set of started actors, each holding one worker built by ``factory``.

    Get one with :func:`use`, which reuses a warm pool for the same key.

    Example:
        >>> from framelab.platform import warm_pools
        >>> from framelab.platform.resources import PoolSize
        >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
        >>> with warm_pools.use("negate", lambda: (lambda x: -x), size) as pool:
        ...     pool.size.max_size, pool.call(3)
        (1, -3)
        >>> warm_pools.release("negate")
    """

    def __init__(self, key: Hashable, factory: Callable[[], Callable[..., Any]], size: PoolSize):
        import ray

        self.key = key
        self.size = size
        self.users = 0
        self.holders = 0  # things that hold the pool's results (keep_for)
        self.last_used = time.monotonic()
        # One actor per node before two on any node, through a placement group
        # whose placement is checked (see _spread_group). Not a node affinity:
        # Ray restarts an actor with its strategy, and one tied to a node that
        # died stays pending; a group's bundles are placed again elsewhere.
        self._group = _spread_group(size)
        self.actors = [
            ray.remote(_Host).options(
                num_cpus=size.num_cpus,
                num_gpus=size.num_gpus,
                scheduling_strategy=_in_group(self._group, i),
                max_restarts=_RESTARTS,
                max_task_retries=_RESTARTS,
            ).remote(factory)
            for i in range(size.max_size)
        ]
        self._next = itertools.cycle(range(len(self.actors)))

    @property
    def cpus(self) -> float:
        """CPUs the pool holds while it lives."""
        return self.size.max_size * self.size.num_cpus

    @property
    def gpus(self) -> float:
        """GPUs the pool holds while it lives."""
        return self.size.max_size * self.size.num_gpus

    def call(self, *parts: Any) -> Any:
        """Run the worker on ``parts`` in one actor and return its result (errors raised as themselves).

        Example:
            >>> from framelab.platform import warm_pools
            >>> from framelab.platform.resources import PoolSize
            >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
            >>> with warm_pools.use("adder", lambda: (lambda a, b: a + b), size) as pool:
            ...     pool.call(2, 3)
            5
            >>> warm_pools.release("adder")
        """
        actor = self.actors[next(self._next)]
        return _get(actor.call.remote(*parts))

    def map(self, parts: Iterable[list[Any]]) -> list[Any]:
        """Run the worker on each item of ``parts`` (a list of arguments, often object refs), in order.

        Returns the object refs of the results, one per item, in input order.
        At most :data:`MAX_IN_FLIGHT` calls wait on an actor; the next item
        goes to the least busy one. Consuming ``parts`` lazily is what lets
        the stage feeding the pool (decode tasks) run ahead only so far.

        Example:
            >>> import ray
            >>> from framelab.platform import warm_pools
            >>> from framelab.platform.resources import PoolSize
            >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
            >>> with warm_pools.use("square", lambda: (lambda x: x * x), size) as pool:
            ...     ray.get(pool.map([[1], [2], [3]]))
            [1, 4, 9]
            >>> warm_pools.release("square")
        """
        import ray

        results: list[Any] = []
        pending: dict[Any, int] = {}  # result ref -> actor index
        load = [0] * len(self.actors)
        for args in parts:
            while min(load) >= MAX_IN_FLIGHT:
                done, _ = ray.wait(list(pending), num_returns=1, fetch_local=False)
                for ref in done:
                    load[pending.pop(ref)] -= 1
            index = min(range(len(load)), key=load.__getitem__)
            ref = self.actors[index].call.remote(*args)
            pending[ref] = index
            load[index] += 1
            results.append(ref)
        if results:
            ray.wait(results, num_returns=len(results), fetch_local=False)
        return results

    def keep_for(self, holder: Any) -> None:
        """Keep the pool from being released for idleness or waiting work until ``holder`` (say a Dataset over its results) is gone.

        Ray rebuilds a result lost with its node by running its call again on
        the same actor, restarted; a pool released while its results are
        still read would leave them nothing to be rebuilt by. Another pool
        that needs the room still gets it (:func:`framelab.platform.resources.reclaim`).

        Example:
            >>> import gc
            >>> from framelab.platform import warm_pools
            >>> from framelab.platform.resources import PoolSize
            >>> class Results: pass
            >>> results = Results()
            >>> with warm_pools.use("kept", lambda: abs, PoolSize(1, 1, 0.25, 0.0)) as pool:
            ...     pool.keep_for(results)
            >>> pool.holders
            1
            >>> del results; _ = gc.collect()
            >>> pool.holders
            0
            >>> warm_pools.release("kept")
        """
        with _lock:
            self.holders += 1
        weakref.finalize(holder, _let_go, self)

    def where(self) -> list[tuple[str, int]]:
        """(node id, process id) of each actor: which nodes the pool runs on.

        Example:
            >>> from framelab.platform import warm_pools
            >>> from framelab.platform.resources import PoolSize
            >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
            >>> with warm_pools.use("where", lambda: abs, size) as pool:
            ...     len(pool.where())
            1
            >>> warm_pools.release("where")
        """
        return _get([a.where.remote() for a in self.actors], timeout=_PING_SECONDS)

    def alive(self) -> bool:
        """True when every actor answers (a dead pool is replaced, not reused).

        Example:
            >>> from framelab.platform import warm_pools
            >>> from framelab.platform.resources import PoolSize
            >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
            >>> with warm_pools.use("alive", lambda: abs, size) as pool:
            ...     pool.alive()
            True
            >>> warm_pools.release("alive")
        """
        try:
            self.where()
        except Exception:  # noqa: BLE001 - a dead actor, a lost node, a timeout: replace the pool
            return False
        return True

    def close(self) -> None:
        """Stop the actors and free what they hold."""
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already dead, or Ray already shut down
                ray.kill(actor)
        self.actors = []
        if self._group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(self._group)
            self._group = None

    def __repr__(self) -> str:
        return f"WarmPool({self.key!r}: {len(self.actors)} actor(s), {self.users} user(s))"


def _spread_group(size: PoolSize) -> Any:
    """A placement group of one bundle per actor, on as many nodes as can hold one (None for actors that reserve nothing).

    Ray spreads actors, and a group's bundles, over the nodes with room at
    that moment: in CI a node briefly busy got none, and a two-node pool
    shared one node for the whole job (with "SPREAD" actors, then with a
    SPREAD group alike). So a group placed on fewer nodes than could hold it
    is placed again, a few times.
    """
    import ray
    from ray.util.placement_group import (
        placement_group,
        placement_group_table,
        remove_placement_group,
    )

    bundle = {name: amount for name, amount in (("CPU", size.num_cpus), ("GPU", size.num_gpus)) if amount > 0}
    if not bundle:
        return None
    fitting = sum(
        1 for n in ray.nodes()
        if n.get("Alive") and all(n.get("Resources", {}).get(r, 0) >= amount for r, amount in bundle.items())
    )
    wanted = min(size.max_size, fitting)
    for attempt in range(_PLACEMENT_TRIES):
        group = placement_group([bundle] * size.max_size, strategy="SPREAD")
        if not group.wait(timeout_seconds=_PLACEMENT_WAIT_S):
            return group  # the cluster is full for now: the actors wait for room as any would
        nodes = set(placement_group_table(group).get("bundles_to_node_id", {}).values())
        if len(nodes) >= wanted or attempt == _PLACEMENT_TRIES - 1:
            return group
        remove_placement_group(group)
        time.sleep(0.2 * (attempt + 1))
    return group


def _in_group(group: Any, index: int) -> Any:
    """The scheduling strategy that puts an actor in bundle ``index`` of ``group`` ("SPREAD" without one)."""
    if group is None:
        return "SPREAD"
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    return PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=index)


_lock = threading.RLock()
_pools: dict[Hashable, WarmPool] = {}
_session: tuple | None = None
_watcher: threading.Thread | None = None


@contextlib.contextmanager
def use(key: Hashable, factory: Callable[[], Callable[..., Any]], size: PoolSize) -> Iterator[WarmPool]:
    """The warm pool for ``key`` (started with ``factory`` and ``size`` if there is none), for one use.

    While in use a pool is never released; afterwards it stays warm until it
    is idle for :data:`IDLE_SECONDS` or its resources are needed elsewhere.

    Example:
        >>> from framelab.platform import warm_pools
        >>> from framelab.platform.resources import PoolSize
        >>> size = PoolSize(min_size=1, max_size=1, num_cpus=0.25, num_gpus=0.0)
        >>> with warm_pools.use("upper", lambda: str.upper, size) as pool:
        ...     first = pool.where()
        >>> with warm_pools.use("upper", lambda: str.upper, size) as pool:
        ...     pool.where() == first                 # the same actor, still warm
        True
        >>> warm_pools.release("upper")
    """
    pool = _acquire(key, factory, size)
    try:
        yield pool
    finally:
        _done_with(pool)


def _done_with(pool: WarmPool) -> None:
    with _lock:
        pool.users -= 1
        pool.last_used = time.monotonic()


def _let_go(pool: WarmPool) -> None:
    with _lock:
        pool.holders -= 1
        pool.last_used = time.monotonic()


def find(key: Hashable) -> WarmPool | None:
    """The warm pool for ``key`` if one is alive in this session (to inspect it; :func:`use` it to run work).

    Example:
        >>> from framelab.platform.warm_pools import find
        >>> find("no such model") is None
        True
    """
    with _lock:
        _forget_old_session()
        return _pools.get(key)


def warm_keys() -> list[Hashable]:
    """Keys of the pools alive in this session.

    Example:
        >>> from framelab.platform.warm_pools import warm_keys
        >>> isinstance(warm_keys(), list)
        True
    """
    with _lock:
        _forget_old_session()
        return list(_pools)


def release(key: Hashable | None = None) -> None:
    """Stop the warm pool for ``key`` (every idle pool when None); pools in use are kept.

    Example:
        >>> from framelab.platform import warm_pools
        >>> from framelab.platform.resources import PoolSize
        >>> with warm_pools.use("to release", lambda: abs, PoolSize(1, 1, 0.25, 0.0)):
        ...     pass
        >>> warm_pools.release("to release")
        >>> warm_pools.find("to release") is None
        True
    """
    with _lock:
        for k in [k for k in _pools if key is None or k == key]:
            if _pools[k].users == 0:
                _pools.pop(k).close()


def _acquire(key: Hashable, factory: Callable, size: PoolSize) -> WarmPool:
    from framelab.platform.resources import reclaim

    with _lock:
        _forget_old_session()
        pool = _pools.get(key)
        if pool is not None and pool.users == 0 and not pool.alive():
            _pools.pop(key).close()
            pool = None
        if pool is None:
            reclaim(cpus=size.max_size * size.num_cpus, gpus=size.max_size * size.num_gpus, keep=key)
            pool = WarmPool(key, factory, size)
            _pools[key] = pool
            _start_watcher()
        pool.users += 1
        return pool


def _reclaim(cpus: float, gpus: float, keep: Hashable | None) -> None:
    """Release idle pools, least recently used first, until ``cpus`` and ``gpus`` are free."""
    import ray

    with _lock:
        _forget_old_session()
        idle = sorted((p for k, p in _pools.items() if k != keep and p.users == 0), key=lambda p: p.last_used)
        if not idle or not ray.is_initialized():
            return
        free = ray.available_resources()
        free_cpus, free_gpus = free.get("CPU", 0.0), free.get("GPU", 0.0)
        for pool in idle:
            if free_cpus >= cpus and free_gpus >= gpus:
                break
            _pools.pop(pool.key).close()
            free_cpus += pool.cpus
            free_gpus += pool.gpus


def _forget_old_session() -> None:
    """Drop the handles of pools started in a Ray session that has since shut down."""
    global _session
    import ray

    current = session_token() if ray.is_initialized() else None
    if current != _session:
        _pools.clear()  # their actors died with their session
        _session = current


def session_token() -> tuple:
    """What identifies the Ray session this driver is in (a new one after a shutdown and connect).

    Example:
        >>> from framelab.platform.warm_pools import session_token
        >>> len(session_token())
        2
    """
    import ray

    ctx = ray.get_runtime_context()
    return ctx.get_job_id(), ctx.get_node_id()


def _start_watcher() -> None:
    global _watcher
    if _watcher is None or not _watcher.is_alive():
        _watcher = threading.Thread(target=_watch, name="framelab-warm-pools", daemon=True)
        _watcher.start()


def _watch() -> None:
    """Release idle pools after :data:`IDLE_SECONDS`, or at once when work waits for resources."""
    global _watcher
    while True:
        time.sleep(_WATCH_SECONDS)
        with _lock:
            try:
                _forget_old_session()
            except Exception:  # noqa: BLE001 - Ray is shutting down under us
                _pools.clear()
            now = time.monotonic()
            idle = [p for p in _pools.values() if p.users == 0 and p.holders == 0]
            expired = [p for p in idle if now - p.last_used >= IDLE_SECONDS]
            if len(expired) < len(idle) and bool(pending_demands()):
                expired = idle
            for pool in expired:
                _pools.pop(pool.key, None)
                pool.close()
            if not _pools:
                _watcher = None
                return


on_reclaim(_reclaim)
