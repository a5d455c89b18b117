"""framelab.platform.progress: a bar at a terminal, one summary line in a log, nothing for quick jobs."""

from __future__ import annotations

import io

from framelab.platform.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_one_summary_line():
    log = io.StringIO()
    with Progress("deep features", total=10, stream=log, quiet_seconds=0) as bar:
        for _ in range(10):
            bar.update(1)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("deep features: 10 of 10 rows in ") and "rows/s)" in lines[0]


def test_a_terminal_gets_a_bar_with_rate_and_time_left():
    tty = _Terminal()
    bar = Progress("read_images", total=100, stream=tty, quiet_seconds=0)
    bar._drawn = -1e9  # draw on the next update
    bar.update(25)
    assert "\r[######" in tty.getvalue() and "25%" in tty.getvalue()
    assert "rows/s" in tty.getvalue() and "left" in tty.getvalue()
    bar.update(75)
    bar.close()
    assert tty.getvalue().endswith("\n") and "100 of 100 rows in" in tty.getvalue()


def test_a_quick_job_shows_nothing():
    log = io.StringIO()
    with Progress("quick", stream=log) as bar:
        bar.update(5)
    assert log.getvalue() == ""
