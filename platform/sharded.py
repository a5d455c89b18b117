"""Sharded in-memory data: a pool of Ray actors that each keep one shard for many passes.

Iterative algorithms (L-BFGS, k-means) touch the same rows dozens of times.
Re-reading blocks from the object store, or starting a Ray Train worker group,
costs far more per pass than the arithmetic; actors that hold their shard as
numpy arrays for the whole fit make one pass cost one round trip (about a
millisecond) plus the compute.

Measured on a 2-core machine (2026-11-28): one ``map`` round over 2 actors
with a 1280x100 float64 argument takes about 4 ms and starting the pool
0.2 s, while a Ray Train ``TorchTrainer`` with 2 workers took 15 s to start
and run 10 all-reduces. Data sets up to ``IN_PROCESS_MAX_BYTES`` skip the
actors altogether.

Blocks go from the object store straight to the actors (the driver only sees
object refs), each actor prefers the blocks already on its node, and actors
are spread over the nodes, so a data set that does not fit on one node still
fits in the cluster.

With ``max_restarts``, a shard whose actor dies (a lost node, an OOM kill) is
rebuilt on a new actor: it fetches the same blocks again (their refs are kept,
so they stay in the object store, spilled to disk under memory pressure),
runs ``load``, replays the :meth:`ShardedArrays.map` calls that changed the
state, then runs the call that was interrupted. An iterative fit carries on
from where it was, with the same numbers.

Example:
    >>> import numpy as np, ray
    >>> from framelab.platform.sharded import ShardedArrays
    >>> refs = [ray.put(np.arange(5.0)), ray.put(np.arange(5.0, 10.0))]
    >>> def load(blocks, offsets):
    ...     return {"x": np.concatenate(blocks)}
    >>> def total(state):
    ...     return state["x"].sum()
    >>> with ShardedArrays(refs, load) as shards:
    ...     float(sum(shards.map(total)))
    45.0
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import numpy as np
import ray

from framelab.platform.errors import NodeLostError
from framelab.platform.remote_errors import surfaced_errors

# Below this many bytes per shard, another actor costs more (process start,
# one more round trip per pass) than the arithmetic it takes over.
MIN_SHARD_BYTES = 1 << 20
# A data set this small is one shard kept in the driver's process: starting
# an actor (a process, its imports) would cost seconds for milliseconds of work.
IN_PROCESS_MAX_BYTES = 32 << 20
# Arguments larger than this are put in the object store once per pass and
# shared by every actor, rather than serialised once per actor.
_PUT_THRESHOLD = 64 << 10
# How far above the mean load a shard may take a block to keep it on its node.
_LOCALITY_SLACK = 1.25
# How far a replacement actor has been brought when the call that needs it is sent.
_NEW, _FETCHED, _LOADED = 0, 1, 2
# How often a call waiting on the shards checks that their actors are alive.
_LIVENESS_POLL_S = 5.0
# How long a replacement shard actor may wait for a node with room before the loss is reported:
# a cluster that lost a node may have no CPUs left for it, and waiting would hang the job.
_REPLACEMENT_WAIT_S = 45.0


class _Shard:
    """One actor: holds its shard's state and runs functions on it."""

    def __init__(self, num_threads: int | None):
        from threadpoolctl import threadpool_limits

        # BLAS would start one thread per core of the node and fight the
        # other shards on it; give it only the CPUs Ray granted this actor.
        self._limits = None if num_threads is None else threadpool_limits(limits=num_threads)
        self._blocks: list | None = None
        self.state: Any = None

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def fetch(self, refs: list) -> list[int]:
        # The refs arrive wrapped in a list so Ray does not resolve them in
        # the caller; this actor pulls them from the object store itself.
        self._blocks = ray.get(refs) if refs else []
        return [len(block) for block in self._blocks]

    def load(self, load: Callable, offsets: list[int]) -> None:
        blocks, self._blocks = self._blocks, None
        self.state = load(blocks, offsets)

    def run(self, fn: Callable, *args: Any) -> Any:
        return fn(self.state, *args)


