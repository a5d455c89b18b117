"""Nodes of one CPU: model pools leave room on a node for the tasks that feed them, so nothing waits forever.

A real ``ray start`` cluster of two 1-CPU nodes (the loopback cluster of the
other multi-node tests has nodes of 1 and 2 CPUs). Extraction, classifier
training, k-means and nearest neighbours must each finish in a driver that
joined the cluster; the bound on the driver is the test's, far above the
work's own time, so a placement that never happens fails the test instead
of eating CI's time.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parents[2]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"

WORK = """
import json, sys
import numpy as np
from framelab.frames import Frame
from framelab.platform.session import connect
from framelab.toolkits import classifier, deep_features, kmeans, nearest_neighbors
connect(sys.argv[1])
photos = Frame.read_images(sys.argv[2], label_from="folder")
features = deep_features.extract(photos).materialize()
out = {"features": features.num_rows()}
model = classifier.create(features, "label", features=["deep_features"], seed=0, verbose=False)
out["accuracy"] = model.evaluate(features)["accuracy"]
out["clusters"] = kmeans.create(features, 2, features=["deep_features"], seed=0, verbose=False).num_clusters
index = nearest_neighbors.create(features, features=["deep_features"], verbose=False)
out["neighbours"] = index.query(features.head(2), k=2).num_rows()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def one_cpu_nodes():
    sys.path.insert(0, str(REPO / "tests"))
    from ray_cluster import LoopbackCluster

    cluster = LoopbackCluster()
    try:
        cluster.start_head(num_cpus=1)
        cluster.add_worker(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


def test_extraction_training_kmeans_and_neighbours_finish_on_nodes_of_one_cpu(one_cpu_nodes, tmp_path):
    import json

    for name in ("Faces_easy", "Motorbikes"):
        (tmp_path / name).mkdir()
        for path in sorted((CALTECH / name).glob("*.jpg"))[:6]:
            shutil.copy(path, tmp_path / name / path.name)
    script = tmp_path / "work.py"
    script.write_text(WORK)
    done = one_cpu_nodes.run_driver(
        f"import runpy, sys; sys.argv = ['work.py', {one_cpu_nodes.gcs_address!r}, {str(tmp_path)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')", timeout=480)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))[7:])
    assert out["features"] == 12 and out["clusters"] == 2 and out["neighbours"] == 4
    assert out["accuracy"] == 1.0
