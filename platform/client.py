"""Ray Client sessions that work like local ones: each call runs inside the cluster, its result comes back.

Ray Data's streaming executor cannot run in a Ray Client driver (Ray 2.60: it
needs the process's own core worker). So in a ``ray://`` session every
framelab call that runs a plan (a Frame's results, a toolkit's ``create``, a
model's ``predict``, ``save`` or ``load_model``) is marked :func:`on_cluster`:
the call itself (the function and its arguments: a Frame's plan is data, a
model its state and actor handles) goes to one zero-CPU actor on the head
node, a driver inside the cluster kept for the session, and only what the
call returns comes back. A materialised frame comes back as a handle to
blocks that stay on the cluster (owned by that actor); a model keeps its
shards and warm actors there.

What the user sees stays framelab's: warnings raised on the cluster are
raised again here, once; an error comes back as the same exception, without
Ray's traceback; the progress display is drawn here from the job's counts;
interrupting the call (Ctrl-C, a notebook's stop button) interrupts it on the
cluster; and a result larger than :func:`result_limit` is refused with a
message that says to ``save`` or ``head`` instead, rather than filling the
notebook's memory.

Everywhere else (an embedded Ray, a driver on a cluster node, a job) the
marked functions are plain calls.

Example:
    >>> from framelab.platform.client import on_cluster, run_on_cluster
    >>> @on_cluster
    ... def total(xs: list[int]) -> int:
    ...     return sum(xs)
    >>> total([1, 2, 3])                      # not a Ray Client session: a plain call
    6
    >>> run_on_cluster(sum, [1, 2, 3])
    6
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import io
import itertools
import os
import sys
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from framelab.platform import progress, session, warm_pools

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

#: Results larger than this (bytes) are refused in a Ray Client session; ``FRAMELAB_CLIENT_RESULT_LIMIT`` sets it.
DEFAULT_RESULT_LIMIT = 256 * 1024 * 1024
# How often the client asks the cluster for the job's progress while it waits.
_POLL_SECONDS = 0.5
# How long an interrupted call may take to stop on the cluster before the client gives up waiting.
_CANCEL_WAIT_S = 30.0

_lock = threading.Lock()
_driver: Any = None


class ResultTooLargeError(RuntimeError):
    """A call's result is too large to bring to a Ray Client session."""


def result_limit() -> int:
    """The largest result (bytes) a Ray Client session brings back: ``FRAMELAB_CLIENT_RESULT_LIMIT`` or 256 MiB.

    Example:
        >>> from framelab.platform.client import result_limit
        >>> result_limit() >= 1
        True
    """
    value = os.environ.get("FRAMELAB_CLIENT_RESULT_LIMIT")
    return int(value) if value else DEFAULT_RESULT_LIMIT


def in_client_session() -> bool:
    """Whether this process is a Ray Client driver (``connect("ray://...")``), where calls run on the cluster.

    Example:
        >>> from framelab.platform.client import in_client_session
        >>> in_client_session()
        False
    """
    return session.is_client_session()


def on_cluster(fn: F) -> F:
    """Mark a function (or method) that runs a plan: in a Ray Client session it runs inside the cluster.

    Elsewhere the function is called as it is. Inside the cluster the call
    is an ordinary one too, so a marked function may call other marked ones.

    Example:
        >>> from framelab.platform.client import on_cluster
        >>> @on_cluster
        ... def double(x: int) -> int:
        ...     return 2 * x
        >>> double(21)
        42
    """

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if not in_client_session():
            return fn(*args, **kwargs)
        # The wrapper itself travels (by reference: it is what the module names),
        # and on the cluster, outside a client session, it is a plain call.
        return run_on_cluster(run, *args, **kwargs)

    return run  # type: ignore[return-value]


