"""framelab.toolkits.image_tagger on real photos, the real bundled MobileNetV2 and real Ray Data stages."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from framelab.frames import Frame, InputError, read_images, vectors_from_numpy
from framelab.toolkits import datasets, deep_features, image_tagger, load_model
from framelab.toolkits.deep_features import DeepFeatureExtractor, Preprocessing
from framelab.toolkits.image_tagger import tags
from framelab.toolkits.image_tagger.hierarchy import DATA_FILE
from framelab.toolkits.image_tagger.scoring import TagScores

# Multi-label tags for the Caltech subset: each image's class, plus a group tag for most classes.
GROUPS = {
    "vehicle": ["Motorbikes", "car_side", "helicopter", "ketch"],
    "animal": ["Leopards", "kangaroo", "hawksbill", "starfish", "butterfly", "trilobite"],
    "plant": ["bonsai", "sunflower"],
    "household": ["chandelier", "ewer", "grand_piano", "menorah", "laptop", "watch"],
    "person": ["Faces_easy"],
}
GROUP_OF = {label: group for group, labels in GROUPS.items() for label in labels}
L2_PENALTY = 0.1  # the tagger's default


def _names(row_tags: list[dict] | None) -> list[str]:
    return [t["tag"] for t in row_tags or []]


def _features_frame(X: np.ndarray, tag_lists: list, provenance: dict) -> Frame:
    """Deep features with the default extractor's provenance (so nothing is extracted) and a tags column."""
    field = pa.field("deep_features", vectors_from_numpy(X).type,
                     metadata={b"framelab.provenance": json.dumps(provenance, sort_keys=True).encode()})
    return Frame(pa.table([vectors_from_numpy(X), pa.array(tag_lists, pa.list_(pa.string()))],
                          schema=pa.schema([field, pa.field("tags", pa.list_(pa.string()))])))


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, list[list[str]]]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(3, 1280)).astype(np.float32)
    y = rng.integers(0, 3, n)
    X = (centers[y] + rng.normal(scale=4.0, size=(n, 1280))).astype(np.float32)
    names = ["cat", "dog", "owl"]
    return X, [[names[c]] + (["pet"] if c < 2 else []) for c in y]


@pytest.fixture(scope="module")
def tagger():
    return image_tagger.create()


@pytest.fixture(scope="module")
def provenance():
    return DeepFeatureExtractor().provenance


@pytest.fixture(scope="module")
def coral_logits(coral):
    """The coral photos with the tagger's features column (ImageNet logits) already extracted."""
    frame = read_images(str(coral))
    return deep_features.extract(frame, layer="classifier.1", output_column="imagenet_logits").materialize()


@pytest.fixture(scope="module")
def coral_tags(tagger, coral_logits):
    out = tagger.tag(coral_logits).select("path", "tags").to_pydict()
    return {os.path.basename(p): t for p, t in zip(out["path"], out["tags"])}


@pytest.fixture(scope="module")
def caltech_features():
    """Deep features of the 1,200 Caltech images, with the multi-label tags (class + group), split 60/20/20."""
    featured = deep_features.extract(datasets.caltech101()).select("deep_features", "label", "path")
    labels = sorted({*GROUP_OF, "brain"})
    tag_lists = [[label] + ([GROUP_OF[label]] if label in GROUP_OF else []) for label in labels]
    featured = featured.join(Frame({"label": labels, "tags": tag_lists}), on="label").materialize()
    train, rest = featured.random_split(0.6, seed=0)
    valid, test = rest.random_split(0.5, seed=1)
    return train.materialize(), valid.materialize(), test.materialize()


@pytest.fixture(scope="module")
def trained(caltech_features):
    train, valid, _ = caltech_features
    return image_tagger.create(train, "tags", validation_set=valid, seed=0, verbose=False)


# ------------------------------------------------------------ out of the box
def test_out_of_the_box_tags_name_the_class_and_its_broader_kinds(coral_tags):
    names = {f: _names(t) for f, t in coral_tags.items()}
    assert {"macaw", "bird"} <= set(names["parrot.jpg"])
    assert {"hotdog", "food"} <= set(names["hot_dog.jpg"])
    assert "cat" in names["cat.bmp"]
    assert "insect" in names["dragonfly.bmp"]


