"""framelab.toolkits.model_io: one safe save format; load_model brings any model back."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest

from framelab.frames import Frame, InputError, vectors_from_numpy
from framelab.toolkits import classifier, load_model
from framelab.toolkits.model_io import read_model, save_model


@pytest.fixture(scope="module")
def model_and_frame():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    X = (np.eye(3, 6)[y] * 3 + rng.normal(size=(200, 6))).astype(np.float32)
    frame = Frame(pa.table({
        "features": vectors_from_numpy(X),
        "kind": pa.array(rng.choice(["p", "q"], 200)),
        "label": pa.array([f"class{i}" for i in y]),
    }))
    return classifier.create(frame, "label", verbose=False, seed=0), frame


def _same_predictions(a, b, frame):
    assert a.predict(frame).to_pylist() == b.predict(frame).to_pylist()
    np.testing.assert_array_equal(
        np.array(a.predict(frame, output_type="probability_vector").to_pylist()),
        np.array(b.predict(frame, output_type="probability_vector").to_pylist()),
    )


def test_save_and_load_give_identical_predictions(model_and_frame, tmp_path):
    model, frame = model_and_frame
    model.save(str(tmp_path / "m"))
    loaded = load_model(str(tmp_path / "m"))
    _same_predictions(model, loaded, frame)
    assert loaded.classes == model.classes and loaded.features == model.features
    assert loaded.training["iterations"] == model.training["iterations"]
    assert loaded.coefficients.to_pydict() == model.coefficients.to_pydict()


def test_saved_folder_is_json_and_safetensors_only_with_the_version(model_and_frame, tmp_path):
    from importlib.metadata import version

    model, _ = model_and_frame
    model.save(str(tmp_path / "m"))
    document = json.loads((tmp_path / "m" / "model.json").read_text())
    arrays_file = document["arrays"]["file"]
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [arrays_file, "model.json"]
    assert arrays_file.startswith("arrays.") and arrays_file.endswith(".safetensors")
    assert document["kind"] == "logistic_classifier"
    assert document["framelab_version"] == version("framelab")
    data = (tmp_path / "m" / arrays_file).read_bytes()
    assert document["arrays"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert b"pickle" not in data[:200]


def test_save_and_load_through_s3(model_and_frame, s3_server):
    model, frame = model_and_frame
    s3_server.make_bucket("models")
    url = "s3://models/classifier/v1"
    model.save(url, storage_options=s3_server.storage_options)
    loaded = load_model(url, storage_options=s3_server.storage_options)
    _same_predictions(model, loaded, frame)


def test_arrays_and_metadata_round_trip(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array([1, 2], np.int64)}
    save_model(str(tmp_path / "x"), "example", {"labels": ["a", 1]}, arrays)
    kind, meta, back = read_model(str(tmp_path / "x"))
    assert kind == "example" and meta["labels"] == ["a", 1]
    for k, v in arrays.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == v.dtype


def test_loading_what_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(InputError, match="not a saved framelab model"):
        load_model(str(tmp_path))
    save_model(str(tmp_path / "odd"), "time_machine", {}, {})
    with pytest.raises(InputError, match="time_machine"):
        load_model(str(tmp_path / "odd"))
    doc = json.loads((tmp_path / "odd" / "model.json").read_text())
    doc["format_version"] = 99
    (tmp_path / "odd" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="upgrade framelab"):
        load_model(str(tmp_path / "odd"))
