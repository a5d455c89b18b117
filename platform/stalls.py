"""A job that cannot go on fails with a message naming what holds the CPUs, instead of waiting forever.

Ray leaves a task that asks for more than any node has free waiting until
resources come back, and nothing tells the user. :func:`watched` wraps the
loop that consumes a job's results: when no result has come for
:func:`stall_seconds` (``FRAMELAB_STALL_S``, 10 minutes by default) while Ray
reports work waiting for resources, the loop is interrupted with a
:class:`~framelab.platform.errors.StalledError` that lists what is waiting and
which actors hold the cluster's CPUs.

Example:
    >>> from framelab.platform.stalls import watched
    >>> with watched("count") as beat:
    ...     for _ in range(3):
    ...         beat()
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

from framelab.platform.errors import StalledError
from framelab.platform.resources import pending_demands

_CHECK_SECONDS = 5.0


def stall_seconds() -> float:
    """How long a job may go without a result while work waits for resources (``FRAMELAB_STALL_S``).

    Example:
        >>> from framelab.platform.stalls import stall_seconds
        >>> stall_seconds() > 0
        True
    """
    return float(os.environ.get("FRAMELAB_STALL_S", "600"))


@contextlib.contextmanager
def watched(label: str) -> Iterator[Callable[[], None]]:
    """Watch the calling thread's job loop; yields ``beat()``, to call on each result.

    Example:
        >>> from framelab.platform.stalls import watched
        >>> with watched("job") as beat:
        ...     beat()
    """
    state = {"last": time.monotonic(), "done": False, "message": None}
    target = threading.get_ident()
    limit = stall_seconds()

    def beat() -> None:
        state["last"] = time.monotonic()

    def watch() -> None:
        while not state["done"]:
            time.sleep(_CHECK_SECONDS)
            if state["done"] or time.monotonic() - state["last"] < limit:
                continue
            waiting = pending_demands(tasks=True)
            if not waiting:
                continue
            state["message"] = (
                f"{label}: no result for {limit:g} s while {waiting} wait for resources no node has free. "
                f"CPUs are held by {holders()}. Free them (shut down models or pools you no longer need, "
                f"or stop other jobs), give the cluster more or larger nodes, or raise FRAMELAB_STALL_S."
            )
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(StalledError))
            return

    thread = threading.Thread(target=watch, name="framelab-stall-watch", daemon=True)
    thread.start()
    try:
        yield beat
    except StalledError:
        raise StalledError(state["message"] or f"{label}: stalled") from None
    finally:
        state["done"] = True


def holders() -> str:
    """The live actors by class and each node's free CPUs (for a stall's message).

    Example:
        >>> from framelab.platform.stalls import holders
        >>> "free" in holders()
        True
    """
    try:
        import ray
        from ray._private import state

        alive = Counter(a["ActorClassName"] for a in state.actors().values() if a.get("State") == "ALIVE")
        free = state.available_resources_per_node()
        nodes = []
        for node in ray.nodes():
            if node.get("Alive"):
                have = node.get("Resources", {}).get("CPU", 0)
                left = free.get(node["NodeID"], {}).get("CPU", 0)
                nodes.append(f"{node.get('NodeManagerAddress')}: {left:g} of {have:g} free")
    except Exception:  # noqa: BLE001 - internal APIs: say where to look instead
        return "actors this process cannot list (see `ray status`; CPUs free per node unknown)"
    actors = ", ".join(f"{n} x {name}" for name, n in alive.most_common()) or "no actor"
    return f"{actors} (CPUs per node: {'; '.join(nodes)})"