def test_tags_come_finest_first_at_most_k_and_above_the_default_minimum(tagger, coral_logits, coral_tags):
    hierarchy = json.loads(DATA_FILE.read_text())
    covers = {c["name"]: 1 for c in hierarchy["classes"]} | {t["name"]: len(t["classes"]) for t in hierarchy["tags"]}
    for row in coral_tags.values():
        scores = [t["score"] for t in row]
        assert 0 < len(row) <= image_tagger.DEFAULT_K
        assert min(scores) >= image_tagger.DEFAULT_MIN_SCORE - 1e-7
        # The first chain: the finest confident tag, then broader tags (each covers more, scores no less).
        assert covers[row[0]["tag"]] == min(covers[t["tag"]] for t in row)
    assert _names(coral_tags["parrot.jpg"])[:4] == ["macaw", "parrot", "bird", "animal"]
    first = tagger.tag(coral_logits, k=1).select("path", "tags").to_pydict()
    first = {os.path.basename(p): _names(t) for p, t in zip(first["path"], first["tags"])}
    assert first["parrot.jpg"] == ["macaw"] and first["hot_dog.jpg"] == ["hotdog"]
    assert first["cat.bmp"] == ["Egyptian cat"] and "cat" in _names(coral_tags["cat.bmp"])


def test_a_broader_tag_scores_the_sum_of_its_classes_probabilities(tagger, coral_logits, coral):
    """Reference: a plain torch forward pass, a softmax, and the hierarchy file read as plain JSON."""
    import torch
    import torchvision
    from torchvision import transforms as T

    from framelab.toolkits.deep_features.weights import BUNDLED_DIR

    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(next(BUNDLED_DIR.glob("*.pth")), weights_only=True))
    prep = T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize([128 / 255] * 3, [128 / 255] * 3)])
    files = [f for f in sorted(coral.iterdir()) if f.suffix in (".bmp", ".jpg")]
    with torch.no_grad():
        batch = torch.stack([prep(Image.open(f).convert("RGB")) for f in files])
        probs = torch.softmax(net.eval()(batch), dim=1).numpy().astype(np.float64)
    hierarchy = json.loads(DATA_FILE.read_text())
    every = tagger.tag(coral_logits, k=None, threshold=0.0).select("path", "tags").to_pydict()
    got = {os.path.basename(p): {t["tag"]: t["score"] for t in row} for p, row in zip(every["path"], every["tags"])}
    for f, p in zip(files, probs):
        row = got[f.name]
        assert len(row) == len(tagger.vocabulary)
        for i, c in enumerate(hierarchy["classes"]):
            assert row[c["name"]] == pytest.approx(p[i], abs=2e-4)
        for t in hierarchy["tags"]:
            assert row[t["name"]] == pytest.approx(min(1.0, p[t["classes"]].sum()), abs=2e-4)


def test_out_of_the_box_tags_most_laptops_as_computers_and_motorbikes_as_vehicles(tagger, caltech):
    from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy

    h = imagenet_hierarchy()
    computers = {"computer"} | {h.names[c] for c in h.covered(h.index("computer"))}
    frame = read_images([str(caltech / "laptop"), str(caltech / "Motorbikes")], label_from="folder")
    out = tagger.tag(frame).select("label", "tags").to_pydict()
    by_label: dict[str, list[set]] = {}
    for label, row in zip(out["label"], out["tags"]):
        by_label.setdefault(label, []).append(set(_names(row)))
    laptops = np.mean([bool(t & computers) for t in by_label["laptop"]])
    motorbikes = np.mean([bool(t & {"motorcycle", "vehicle"}) for t in by_label["Motorbikes"]])
    assert len(by_label["laptop"]) == len(by_label["Motorbikes"]) == 60
    assert laptops >= 0.8, laptops
    assert motorbikes >= 0.8, motorbikes


def test_a_tagged_frame_is_searched_block_by_block_on_the_cluster(tagger, coral_logits):
    tagged = tagger.tag(coral_logits.repartition(3))
    birds = tagged.filter(tags.has("bird", min_score=0.5))["path"].to_pylist()
    assert sorted(map(os.path.basename, birds)) == ["bird.bmp", "owl.jpg", "parrot.jpg"]
    small = tagged.filter(tags.any_of(["cat", "insect"]) & ~tags.has("bird"))["path"].to_pylist()
    assert sorted(map(os.path.basename, small)) == ["cat.bmp", "dragonfly.bmp"]
    animal = tagged.with_column("animal", tags.score("animal")).sort("animal", descending=True)
    assert os.path.basename(animal["path"].to_pylist()[0]) in {"parrot.jpg", "bird.bmp"}