class ShardedArrays:
    """Blocks of a data set loaded once into a pool of actors, for many passes.

    ``load(blocks, offsets)`` runs in each actor on the blocks assigned to it
    (``offsets`` are their global row positions, for deterministic per-row
    choices) and returns the shard's state, typically a dict of numpy arrays.
    :meth:`map` then runs ``fn(state, *args)`` on every shard in parallel.
    ``restarts`` counts the actors replaced after dying (see ``max_restarts``).

    Parameters:
        block_refs: object refs of the blocks (e.g. ``MaterializedDataset.to_arrow_refs()``);
            any object with ``len()`` works.
        load: builds a shard's state from its blocks; must be picklable.
        num_shards: actors to start; by default one per CPU of the cluster
            (sized by :func:`framelab.platform.resources.actor_pool`), at most
            one per block and one per ``MIN_SHARD_BYTES`` of data.
        cpus_per_shard: CPUs each actor reserves (and BLAS threads it uses).
        max_restarts: how many times each shard may be rebuilt on a new actor
            after its actor dies; 0 (the default) lets the error through. The
            blocks then stay in the object store for the shards' lifetime, and
            ``load`` and every state-changing ``fn`` must be deterministic.
        gpus_per_shard: GPUs each actor reserves (0: none).
        threads_per_shard: BLAS threads each actor uses, when not the CPUs
            it reserves (a long-lived pool reserves a sliver of a CPU so it
            never blocks the tasks that feed it, yet computes on a whole one).

    Example:
        >>> import numpy as np, ray
        >>> from framelab.platform.sharded import ShardedArrays
        >>> refs = [ray.put(np.ones(3)), ray.put(np.ones(4))]
        >>> shards = ShardedArrays(refs, lambda blocks, offsets: np.concatenate(blocks))
        >>> sum(shards.map(len))
        7
        >>> shards.close()
    """

    def __init__(
        self,
        block_refs: Sequence[ray.ObjectRef],
        load: Callable[[list, list[int]], Any],
        *,
        num_shards: int | None = None,
        cpus_per_shard: float = 1.0,
        in_process: bool | None = None,
        max_restarts: int = 0,
        gpus_per_shard: float = 0.0,
        threads_per_shard: int | None = None,
    ):
        from framelab.platform.resources import threads_for

        if not isinstance(max_restarts, int) or max_restarts < 0:
            raise ValueError(f"max_restarts must be an integer >= 0, got {max_restarts!r}")
        self._local: _Shard | None = None
        self._max_restarts = max_restarts
        self.restarts = 0  # actors replaced so far
        # What a rebuilt shard needs: its blocks, how to load them, the state changes since.
        self._block_refs: list = []
        self._load = load
        self._starts: list[int] = []
        self._replay: list[tuple[Callable, list]] = []
        block_refs = list(block_refs)
        sizes = _object_sizes(block_refs)
        total_bytes = sum(s for s, _ in sizes)
        if num_shards is None:
            num_shards = min(plan_shards(total_bytes, cpus_per_shard), max(1, len(block_refs)))
        if num_shards < 1:
            raise ValueError(f"num_shards must be at least 1, got {num_shards}")
        if in_process is None:
            in_process = num_shards == 1 and total_bytes <= IN_PROCESS_MAX_BYTES
        if in_process:
            if num_shards != 1:
                raise ValueError("in_process=True holds one shard; pass num_shards=1 or None")
            self._start_in_process(block_refs, load)
            return
        from framelab.platform.resources import cluster_cpus, node_strategies

        # More shards than CPUs must still all start (or the first map would
        # wait forever): they then share the CPUs. CPUs that live shard pools
        # of this session keep (a model's resident shards, 0.01 CPU each) are
        # not free: a fit sized to the whole cluster would wait on them forever.
        settle_lost_nodes()
        free = max(cluster_cpus() - _held_cpus(), 0.01)
        cpus_per_shard = min(cpus_per_shard, free / num_shards)
        shard_cls = ray.remote(_Shard)
        threads = threads_per_shard if threads_per_shard is not None else threads_for(cpus_per_shard)

        def new_actor(strategy: Any = "SPREAD") -> Any:
            return shard_cls.options(
                num_cpus=cpus_per_shard, num_gpus=gpus_per_shard, scheduling_strategy=strategy
            ).remote(threads)

        self._new_actor = new_actor
        self._actors = [new_actor(s) for s in _placeable(node_strategies(num_shards))]
        self._held = cpus_per_shard * num_shards
        # Until closed, or collected with the model that held it (its actors then go too).
        self._live_key = next(_POOL_KEYS)
        _LIVE[self._live_key] = self._held
        weakref.finalize(self, _LIVE.pop, self._live_key, None)
        self._restart_counts = [0] * num_shards
        if max_restarts:
            self._block_refs = block_refs
        try:
            self.nodes: list[str] = _started([a.node_id.remote() for a in self._actors], num_shards, self._held)
            self.assignment = _assign_blocks(sizes, self.nodes)
            lengths = self._each(
                lambda a, k: a.fetch.remote([block_refs[i] for i in self.assignment[k]]), _NEW
            )
            row_counts = [0] * len(block_refs)
            for blocks, lens in zip(self.assignment, lengths):
                for i, n in zip(blocks, lens):
                    row_counts[i] = n
            starts = np.concatenate([[0], np.cumsum(row_counts)[:-1]]).astype(int).tolist()
            self._starts = starts
            self.num_rows = int(sum(row_counts))
            self._each(lambda a, k: a.load.remote(load, [starts[i] for i in self.assignment[k]]), _FETCHED)
        except BaseException:
            self.close()
            raise

    def _start_in_process(self, block_refs: list, load: Callable) -> None:
        shard = _Shard(num_threads=None)
        lengths = shard.fetch(block_refs)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int).tolist()
        shard.load(load, starts)
        self._local = shard
        self._actors = []
        self.nodes = [ray.get_runtime_context().get_node_id()]
        self.assignment = [list(range(len(block_refs)))]
        self.num_rows = int(sum(lengths))

    @property
    def in_process(self) -> bool:
        """True when the one shard lives in this process (small data)."""
        return self._local is not None

    @property
    def num_shards(self) -> int:
        """How many actors hold the data."""
        return 1 if self._local is not None else len(self._actors)

    def map(self, fn: Callable[..., Any], *args: Any, changes_state: bool = True) -> list:
        """Run ``fn(state, *args)`` on every shard in parallel; one result per shard.

        ``fn`` may change the state in place (e.g. replace raw blocks by
        encoded arrays). Large numpy arguments are shared through the object
        store rather than copied once per actor. With ``max_restarts``, a
        shard rebuilt after its actor died replays every call made with
        ``changes_state=True`` (the default) before running this one; a call
        that only reads the state (a loss, a gradient) says
        ``changes_state=False`` and is not kept for replay.

        Example:
            >>> import numpy as np, ray
            >>> from framelab.platform.sharded import ShardedArrays
            >>> with ShardedArrays([ray.put(np.ones(2))], lambda b, o: b[0]) as s:
            ...     s.map(lambda x, k: float(x.sum() * k), 3)
            [6.0]
        """
        if self._actors is None:
            raise RuntimeError("this ShardedArrays was closed")
        if self._local is not None:
            return [self._local.run(fn, *args)]
        shared = [
            ray.put(a) if isinstance(a, np.ndarray) and a.nbytes > _PUT_THRESHOLD else a
            for a in args
        ]
        results = self._each(lambda a, k: a.run.remote(fn, *shared), _LOADED)
        if self._max_restarts and changes_state:
            self._replay.append((fn, shared))
        return results

    def _each(self, call: Callable[[Any, int], Any], ready: int) -> list:
        """``call(actor, shard)`` on every shard; a shard whose actor died is rebuilt up to ``ready`` and called again."""
        refs = [call(a, k) for k, a in enumerate(self._actors)]
        if not self._max_restarts:
            return _get(refs, self.nodes)
        results = []
        for k, ref in enumerate(refs):
            while True:
                try:
                    results.append(_get([ref], [self.nodes[k]], len(self._actors))[0])
                    break
                except NodeLostError as err:
                    self._rebuild(k, ready, err)
                    ref = call(self._actors[k], k)
        return results

    def _rebuild(self, k: int, ready: int, error: Exception) -> None:
        """Replace shard ``k``'s dead actor by a new one holding the same blocks and state (up to ``ready``)."""
        while True:
            if self._restart_counts[k] >= self._max_restarts:
                raise error
            self._restart_counts[k] += 1
            self.restarts += 1
            with suppress(Exception):  # already dead, or unreachable with its node
                ray.kill(self._actors[k])
            actor = self._actors[k] = self._new_actor(_placeable(["SPREAD"])[0])
            blocks = self.assignment[k]
            placed, _ = ray.wait([actor.node_id.remote()], timeout=_REPLACEMENT_WAIT_S)
            if not placed:
                with suppress(Exception):
                    ray.kill(actor)
                raise NodeLostError(_lost_message(
                    1, len(self._actors), f"its actor died, and no node had room for a replacement within "
                    f"{_REPLACEMENT_WAIT_S:.0f} s")) from None
            try:
                self.nodes[k] = ray.get(placed[0])
                where, total, wait = [self.nodes[k]], len(self._actors), _REPLACEMENT_WAIT_S
                if ready >= _FETCHED:
                    _get([actor.fetch.remote([self._block_refs[i] for i in blocks])], where, total, wait)
                if ready >= _LOADED:
                    _get([actor.load.remote(self._load, [self._starts[i] for i in blocks])], where, total, wait)
                    for fn, args in self._replay:
                        _get([actor.run.remote(fn, *args)], where, total, wait)
                return
            except NodeLostError as err:
                if not _dead_nodes([self.nodes[k]]):
                    raise  # the replacement lives but cannot get its data back: another would not either
                error = err  # the new actor died too: try another while restarts are left

    def submit(self, fn: Callable[..., Any], *args: Any, shard: int | None = None) -> list:
        """Start ``fn(state, *args)`` on every shard (or only on ``shard``) without waiting: object refs.

        Object refs among ``args`` reach ``fn`` as their values, so the
        result of one shard's work can feed another's without passing
        through the driver. A shard runs its calls one at a time, in order.

        Example:
            >>> import numpy as np, ray
            >>> from framelab.platform.sharded import ShardedArrays
            >>> with ShardedArrays([ray.put(np.ones(2))], lambda b, o: b[0]) as s:
            ...     [part] = s.submit(lambda x: float(x.sum()))
            ...     ray.get(s.submit(lambda x, total: total * 10, part, shard=0))
            [20.0]
        """
        if self._actors is None:
            raise RuntimeError("this ShardedArrays was closed")
        if self._local is not None:
            if shard not in (None, 0):
                raise IndexError(f"shard {shard} does not exist; there is 1 shard")
            values = [ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args]
            return [ray.put(self._local.run(fn, *values))]
        shared = [
            ray.put(a) if isinstance(a, np.ndarray) and a.nbytes > _PUT_THRESHOLD else a
            for a in args
        ]
        actors = self._actors if shard is None else [self._actors[shard]]
        return [a.run.remote(fn, *shared) for a in actors]

    def get(self, refs: list) -> list:
        """The values of refs from :meth:`submit`, a shard's input error raised as itself.

        Example:
            >>> import numpy as np, ray
            >>> from framelab.platform.sharded import ShardedArrays
            >>> with ShardedArrays([ray.put(np.ones(3))], lambda b, o: b[0]) as s:
            ...     s.get(s.submit(len))
            [3]
        """
        return _get(list(refs), None if self._local is not None else self.nodes, len(self._actors or []) or None)

    def close(self) -> None:
        """Stop the actors and free their memory (also done on ``with`` exit)."""
        _LIVE.pop(getattr(self, "_live_key", None), None)
        for actor in self._actors or []:
            ray.kill(actor)
        self._actors = None
        self._local = None
        self._block_refs, self._replay = [], []

    def __enter__(self) -> ShardedArrays:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._actors is None:
            return "ShardedArrays(closed)"
        where = "in this process" if self._local is not None else f"on {len(set(self.nodes))} node(s)"
        return f"ShardedArrays({self.num_rows} rows in {self.num_shards} shard(s) {where})"


