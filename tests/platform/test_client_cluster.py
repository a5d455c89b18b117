"""A notebook on ``ray://``: the image walk-through from a Ray Client session on a real ``ray start`` cluster.

Each driver is its own process with only the cluster's token file in its
environment, as a user's notebook would be. The walk-through's results must
equal the same code run in this test's embedded local Ray, and what the
client prints must come once, as framelab's own lines.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parents[2]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"

# The README's quick start (its S3 folder a local one) and image walk-through, small: read, extract,
# classifier, similarity, k-means, tagger, save, load, explore.
WALK_THROUGH = """
import numpy as np
import polars as pl
from framelab.frames import Frame, agg
from framelab.toolkits import deep_features, image_classifier, image_similarity, image_tagger, kmeans, load_model

people = Frame({"name": ["ann", "bob", "cid"], "city": ["rome", "oslo", "rome"], "age": [31, 25, 40]})
adults = people.filter(pl.col("age") > 30).with_column("decade", pl.col("age") // 10)
out["quick_start"] = adults.groupby("city").agg(n=agg.count(), mean_age=agg.mean("age")).to_pydict()
adults.save(SAVE + "/adults")
out["adults"] = Frame.load(SAVE + "/adults").head().to_pydict()

photos = Frame.read_images(FOLDER, label_from="folder")
out["rows"] = photos.num_rows()
out["head"] = photos.head(2).select("path", "label").to_pydict()
features = deep_features.extract(photos).materialize()
out["features"] = np.round(features.sort("path").to_numpy("deep_features"), 3).tolist()
model = image_classifier.create(features, "label", seed=1, verbose=False)
out["accuracy"] = model.evaluate(features)["accuracy"]
out["predicted"] = model.predict(photos.sort("path")).to_pylist()
model.save(SAVE + "/classifier")
out["reloaded"] = load_model(SAVE + "/classifier").predict(photos.sort("path").head(3)).to_pylist()
similar = image_similarity.create(features, label="path", verbose=False)
out["neighbours"] = similar.query(features.sort("path").head(2), k=2).to_pydict()["reference_label"]
clusters = kmeans.create(features, 2, features=["deep_features"], seed=1, verbose=False)
out["cluster_sizes"] = sorted(clusters.cluster_info.to_pydict()["size"])
tagger = image_tagger.create(verbose=False)
out["tags"] = [[t["tag"] for t in row] for row in tagger.tag(photos.sort("path").head(2), k=2).to_pydict()["tags"]]
out["batches"] = [len(b) for b in photos.select("path").iter_batches(5)]
features.save(SAVE + "/frame")
out["saved_rows"] = Frame.load(SAVE + "/frame").num_rows()
out["page"] = open(photos.head(3).explore(SAVE + "/page.html")).read().count("data:image")
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Two classes x 6 real Caltech images in a <class>/<file> folder every node can read."""
    root = tmp_path_factory.mktemp("client-photos")
    for name in ("Faces_easy", "Motorbikes"):
        (root / name).mkdir()
        for path in sorted((CALTECH / name).glob("*.jpg"))[:6]:
            shutil.copy(path, root / name / path.name)
    return root


def _client(cluster, body: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    code = (
        "import json\n"
        "from framelab.platform.session import connect\n"
        f"print(connect({cluster.client_address!r}), flush=True)\n"
        "out = {}\n"
        f"{body}\n"
        "print('RESULT ' + json.dumps(out), flush=True)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          env={**cluster.client_env(), **(env or {})}, cwd=cluster.root)


def _result(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_the_image_walk_through_from_a_ray_client_gives_the_local_results_printed_once(
    loopback_cluster, photos, tmp_path
):
    setup = f"FOLDER = {str(photos)!r}\nSAVE = {str(tmp_path / 'client')!r}\n"
    done = _client(loopback_cluster, setup + WALK_THROUGH + "model.summary()\n")
    remote = _result(done)
    assert "(Ray Client)" in done.stdout

    local: dict = {}
    exec(f"FOLDER = {str(photos)!r}\nSAVE = {str(tmp_path / 'local')!r}\nout = local\n" + WALK_THROUGH, {"local": local})
    assert remote == local
    assert remote["rows"] == 12 and remote["saved_rows"] == 12 and remote["page"] == 3

    printed = done.stdout + done.stderr
    # Ray's own trace and "please open an issue" never reach the user; a model's summary shows once, here.
    assert "core_worker" not in printed and "open an issue" not in printed, printed[-3000:]
    summary_lines = [line for line in printed.splitlines() if line.startswith("Class ")]
    assert len(summary_lines) == 1 and "(_ClusterDriver" not in printed, printed[-3000:]


def test_a_result_over_the_client_limit_is_refused_with_what_to_do(loopback_cluster):
    done = _client(loopback_cluster, """
from framelab.frames import Frame
from framelab.platform.client import ResultTooLargeError
big = Frame({"x": list(range(100_000))}).repartition(2)
try:
    big.to_arrow()
except ResultTooLargeError as exc:
    out["error"] = str(exc)
out["head"] = big.head(3).to_pydict()
""", env={"FRAMELAB_CLIENT_RESULT_LIMIT": "100000"})
    out = _result(done)
    assert "save" in out["error"] and "head" in out["error"] and "FRAMELAB_CLIENT_RESULT_LIMIT" in out["error"]
    assert out["head"] == {"x": [0, 1, 2]}


def test_interrupting_a_client_mid_extraction_frees_the_cluster_and_the_next_call_works(loopback_cluster, tmp_path):
    started = tmp_path / "started"
    body = f"""
import ray, time
from framelab.frames import Frame
from framelab.toolkits import deep_features
photos = Frame.read_images({str(CALTECH)!r})
open({str(started)!r}, "w").write("go")
try:
    deep_features.extract(photos).materialize()
    out["interrupted"] = False
except KeyboardInterrupt:
    out["interrupted"] = True
total = ray.cluster_resources()["CPU"]
deadline = time.monotonic() + 30
while ray.available_resources().get("CPU", 0) < total and time.monotonic() < deadline:
    time.sleep(0.5)
out["free"], out["total"] = ray.available_resources().get("CPU", 0), total
out["next"] = Frame({{"x": [1, 2, 3]}}).repartition(2).num_rows()
"""
    code = (
        "import json\nfrom framelab.platform.session import connect\n"
        f"connect({loopback_cluster.client_address!r})\nout = {{}}\n{body}\n"
        "print('RESULT ' + json.dumps(out), flush=True)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=loopback_cluster.client_env(), cwd=loopback_cluster.root)
    deadline = time.monotonic() + 300
    while not started.exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.5)
    time.sleep(8)  # the extraction is under way on the cluster (1,200 images take minutes here)
    os.kill(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=300)
    out = _result(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    assert out["interrupted"], stderr[-3000:]
    assert out["free"] == out["total"], f"CPUs still held after the interrupt: {out}"
    assert out["next"] == 3