def test_a_vocabulary_keeps_only_its_tags_and_a_misspelt_one_is_named(coral_logits):
    small = image_tagger.create(vocabulary=["bird", "cat", "food"])
    out = small.tag(coral_logits).select("path", "tags").to_pydict()
    assert {t for row in out["tags"] for t in _names(row)} <= {"bird", "cat", "food"}
    assert small.vocabulary == ["bird", "cat", "food"]  # hierarchy order: classes, then broader tags by name
    with pytest.raises(InputError, match="not an ImageNet tag; did you mean .*'bird'"):
        image_tagger.create(vocabulary=["brid"])


# ----------------------------------------------------------------- trained
def test_trained_tagger_matches_scikit_learn_one_vs_rest_on_the_same_features(trained, caltech_features):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MultiLabelBinarizer, StandardScaler

    train, _, test = caltech_features
    vocabulary = trained.vocabulary
    assert vocabulary == sorted(set(GROUPS) | set(GROUP_OF) | {"brain"})
    binarize = MultiLabelBinarizer(classes=vocabulary)
    Y_train = binarize.fit_transform(train["tags"].to_pylist())
    Y_test = binarize.transform(test["tags"].to_pylist())
    reference = make_pipeline(
        StandardScaler(),
        OneVsRestClassifier(LogisticRegression(C=1 / (2 * L2_PENALTY), max_iter=1000)),
    ).fit(train.to_numpy("deep_features"), Y_train)
    expected_scores = reference.predict_proba(test.to_numpy("deep_features"))

    result = trained.evaluate(test)
    sklearn_ap = average_precision_score(Y_test, expected_scores, average="macro")
    assert result["average_precision"] > 0.9
    assert abs(result["average_precision"] - sklearn_ap) <= 0.01, (result["average_precision"], sklearn_ap)
    assert set(result["per_tag"]["tag"].to_pylist()) == set(vocabulary)


def test_evaluate_reports_what_scikit_learn_measures_on_the_model_scores(trained, caltech_features):
    from sklearn.metrics import average_precision_score, precision_score, recall_score
    from sklearn.preprocessing import MultiLabelBinarizer

    _, _, test = caltech_features
    vocabulary = trained.vocabulary
    every = trained.tag(test, k=None, threshold=0.0, output_column="scored").to_pydict()
    scores = np.array([[{t["tag"]: t["score"] for t in row}[v] for v in vocabulary] for row in every["scored"]])
    truth = MultiLabelBinarizer(classes=vocabulary).fit_transform(every["tags"])
    given = scores >= trained.thresholds["threshold"].to_numpy()
    per_tag = trained.evaluate(test)["per_tag"].to_pydict()
    for j, tag in enumerate(vocabulary):
        i = per_tag["tag"].index(tag)
        assert per_tag["average_precision"][i] == pytest.approx(average_precision_score(truth[:, j], scores[:, j]), abs=1e-6)
        assert per_tag["precision"][i] == pytest.approx(precision_score(truth[:, j], given[:, j], zero_division=0))
        assert per_tag["recall"][i] == pytest.approx(recall_score(truth[:, j], given[:, j]))


def test_trained_tags_respect_each_tags_threshold_and_held_out_precision(trained, caltech_features):
    _, _, test = caltech_features
    thresholds = dict(zip(trained.vocabulary, trained.thresholds["threshold"].to_pylist()))
    held_out = trained.thresholds.to_pydict()
    reached = [p for p in held_out["held_out_precision"] if p is not None]
    assert len(reached) == len(trained.vocabulary)  # every tag had held-out images
    assert sum(p >= 0.9 for p in reached) >= len(reached) - 1
    out = trained.tag(test, k=3, output_column="predicted")["predicted"].to_pylist()
    assert all(len(row) <= 3 for row in out)
    assert all(t["score"] >= thresholds[t["tag"]] - 1e-7 for row in out for t in row)
    assert "Tags reaching it" in repr(trained)