def plan_shards(total_bytes: int, cpus_per_shard: float = 1.0) -> int:
    """How many shards a data set of ``total_bytes`` should get on this cluster.

    One when the data is at most ``IN_PROCESS_MAX_BYTES`` (kept in this
    process); else one per CPU (sized by
    :func:`framelab.platform.resources.actor_pool`), but none smaller than
    ``MIN_SHARD_BYTES``. Callers with fewer blocks than this
    should repartition first, since a block is never split between shards.

    Example:
        >>> from framelab.platform.sharded import plan_shards
        >>> plan_shards(1000)
        1
    """
    from framelab.platform.resources import actor_pool

    settle_lost_nodes()
    # No read stage runs while the shards live (the blocks are already
    # materialised), so the pool may take every CPU: nothing starves.
    if total_bytes <= IN_PROCESS_MAX_BYTES:
        return 1  # small enough for one in-process shard (see ShardedArrays)
    pool = actor_pool(use_gpu=False, cpus_per_actor=cpus_per_shard, reserve_cpus=0)
    by_bytes = max(1, math.ceil(total_bytes / MIN_SHARD_BYTES))
    return max(1, min(pool.max_size, by_bytes))


def _get(refs: list, nodes: list[str] | None = None, shards: int | None = None,
         timeout: float | None = None) -> list:
    """``ray.get`` for shard calls: input errors as themselves, a lost shard as :class:`NodeLostError`.

    Waits in slices rather than forever, checking between them that every
    shard's node (``nodes``) is still alive: a dead node is reported as soon as
    Ray's GCS knows, and a call never waits on an actor that no longer exists.
    With ``timeout``, a call still waiting after that many seconds is a lost
    shard too (a replacement whose blocks died with their node waits on them
    for ever).
    """
    pending = list(refs)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=_LIVENESS_POLL_S)
            # A shard that failed fails the call now, not when the slowest shard is done.
            ray.get(ready)
            if pending and deadline is not None and time.monotonic() > deadline:
                raise NodeLostError(_lost_message(
                    len(pending), shards or len(refs), f"still waiting after {timeout:.0f} s, its data "
                    "was probably on a node that died"))
            if pending and nodes:
                dead = _dead_nodes(nodes)
                if dead:
                    raise NodeLostError(_lost_message(len(dead), shards or len(nodes), f"node {dead[0]} died"))
        return ray.get(refs)
    except Exception as err:
        lost = node_loss(err)
        if lost is not None:
            _suspect(nodes or [])
            raise NodeLostError(_lost_message(1, shards or len(nodes or refs), _first_line(lost))) from None
        if isinstance(err, ray.exceptions.RayTaskError):
            # Errors about the user's data (raised by validation inside a shard)
            # must read like the same error raised locally, not a Ray traceback.
            with surfaced_errors():
                raise
        raise


