"""Training survives a shard actor's death: the shard is rebuilt from its blocks and the fit goes on unchanged.

The rows are split over two actor shards (as a large data set would be); one
of them dies once, by a marker file, in the middle of L-BFGS or while loading
its blocks. The model must equal the one an uninterrupted run gives.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pyarrow as pa
import pytest
import ray

import framelab.platform.sharded as sharded
from framelab.frames import Frame, vectors_from_numpy
from framelab.toolkits import classifier
from framelab.toolkits.classifier import _training as tr

# Ray workers cannot import this test module: send its functions by value.
ray.cloudpickle.register_pickle_by_value(__import__(__name__))

ROWS = 600


@pytest.fixture()
def actor_shards(monkeypatch):
    """Two actor shards for a small data set (it would otherwise stay in the driver's process)."""
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, ROWS)
    X = (np.eye(3, 16)[y] * 1.5 + rng.normal(size=(ROWS, 16))).astype(np.float32)
    return Frame(pa.table({"features": vectors_from_numpy(X), "label": pa.array([f"c{i}" for i in y])}))


def _train(frame):
    return classifier.create(frame, "label", verbose=False, seed=0, max_iterations=40)


@pytest.fixture()
def uninterrupted(frame, actor_shards):
    model = _train(frame)
    assert model.training["num_shards"] == 2 and model.training["shard_restarts"] == 0
    return model


def _die_once(marker: str, how: str) -> None:
    """End this process the first time any shard gets here (the marker file says it happened)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return
    if how == "SIGKILL":  # as the kernel's OOM killer does
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(1)


def _assert_same_model(model, reference, tally) -> None:
    t = model.training
    tally.rows(ROWS, t["num_examples"] + t["num_validation_examples"])
    assert t["shard_restarts"] == 1
    assert t["iterations"] == reference.training["iterations"]
    np.testing.assert_allclose(model.weights, reference.weights, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.bias, reference.bias, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.mean, reference.mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.scale, reference.scale, rtol=0, atol=1e-6)


@pytest.mark.parametrize("how", ["exit", "SIGKILL"])
def test_a_shard_that_dies_mid_training_is_rebuilt_and_the_model_is_unchanged(
    frame, uninterrupted, tmp_path, monkeypatch, how, tally
):
    marker = str(tmp_path / "died")
    real = tr.shard_loss_grad

    def loss_grad(state, W, b):
        state["passes"] = state.get("passes", 0) + 1
        if state["passes"] == 5:  # mid-fit: after a few L-BFGS passes
            _die_once(marker, how)
        return real(state, W, b)

    monkeypatch.setattr(tr, "shard_loss_grad", loss_grad)
    model = _train(frame)
    tally.fault()
    assert os.path.exists(marker), "no shard died: the test tested nothing"
    _assert_same_model(model, uninterrupted, tally)


def test_a_shard_that_dies_while_loading_its_blocks_is_rebuilt(frame, uninterrupted, tmp_path, monkeypatch, tally):
    marker = str(tmp_path / "died")
    real = tr.ShardLoader

    def loader(**options):
        inner = real(**options)

        def load(blocks, offsets):
            _die_once(marker, "exit")
            return inner(blocks, offsets)

        return load

    monkeypatch.setattr(tr, "ShardLoader", loader)
    model = _train(frame)
    tally.fault()
    assert os.path.exists(marker), "no shard died: the test tested nothing"
    _assert_same_model(model, uninterrupted, tally)
