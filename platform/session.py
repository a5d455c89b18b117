"""The Ray session framelab runs on: an embedded local Ray, or a cluster it joins.

Every Frame operation calls :func:`ensure_connected`, so a user who never calls
:func:`connect` still gets a quiet local Ray sized for the machine.

The embedded Ray listens on loopback only: its node address is 127.0.0.1, so
the GCS, raylet, object manager and workers bind there and nothing on the
machine's network can reach them. Joining a cluster (an address the user
names) is what opens the network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from framelab.platform.console import filter_stderr
from framelab.platform.errors import SessionMismatchError

ADDRESS_ENV = "FRAMELAB_RAY_ADDRESS"
# Ray's own: the cluster a driver joins (set by the job supervisor for every job's driver).
RAY_ADDRESS_ENV = "RAY_ADDRESS"
# Set by Ray's job supervisor for a job's driver (its runtime_env and metadata).
JOB_CONFIG_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"
LOOPBACK = "127.0.0.1"
# Python workers a local Ray's raylet may start at once. Ray's default is the node's CPUs, and its raylet
# warns ("N PYTHON worker processes have been started ... 4x the maximum expected startup concurrency")
# once 4x that many workers exist: on a laptop framelab's own actor pools and a training job's workers
# pass 8 of them. That warning reaches the console through Ray's error channel, past every log filter,
# and the user can do nothing about it; at 16 it comes at 64 workers, where it may mean something.
LOCAL_STARTUP_CONCURRENCY = 16

_lock = threading.Lock()
# Called when the session ends (state kept per session elsewhere in the platform layer).
_shutdown_hooks: list[Callable[[], None]] = []
_log = logging.getLogger("framelab.session")
# Messages Ray prints that a framelab user can do nothing about: kept out of the
# console (logged at DEBUG on "framelab.session") in sessions framelab starts.
_NO_ACTION = {
    # Token authentication is on for the local Ray framelab starts: that is what we want.
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    # framelab shows its own progress display (framelab.platform.progress) instead of Ray Data's bars.
    "ray.data._internal.progress": ("Progress bars disabled",),
    # Said when a job starts while the actors of the one before are still being stopped; framelab sizes
    # its pools to leave CPUs to the tasks that feed them, and a pool that cannot start fails after 10 min.
    "ray.data.dataset": ("Warning: The Ray cluster currently does not have any available CPUs",),
    # Ray Client says which of ray.init's arguments it forwards to the server: framelab's own choice.
    "ray.client_builder": ("Passing the following kwargs to ray.init() on the server",),
    # Said by a Ray Client session, whose connection is set up off the main thread: nothing to act on.
    "ray._private.worker": ("SIGTERM handler is not set because current thread is not the main thread",),
    # Ray Data logs a failed task's traceback (and again, whole) before it raises; framelab then raises the
    # task's own error (a bad image under on_error="raise", missing S3 credentials), which says the fix.
    "ray.data._internal.execution.streaming_executor_state": ("An exception was raised from a task of operator",),
    "ray.data.exceptions": (
        "Exception occurred in Ray Data or Ray Core internal code", "Exception occurred in user code",
        "Full stack trace:",
    ),
}


class _DemoteToDebug(logging.Filter):
    """Drop a logger's records that start with known texts, re-logging them at DEBUG."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(self.prefixes):
            _log.debug("%s: %s", record.name, message)
            return False
        return True


def quiet_ray_messages() -> None:
    """Keep Ray's messages that need no action out of this process's console (logged at DEBUG instead).

    Example:
        >>> from framelab.platform.session import quiet_ray_messages
        >>> quiet_ray_messages()
    """
    for name, prefixes in _NO_ACTION.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DemoteToDebug) for f in logger.filters):
            logger.addFilter(_DemoteToDebug(prefixes))


@dataclass(frozen=True)
class SessionInfo:
    """What the current Ray session offers."""

    address: str
    local: bool
    num_cpus: float
    num_gpus: float
    num_nodes: int
    client: bool = False

    def __repr__(self) -> str:
        if self.local:
            where = "embedded local Ray"
        elif self.client:
            where = f"Ray cluster at {self.address} (Ray Client)"
        else:
            where = f"Ray cluster at {self.address}"
        return (
            f"SessionInfo({where}: {self.num_nodes} node(s), "
            f"{self.num_cpus:g} CPU(s), {self.num_gpus:g} GPU(s))"
        )


