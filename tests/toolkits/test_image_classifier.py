"""image_classifier = deep features + logistic classifier, on real Caltech images."""

from __future__ import annotations

import numpy as np
import pytest
from caltech_folders import copy_caltech

from framelab.frames import Frame, InputError
from framelab.toolkits import deep_features, image_classifier, load_model

CLASSES = ["Faces_easy", "Motorbikes", "sunflower", "watch"]


@pytest.fixture(scope="module")
def small_caltech(tmp_path_factory):
    """Four classes x 12 real Caltech images in a <class>/<file> folder."""
    root = tmp_path_factory.mktemp("caltech")
    copy_caltech(root, CLASSES, 12)
    return root


@pytest.fixture(scope="module")
def featured(small_caltech):
    photos = Frame.read_images(str(small_caltech), label_from="folder")
    return deep_features.extract(photos).materialize()


@pytest.fixture(scope="module")
def model(featured):
    train, _ = featured.random_split(0.75, seed=0)
    return image_classifier.create(train, target="label", seed=0, verbose=False, validation_set=None)


def test_reuses_a_matching_features_column_instead_of_extracting_again(featured, model):
    # Without the image column, extraction is impossible: success proves the features were reused.
    only_features = featured.select("deep_features", "label")
    again = image_classifier.create(only_features, target="label", seed=0, verbose=False, validation_set=None)
    assert again.classes == model.classes


def test_predicts_raw_images_and_features_alike(featured, model):
    _, test = featured.random_split(0.75, seed=0)
    raw = test.drop("deep_features")  # raw images: extracted on the way, once
    assert model.predict(raw).to_pylist() == model.predict(test).to_pylist()
    assert model.evaluate(test)["accuracy"] >= 0.9
    top = model.predict_topk(test.head(2), k=3).to_pydict()
    assert top["id"] == [0, 0, 0, 1, 1, 1]
    assert set(top["class"]) <= set(CLASSES)


def test_save_and_load_give_identical_predictions(featured, model, tmp_path, s3_server):
    raw = featured.head(8)
    want = model.predict(raw, output_type="probability_vector")
    model.save(str(tmp_path / "m"))
    local = load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(np.array(local.predict(raw, output_type="probability_vector").to_pylist()),
                                  np.array(want.to_pylist()))
    url = f"s3://{s3_server.make_bucket('image-classifier')}/model"
    model.save(url, storage_options=s3_server.storage_options)
    remote = load_model(url, storage_options=s3_server.storage_options)
    assert remote.predict(raw).to_pylist() == model.predict(raw).to_pylist()
    assert "ImageClassifier" in repr(remote)


def test_features_of_another_extractor_are_refused(featured, model):
    table = featured.select("deep_features", "label").to_arrow()
    field = table.schema.field("deep_features")
    other = field.with_metadata({b"framelab.provenance": b'{"model": "resnet50", "weights_sha256": "00"}'})
    foreign = Frame(table.cast(table.schema.set(0, other)))
    with pytest.raises(InputError, match="resnet50"):
        model.predict(foreign)


def test_demo_runs_end_to_end_on_a_small_folder(small_caltech, tmp_path, capsys):
    from framelab.toolkits.cli import main

    assert main(["demo", "--data", str(small_caltech), "--output", str(tmp_path / "demo-model")]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out and "[6/6]" in out
    assert (tmp_path / "demo-model" / "model.json").exists()
