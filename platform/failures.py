"""Rows that failed in a job, counted wherever they fail and reported once, by the driver.

A bad row (a corrupt image, an unreadable file) never sinks a job: the stage
that meets it keeps the row with a null and calls :func:`report`. Inside a Ray
task the count goes to one small ledger actor of the session; the driver opens
a :func:`job` around each execution and, when it ends, warns once per stage
with the total and a few example rows, instead of one warning per task.
Called in the driver outside a job, :func:`report` warns at once.

Example:
    >>> import warnings
    >>> from framelab.platform import failures
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     with failures.job():
    ...         failures.report("decode", 1, 10, ["a.jpg: truncated"])
    ...         failures.report("decode", 2, 10, ["b.jpg: not an image"])
    >>> print(caught[0].message)
    decode: 3 of 20 row(s) failed and were kept with a null; e.g. a.jpg: truncated; b.jpg: not an image
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

_LEDGER = "framelab_failure_ledger"
_EXAMPLES = 3
_local = threading.local()
# Ledger handles by (cluster, job): a new session gets its own ledger (job ids restart in a new cluster).
_handles: dict[str, object] = {}
# A worker that found no ledger looks again only after this long (a lookup is a round trip to the GCS).
_NO_LEDGER_RECHECK_S = 5.0
_no_ledger_until: dict[str, float] = {}


class RowFailureWarning(UserWarning):
    """Some rows of a job could not be processed; they were kept with nulls (or dropped, as asked)."""


@dataclass
class _Tally:
    failed: int = 0
    total: int = 0
    examples: list[str] = field(default_factory=list)
    action: str = "kept with a null"
    unit: str = "row(s)"

    def add(self, failed: int, total: int, examples: Sequence[str], action: str, unit: str) -> None:
        self.failed += int(failed)
        self.total += int(total)
        self.action, self.unit = action, unit
        room = _EXAMPLES - len(self.examples)
        if room > 0:
            self.examples.extend(str(e) for e in list(examples)[:room])


class _Ledger:
    """The session's actor: stage -> tally, for every job of the driver."""

    def __init__(self) -> None:
        self.tallies: dict[str, _Tally] = {}
        self.version = 0

    def add(self, stage: str, failed: int, total: int, examples: list[str], action: str, unit: str) -> None:
        self.tallies.setdefault(stage, _Tally()).add(failed, total, examples, action, unit)
        self.version += 1

    def take(self) -> dict[str, _Tally]:
        out, self.tallies = self.tallies, {}
        return out


def report(
    stage: str,
    failed: int,
    total: int,
    examples: Sequence[str] = (),
    action: str = "kept with a null",
    unit: str = "row(s)",
) -> None:
    """Count ``failed`` of ``total`` rows of ``stage`` as failed (``examples``: a few "row: reason" texts).

    ``action`` says what became of them ("kept with a null", "dropped"),
    ``unit`` what a row is ("file(s)", "image(s)").

    Inside a job every call counts, ``failed=0`` too: the warning gives the
    failures out of the job's total, not out of the blocks that had failures.

    Example:
        >>> from framelab.platform import failures
        >>> with failures.job():
        ...     failures.report("read", 0, 5)   # nothing failed: nothing is said
    """
    scope = getattr(_local, "scope", None)
    if scope is not None:
        scope.setdefault(stage, _Tally()).add(failed, total, examples, action, unit)
        return
    ledger = _worker_ledger(only_totals=failed <= 0) if failed > 0 or _in_worker() else None
    if ledger is not None:
        import ray

        try:
            # Waited for, so the count is in before this task's result reaches the driver.
            ray.get(ledger.add.remote(stage, failed, total, list(examples)[:_EXAMPLES], action, unit))
            return
        except ray.exceptions.RayActorError:
            # The ledger went with its node: the count is said here, and the block's rows are kept.
            _handles.pop(_session_key(), None)
    if failed <= 0:
        return
    tally = _Tally()
    tally.add(failed, total, examples, action, unit)
    _warn({stage: tally})


def _in_worker() -> bool:
    """True inside a Ray task or actor (where a block's total goes to the ledger, even with no failure)."""
    if "ray" not in sys.modules:
        return False
    import ray

    return ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE


@contextlib.contextmanager
def job() -> Iterator[None]:
    """Collect the failures of everything run inside, then warn once per stage.

    Example:
        >>> from framelab.platform import failures
        >>> with failures.job():
        ...     pass
    """
    if getattr(_local, "scope", None) is not None:  # nested: the outer job reports
        yield
        return
    _local.scope = {}
    ledger = _driver_ledger()
    try:
        if ledger is not None:
            import ray

            try:
                ray.get(ledger.take.remote())  # forget what earlier, interrupted jobs left
            except Exception:  # noqa: BLE001 - a ledger lost with its node: start another
                _handles.pop(_session_key(), None)
                ledger = _driver_ledger()
        yield
    finally:
        scope, _local.scope = _local.scope, None
        if ledger is not None:
            import ray

            try:
                for stage, tally in ray.get(ledger.take.remote()).items():
                    scope.setdefault(stage, _Tally()).add(
                        tally.failed, tally.total, tally.examples, tally.action, tally.unit
                    )
            except Exception:  # noqa: BLE001 - a lost ledger must not hide the job's own result
                pass
        if scope:
            _warn(scope)


def _warn(tallies: dict[str, _Tally]) -> None:
    for stage, t in tallies.items():
        if t.failed <= 0:
            continue  # a stage that only counted its rows
        examples = "; ".join(t.examples)
        message = f"{stage}: {t.failed} of {t.total} {t.unit} failed and were {t.action}"
        warnings.warn(message + (f"; e.g. {examples}" if examples else ""), RowFailureWarning,
                      stacklevel=_user_stacklevel())


def _user_stacklevel() -> int:
    """The stack level of the first caller outside framelab, so a warning points at the user's line."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith(("framelab.", "contextlib")):
        level += 1
        frame = frame.f_back
    return level


def _session_key() -> str:
    import ray

    context = ray.get_runtime_context()
    return f"{getattr(context, 'gcs_address', '')}/{context.get_job_id()}"


def _driver_ledger():
    """The session's ledger actor, started by the driver on first use; None without Ray."""
    import ray

    if not ray.is_initialized():
        return None
    key = _session_key()
    if key not in _handles:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # A tiny actor: no CPU of its own, so it never takes a slot from the work it counts. It lives on the
        # driver's node (the head, for a job or a ray:// session), so losing a worker node never loses it.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        _handles[key] = ray.remote(num_cpus=0)(_Ledger).options(
            name=_LEDGER, get_if_exists=True, max_concurrency=1, scheduling_strategy=here
        ).remote()
    return _handles[key]


def _worker_ledger(only_totals: bool = False):
    """The ledger from inside a Ray task or actor of the driver's job; None elsewhere.

    ``only_totals``: the caller has no failure to report, only a total; a
    recent lookup that found no ledger is then trusted (a failure always looks).
    """
    import ray

    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return None
    key = _session_key()
    if key not in _handles:
        if only_totals and time.monotonic() < _no_ledger_until.get(key, 0.0):
            return None
        try:
            _handles[key] = ray.get_actor(_LEDGER)
        except ValueError:  # the driver never opened a job: warn where we are instead
            # Not asked again for a while: every block of such a job reports, most with nothing failed.
            _no_ledger_until[key] = time.monotonic() + _NO_LEDGER_RECHECK_S
            return None
    return _handles[key]