@dataclass(frozen=True)
class _Started:
    """What framelab asked for when it started the current session (to spot a different ask)."""

    address: str | None  # None: the embedded local Ray
    sizes: tuple[tuple[str, int | None], ...]


# The session framelab started; None when none is up or the user called ray.init themselves.
_started: _Started | None = None


def connect(
    address: str | None = None,
    *,
    num_cpus: int | None = None,
    num_gpus: int | None = None,
    object_store_memory: int | None = None,
    runtime_env: dict | None = None,
    quiet: bool = True,
) -> SessionInfo:
    """Start an embedded local Ray, or join a cluster; a no-op when already connected.

    ``address`` may be ``"auto"`` (a driver on a node of a running cluster),
    ``"ray://host:10001"`` (Ray Client, from a laptop or notebook), a GCS
    address ``host:6379``, or ``None``: then the ``FRAMELAB_RAY_ADDRESS``
    environment variable is used if set, then Ray's ``RAY_ADDRESS`` (so a
    submitted job joins the cluster it runs on), and an embedded local Ray
    sized for this machine (listening on loopback only) where no cluster is
    known. The sizes apply to the
    embedded Ray only; a cluster has its own.

    Once connected, calling it again with no arguments returns the running
    session; asking for another address or other sizes raises
    :class:`~framelab.platform.errors.SessionMismatchError` (call
    :func:`shutdown` first), rather than answering from the old session as if
    it had joined. When joining a cluster, Ray's authentication token is sent
    if one is found (see :mod:`framelab.platform.auth`).

    ``quiet`` (the default) keeps Ray's messages that need no action out of
    the console (they are logged at DEBUG on ``framelab.*`` loggers, see
    :mod:`framelab.platform.console`); pass ``quiet=False`` to see all of Ray's output.

    Example:
        >>> from framelab.platform.session import connect
        >>> info = connect()          # embedded local Ray
        >>> info.num_cpus >= 1
        True
        >>> connect("ray://head:10001")  # doctest: +SKIP
        Traceback (most recent call last):
        SessionMismatchError: framelab is already connected to an embedded local Ray; ...
    """
    import ray

    global _started
    sizes = (("num_cpus", num_cpus), ("num_gpus", num_gpus), ("object_store_memory", object_store_memory))
    with _lock:
        if ray.is_initialized():
            _check_same_session(address, sizes)
            return session_info()
        _started = None
        address = resolve_address(address)
        given = [name for name, value in sizes if value is not None]
        if address is not None and given:
            raise ValueError(
                f"{', '.join(given)} size an embedded local Ray; the cluster at {address!r} has its own "
                f"resources. Drop {', '.join(given)} to join it, or drop the address to start a local Ray."
            )
        kwargs: dict = {"runtime_env": runtime_env}
        if quiet:
            if not _is_client_address(address):
                # Ray Client passes unknown arguments on to the server's ray.init (and says so).
                kwargs["logging_level"] = logging.WARNING
                kwargs["log_to_driver"] = True
            quiet_ray_messages()
            if not in_ray_job():
                # A job's log keeps every byte the driver writes, a crash's included; the filter is for consoles.
                filter_stderr()
        if address is None:
            # "local" always starts our own Ray; without it ray.init joins whatever Ray
            # another process on this machine started last.
            kwargs.update(address="local", include_dashboard=False, _node_ip_address=LOOPBACK, **dict(sizes),
                          _system_config={"worker_maximum_startup_concurrency": LOCAL_STARTUP_CONCURRENCY})
            with _loopback_node_address():
                ray.init(**{k: v for k, v in kwargs.items() if v is not None})
        else:
            from framelab.platform.auth import auth_hint, use_token_if_available

            use_token_if_available()
            kwargs["address"] = address
            try:
                try:
                    ray.init(**{k: v for k, v in kwargs.items() if v is not None})
                except ConnectionError as exc:
                    # Ray Client's proxy sometimes loses the per-client server it has just started
                    # ("Initialization failure from server"); a second try gets a new one.
                    if not _is_client_address(address) or "Initialization failure" not in str(exc):
                        raise
                    ray.init(**{k: v for k, v in kwargs.items() if v is not None})
            except (ConnectionError, ray.exceptions.AuthenticationError) as exc:
                raise ConnectionError(
                    f"could not reach a Ray cluster at {address!r}: {exc}. Check the address (and that the "
                    f"cluster is up; a port-forward to it when it runs on Kubernetes). {auth_hint()} Or unset "
                    f"{ADDRESS_ENV} to run on an embedded local Ray."
                ) from None
        _started = _Started(address, sizes)
        configure_ray_data(quiet)
        return session_info()


