"""framelab demo: arguments checked before Ray starts, errors in one line, and a console with nothing to ignore."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from caltech_folders import copy_caltech

from framelab.toolkits import datasets

# Lines a user could not act on: Ray's log lines, Python warnings, tracebacks.
NOISE = re.compile(r"WARNING|Warning|ERROR| E \d+ \d+\]|core_worker|Traceback|deprecated", re.IGNORECASE)


def _demo(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "framelab.toolkits.cli", "demo", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


@pytest.fixture(scope="module")
def two_classes(tmp_path_factory):
    root = tmp_path_factory.mktemp("two-classes")
    copy_caltech(root, ("ewer", "watch"), 8)
    return root


def _folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    loose = tmp_path / "loose"
    loose.mkdir()
    one_class = tmp_path / "one"
    (one_class / "ewer").mkdir(parents=True)
    for path in sorted((datasets.caltech101_path() / "ewer").glob("*.jpg"))[:2]:
        shutil.copy(path, loose / path.name)
        shutil.copy(path, one_class / "ewer" / path.name)
    return {
        str(tmp_path / "missing"): "no such folder",
        str(empty): "no images found in",
        str(loose): "no <class>/<image> sub-folders",
        str(one_class): "a classifier needs at least two",
        str(loose / path.name): "is a file",
    }


def test_bad_data_folders_get_one_line_before_ray_starts(tmp_path):
    # An address no Ray listens on: had the demo connected before checking, it would fail differently.
    unreachable = {"FRAMELAB_RAY_ADDRESS": "ray://127.0.0.1:9"}
    for folder, reason in _folders(tmp_path).items():
        out = _demo("--data", folder, env=unreachable, timeout=120)
        assert out.returncode == 2, out.stderr
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("framelab demo: error: "), out.stderr
        assert reason in out.stderr
        assert out.stdout == ""
    out = _demo("--model", "nope", env=unreachable, timeout=120)
    assert out.returncode == 2 and "unknown --model 'nope'; known: " in out.stderr


@pytest.mark.slow
def test_the_demo_console_has_no_line_a_user_cannot_act_on(two_classes, tmp_path):
    out = _demo("--data", str(two_classes), "--output", str(tmp_path / "model"))
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    lines = (out.stdout + out.stderr).splitlines()
    noisy = [line for line in lines if NOISE.search(line)]
    assert not noisy, "\n".join(noisy)
    assert any("test accuracy" in line for line in lines)
