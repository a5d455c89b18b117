"""One progress display for a long framelab job: rows done, rate and time left.

At a terminal it is one bar on stderr, redrawn in place; in a notebook, one
line updated in its cell; in a log (output not a terminal), nothing while the
job runs and one summary line when it ends. Jobs shorter than
:data:`QUIET_SECONDS` show nothing at all, so quick calls stay quiet.

Example:
    >>> import io
    >>> from framelab.platform.progress import Progress
    >>> log = io.StringIO()
    >>> with Progress("deep features", total=4, stream=log, quiet_seconds=0) as bar:
    ...     bar.update(4)
    >>> log.getvalue().startswith("deep features: 4 of 4 rows in ")
    True
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Any

# A job that ends sooner shows nothing: a bar that flashes by, or a log line per quick call, is noise.
QUIET_SECONDS = 5.0
# Redraw at most this often.
_REDRAW_SECONDS = 0.5
_WIDTH = 24
# Where displays report instead of drawing, while a Ray Client session's call runs on the cluster.
_relay: dict | None = None


class Progress:
    """Counts rows as blocks finish and shows them where the user is looking.

    Args:
        label: what the job is ("deep features", "read_images").
        total: rows expected, when known (then a bar and the time left are shown).
        stream: where to write (stderr by default).
        quiet_seconds: nothing is shown for jobs shorter than this.

    Example:
        >>> import io
        >>> from framelab.platform.progress import Progress
        >>> with Progress("job", stream=io.StringIO(), quiet_seconds=3600) as bar:
        ...     bar.update(10)
        >>> bar.rows
        10
    """

    def __init__(self, label: str, total: int | None = None, *, stream: IO[str] | None = None,
                 quiet_seconds: float = QUIET_SECONDS):
        self.label = label
        self.total = total
        self.rows = 0
        self._stream = stream if stream is not None else sys.stderr
        self._quiet = quiet_seconds
        self._start = time.monotonic()
        self._drawn = 0.0
        self._mode = _mode(self._stream) if stream is not None or _relay is None else "relay"
        self._handle: Any = None
        self._relay = _relay if self._mode == "relay" else None
        self._report(closed=False)

    def update(self, rows: int) -> None:
        """Add ``rows`` finished rows and redraw if it is time."""
        self.rows += int(rows)
        self._report(closed=False)
        now = time.monotonic()
        if now - self._start < self._quiet or now - self._drawn < _REDRAW_SECONDS:
            return
        self._drawn = now
        if self._mode == "terminal":
            self._stream.write("\r" + self._line(now, running=True))
            self._stream.flush()
        elif self._mode == "notebook":
            self._show_in_notebook(self._line(now, running=True))

    def close(self, failed: bool = False) -> None:
        """Finish the display: the final line at a terminal or in a notebook, the summary in a log.

        ``failed``: the job raised; its error is the one message to show, so no summary is written.
        """
        self._report(closed=True)
        now = time.monotonic()
        if failed or now - self._start < self._quiet or self._mode == "relay":
            if self._mode == "terminal" and self._drawn:
                self._stream.write("\r\033[K")
            return
        line = self._line(now, running=False)
        if self._mode == "terminal":
            self._stream.write("\r" + line + "\033[K\n")
        elif self._mode == "notebook":
            self._show_in_notebook(line)
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def _report(self, *, closed: bool) -> None:
        if self._relay is not None:
            self._relay[id(self)] = (self.label, self.total, self.rows, closed)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.close(failed=exc_type is not None)

    def _line(self, now: float, *, running: bool) -> str:
        elapsed = max(now - self._start, 1e-9)
        rate = self.rows / elapsed
        done = f"{self.rows:,}" + (f" of {self.total:,}" if self.total is not None else "")
        if not running:
            return f"{self.label}: {done} rows in {_duration(elapsed)} ({rate:,.1f} rows/s)"
        parts = [f"{self.label}: {done} rows", f"{rate:,.1f} rows/s", f"{_duration(elapsed)} elapsed"]
        if self.total:
            fraction = min(self.rows / self.total, 1.0)
            filled = int(round(fraction * _WIDTH))
            parts.insert(0, f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {fraction:4.0%}")
            if rate > 0 and self.rows < self.total:
                parts.append(f"{_duration((self.total - self.rows) / rate)} left")
        return "  ".join(parts)

    def _show_in_notebook(self, line: str) -> None:
        from IPython.display import display

        if self._handle is None:
            self._handle = display({"text/plain": line}, raw=True, display_id=True)
        else:
            self._handle.update({"text/plain": line}, raw=True)


@contextlib.contextmanager
def relay_to(states: dict) -> Iterator[None]:
    """Displays started inside report ``{id: (label, total, rows, closed)}`` into ``states`` instead of drawing.

    A Ray Client session's call runs on the cluster, where nobody looks at
    stderr; the client reads these states and draws the display itself.

    Example:
        >>> from framelab.platform.progress import Progress, relay_to
        >>> states = {}
        >>> with relay_to(states), Progress("job", total=3) as bar:
        ...     bar.update(3)
        >>> list(states.values())
        [('job', 3, 3, True)]
    """
    global _relay
    saved, _relay = _relay, states
    try:
        yield
    finally:
        _relay = saved


def _mode(stream: IO[str]) -> str:
    """"notebook" in a Jupyter kernel, "terminal" at a tty, else "log"."""
    shell = sys.modules.get("IPython")
    if shell is not None and stream is sys.stderr:
        ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
        if ip is not None and type(ip).__name__ == "ZMQInteractiveShell":
            return "notebook"
    if stream is sys.stderr:
        from framelab.platform.console import stderr_is_terminal

        # Not stream.isatty(): in sessions framelab starts, fd 2 is a pipe to the console filter.
        return "terminal" if stderr_is_terminal() else "log"
    isatty = getattr(stream, "isatty", None)
    return "terminal" if callable(isatty) and isatty() else "log"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