def resolve_address(address: str | None = None) -> str | None:
    """The Ray address to join: the argument, else ``FRAMELAB_RAY_ADDRESS``, else the cluster Ray says is there.

    Ray says a cluster is there with ``RAY_ADDRESS``: a Ray job's driver
    always has it (the job supervisor sets the cluster's address), and so
    does a shell a user pointed at a cluster. A dashboard URL there
    (``http://head:8265``, the Jobs API's address) is not a Ray address and
    is passed over. None means an embedded local Ray.

    Example:
        >>> from framelab.platform.session import resolve_address
        >>> resolve_address("ray://head:10001")
        'ray://head:10001'
    """
    if address:
        return address
    if os.environ.get(ADDRESS_ENV):
        return os.environ[ADDRESS_ENV]
    ray_address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if ray_address and not ray_address.startswith(("http://", "https://")):
        return ray_address
    return None


def in_ray_job() -> bool:
    """Whether this process is the driver of a job submitted to a Ray cluster (``framelab submit``).

    Example:
        >>> from framelab.platform.session import in_ray_job
        >>> in_ray_job()
        False
    """
    return bool(os.environ.get(JOB_CONFIG_ENV))


def ensure_connected() -> None:
    """Connect with the defaults unless a session is already up (called by every Frame op).

    Example:
        >>> from framelab.platform.session import ensure_connected, session_info
        >>> ensure_connected()
        >>> session_info().num_cpus >= 1
        True
    """
    import ray

    if not ray.is_initialized():
        connect()


def session_info() -> SessionInfo:
    """Describe the Ray session this process is attached to.

    Example:
        >>> from framelab.platform.session import connect, session_info
        >>> _ = connect()
        >>> session_info().num_nodes >= 1
        True
    """
    import ray

    ensure_connected()
    resources = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    client = is_client_session()
    if _started is not None:
        local = _started.address is None
        address = _started.address or _gcs_address()
    else:
        local = not client and not os.environ.get(ADDRESS_ENV) and len(nodes) <= 1
        address = "" if client else _gcs_address()
    return SessionInfo(
        address=address,
        local=local,
        num_cpus=float(resources.get("CPU", 0)),
        num_gpus=float(resources.get("GPU", 0)),
        num_nodes=len(nodes),
        client=client,
    )


def shutdown() -> None:
    """Disconnect from Ray (and stop the embedded local Ray if framelab started it).

    (Its example is not run with the others: it would end the session they all share.)

    Example:
        >>> from framelab.platform.session import shutdown
        >>> shutdown()  # doctest: +SKIP
    """
    import ray

    global _started
    with _lock:
        if ray.is_initialized():
            ray.shutdown()
        _started = None
        for hook in _shutdown_hooks:
            hook()


def on_shutdown(hook: Callable[[], None]) -> None:
    """Call ``hook()`` whenever :func:`shutdown` ends the session (for state kept per session).

    Example:
        >>> from framelab.platform.session import on_shutdown
        >>> on_shutdown(lambda: None)
    """
    if hook not in _shutdown_hooks:
        _shutdown_hooks.append(hook)


