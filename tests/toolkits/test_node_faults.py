"""Node faults on a real loopback cluster: each test says what it killed and what it counted.

Drivers run in their own processes on the cluster's machine (joining by the
GCS address, as a driver on a head node does), so killing a node never
touches the test process. A killed worker node is replaced afterwards, as
Kubernetes or the cluster launcher would, so the next test finds the cluster
whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parents[2]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"


class Driver:
    """A driver process whose output lines the test reads as they come."""

    def __init__(self, cluster, code: str):
        self.process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cluster.client_env(), cwd=cluster.root,
        )
        self.lines: list[str] = []

    def wait_for(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
            if line.startswith(prefix):
                return line
            assert time.monotonic() < deadline, f"no {prefix!r} line in {timeout}s: {self.lines[-5:]}"
        raise AssertionError(f"the driver ended before {prefix!r}: {self.process.stderr.read()[-3000:]}")

    def finish(self, timeout: float) -> tuple[int, str, str]:
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
            raise AssertionError(f"the driver still ran after {timeout:.0f} s: {err[-4000:]}") from None
        return self.process.returncode, "\n".join(self.lines) + out, err


def _worker(cluster):
    return next(n for n in cluster.nodes if n.name != "head")


def _shard_processes(node) -> list[int]:
    found = []
    for pid in node.pids():
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::_Shard"):
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def photos_240(tmp_path_factory) -> list[str]:
    """240 real Caltech images (12 classes x 20), listed by path."""
    import shutil

    root = tmp_path_factory.mktemp("faults")
    paths = []
    for folder in sorted(p for p in CALTECH.iterdir() if p.is_dir())[:12]:
        (root / folder.name).mkdir()
        for path in sorted(folder.glob("*.jpg"))[:20]:
            shutil.copy(path, root / folder.name / path.name)
            paths.append(str(root / folder.name / path.name))
    return paths


def test_a_worker_node_killed_mid_extraction_leaves_every_row_exactly_once(loopback_cluster, photos_240):
    """Killed: every process of the worker node (raylet, object store, extraction actor, decode workers),
    after the first extracted batch reached the driver. Counted: output rows by path, against the input."""
    folder = str(Path(photos_240[0]).parents[1])
    driver = Driver(loopback_cluster, f"""
import json
from framelab.frames import Frame
from framelab.platform.session import connect
from framelab.toolkits import deep_features
connect({loopback_cluster.gcs_address!r})
photos = Frame.read_images({folder!r}).materialize()
featured = deep_features.extract(photos, device="cpu", batch_size=8)
paths = []
for batch in featured.iter_batches(16, "arrow"):
    paths += batch.column("path").to_pylist()
    assert batch.column("deep_features").null_count == 0
    print("batch", len(paths), flush=True)
