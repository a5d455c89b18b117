"""Keeping Ray's lines that need no action out of the console of sessions framelab starts.

Ray's C++ core writes some lines straight to the process's stderr (file
descriptor 2), past Python's logging: for example one "constructor arguments
in the object store" error for every actor Ray Data starts, which no user can
act on. :func:`filter_stderr` puts a pipe in front of file descriptor 2 and a
thread that forwards every line except those that match :data:`NO_ACTION`,
which it logs at DEBUG on the ``framelab.console`` logger instead. Python's
own warnings and errors, and every other line, pass through unchanged. A
crash's stacks (Python's fault handler) go straight to the real stderr, past
the pipe, so a process that dies in native code still says where.

Example:
    >>> from framelab.platform.console import needs_no_action
    >>> needs_no_action("[2026 E 1 1] core_worker.cc:2465: Actor with class name: 'MapWorker' and ID: "
    ...                 "'ab' has constructor arguments in the object store and max_restarts > 0. ...")
    True
    >>> needs_no_action("ValueError: something the user must fix")
    False
"""

from __future__ import annotations

import atexit
import faulthandler
import logging
import os
import re
import select
import sys
import threading

_log = logging.getLogger("framelab.console")
NO_ACTION = (
    # Ray Data starts every actor pool with restartable actors whose constructor
    # arguments live in the object store; Ray's core warns about that for each actor.
    re.compile(r"core_worker\.cc:\d+: Actor with class name: .* has constructor arguments in the object store"),
    # A Ray Client session's server starts Ray off its main thread, and its log reaches the client.
    re.compile(r"^SIGTERM handler is not set because current thread is not the main thread\.?$"),
)
_lock = threading.Lock()
_installed = False
_enabled = True
_was_tty: bool | None = None
_crash_output = None


def needs_no_action(line: str) -> bool:
    """True for a line of Ray's that a framelab user can do nothing about.

    Example:
        >>> from framelab.platform.console import needs_no_action
        >>> needs_no_action("Traceback (most recent call last):")
        False
    """
    return any(pattern.search(line) for pattern in NO_ACTION)


def stderr_is_terminal() -> bool:
    """Whether this process's stderr is a terminal (as it was before :func:`filter_stderr` put a pipe there).

    Example:
        >>> from framelab.platform.console import stderr_is_terminal
        >>> isinstance(stderr_is_terminal(), bool)
        True
    """
    if _was_tty is not None:
        return _was_tty
    try:
        return os.isatty(2)
    except OSError:
        return False


def filter_stderr() -> bool:
    """Filter this process's file descriptor 2 from now on (once per process); False where it cannot.

    Example:
        >>> from framelab.platform.console import filter_stderr
        >>> filter_stderr()  # doctest: +SKIP
        True
    """
    global _installed, _was_tty
    with _lock:
        if _installed:
            return True
        if not _enabled:
            return False
        try:
            original = os.dup(2)
            read_end, write_end = os.pipe()
        except OSError:
            return False
        _was_tty = os.isatty(original)
        # A crash (a segfault in native code) must still be seen: Python's fault handler writes its
        # stacks to the real stderr, not into the pipe whose forwarding thread dies with the process.
        global _crash_output
        _crash_output = open(original, "w", closefd=False)  # noqa: SIM115 (lives as long as the process)
        faulthandler.enable(file=_crash_output, all_threads=True)
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass
        os.dup2(write_end, 2)
        os.close(write_end)
        stop = threading.Event()
        thread = threading.Thread(
            target=_forward, args=(read_end, original, stop), name="framelab-stderr", daemon=True
        )
        thread.start()
        atexit.register(_restore, original, stop, thread)
        _installed = True
        return True


def disable() -> None:
    """Never filter stderr in this process (for hosts that capture file descriptors themselves, like pytest).

    Example:
        >>> from framelab.platform import console
        >>> console.disable()  # doctest: +SKIP
    """
    global _enabled
    _enabled = False


def _restore(original: int, stop: threading.Event, thread: threading.Thread) -> None:
    """At exit: stderr goes straight out again, and what is still in the pipe is forwarded first."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError, OSError):
        pass
    os.dup2(original, 2)
    stop.set()
    thread.join(timeout=5)


def _forward(read_end: int, original: int, stop: threading.Event) -> None:
    """Copy lines from the pipe to the real stderr, minus those that need no action."""
    pending = b""
    while True:
        ready, _, _ = select.select([read_end], [], [], 0.1)
        if not ready:
            if stop.is_set():  # drained: the process is exiting
                if pending:
                    _write(original, pending)
                return
            continue
        try:
            chunk = os.read(read_end, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            if pending:
                _write(original, pending)
            return
        pending += chunk
        *lines, pending = pending.split(b"\n")
        out = []
        for line in lines:
            text = line.decode("utf-8", "replace")
            if needs_no_action(text):
                _log.debug("%s", text)
            else:
                out.append(line + b"\n")
        # An unfinished line is held only while it may still become one of Ray's
        # log lines ("[date ...] file.cc:..."); anything else, such as a progress
        # bar redrawn with "\r", goes out at once.
        if pending and (not pending.startswith(b"[") or len(pending) > 1 << 16):
            out.append(pending)
            pending = b""
        if out:
            _write(original, b"".join(out))


def _write(fd: int, data: bytes) -> None:
    while data:
        try:
            written = os.write(fd, data)
        except OSError:
            return
        data = data[written:]
