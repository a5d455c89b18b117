"""Errors raised inside Ray tasks and actors, surfaced to the caller as themselves.

Ray wraps an exception raised in a worker in ``RayTaskError``, with the
worker's traceback printed around it. An error about the caller's input (a
missing column, a bad value, a file that is not there) should read the same
whether the work ran in this process or on the cluster, so this module finds
the innermost such error in Ray's wrapping and raises it alone. Anything
else (a worker that died, a bug) keeps Ray's full report.

This is the one place that unwraps Ray's errors; frames and the sharded
actors both use it.

Example:
    >>> import ray
    >>> from framelab.platform.remote_errors import get
    >>> @ray.remote
    ... def check(x):
    ...     if x < 0:
    ...         raise ValueError(f"x must be >= 0, got {x}")
    ...     return x
    >>> get(check.remote(-1))
    Traceback (most recent call last):
    ...
    ValueError: x must be >= 0, got -1
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

# What counts as "about the caller's input": every framelab error derives from
# one of these, and so do the input checks of the libraries we call.
SURFACED: tuple[type[BaseException], ...] = (ValueError, TypeError, KeyError, FileNotFoundError)
# Ray nests a task's error in the error of the task that awaited it; far
# deeper than any real pipeline, short enough to stop on a cycle.
_MAX_DEPTH = 20


def user_error(exc: BaseException) -> BaseException | None:
    """The innermost input error wrapped in ``exc`` (Ray's wrappers unwrapped), or None.

    Example:
        >>> from framelab.platform.remote_errors import user_error
        >>> outer = RuntimeError("task failed")
        >>> outer.__cause__ = KeyError("no column 'x'")
        >>> user_error(outer)
        KeyError("no column 'x'")
    """
    found = None
    cause: BaseException | None = exc
    for _ in range(_MAX_DEPTH):
        if cause is None:
            break
        if isinstance(cause, SURFACED) and not _is_ray_wrapper(cause):
            found = cause
        inner = getattr(cause, "cause", None)
        cause = inner if isinstance(inner, BaseException) else cause.__cause__
    return found


@contextlib.contextmanager
def surfaced_errors() -> Iterator[None]:
    """Run a block whose Ray errors about the input are re-raised as the input error itself.

    Example:
        >>> import ray
        >>> from framelab.platform.remote_errors import surfaced_errors
        >>> @ray.remote
        ... def pick(row):
        ...     return row["missing"]
        >>> with surfaced_errors():
        ...     ray.get(pick.remote({"x": 1}))
        Traceback (most recent call last):
        ...
        KeyError: 'missing'
    """
    try:
        yield
    except BaseException as exc:
        if not _is_ray_wrapper(exc) and not _has_ray_cause(exc):
            raise
        found = user_error(exc)
        if found is None:
            raise
        raise found.with_traceback(None) from None


def get(refs: Any, timeout: float | None = None) -> Any:
    """``ray.get`` that raises an input error from a task as itself.

    Example:
        >>> import ray
        >>> from framelab.platform.remote_errors import get
        >>> get([ray.put(1), ray.put(2)])
        [1, 2]
    """
    import ray

    with surfaced_errors():
        return ray.get(refs, timeout=timeout)


def _is_ray_wrapper(exc: BaseException) -> bool:
    try:
        from ray.exceptions import RayError
    except ImportError:  # pragma: no cover - Ray is a dependency
        return False
    return isinstance(exc, RayError)


def _has_ray_cause(exc: BaseException) -> bool:
    cause = exc.__cause__ or exc.__context__
    for _ in range(_MAX_DEPTH):
        if cause is None:
            return False
        if _is_ray_wrapper(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False
