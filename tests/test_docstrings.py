"""Every docstring example of frames/, toolkits/ and platform/ runs, as part of the test suite.

Modules are imported by their installed names (``framelab.platform.session``),
never from the folders: collected from ``platform/`` directly, a module would
be a top-level ``platform`` shadowing Python's own. Examples share the test
session's Ray (the ``ray_session`` fixture). A module added to any layer is
found here without editing a list.
"""

from __future__ import annotations

import doctest
import gc
import importlib
import io
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"frames": "framelab.frames", "toolkits": "framelab.toolkits", "platform": "framelab.platform"}
OPTIONS = doctest.ELLIPSIS


def _module_names() -> list[str]:
    names = []
    for folder, package in LAYERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            names.append(".".join([package, *parts]))
    return names


def _examples() -> list:
    finder = doctest.DocTestFinder(exclude_empty=True)
    found = []
    for name in _module_names():
        module = importlib.import_module(name)
        for test in finder.find(module, name):
            if test.examples:
                found.append(pytest.param(test, id=test.name))
    return found


@pytest.mark.parametrize("example", _examples())
def test_docstring_example_runs(example: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = io.StringIO()
    result = runner.run(example, out=report.write, clear_globs=True)
    # An example's models and frames may sit in reference cycles: collected now, their actors give their
    # CPUs back before the next example asks for them.
    gc.collect()
    assert result.failed == 0, report.getvalue()