def run_on_cluster(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)`` where a Ray Data pipeline can run: here, or inside the cluster.

    In a Ray Client session ``fn`` runs on the session's driver actor (see
    the module's text), with framelab's warnings, errors, progress and
    interruption carried across; elsewhere it is a plain call. Return
    something small (a count, a frame's handle, refs): it travels to this
    process, up to :func:`result_limit` bytes.

    Example:
        >>> from framelab.platform.client import run_on_cluster
        >>> run_on_cluster(max, [1, 5, 3])
        5
    """
    if not in_client_session():
        return fn(*args, **kwargs)
    import ray

    driver = _session_driver()
    call_id = next(_call_ids)
    ref = driver.call.remote(_Imports.of_this_session(), call_id, fn, args, kwargs, result_limit())
    bars: dict[int, progress.Progress] = {}
    try:
        while True:
            done, _ = ray.wait([ref], timeout=_POLL_SECONDS)
            _mirror_progress(ray.get(driver.progress.remote(call_id)), bars)
            if done:
                break
        outcome = ray.get(ref)
    except KeyboardInterrupt:
        # Stop the work on the cluster too, and wait (bounded) until it has let go of its CPUs.
        driver.cancel.remote(call_id)
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C does not cut the clean-up short
            ray.wait([ref], timeout=_CANCEL_WAIT_S)
        raise
    finally:
        for bar in bars.values():
            bar.close()
    caught, printed, kind, value = outcome
    if printed:  # what the call printed (a model's summary), here rather than in the cluster's log
        print(printed, end="")
    for message, category, filename, lineno in caught:
        warnings.warn_explicit(message, category, filename, lineno)
    if kind == "error":
        # framelab's errors say what to do; Ray's traceback around them would only hide that.
        value.__traceback__ = None
        raise value
    return value


def reset() -> None:
    """Forget the session's driver actor (the session it lived in is gone).

    Example:
        >>> from framelab.platform.client import reset
        >>> reset()
    """
    global _driver
    with _lock:
        _driver = None


_call_ids = itertools.count()


def _session_driver() -> Any:
    """The session's driver actor on the head node, started on first use."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    global _driver
    with _lock:
        if _driver is None:
            head = next((n["NodeID"] for n in ray.nodes()
                         if n.get("Alive") and "node:__internal_head__" in n.get("Resources", {})), None)
            # Threads: a progress poll or a cancel must run while a call does.
            options: dict = {"num_cpus": 0, "max_concurrency": 8}
            if head is not None:
                options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(head, soft=True)
            _driver = ray.remote(_ClusterDriver).options(**options).remote()
        return _driver


class _Imports:
    """framelab's modules this session has imported, imported again wherever a call's arguments are unpickled.

    Unpickled first (it is the first argument), so Arrow extension types the
    modules register (framelab's image type) exist before the call's frames
    are read: a schema read where they do not comes back as plain structs.
    """

    def __init__(self, names: tuple[str, ...]):
        self.names = names

    @classmethod
    def of_this_session(cls) -> _Imports:
        return cls(tuple(sorted(n for n in list(sys.modules) if n.startswith("framelab."))))

    def __reduce__(self) -> tuple:
        return _import_all, (self.names,)


def _import_all(names: tuple[str, ...]) -> _Imports:
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a module this side cannot import is not one the call needs
            pass
    return _Imports(names)


class _ClusterDriver:
    """An actor that runs driver code inside the cluster for a Ray Client session."""

    def __init__(self) -> None:
        # Ray Data reads its settings from the driver's context; give it the session's.
        session.quiet_ray_messages()
        session.configure_ray_data(quiet=True)
        self._threads: dict[int, int] = {}
        self._bars: dict[int, dict] = {}

    def call(self, imports: _Imports, call_id: int, fn: Callable, args: tuple, kwargs: dict, limit: int) -> tuple:
        self._threads[call_id] = threading.get_ident()
        bars: dict = {}
        self._bars[call_id] = bars
        printed = io.StringIO()
        try:
            with warnings.catch_warnings(record=True) as caught, progress.relay_to(bars), \
                    contextlib.redirect_stdout(printed):
                try:
                    value = fn(*args, **kwargs)
                    _check_size(value, limit)
                    kind = "value"
                except BaseException as exc:  # noqa: B036  (a KeyboardInterrupt from cancel() included)
                    kind, value = "error", _portable(exc)
                    if isinstance(exc, KeyboardInterrupt):
                        # An interrupted call gives its CPUs back at once, as its driver would on exit.
                        warm_pools.release()
            relayed = [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
            return relayed, printed.getvalue(), kind, value
        finally:
            self._threads.pop(call_id, None)

    def progress(self, call_id: int) -> list[tuple]:
        bars = self._bars.get(call_id, {})
        if call_id not in self._threads:
            self._bars.pop(call_id, None)
        return [(key, *state) for key, state in list(bars.items())]

    def cancel(self, call_id: int) -> bool:
        thread = self._threads.get(call_id)
        if thread is None:
            return False
        # The call's thread gets a KeyboardInterrupt at its next Python step, as a local driver would:
        # Ray Data then stops its executor and cancels the job's tasks.
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(KeyboardInterrupt))
        return True


def _mirror_progress(states: list[tuple], bars: dict[int, progress.Progress]) -> None:
    """Draw here the progress of the job running on the cluster."""
    for key, label, total, rows, closed in states:
        bar = bars.get(key)
        if bar is None:
            bar = bars[key] = progress.Progress(label, total)
        bar.update(rows - bar.rows)
        if closed:
            bar.close()
            bars.pop(key)


def _size(value: Any) -> int:
    """Bytes a result takes, for the containers of data a framelab call returns (0 for handles)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value)
    for attr in ("nbytes",):  # Arrow tables and arrays, numpy arrays
        n = getattr(value, attr, None)
        if isinstance(n, int):
            return n
    estimated = getattr(value, "estimated_size", None)  # polars
    if callable(estimated) and type(value).__module__.startswith("polars"):
        return int(estimated())
    usage = getattr(value, "memory_usage", None)  # pandas
    if callable(usage) and type(value).__module__.startswith("pandas"):
        return int(usage(deep=True).sum())
    if isinstance(value, dict):
        return sum(_size(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_size(v) for v in value[:10_000])
    return 0


def _check_size(value: Any, limit: int) -> None:
    size = _size(value)
    if size > limit:
        raise ResultTooLargeError(
            f"the result is {size / 2**20:,.1f} MiB, more than the {limit / 2**20:,.0f} MiB a Ray Client session "
            "brings back. Save it on the cluster (frame.save('s3://bucket/path')), or bring back part of it "
            "(frame.head(n), frame.select(...)); FRAMELAB_CLIENT_RESULT_LIMIT (bytes) raises the limit."
        )


def _portable(exc: BaseException) -> BaseException:
    """The exception itself when it can travel to the client, else a RuntimeError with its message."""
    import pickle

    import ray.cloudpickle

    try:
        pickle.loads(ray.cloudpickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


session.on_shutdown(reset)