print("PATHS " + json.dumps(paths), flush=True)
""")
    try:
        driver.wait_for("batch", timeout=400)
        worker = _worker(loopback_cluster)
        killed = loopback_cluster.kill(worker)
        assert len(killed) >= 3  # raylet, agents, the actor: the node, not one process
        loopback_cluster.add_worker(num_cpus=2, resources={"worker": 1})  # the operator's replacement
        code, out, err = driver.finish(timeout=600)
    finally:
        driver.process.kill()
    assert code == 0, err[-4000:]
    batches_after_kill = [line for line in out.splitlines() if line.startswith("batch")][1:]
    assert batches_after_kill, "the kill came after the extraction had finished"
    paths = json.loads(next(x for x in out.splitlines() if x.startswith("PATHS "))[6:])
    assert len(paths) == len(set(paths)) == len(photos_240)
    assert sorted(paths) == sorted(photos_240)


def test_a_worker_node_killed_mid_training_goes_on_elsewhere_or_fails_at_once_with_a_clear_error(loopback_cluster):
    """Killed: every process of the worker node while its shard actors were training (L-BFGS passes
    running). Counted: seconds from the kill to the driver's end, and what it reported. Where another
    node has room, the lost shards are rebuilt there and training finishes (that the model is then the
    undisturbed one is tests/reliability/test_training_faults.py's check); where none has, the job
    stops with NodeLostError."""
    driver = Driver(loopback_cluster, f"""
import numpy as np
from framelab.frames import Frame
from framelab.platform.session import connect
from framelab.toolkits import classifier
connect({loopback_cluster.gcs_address!r})
rng = np.random.default_rng(0)
x = rng.normal(size=(10_000, 1280)).astype(np.float32)      # 51 MB: held by shard actors
y = (rng.integers(0, 50, size=10_000)).astype(str)
frame = Frame({{"x": x, "y": y}})
print("training", flush=True)
model = classifier.create(frame, target="y", max_iterations=400, validation_set=None, seed=0, verbose=False)
print("trained", model.training["shard_restarts"], flush=True)
""")
    try:
        driver.wait_for("training", timeout=300)
        worker = _worker(loopback_cluster)
        deadline = time.monotonic() + 300
        while not _shard_processes(worker):
            assert driver.process.poll() is None, driver.process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no shard actor started on the worker node"
            time.sleep(0.5)
        time.sleep(3)  # the shards have loaded and L-BFGS passes are running
        assert driver.process.poll() is None, "training ended before the kill"
        killed_at = time.monotonic()
        loopback_cluster.kill(worker)
        code, out, err = driver.finish(timeout=180)  # never a hang
        seconds = time.monotonic() - killed_at
    finally:
        driver.process.kill()
        loopback_cluster.add_worker(num_cpus=2, resources={"worker": 1})
    assert seconds < 120, f"took {seconds:.0f}s to finish or report the lost node"
    if code == 0:
        # Finished: lost shards were rebuilt elsewhere (restarts >= 1), or none was on the killed node.
        assert int(out.split("trained", 1)[1].split()[0]) >= 0, out
        return
    assert "NodeLostError" in err and "shard(s) of the in-memory data was lost" in err, err[-3000:]
    assert "Run it again" in err


def test_extraction_completes_when_the_corpus_is_several_times_the_object_store(tmp_path):
    """A cluster whose nodes each have an 80 MB object store; 220 images of 1.2 MB (270 MB) are read
    and held (materialised), then extracted. Counted: output rows, and the raylets' spill reports."""
    sys.path.insert(0, str(REPO / "tests"))
    from PIL import Image
    from ray_cluster import LoopbackCluster

    rng = np.random.default_rng(0)
    corpus = tmp_path / "corpus" / "noise"
    corpus.mkdir(parents=True)
    base = rng.integers(0, 256, size=(640, 640, 3), dtype=np.uint8)
    for i in range(220):
        Image.fromarray(np.roll(base, i, axis=0)).save(corpus / f"img_{i:03d}.bmp")
    corpus_bytes = sum(p.stat().st_size for p in corpus.iterdir())
    store = 80_000_000
    assert corpus_bytes > 3 * store
    cluster = LoopbackCluster(object_store_memory=store)
    try:
        cluster.start_head(num_cpus=1)
        cluster.add_worker(num_cpus=2)
        done = cluster.run_driver(f"""
from framelab.frames import Frame
from framelab.platform.session import connect
from framelab.toolkits import deep_features
connect({cluster.gcs_address!r})
photos = Frame.read_images({str(corpus.parent)!r}).materialize()
featured = deep_features.extract(photos, device="cpu").materialize()
paths = featured.select("path").to_arrow().column("path").to_pylist()
print("ROWS", len(paths), len(set(paths)), featured.to_arrow().column("deep_features").null_count)
""", timeout=900)
        spilled = cluster.raylet_logs().count("Spilled ")
    finally:
        cluster.stop()
    assert done.returncode == 0, done.stderr[-4000:]
    assert "ROWS 220 220 0" in done.stdout
    assert spilled > 0, "nothing was spilled: the store was not small enough to prove anything"
