"""Fine-tuning (image_classifier.create(..., fine_tune=True)) on tiny subsets: real Ray Train, real images.

Sizes are the smallest the recipe allows: 2 classes x 8 photos, 64 x 64
pixels, one or two epochs. The bars these tests prove: a fine-tuned model is
an ImageClassifier like any other (predict, evaluate, save, load); its
extractor has its own provenance and feeds the other toolkits; bad input is
refused before any training worker starts; a checkpoint resumes and never
redoes an epoch; DDP on two nodes splits the rows and keeps the workers'
parameters identical; a training worker killed mid-epoch costs nothing but time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.toolkits import datasets, image_classifier, load_model

CLASSES = ["ewer", "sunflower"]
TINY = {"fine_tune": True, "resolution": 64, "seed": 0, "verbose": False}


@pytest.fixture(scope="module")
def photos():
    return datasets.caltech101(classes=CLASSES, per_class=8).materialize()


@pytest.fixture(scope="module")
def checkpoint_url(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fine_tune") / "checkpoints")


@pytest.fixture(scope="module")
def tuned(photos, checkpoint_url):
    return image_classifier.create(photos, "label", epochs=1, checkpoint=checkpoint_url, **TINY)


# ---------------------------------------------------------------- the model
def test_a_fine_tuned_model_is_an_image_classifier_with_per_epoch_metrics(tuned, photos):
    assert isinstance(tuned, image_classifier.ImageClassifier)
    (epoch,) = tuned.training["epochs"]
    assert epoch["epoch"] == 1 and epoch["images"] == 16 and epoch["images_per_second"] > 0
    assert {"loss", "training_accuracy", "validation_accuracy"} <= set(epoch)
    assert tuned.training["recipe"]["layers"] == "all" and tuned.training["num_workers"] == 1
    assert tuned.predict(photos).to_pylist() == tuned.classify(photos).to_pydict()["class"]
    assert tuned.predict_topk(photos.head(1), k=2).num_rows() == 2
    # The head starts from the probe, which is perfect on its 16 training photos; one gentle epoch keeps it so.
    assert tuned.evaluate(photos)["accuracy"] >= 0.9
    assert "Fine-tuning" in repr(tuned) or tuned.summary() is None


def test_the_extractor_is_the_fine_tuned_network_with_its_own_provenance(tuned):
    from framelab.toolkits.deep_features import DeepFeatureExtractor

    original = DeepFeatureExtractor("mobilenet_v2").provenance
    provenance = tuned.extractor.provenance
    assert provenance["weights_sha256"] != original["weights_sha256"]
    assert provenance["model"] == "mobilenet_v2" and provenance["preprocessing"]["resize"] == [64, 64]
    name, data = tuned.extractor.weights_copy()
    assert name == "weights.safetensors" and data[:8] != b"PK\x03\x04"  # safetensors, not a torch zip/pickle


def test_a_saved_fine_tuned_model_loads_and_predicts_the_same(tuned, photos, tmp_path):
    tuned.save(str(tmp_path / "model"))
    assert list((tmp_path / "model").glob("weights*.safetensors"))  # the fine-tuned network, no pickle
    loaded = load_model(str(tmp_path / "model"))
    assert loaded.training == tuned.training
    before = tuned.predict(photos, output_type="probability_vector").to_pylist()
    after = loaded.predict(photos, output_type="probability_vector").to_pylist()
    np.testing.assert_allclose(np.array(after), np.array(before), atol=1e-6)


def test_its_features_feed_kmeans_and_image_similarity(tuned, photos, tmp_path):
    from framelab.toolkits import image_similarity, kmeans

    featured = tuned.extractor.transform(photos).materialize()
    clusters = kmeans.create(featured.select("deep_features"), 2, features=["deep_features"], seed=0, verbose=False)
    assert clusters.cluster_id.num_rows() == 16
    # Another toolkit takes the fine-tuned network as it takes any weights file, and reuses the features.
    name, data = tuned.extractor.weights_copy()
    (tmp_path / name).write_bytes(data)
    similar = image_similarity.create(featured, weights=str(tmp_path / name),
                                      preprocessing=tuned.extractor.preprocessing, verbose=False)
    assert similar.extractor.provenance == tuned.extractor.provenance
    assert similar.query(featured.head(1), k=1).to_pydict()["distance"][0] == pytest.approx(0, abs=1e-5)


def test_features_of_the_original_network_are_refused_where_the_fine_tuned_ones_are_expected(tuned, photos):
    from framelab.toolkits import deep_features

    original = deep_features.extract(photos).drop("image")
    with pytest.raises(InputError, match="features made by"):
        tuned.predict(original)


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize("options, message", [
    ({"epochs": 0}, "epochs must be a positive integer"),
    ({"layers": 99}, "has 19 blocks"),
    ({"layers": "some"}, "layers must be 'all'"),
    ({"learning_rate": -1.0}, "learning_rate must be a positive number"),
])
def test_bad_options_are_refused_naming_the_fix(photos, options, message):
    with pytest.raises(InputError, match=message):
        image_classifier.create(photos, "label", **{**TINY, **options})


def test_fine_tuning_options_without_fine_tune_are_refused(photos):
    with pytest.raises(InputError, match="pass fine_tune=True"):
        image_classifier.create(photos, "label", epochs=3)


def test_bad_frames_are_refused_before_any_worker_starts(photos):
    table = photos.to_arrow()
    labels = table.column("label").to_pylist()
    cases = [
        (Frame.from_arrow(table.set_column(table.schema.get_field_index("label"), "label",
                                           pa.array(["ewer"] * 16))), "only one class"),
        (Frame.from_arrow(table.slice(0, 9)), "fewer than 2 images"),
        (Frame.from_arrow(table.set_column(table.schema.get_field_index("label"), "label",
                                           pa.array([None] + labels[1:]))), "null label"),
        (Frame({"x": [1.0, 2.0], "label": ["a", "b"]}), "no image column"),
    ]
    for frame, message in cases:
        with pytest.raises(InputError, match=message):
            image_classifier.create(frame, "label", epochs=1, **TINY)


def test_a_frame_whose_images_all_fail_to_decode_is_refused():
    from framelab.frames.images import images_from_bytes

    broken = Frame({"image": images_from_bytes([b"not an image"] * 4), "label": ["a", "a", "b", "b"]})
    with pytest.raises(InputError, match="could be decoded"):
        image_classifier.create(broken, "label", epochs=1, **TINY)


# ------------------------------------------------------------- checkpoints
def test_the_same_call_with_a_checkpoint_resumes_and_does_not_redo_finished_epochs(photos, tuned, checkpoint_url):
    again = image_classifier.create(photos, "label", epochs=1, checkpoint=checkpoint_url, **TINY)
    # The epoch's record (its timings included) comes back from the checkpoint: it did not run again.
    assert again.training["epochs"] == tuned.training["epochs"]
    assert again.extractor.provenance == tuned.extractor.provenance


def test_a_checkpoint_of_another_run_is_refused_before_any_work(photos, tuned, checkpoint_url):
    with pytest.raises(InputError, match="another fine-tuning run"):
        image_classifier.create(photos, "label", epochs=2, checkpoint=checkpoint_url, **TINY)


# ------------------------------------------------------- two nodes, faults
_DRIVER = """
import json, sys
from framelab.platform.session import connect
connect({address!r})
from framelab.toolkits import datasets, image_classifier
photos = datasets.caltech101(classes={classes!r}, per_class=8).materialize()
model = image_classifier.create(photos, "label", fine_tune=True, resolution=64, seed=0, verbose=False,
                                epochs=2, num_workers=2, checkpoint={checkpoint!r})
