"""A worker node killed while a toolkit works on it, then the same call run again once a replacement joined.

Killed: every process of the worker node while the call ran. Checked: the
call raises framelab's NodeLostError (never a Ray error), and the same call,
run again right after a new worker node joined (while Ray may still list the
dead one as alive), succeeds.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.multinode

_CALLS = {
    "nearest_neighbors query": (
        "model = nearest_neighbors.create(frame, verbose=False)",
        "model.query(probe, k=3)",
        "nearest_neighbors.create(frame, verbose=False).query(probe, k=3)",
    ),
    "classifier fit": (
        "y = (x[:, 0] > 0).astype(str)",
        "classifier.create(Frame({'v': x, 'y': y}), target='y', max_iterations=400, validation_set=None, "
        "seed=0, verbose=False)",
        "classifier.create(Frame({'v': x, 'y': y}), target='y', max_iterations=5, validation_set=None, "
        "seed=0, verbose=False)",
    ),
    "kmeans fit": (
        "pass",
        "kmeans.create(frame, num_clusters=20, max_iterations=50, seed=0, verbose=False)",
        "kmeans.create(frame, num_clusters=20, max_iterations=2, seed=0, verbose=False)",
    ),
}

_DRIVER = """
import sys, time
import numpy as np
from framelab.frames import Frame
from framelab.platform.errors import NodeLostError
from framelab.platform.session import connect
from framelab.toolkits import classifier, kmeans, nearest_neighbors
connect({address!r})
x = np.random.default_rng(0).normal(size=(150_000, 64)).astype(np.float32)   # 38 MB: held by shard actors
frame = Frame({{"v": x}})
probe = Frame({{"v": x[:200]}})
{setup}
print("running", flush=True)
try:
    deadline = time.monotonic() + 120   # the test kills the node within this
    while time.monotonic() < deadline:
        {call}
    print("never lost", flush=True)
except NodeLostError:
    print("lost NodeLostError", flush=True)
except BaseException as err:
    print("lost", type(err).__name__, str(err)[:300].replace(chr(10), " "), flush=True)
sys.stdin.readline()                      # a replacement node has joined
{rerun}
print("rerun ok", flush=True)
"""


def _line(driver, prefixes: tuple[str, ...]) -> str:
    """The driver's next line of ours (Ray prints its own log lines, a dead node's among them, on the same stdout)."""
    for line in driver.stdout:
        if line.startswith(prefixes):
            return line.strip()
    return f"the driver ended: {driver.stderr.read()[-3000:]}"


def _shard_running_on(node) -> bool:
    for pid in node.pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().split(b"\0")[0].startswith(b"ray::_Shard"):
                    return True
        except OSError:
            continue
    return False


@pytest.mark.parametrize("call", list(_CALLS))
def test_a_node_killed_during_the_call_raises_node_lost_and_the_call_run_again_succeeds(loopback_cluster, call,
                                                                                        tally):
    setup, body, rerun = _CALLS[call]
    code = _DRIVER.format(address=loopback_cluster.gcs_address, setup=setup, call=body, rerun=rerun)
    driver = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=loopback_cluster.client_env(),
                              cwd=loopback_cluster.root)
    worker = next(n for n in loopback_cluster.nodes if n.name != "head")
    replaced = False
    try:
        assert _line(driver, ("running",)) == "running"
        deadline = time.monotonic() + 240
        while not _shard_running_on(worker):
            assert driver.poll() is None and time.monotonic() < deadline, "no shard started on the worker"
            time.sleep(0.5)
        time.sleep(2)
        loopback_cluster.kill(worker)
        tally.fault()
        lost = _line(driver, ("lost", "never lost"))
        print("the call reported:", lost)
        loopback_cluster.add_worker(num_cpus=2, resources={"worker": 1})
        replaced = True
        driver.stdin.write("go\n")
        driver.stdin.flush()
        try:
            out, err = driver.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            pytest.fail("the call run again did not finish in 300 s:\n" + loopback_cluster.diagnose(driver.pid))
    finally:
        driver.kill()
        if not replaced:
            loopback_cluster.add_worker(num_cpus=2, resources={"worker": 1})
    # A classifier fit rebuilds lost shards on the nodes left when they have room (then it may finish);
    # what it never does is end with a Ray error.
    expected = ("lost NodeLostError", "never lost") if call == "classifier fit" else ("lost NodeLostError",)
    assert lost in expected, f"{lost}\n{err[-3000:]}"
    assert "rerun ok" in out, err[-3000:]
