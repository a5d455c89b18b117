"""The reliability suite: each test tries bad input or injects a fault, and checks nothing is lost or mixed.

Tests count what they do through the ``tally`` fixture; the run ends with one
line giving the totals (bad inputs tried, faults injected, rows lost), the
numbers the README quotes. A row lost fails its test.
"""

from __future__ import annotations

import pytest

_TOTALS = {"bad inputs tried": 0, "faults injected": 0, "rows lost": 0}


class Tally:
    """Counts a test's bad inputs and faults, and checks that every row given came back."""

    def bad_input(self, n: int = 1) -> None:
        _TOTALS["bad inputs tried"] += n

    def fault(self, n: int = 1) -> None:
        _TOTALS["faults injected"] += n

    def rows(self, given: int, returned: int) -> None:
        lost = given - returned
        _TOTALS["rows lost"] += max(lost, 0)
        assert lost == 0, f"{lost} of {given} row(s) were lost"


@pytest.fixture()
def tally() -> Tally:
    return Tally()


def pytest_terminal_summary(terminalreporter) -> None:
    if any(_TOTALS.values()):
        terminalreporter.write_line("reliability: " + ", ".join(f"{v} {k}" for k, v in _TOTALS.items()))