# CPUs held by the live shard pools of this process, by pool: what a new pool may not count as free.
_LIVE: dict[int, float] = {}
_POOL_KEYS = itertools.count()
# How long a new pool's actors may wait for room before the wait is reported, naming what holds the CPUs.
_START_WAIT_S = 300.0


def _held_cpus() -> float:
    """CPUs the live shard pools of this process hold (a model's resident shards among them)."""
    return sum(_LIVE.values())


def _started(refs: list, num_shards: int, wanted: float) -> list:
    """The node of each new actor; a pool that found no room within ``_START_WAIT_S`` fails naming the holders."""
    known = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    deadline = time.monotonic() + _START_WAIT_S
    ready: list = []
    while time.monotonic() < deadline:
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=_LIVENESS_POLL_S)
        if not pending:
            break
        dead = _dead_nodes(sorted(known))
        if dead:  # a node died while the pool started: its shard waits for room that is gone
            raise NodeLostError(_lost_message(len(pending), num_shards, f"node {dead[0]} died while the "
                                              "shards started"))
    if len(ready) < len(refs):
        held = _held_cpus() - wanted
        raise RuntimeError(
            f"{len(refs) - len(ready)} of {num_shards} shard actor(s) found no room in {_START_WAIT_S:.0f} s: "
            f"the pool asks for {wanted:.2f} CPU; {len(_LIVE) - 1} other live shard pool(s) of this session "
            f"(models kept alive, fits running) hold {held:.2f} CPU, and Ray reports "
            f"{ray.available_resources().get('CPU', 0.0):.2f} of {ray.cluster_resources().get('CPU', 0.0):.0f} "
            "CPU free. Close or delete the models you no longer need, or add CPUs"
        )
    return _get(refs, shards=num_shards)