def test_trained_and_out_of_the_box_taggers_save_and_load_with_the_same_tags(
    trained, tagger, caltech_features, coral_logits, tmp_path
):
    _, _, test = caltech_features
    for model, frame in ((trained, test), (tagger, coral_logits)):
        path = tmp_path / model.mode
        model.save(str(path))
        # No pickle: arrays in safetensors (named by their sha256) and the metadata in JSON.
        assert sorted(name.split(".")[0] + "." + name.split(".")[-1] for name in os.listdir(path)) == [
            "arrays.safetensors", "model.json"]
        loaded = load_model(str(path))
        assert type(loaded) is type(model) and loaded.vocabulary == model.vocabulary
        assert loaded.thresholds.to_pydict() == model.thresholds.to_pydict()
        a = model.tag(frame, output_column="t")["t"].to_pylist()
        b = loaded.tag(frame, output_column="t")["t"].to_pylist()
        assert a == b


# ------------------------------------------------------------------ errors
def test_tags_must_be_lists_of_strings(provenance):
    X, _ = _blobs(20)
    frame = _features_frame(X, [["a"]] * 20, provenance)
    with pytest.raises(InputError, match="lists of strings.*classifier"):
        image_tagger.create(frame.with_column("label", "a"), "label", verbose=False)
    with pytest.raises(InputError, match="lists of strings"):
        image_tagger.create(Frame({"deep_features": X, "t": [[1]] * 20}), "t", verbose=False)
    nulls = _features_frame(X, [["a"]] * 19 + [None], provenance)
    with pytest.raises(InputError, match=r"missing list.*use \[\]"):
        image_tagger.create(nulls, "tags", verbose=False)
    empty_tag = _features_frame(X, [["a"]] * 19 + [[""]], provenance)
    with pytest.raises(InputError, match="empty tags"):
        image_tagger.create(empty_tag, "tags", verbose=False)
    with pytest.raises(InputError, match="no training image has a tag"):
        image_tagger.create(_features_frame(X, [[]] * 20, provenance), "tags", verbose=False)


def test_empty_tag_lists_are_images_without_tags_and_a_tag_seen_once_is_warned(provenance):
    X, tag_lists = _blobs(300)
    tag_lists[:40] = [[] for _ in range(40)]
    tag_lists[40] = tag_lists[40] + ["unicorn"]
    frame = _features_frame(X, tag_lists, provenance)
    with pytest.warns(UserWarning, match=r"only one image.*\['unicorn'\].*threshold 0.5"):
        model = image_tagger.create(frame, "tags", seed=0, verbose=False)
    assert model.vocabulary == ["cat", "dog", "owl", "pet", "unicorn"]
    thresholds = model.thresholds.to_pydict()
    assert thresholds["threshold"][-1] == 0.5 and thresholds["held_out_precision"][-1] is None
    result = model.evaluate(frame)
    assert result["average_precision"] > 0.9


def test_bad_arguments_are_refused_before_any_work(tagger, coral_logits, provenance):
    with pytest.raises(InputError, match="already has a column 'path'"):
        tagger.tag(coral_logits, output_column="path")
    with pytest.raises(InputError, match="k must be"):
        tagger.tag(coral_logits, k=0)
    with pytest.raises(InputError, match="threshold must be"):
        tagger.tag(coral_logits, threshold=1.5)
    with pytest.raises(InputError, match="neither an image column"):
        tagger.tag(Frame({"x": [1]}))
    with pytest.raises(InputError, match="needs a frame"):
        image_tagger.create(None, "tags")
    X, tag_lists = _blobs(20)
    frame = _features_frame(X, tag_lists, provenance)
    for option, value in (("min_precision", 0), ("l2_penalty", -1), ("max_iterations", 0),
                          ("validation_set", "some"), ("seed", "x"), ("vocabulary", "cat")):
        with pytest.raises(InputError, match=option):
            image_tagger.create(frame, "tags", **{option: value})