def _check_same_session(address: str | None, sizes: tuple[tuple[str, int | None], ...]) -> None:
    """Raise when a connect() call asks for something the running session is not."""

    asked = [f"{name}={value!r}" for name, value in sizes if value is not None]
    if address is None and not asked:
        return  # "whatever is running": the common case, every Frame op
    request = ", ".join(([repr(address)] if address else []) + asked)
    if _started is None:
        # The user called ray.init themselves: framelab cannot tell what it joined.
        warnings.warn(
            f"Ray was started outside framelab (ray.init); connect({request}) uses that session as it "
            "is. Call ray.shutdown() first to connect elsewhere.",
            stacklevel=3,
        )
        return
    embedded = _started.address is None
    current = "an embedded local Ray" if embedded else f"the Ray cluster at {_started.address!r}"
    same_place = address is None or (
        address == "auto" and not embedded
    ) or (not embedded and _same_address(address, _started.address))
    if not same_place:
        raise SessionMismatchError(
            f"framelab is already connected to {current}; connect({request}) would not join "
            f"{address!r}. Call framelab.platform.session.shutdown() first, then connect({request})."
        )
    started = dict(_started.sizes)
    differs = [f"{name}={value!r} (running: {started[name]!r})" for name, value in sizes
               if value is not None and value != started[name]]
    if differs:
        raise SessionMismatchError(
            f"framelab is already connected to {current}, started with other sizes: {', '.join(differs)}. "
            f"Call framelab.platform.session.shutdown() first, then connect({request})."
        )


def _same_address(a: str, b: str | None) -> bool:
    def key(address: str) -> tuple[str, str]:
        scheme, _, rest = address.strip().rstrip("/").rpartition("://")
        return scheme, rest

    return b is not None and key(a) == key(b)


def _is_client_address(address: str | None) -> bool:
    return bool(address) and address.startswith("ray://")


def is_client_session() -> bool:
    """Whether this process is a Ray Client driver (``connect("ray://...")``).

    Example:
        >>> from framelab.platform.session import is_client_session
        >>> is_client_session()
        False
    """
    try:
        from ray.util.client import ray as client_ray

        return bool(client_ray.is_connected())
    except Exception:
        return False


def _gcs_address() -> str:
    import ray

    try:
        return getattr(ray.get_runtime_context(), "gcs_address", "") or ""
    except Exception:  # a Ray Client session has no GCS address of its own
        return ""


@contextlib.contextmanager
def _loopback_node_address() -> Iterator[None]:
    """Let ray.init keep 127.0.0.1 as the node address of the Ray it starts.

    Ray replaces a loopback node address by the machine's network address
    unless it runs in single-node mode (its default on macOS and Windows,
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``). With the node address left at
    127.0.0.1 every Ray server binds loopback instead of all interfaces. The
    processes ray.init starts inherit the variable; this process gets it back.
    """
    from ray._private import ray_constants

    name = ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR
    saved_env, saved_flag = os.environ.get(name), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[name] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        if saved_env is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved_env


def configure_ray_data(quiet: bool) -> None:
    """Ray Data's settings for a framelab session (progress, order, actor placement), in this process.

    Example:
        >>> from framelab.platform.session import configure_ray_data
        >>> configure_ray_data(quiet=True)
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    # One bar per job, framelab's own (framelab.platform.progress: a bar at a
    # terminal or in a notebook, one summary line in a log), not one per operator.
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = not quiet
    # A frame's rows have an order (head, add_row_number, to_arrow keep it); with
    # read tasks finishing side by side, Ray Data would otherwise hand blocks back
    # in completion order.
    ctx.execution_options.preserve_order = True
    # Nothing else keeps the tasks feeding an actor pool (read_images' run without
    # CPU reservations) from filling a node before the pool's actors are placed.
    # Starting a pool's first actors before any task of the pipeline runs places
    # (and spreads) them on empty nodes; a pool the cluster cannot fit fails with
    # Ray's message after ten minutes instead of waiting forever.
    ctx.wait_for_min_actors_s = 600
    # Said when a capped stage gets fewer blocks than its cap (a small frame): nothing to do about it.
    warnings.filterwarnings("ignore", message="The maximum number of concurrent tasks for", category=UserWarning)
    # Ray Client's advice to batch small tasks: framelab sends one call per operation, by design.
    warnings.filterwarnings("ignore", message="More than 10MB of messages have been created", category=UserWarning)
    if quiet:
        for name in ("ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)