# Every way Ray reports that an actor, a worker, an object or a node is gone: a task that awaited one
# gets it wrapped in RayTaskError (RayTaskError(ActorUnavailableError), a raw ActorDiedError, ...).
_LOSS_TYPES = tuple(getattr(ray.exceptions, name) for name in (
    "RayActorError", "ActorDiedError", "ActorUnavailableError", "ObjectLostError", "OwnerDiedError",
    "NodeDiedError", "WorkerCrashedError", "LocalRayletDiedError", "ObjectFetchTimedOutError",
) if hasattr(ray.exceptions, name))


def node_loss(err: BaseException) -> BaseException | None:
    """The error inside ``err`` (Ray's wrappers unwrapped) that says an actor, worker or node was lost, or None.

    Example:
        >>> import ray
        >>> from framelab.platform.sharded import node_loss
        >>> type(node_loss(ray.exceptions.ActorUnavailableError("unreachable", None))).__name__
        'ActorUnavailableError'
        >>> node_loss(ValueError("bad input")) is None
        True
    """
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        if isinstance(current, _LOSS_TYPES):
            return current
        inner = getattr(current, "cause", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return None


# Nodes a shard was lost on that Ray still lists alive: its health checks take tens of seconds to mark a
# dead node dead, and meanwhile an actor placed there never starts. A call run again places nothing on them.
_SUSPECT_NODES: set[str] = set()
# How long a node may take to run a trivial task before it counts as unreachable.
_PROBE_S = 3.0


def _responsive(nodes: Sequence[str]) -> set[str]:
    """The nodes of ``nodes`` that ran a trivial task within ``_PROBE_S``."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not nodes:
        return set()
    probe = ray.remote(num_cpus=0, max_retries=0)(_node_id)
    refs = {probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote(): n
            for n in nodes}
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=_PROBE_S)
    for ref in pending:
        with suppress(Exception):
            ray.cancel(ref, force=True)
    answered = set()
    for ref in ready:
        with suppress(Exception):
            ray.get(ref)
            answered.add(refs[ref])
    return answered


# How long a call waits for Ray to declare dead a node it lost shards on (its health checks take tens of
# seconds): counted as alive, the node's CPUs would size shards that then wait for room that is gone.
_SETTLE_S = 90.0


def settle_lost_nodes() -> None:
    """Wait (at most ``_SETTLE_S``) until each node shards were lost on is marked dead by Ray, or answers again.

    A call run again right after a node loss then sizes its shards to the
    nodes that are there. Without a loss in this process it returns at once.

    Example:
        >>> from framelab.platform.sharded import settle_lost_nodes
        >>> settle_lost_nodes()
    """
    deadline = time.monotonic() + _SETTLE_S
    while _SUSPECT_NODES and time.monotonic() < deadline:
        with suppress(Exception):
            _recheck_suspects({n["NodeID"] for n in ray.nodes() if n.get("Alive")})
        if _SUSPECT_NODES:
            time.sleep(1.0)


def _recheck_suspects(alive: set[str]) -> None:
    """Forget suspect nodes Ray has marked dead (nothing goes there) and those that answer again."""
    _SUSPECT_NODES.intersection_update(alive)
    if _SUSPECT_NODES:
        _SUSPECT_NODES.difference_update(_responsive(sorted(_SUSPECT_NODES)))  # back, or never gone


def _node_id() -> str:
    return ray.get_runtime_context().get_node_id()


def _suspect(nodes: Sequence[str]) -> None:
    """After a loss: remember which of the shards' nodes no longer answer, though Ray may list them alive."""
    with suppress(Exception):
        alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        listed = sorted(set(nodes) & alive)
        _SUSPECT_NODES.update(set(listed) - _responsive(listed))


def _placeable(strategies: list[Any]) -> list[Any]:
    """``strategies`` with every node a shard was lost on and that still does not answer replaced by one that does."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if not _SUSPECT_NODES:
        return strategies
    nodes = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
    _recheck_suspects(set(nodes))
    healthy = sorted(n for n, info in nodes.items()
                     if n not in _SUSPECT_NODES and info.get("Resources", {}).get("CPU", 0) > 0)
    if not _SUSPECT_NODES or not healthy:
        return strategies
    return [NodeAffinitySchedulingStrategy(healthy[i % len(healthy)], soft=True, _spill_on_unavailable=True)
            for i in range(len(strategies))]


def _lost_message(lost: int, total: int, why: str) -> str:
    return (
        f"{lost} of {total} shard(s) of the in-memory data was lost ({why}): its node died or ran out "
        "of memory. The rows it held are gone from this pass, so the computation stopped instead of "
        "going on without them. Run it again once the cluster has its nodes back (a smaller "
        "num_shards or more memory per node if it ran out)."
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def _dead_nodes(nodes: list[str]) -> list[str]:
    """The node ids of ``nodes`` that the GCS no longer reports alive."""
    alive = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
    return [node for node in nodes if node not in alive]


def _object_sizes(refs: list) -> list[tuple[int, set[str]]]:
    """(bytes, node ids holding it) per ref; unknown locations count as anywhere."""
    if not refs:
        return []
    locations = ray.experimental.get_object_locations(refs)
    out = []
    for ref in refs:
        info = locations.get(ref) or {}
        out.append((int(info.get("object_size") or 1), set(info.get("node_ids") or ())))
    return out


def _assign_blocks(sizes: list[tuple[int, set[str]]], shard_nodes: list[str]) -> list[list[int]]:
    """Give each block to a shard: on the block's node when that keeps loads even.

    Largest blocks first, each to the least-loaded shard on a node that holds
    it unless that shard would end up well above the mean; then to the
    least-loaded shard anywhere. Block order within a shard is kept.
    """
    num_shards = len(shard_nodes)
    target = sum(s for s, _ in sizes) / num_shards
    loads = [0] * num_shards
    assignment: list[list[int]] = [[] for _ in range(num_shards)]
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i][0]):
        size, nodes = sizes[i]
        local = [k for k in range(num_shards) if shard_nodes[k] in nodes]
        best_local = min(local, key=lambda k: loads[k], default=None)
        if best_local is not None and loads[best_local] + size <= target * _LOCALITY_SLACK:
            chosen = best_local
        else:
            chosen = min(range(num_shards), key=lambda k: loads[k])
        loads[chosen] += size
        assignment[chosen].append(i)
    return [sorted(blocks) for blocks in assignment]