def test_a_network_without_an_imagenet_head_is_refused_out_of_the_box():
    import torch

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    prep = Preprocessing(resize=(16, 16), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
    odd = image_tagger.create(model=net, preprocessing=prep)
    assert "custom:Sequential" in repr(odd)
    with pytest.raises(InputError, match="ImageNet head.*gives 4 outputs.*create\\(frame, tags_column\\)"):
        odd.tag(Frame({"data": pa.array([b"x"], pa.binary())}), output_column="t")


def test_undecodable_images_keep_their_rows_with_null_tags_and_are_counted(coral):
    parrot, hot_dog = [(coral / name).read_bytes() for name in ("parrot.jpg", "hot_dog.jpg")]
    frame = Frame({"id": list(range(4)), "data": pa.array([parrot, b"not an image", None, hot_dog], pa.binary())})
    model = image_tagger.create(image_column="data")
    featured = DeepFeatureExtractor("mobilenet_v2", layer="classifier.1").transform(
        frame, image_column="data", output_column="imagenet_logits").to_arrow()
    expr = TagScores("imagenet_logits", model.scorer, tuple(model.vocabulary), 5, np.full(1330, 0.99))
    with pytest.warns(UserWarning, match="2 of 4 image"):
        block = expr.evaluate(featured).to_pylist()
    assert _names(block[0]) == ["macaw", "parrot", "bird", "animal"]
    assert block[1] is None and block[2] is None  # no features: no tags, row kept
    assert block[3] == []  # decoded, but no tag as sure as 0.99 (hotdog scores 0.73)
    out = model.tag(frame, threshold=0.99).to_pydict()
    assert out["id"] == [0, 1, 2, 3]
    assert [None if r is None else _names(r) for r in out["tags"]] == [["macaw", "parrot", "bird", "animal"], None, None, []]
    assert "imagenet_logits" not in out  # extracted on the way, not kept


# ---------------------------------------------------------------- explore
def test_explore_shows_each_images_tags_beside_its_thumbnail(coral_logits, tagger, tmp_path):
    tagged = tagger.tag(coral_logits, k=4).select("image", "path", "tags")
    page = tagged.explore(str(tmp_path / "tags.html"))
    text = open(page).read()
    assert "macaw 1.00, parrot 1.00, bird 1.00, animal 1.00" in text
    assert '{"name":"tags","kind":"items"}' in text  # a list column: wrapped on the card, a tag facet
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed; the page's data was checked, not its rendering")
    profile = tempfile.mkdtemp(prefix="framelab-chromium-")
    try:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", f"file://{page}"],
            capture_output=True, text=True, timeout=120,
        ).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dom.count('class="card"') == 8
    assert 'data-images-loaded="8"' in dom  # every thumbnail decoded
    assert re.search(r'<div title="tags" class="wrap"><b>tags</b>: macaw 1\.00, parrot 1\.00, bird 1\.00, animal', dom)


# ----------------------------------------------------------- two nodes
@pytest.fixture(scope="module")
def one_node_tags(tagger, trained, caltech, coral, caltech_features):
    """Tags computed on the one-node session, kept as plain Python (Ray refs die with the session)."""
    paths = [str(coral)] + [str(p) for p in sorted((caltech / "laptop").glob("*.jpg"))[:8]]
    pretrained = tagger.tag(read_images(paths)).select("path", "tags").to_pydict()
    test = caltech_features[2].select("path", "deep_features").to_arrow()
    trained_tags = trained.tag(Frame(test)).select("path", "tags").to_pydict()
    return paths, pretrained, test, trained_tags


@pytest.mark.multinode
def test_two_nodes_give_the_same_tags_as_one(one_node_tags, tagger, trained, two_node_cluster):
    import ray

    paths, pretrained, test, trained_tags = one_node_tags
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    spread = read_images(paths).repartition(4).materialize()
    two = tagger.tag(spread).select("path", "tags").to_pydict()
    _assert_same_tags(pretrained, two)
    two_trained = trained.tag(Frame(test).repartition(4)).select("path", "tags").to_pydict()
    _assert_same_tags(trained_tags, two_trained)


def _assert_same_tags(expected: dict, got: dict) -> None:
    want = dict(zip(expected["path"], expected["tags"]))
    have = dict(zip(got["path"], got["tags"]))
    assert sorted(want) == sorted(have)
    for path, row in want.items():
        assert _names(have[path]) == _names(row), path
        np.testing.assert_allclose([t["score"] for t in have[path]], [t["score"] for t in row], atol=1e-5)
