"""framelab.platform.console: Ray's lines that need no action leave the console; everything else stays."""

from __future__ import annotations

import subprocess
import sys

RAY_NOISE = (
    "[2026-11-29 03:55:11,428 E 17103 17103] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(FeatureActor))' and ID: 'ab12' has constructor arguments in the object store "
    "and max_restarts > 0. If the arguments in the object store go out of scope or are lost, the actor "
    "restart will fail."
)


def test_the_filter_drops_only_known_lines_and_keeps_partial_lines_moving():
    code = f"""
import os, sys
from framelab.platform.console import filter_stderr
assert filter_stderr()
os.write(2, b"before\\n")
os.write(2, {RAY_NOISE!r}.encode() + b"\\n")
os.write(2, b"[a log line of its own] kept\\n")
os.write(2, b"\\rprogress 50%")
print("python warning line", file=sys.stderr, flush=True)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    err = out.stderr.decode()  # bytes: text mode would turn the "\r" into a newline
    assert out.returncode == 0, err
    assert "core_worker" not in err
    assert "before\n" in err and "[a log line of its own] kept\n" in err
    assert "\rprogress 50%" in err and "python warning line" in err