print("RESULT " + json.dumps({{"epochs": model.training["epochs"], "accuracy": model.evaluate(photos)["accuracy"]}}))
"""


def _result(stdout: str) -> dict:
    line = next((s for s in stdout.splitlines() if s.startswith("RESULT ")), None)
    assert line is not None, stdout[-3000:]
    return json.loads(line[len("RESULT "):])


@pytest.fixture(scope="module")
def ddp_run(loopback_cluster, tmp_path_factory):
    checkpoint = str(tmp_path_factory.mktemp("ddp") / "ck")
    code = _DRIVER.format(classes=CLASSES, checkpoint=checkpoint, address=loopback_cluster.gcs_address)
    done = loopback_cluster.run_driver(code, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return _result(done.stdout)


@pytest.mark.multinode
def test_ddp_on_two_nodes_splits_the_rows_and_keeps_the_workers_identical(ddp_run, tuned, photos):
    for epoch in ddp_run["epochs"]:
        assert epoch["nodes"] == 2  # one worker on each node
        assert epoch["rows_per_worker"] == [8, 8]  # each worker a half
        assert epoch["rows_seen_twice"] == 0  # ... and the halves disjoint
        assert epoch["params_identical"]  # after the epoch's steps, both workers hold the same parameters
    assert abs(ddp_run["accuracy"] - tuned.evaluate(photos)["accuracy"]) <= 0.01


def _registered_checkpoint(folder: Path) -> bool:
    """True once Ray Train's controller recorded a checkpoint in its snapshot file.

    A ``checkpoint_*`` folder appears while a worker still writes it; a worker
    killed before the controller took the report restarts from nothing.
    """
    for snapshot in folder.rglob("checkpoint_manager_snapshot.json"):
        try:
            if json.loads(snapshot.read_text()).get("latest_checkpoint_result"):
                return True
        except (OSError, ValueError):  # being written: look again
            continue
    return False


def _train_workers(cluster) -> list[int]:
    pids = []
    for node in cluster.nodes:
        for pid in node.pids():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"RayTrainWorker" in cmdline:
                pids.append(pid)
    return pids


@pytest.mark.multinode
def test_a_training_worker_killed_mid_epoch_resumes_from_the_last_checkpoint(loopback_cluster, ddp_run, tmp_path):
    checkpoint = tmp_path / "ck"
    code = _DRIVER.format(classes=CLASSES, checkpoint=str(checkpoint), address=loopback_cluster.gcs_address)
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=loopback_cluster.client_env(), cwd=loopback_cluster.root)
    try:
        deadline = time.monotonic() + 600
        while not _registered_checkpoint(checkpoint):  # the first epoch's checkpoint is Ray Train's to resume from
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint recorded by Ray Train in 600 s"
            time.sleep(0.2)
        workers = _train_workers(loopback_cluster)
        assert workers, "no training worker process found"
        os.kill(workers[0], signal.SIGKILL)
        out, err = driver.communicate(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == 0, err[-4000:]
    result = _result(out)
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]  # every epoch recorded once
    assert result["epochs"][1]["resumed_from"] == 1  # epoch 2 ran in a worker group restarted from epoch 1
    assert abs(result["accuracy"] - ddp_run["accuracy"]) <= 0.01


@pytest.mark.multinode
def test_the_same_call_after_the_driver_was_killed_resumes_after_the_last_finished_epoch(loopback_cluster, tmp_path):
    checkpoint = tmp_path / "ck"
    code = _DRIVER.format(classes=CLASSES, checkpoint=str(checkpoint), address=loopback_cluster.gcs_address)
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=loopback_cluster.client_env(), cwd=loopback_cluster.root)
    try:
        deadline = time.monotonic() + 600
        # Ray Train's record of the checkpoints, written once the first one is registered.
        while not (checkpoint / "fine_tune" / "checkpoint_manager_snapshot.json").exists():
            assert driver.poll() is None, "the driver ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint in 600 s"
            time.sleep(0.2)
    finally:
        driver.kill()  # the driver dies, and Ray Train's controller and workers with it
        driver.wait(timeout=60)
    again = loopback_cluster.run_driver(code, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    epochs = _result(again.stdout)["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert epochs[1]["resumed_from"] == 1  # epoch 1 came from the checkpoint; only epoch 2 ran again
