"""The Ray session framelab runs on: an embedded local Ray, or a cluster it joins.

Every Frame operation calls :func:`ensure_connected`, so a user who never calls
:func:`connect` still gets a quiet local Ray sized for the machine.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass

ADDRESS_ENV = "FRAMELAB_RAY_ADDRESS"

_lock = threading.Lock()


@dataclass(frozen=True)
class SessionInfo:
    """What the current Ray session offers."""

    address: str
    local: bool
    num_cpus: float
    num_gpus: float
    num_nodes: int

    def __repr__(self) -> str:
        where = "embedded local Ray" if self.local else f"Ray cluster at {self.address}"
        return (
            f"SessionInfo({where}: {self.num_nodes} node(s), "
            f"{self.num_cpus:g} CPU(s), {self.num_gpus:g} GPU(s))"
        )


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

    ``address`` may be ``"auto"`` (a cluster this machine belongs to),
    ``"ray://host:10001"`` (Ray Client), or ``None``: then the
    ``FRAMELAB_RAY_ADDRESS`` environment variable is used if set, and an
    embedded local Ray sized for this machine otherwise.

    Example:
        >>> from framelab.platform.session import connect
        >>> info = connect()          # embedded local Ray
        >>> info.num_cpus >= 1
        True
    """
    import ray

    with _lock:
        if ray.is_initialized():
            return session_info()
        address = resolve_address(address)
        kwargs: dict = {
            "ignore_reinit_error": True,
            "include_dashboard": False,
            "runtime_env": runtime_env,
        }
        if quiet:
            kwargs["logging_level"] = logging.WARNING
            kwargs["log_to_driver"] = True
        if address is None:
            # "local" always starts our own Ray; without it ray.init joins whatever Ray
            # another process on this machine started last.
            kwargs["address"] = "local"
            kwargs.update(
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                object_store_memory=object_store_memory,
            )
        else:
            kwargs["address"] = address
        try:
            ray.init(**{k: v for k, v in kwargs.items() if v is not None})
        except ConnectionError as exc:
            raise ConnectionError(
                f"could not reach a Ray cluster at {address!r}: {exc}. Check the address (and that the "
                f"cluster is up), or unset {ADDRESS_ENV} to run on an embedded local Ray."
            ) from exc
        _configure_ray_data(quiet)
        return session_info()


def resolve_address(address: str | None = None) -> str | None:
    """The Ray address to join: the argument, else ``FRAMELAB_RAY_ADDRESS``, else None (embedded Ray).

    Example:
        >>> from framelab.platform.session import resolve_address
        >>> resolve_address("ray://head:10001")
        'ray://head:10001'
    """
    return address or os.environ.get(ADDRESS_ENV) or None


def ensure_connected() -> None:
    """Connect with the defaults unless a session is already up (called by every Frame op)."""
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
    ctx = ray.get_runtime_context()
    address = getattr(ctx, "gcs_address", "") or ""
    return SessionInfo(
        address=address,
        local=not os.environ.get(ADDRESS_ENV) and len(nodes) <= 1,
        num_cpus=float(resources.get("CPU", 0)),
        num_gpus=float(resources.get("GPU", 0)),
        num_nodes=len(nodes),
    )


def shutdown() -> None:
    """Disconnect from Ray (and stop the embedded local Ray if framelab started it).

    Example:
        >>> from framelab.platform.session import shutdown
        >>> shutdown()
    """
    import ray

    with _lock:
        if ray.is_initialized():
            ray.shutdown()


def _configure_ray_data(quiet: bool) -> None:
    import ray.data

    ctx = ray.data.DataContext.get_current()
    # Progress bars help at a terminal; in a notebook or a log they are noise.
    interactive = sys.stderr.isatty()
    ctx.enable_progress_bars = interactive
    ctx.enable_operator_progress_bars = interactive
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
    if quiet:
        for name in ("ray.data", "ray.train", "ray.tune"):
            logging.getLogger(name).setLevel(logging.WARNING)
