"""Models on disk: saves that replace atomically, loads that refuse what framelab did not write.

Every save and load runs on a local folder and on the SeaweedFS S3 server (no
rename there: model.json, written last in one PUT, is the commit).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from safetensors.numpy import load as load_safetensors
from safetensors.numpy import save as save_safetensors

from framelab.frames import Frame, InputError, commits, vectors_from_numpy
from framelab.platform.failures import RowFailureWarning
from framelab.toolkits import classifier, datasets, load_model, model_io
from framelab.toolkits.deep_features import DeepFeatureExtractor
from framelab.toolkits.image_classifier.image_classifier import ImageClassifier

PROBE = Frame({"x": [0.05, 0.5, 0.95]})


class Crash(BaseException):
    """A process dying at this point of a save (BaseException: nothing catches it on the way out)."""


def _three_classes(reverse: bool = False):
    x = np.linspace(0.0, 1.0, 60)
    labels = np.where(x < 0.33, "a", np.where(x < 0.66, "b", "c"))
    if reverse:
        labels = np.array([{"a": "c", "b": "b", "c": "a"}[v] for v in labels])
    return classifier.create(Frame({"x": x, "y": labels.tolist()}), "y", validation_set=None, verbose=False, seed=0)


@pytest.fixture(scope="module")
def models():
    """Two models of the same shapes that predict the reverse of each other: a mixed folder would not show in shapes."""
    old, new = _three_classes(), _three_classes(reverse=True)
    assert old.predict(PROBE).to_pylist() == ["a", "b", "c"]
    assert new.predict(PROBE).to_pylist() == ["c", "b", "a"]
    return old, new


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path):
    """(url, storage_options, filesystem, root) of an empty model location, on local disk or on S3."""
    if request.param == "local":
        import fsspec

        return str(tmp_path / "model"), None, fsspec.filesystem("file"), str(tmp_path / "model")
    server = request.getfixturevalue("s3_server")
    bucket = server.make_bucket("reliability")
    prefix = f"{bucket}/{tmp_path.name}/model"
    return f"s3://{prefix}", server.storage_options, server.filesystem(), prefix


def _crash_at(monkeypatch, point: str) -> None:
    """Make the next save stop dead at ``point``: before a data file, before model.json, or before the clean-up."""
    real_write = model_io.write_atomically

    def write(fs, path, data):
        name = path.rsplit("/", 1)[-1]
        if (point == "before the data files" and name != model_io.METADATA_FILE) or (
            point == "before model.json" and name == model_io.METADATA_FILE
        ):
            raise Crash(path)
        real_write(fs, path, data)

    def clean_up(fs, root, keep):
        raise Crash(root)

    monkeypatch.setattr(model_io, "write_atomically", write)
    if point == "before the clean-up":
        monkeypatch.setattr(model_io, "_remove_stale", clean_up)


# ------------------------------------------------------------- atomic saves
@pytest.mark.parametrize(
    ("point", "survivor"),
    [("before the data files", "old"), ("before model.json", "old"), ("before the clean-up", "new")],
)
def test_an_interrupted_overwrite_leaves_the_old_model_or_the_new_never_a_mix(models, place, point, survivor,
                                                                                monkeypatch, tally):
    old, new = models
    url, options, _, _ = place
    old.save(url, storage_options=options)
    _crash_at(monkeypatch, point)
    with pytest.raises(Crash):
        new.save(url, storage_options=options)
    tally.fault()
    monkeypatch.undo()
    loaded = load_model(url, storage_options=options)
    expected = {"old": old, "new": new}[survivor]
    assert loaded.predict(PROBE).to_pylist() == expected.predict(PROBE).to_pylist()
    np.testing.assert_array_equal(loaded.weights, expected.weights)


@pytest.mark.parametrize("point", ["before the data files", "before model.json"])
def test_a_new_model_folder_is_complete_or_absent(models, place, point, monkeypatch, tally):
    old, _ = models
    url, options, fs, root = place
    _crash_at(monkeypatch, point)
    with pytest.raises(Crash):
        old.save(url, storage_options=options)
    tally.fault()
    monkeypatch.undo()
    if options is None:
        assert not os.path.exists(root), "a crashed first save left a folder at the target"
    with pytest.raises(InputError, match="not a saved framelab model"):
        load_model(url, storage_options=options)
    old.save(url, storage_options=options)  # the next save succeeds over whatever the crash left
    assert load_model(url, storage_options=options).predict(PROBE).to_pylist() == ["a", "b", "c"]


def test_leftovers_of_crashed_saves_are_ignored_then_removed_once_a_day_old(models, place, monkeypatch, tally):
    old, new = models
    url, options, fs, root = place
    old.save(url, storage_options=options)
    # Until then an unlisted file may be another save's in flight; here "a day" is now.
    monkeypatch.setattr(commits, "LEFTOVER_AGE_S", 0)
    strays = ["arrays.0123456789abcdef.safetensors", model_io.LEGACY_ARRAYS_FILE]
    if options is None:
        strays.append(f".model.json.{'0' * 32}.tmp")  # a local write cut short
    for name in strays:
        fs.pipe_file(f"{root}/{name}", b"half a file")
    tally.fault(len(strays))
    assert load_model(url, storage_options=options).predict(PROBE).to_pylist() == ["a", "b", "c"]
    new.save(url, storage_options=options)
    document = json.loads(fs.cat_file(f"{root}/model.json"))
    names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
    assert names == sorted([document["arrays"]["file"], "model.json"])


def test_a_reader_racing_an_overwrite_gets_one_model_whole(models, place, monkeypatch, tally):
    old, new = models
    url, options, _, _ = place
    old.save(url, storage_options=options)
    real = model_io._read_listed
    raced = []

    def read_listed(fs, root, base, document, allow_external):
        if not raced:  # the reader has the old model.json; a save replaces the model before it reads on
            raced.append(True)
            new.save(url, storage_options=options)
        return real(fs, root, base, document, allow_external)

    monkeypatch.setattr(model_io, "_read_listed", read_listed)
    loaded = load_model(url, storage_options=options)
    tally.fault()
    assert raced and loaded.predict(PROBE).to_pylist() == ["c", "b", "a"]


def test_a_format_1_model_still_loads_and_an_overwrite_replaces_it_whole(models, tmp_path):
    old, new = models
    folder = tmp_path / "v1"
    old.save(str(folder))
    document = json.loads((folder / "model.json").read_text())
    (folder / document["arrays"]["file"]).rename(folder / model_io.LEGACY_ARRAYS_FILE)
    for key in ("arrays", "files"):
        del document[key]
    document["format_version"] = 1
    (folder / "model.json").write_text(json.dumps(document))
    assert load_model(str(folder)).predict(PROBE).to_pylist() == ["a", "b", "c"]
    new.save(str(folder))
    assert load_model(str(folder)).predict(PROBE).to_pylist() == ["c", "b", "a"]
    assert not (folder / model_io.LEGACY_ARRAYS_FILE).exists()


# ---------------------------------------------------------- checks at load
def _document(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())


def _edit(change):
    """A damage to model.json: ``change(document)`` edits it in place."""

    def damage(folder: Path) -> None:
        document = _document(folder)
        change(document)
        (folder / "model.json").write_text(json.dumps(document))

    return damage


def _arrays(change):
    """A damage to the arrays, with model.json's manifest updated to match (so only the model's own checks see it)."""

    def damage(folder: Path) -> None:
        document = _document(folder)
        path = folder / document["arrays"]["file"]
        arrays = load_safetensors(path.read_bytes())
        change(arrays)
        _replace_arrays_file(folder, save_safetensors(arrays))

    return damage


def _replace_arrays_file(folder: Path, data: bytes, update_manifest: bool = True) -> None:
    document = _document(folder)
    (folder / document["arrays"]["file"]).write_bytes(data)
    if update_manifest:
        document["arrays"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
        (folder / "model.json").write_text(json.dumps(document))


def _set(path: str, value):
    def change(document):
        *parents, last = path.split(".")
        for key in parents:
            document = document[key]
        if value is _DELETE:
            del document[last]
        else:
            document[last] = value

    return change


_DELETE = object()


def _truncate(folder: Path) -> None:
    path = folder / _document(folder)["arrays"]["file"]
    path.write_bytes(path.read_bytes()[:-7])


def _flip_a_byte(folder: Path) -> None:
    path = folder / _document(folder)["arrays"]["file"]
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _torch_archive() -> bytes:
    import torch

    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(1, 3)}, buffer)
    return buffer.getvalue()


def _as_format_1(then):
    def damage(folder: Path) -> None:
        document = _document(folder)
        (folder / document["arrays"]["file"]).rename(folder / model_io.LEGACY_ARRAYS_FILE)
        del document["arrays"], document["files"]
        document["format_version"] = 1
        (folder / "model.json").write_text(json.dumps(document))
        then(folder / model_io.LEGACY_ARRAYS_FILE)

    return damage


def _nan_in_json(folder: Path) -> None:
    text = (folder / "model.json").read_text().replace('"l2_penalty": 0.01', '"l2_penalty": NaN')
    (folder / "model.json").write_text(text)


BAD_FOLDERS = {
    # model.json itself
    "kind missing": (_edit(_set("kind", _DELETE)), r"model\.json: field 'kind' is missing"),
    "kind unknown": (_edit(_set("kind", "time_machine")), r"model\.json: field 'kind' is 'time_machine'"),
    "kind empty": (_edit(_set("kind", "")), r"field 'kind' is empty"),
    "format_version a string": (_edit(_set("format_version", "1")), r"field 'format_version' must be an integer, got a string"),
    "format_version a boolean": (_edit(_set("format_version", True)), r"field 'format_version' must be an integer"),
    "format_version 0": (_edit(_set("format_version", 0)), r"field 'format_version' must be 1 or more"),
    "format of another program": (_edit(_set("format", "keras")), r"model\.json does not describe a framelab model \(field 'format'"),
    "framelab_version a number": (_edit(_set("framelab_version", 2)), r"field 'framelab_version' must be a string"),
    "metadata a list": (_edit(_set("metadata", [])), r"field 'metadata' must be an object"),
    "not JSON": (lambda f: (f / "model.json").write_text("{ not json"), r"model\.json is not valid JSON"),
    "NaN in JSON": (_nan_in_json, r"model\.json is not valid JSON \(NaN is not JSON"),
    "a JSON list": (lambda f: (f / "model.json").write_text("[1, 2]"), r"model\.json does not describe a framelab model"),
    "not UTF-8": (lambda f: (f / "model.json").write_bytes(b"\xff\xfe{}"), r"model\.json is not valid JSON"),
    # the manifest
    "arrays entry missing": (_edit(_set("arrays", _DELETE)), r"field 'arrays' must be an object"),
    "arrays file outside the folder": (_edit(_set("arrays.file", "../other/arrays.0123456789abcdef.safetensors")),
                                       r"field 'arrays\.file' must name a file inside the model folder"),
    "arrays file absolute": (_edit(_set("arrays.file", "/etc/passwd")), r"field 'arrays\.file' must name a file inside"),
    "arrays sha256 not hex": (_edit(_set("arrays.sha256", "xyz")), r"field 'arrays\.sha256' must be 64 lowercase hex"),
    "arrays size a string": (_edit(_set("arrays.bytes", "352")), r"field 'arrays\.bytes' must be a byte count"),
    "files entry named like a path": (_edit(_set("files", {"../w.pth": {}})), r"field 'files' names '\.\./w\.pth'"),
    "files entry not an object": (_edit(_set("files", {"w.pth": "w.pth"})), r"field 'files\.w\.pth' must be an object"),
    # the classifier's fields
    "classes missing": (_edit(_set("metadata.classes", _DELETE)), r"field 'metadata\.classes' is missing"),
    "classes a string": (_edit(_set("metadata.classes", "abc")), r"field 'metadata\.classes' must be a list, got a string"),
    "one class": (_edit(_set("metadata.classes", ["a"])), r"field 'metadata\.classes' must list two or more"),
    "classes repeat": (_edit(_set("metadata.classes", ["a", "a", "b"])), r"field 'metadata\.classes' lists a class more than once"),
    "a class that is a list": (_edit(_set("metadata.classes", ["a", ["b"], "c"])), r"field 'metadata\.classes' must list two or more"),
    "target a number": (_edit(_set("metadata.target", 3)), r"field 'metadata\.target' must be a string"),
    "features an object": (_edit(_set("metadata.features", {})), r"field 'metadata\.features' must be a list"),
    "feature of an unknown kind": (_edit(lambda d: d["metadata"]["features"][0].update(kind="tensor")),
                                   r"field 'metadata\.features' .*kind must be"),
    "vector feature of length -1": (_edit(lambda d: d["metadata"]["features"][0].update(kind="vector", dim=-1)),
                                    r"field 'metadata\.features' .*needs a length"),
    "training a list": (_edit(_set("metadata.training", [])), r"field 'metadata\.training' must be an object"),
    # the arrays, against the metadata
    "weights for 1 class on a 3-class model": (_arrays(lambda a: a.update(weights=a["weights"][:, :1].copy())),
                                               r"arrays\.[0-9a-f]{16}\.safetensors: array 'weights' has shape \(1, 1\), but model\.json describes \(1, 3\)"),
    "a mean of 4 values for 1 feature": (_arrays(lambda a: a.update(mean=np.zeros(4))), r"array 'mean' has shape \(4,\), but model\.json describes \(1,\)"),
    "bias of 2 values for 3 classes": (_arrays(lambda a: a.update(bias=np.zeros(2))), r"array 'bias' has shape \(2,\)"),
    "NaN weights": (_arrays(lambda a: a["weights"].__setitem__((0, 1), np.nan)), r"array 'weights' holds 1 NaN or infinite"),
    "infinite mean": (_arrays(lambda a: a["mean"].__setitem__(0, np.inf)), r"array 'mean' holds 1 NaN or infinite"),
    "a zero scale": (_arrays(lambda a: a["scale"].__setitem__(0, 0.0)), r"array 'scale' has 1 value\(s\) <= 0"),
    "a negative scale": (_arrays(lambda a: a.update(scale=-a["scale"])), r"array 'scale' has 1 value\(s\) <= 0"),
    "integer weights": (_arrays(lambda a: a.update(weights=np.ones((1, 3), np.int64))), r"array 'weights' has dtype int64, not floats"),
    "bias missing": (_arrays(lambda a: a.pop("bias")), r"array 'bias' is missing"),
    # the arrays file itself
    "arrays file truncated": (_truncate, r"arrays\.[0-9a-f]{16}\.safetensors is truncated: it has \d+ bytes, but model\.json records"),
    "arrays file changed, same size": (_flip_a_byte, r"arrays\.[0-9a-f]{16}\.safetensors does not match the sha256"),
    "arrays file missing": (lambda f: (f / _document(f)["arrays"]["file"]).unlink(), r"model\.json lists arrays\.[0-9a-f]{16}\.safetensors, but the folder has no such file"),
    "arrays file a pickle": (lambda f: _replace_arrays_file(f, pickle.dumps({"weights": np.zeros((1, 3))})),
                             r"arrays\.[0-9a-f]{16}\.safetensors is a pickle"),
    "arrays file a torch.save archive": (lambda f: _replace_arrays_file(f, _torch_archive()), r"is a pickle \(or a torch\.save archive\)"),
    "arrays file not safetensors": (lambda f: _replace_arrays_file(f, b"\x10" + bytes(100)), r"is not a valid safetensors file"),
    "format 1 arrays truncated": (_as_format_1(lambda p: p.write_bytes(p.read_bytes()[:40])),
                                  r"arrays\.safetensors is not a valid safetensors file .*truncated or damaged"),
    "format 1 arrays a pickle": (_as_format_1(lambda p: p.write_bytes(pickle.dumps([1, 2]))), r"arrays\.safetensors is a pickle"),
    "format 1 arrays missing": (_as_format_1(lambda p: p.unlink()), r"lists arrays\.safetensors, but the folder has no such file"),
}


@pytest.mark.parametrize("name", list(BAD_FOLDERS))
def test_a_damaged_model_folder_is_refused_naming_the_file_and_the_field(models, tmp_path, name, tally):
    old, _ = models
    damage, message = BAD_FOLDERS[name]
    folder = tmp_path / "model"
    old.save(str(folder))
    damage(folder)
    tally.bad_input()
    with pytest.raises(InputError, match=message) as info:
        load_model(str(folder))
    assert str(folder) in str(info.value)


def test_a_damaged_model_on_s3_is_refused_the_same_way(models, s3_server, tally):
    old, _ = models
    url = f"s3://{s3_server.make_bucket('reliability')}/damaged"
    old.save(url, storage_options=s3_server.storage_options)
    fs = s3_server.filesystem()
    document = json.loads(fs.cat_file("reliability/damaged/model.json"))
    fs.pipe_file(f"reliability/damaged/{document['arrays']['file']}", b"\x00" * document["arrays"]["bytes"])
    tally.bad_input()
    with pytest.raises(InputError, match=r"s3://reliability/damaged/arrays\.[0-9a-f]{16}\.safetensors does not match the sha256"):
        load_model(url, storage_options=s3_server.storage_options)


# ------------------------------------------------- self-contained image models
@pytest.fixture(scope="module")
def image_model(tmp_path_factory, bundled_weights):
    """An image classifier on weights from a file of the user's (a copy of the bundled ones), and frames of its features."""
    weights = tmp_path_factory.mktemp("weights") / "my_weights.pth"
    shutil.copy(bundled_weights, weights)
    extractor = DeepFeatureExtractor("mobilenet_v2", weights=str(weights), device="cpu")
    rng = np.random.default_rng(0)
    labels = np.array(["cat", "dog"] * 20)
    X = (rng.normal(size=(40, extractor.dim)) + (labels == "dog")[:, None]).astype(np.float32)
    field = extractor.output_field("deep_features")
    table = pa.Table.from_arrays([vectors_from_numpy(X), pa.array(labels)],
                                 schema=pa.schema([field, pa.field("label", pa.string())]))
    features = Frame(table)
    clf = classifier.create(features, "label", features=["deep_features"], validation_set=None, verbose=False, seed=0)
    return ImageClassifier(extractor, clf, image_column="image", feature_column="deep_features"), features, weights


def test_custom_weights_travel_with_the_model_and_nothing_outside_is_read(image_model, place, monkeypatch, tally):
    from framelab.toolkits.deep_features import weights as weights_module

    model, features, original = image_model
    url, options, fs, root = place
    model.save(url, storage_options=options)
    document = json.loads(fs.cat_file(f"{root}/model.json"))
    entry = document["files"]["weights.pth"]
    copy = fs.cat_file(f"{root}/{entry['file']}")
    assert hashlib.sha256(copy).hexdigest() == entry["sha256"] == model.extractor.provenance["weights_sha256"]
    assert copy == original.read_bytes()

    def outside(url, storage_options):  # the original file has moved: any read of it is a failure
        raise AssertionError(f"the loaded model read {url}")

    monkeypatch.setattr(weights_module, "_read_bytes", outside)
    tally.fault()
    loaded = load_model(url, storage_options=options)
    assert loaded.extractor.provenance == model.extractor.provenance  # the network loads from the copy
    assert loaded.predict(features).to_pylist() == model.predict(features).to_pylist()
    again = f"{url}-again"
    loaded.save(again, storage_options=options)  # a loaded model saves its copy again
    assert load_model(again, storage_options=options).extractor.provenance == model.extractor.provenance


OUTSIDE = [
    "../../etc/passwd",
    "/etc/passwd",
    "~/.ssh/id_rsa.pth",
    "file:///etc/shadow",
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "s3://another-bucket/weights.pth",
    "gs://someone-else/weights.safetensors",
]


@pytest.mark.parametrize("source", OUTSIDE)
def test_a_model_json_naming_weights_outside_its_folder_is_refused(image_model, tmp_path, source, tally):
    model, _, _ = image_model
    folder = tmp_path / "model"
    model.save(str(folder))

    def point_outside(document):
        document["metadata"]["weights_file"] = None
        document["metadata"]["extractor"]["weights"] = source

    _edit(point_outside)(folder)
    tally.bad_input()
    with pytest.raises(InputError, match=r"field 'metadata\.extractor\.weights' names .*outside the model folder.*allow_external=True"):
        load_model(str(folder))
    trusted = load_model(str(folder), allow_external=True)  # the user vouches for it: nothing is read yet
    assert trusted.extractor.weights == source


def _malicious_pickle(marker: Path) -> bytes:
    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"features.0.0.weight": RunsCode()}, protocol=2)


def _weights_damage(kind: str, marker: Path):
    def damage(folder: Path) -> None:
        document = _document(folder)
        meta = document["metadata"]
        if kind == "weights_file not listed":
            meta["weights_file"] = "other.pth"
        elif kind == "mixed halves":
            meta["classifier"]["features"][0]["provenance"]["weights_sha256"] = "0" * 64
        elif kind == "extractor sha256 not hex":
            meta["extractor"]["weights_sha256"] = "abc"
        elif kind == "extractor preprocessing broken":
            meta["extractor"]["preprocessing"] = {"resize": -1}
        elif kind == "extractor model unknown":
            meta["extractor"]["model"] = "not_a_network"
        elif kind == "feature column not in the classifier":
            meta["feature_column"] = "other_features"
        elif kind in ("weights copy replaced", "weights copy a code-running pickle"):
            # A consistent forgery: the copy, its manifest entry and the extractor's pin all agree.
            data = b"not weights" if kind == "weights copy replaced" else _malicious_pickle(marker)
            entry = document["files"]["weights.pth"]
            (folder / entry["file"]).write_bytes(data)
            digest = hashlib.sha256(data).hexdigest()
            entry.update(bytes=len(data), sha256=digest)
            if kind == "weights copy a code-running pickle":
                meta["extractor"]["weights_sha256"] = digest
        (folder / "model.json").write_text(json.dumps(document))

    return damage


IMAGE_MODEL_DAMAGE = {
    "weights_file not listed": r"field 'metadata\.weights_file' names 'other\.pth', a file model\.json does not list",
    "mixed halves": r"field 'metadata\.classifier\.features' was trained on features whose weights_sha256 differ",
    "extractor sha256 not hex": r"field 'metadata\.extractor' is not a valid extractor config.*weights_sha256",
    "extractor preprocessing broken": r"field 'metadata\.extractor' is not a valid extractor config.*preprocessing",
    "extractor model unknown": r"field 'metadata\.extractor' is not a valid extractor config.*not_a_network",
    "feature column not in the classifier": r"field 'metadata\.classifier\.features' has no vector feature 'other_features'",
    "weights copy replaced": r"field 'metadata\.weights_file' names a copy of the weights that cannot be used",
    "weights copy a code-running pickle": r"field 'metadata\.weights_file' .*weights_only=True",
}


@pytest.mark.parametrize("kind", list(IMAGE_MODEL_DAMAGE))
def test_an_image_classifier_whose_parts_do_not_fit_is_refused(image_model, tmp_path, kind, tally):
    model, _, _ = image_model
    folder = tmp_path / "model"
    model.save(str(folder))
    marker = tmp_path / "code-ran"
    _weights_damage(kind, marker)(folder)
    tally.bad_input()
    with pytest.raises(InputError, match=IMAGE_MODEL_DAMAGE[kind]):
        load_model(str(folder))
    assert not marker.exists(), "a pickle in the model folder ran code"


# ------------------------------------------------------ the other model kinds
# Each kind a user can save, built small: the vector models on plain vectors, the image models on the
# image classifier's custom weights (a path), so their folders must carry a copy of those weights.
KINDS = ["nearest_neighbors", "kmeans", "kmeans_on_images", "image_similarity", "image_tagger_pretrained",
         "image_tagger_trained"]
QUERIES = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)


def _vectors_frame() -> Frame:
    X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    X[10:] += 5.0
    return Frame(pa.table({"v": vectors_from_numpy(X), "name": [f"row{i}" for i in range(20)]}))


def _tagged(features: Frame) -> Frame:
    labels = features.to_arrow().column("label").to_pylist()
    # "rare" is never in the held-out rows: its held-out precision is NaN, which must survive a save.
    tags = [[label] + (["pet"] if label == "dog" else []) + (["rare"] if i in (30, 32) else [])
            for i, label in enumerate(labels)]
    return Frame(features.to_arrow().append_column("tags", pa.array(tags, pa.list_(pa.string()))))


def _logits(tagger) -> Frame:
    logits = np.zeros((3, tagger.extractor.dim), np.float32)
    logits[0, 88], logits[2, 285] = 12.0, 9.0
    field = tagger.extractor.output_field(tagger.feature_column)
    return Frame(pa.table([vectors_from_numpy(logits)], schema=pa.schema([field])))


@pytest.fixture(scope="module")
def kinds(image_model):
    """kind -> (model, answers(model)): what a saved and loaded model must answer the same."""
    from framelab.toolkits import image_similarity, image_tagger, kmeans, nearest_neighbors

    classifier_model, features, weights = image_model
    options = {"weights": str(weights), "device": "cpu"}
    vectors = _vectors_frame()
    queries = Frame({"v": QUERIES})
    # Photos whose features the custom extractor made already: kmeans.create reuses them, and keeps the extractor.
    photos = classifier_model.extractor.transform(datasets.caltech101(classes=["ewer", "sunflower"], per_class=3))
    photos = photos.materialize()
    on_images = kmeans.create(photos, 2, seed=0, verbose=False, **options)
    assert on_images.extractor is not None and on_images.extractor.weights == str(weights)
    tagged = _tagged(features)
    pretrained = image_tagger.create(vocabulary=["cat", "dog", "bird"], **options)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*no held-out image to choose a threshold")
        trained = image_tagger.create(tagged, "tags", validation_set=tagged.head(12), seed=0, verbose=False,
                                      **options)
    assert np.isnan(trained.held_out["precision"]).any()
    return {
        "nearest_neighbors": (nearest_neighbors.create(vectors, features=["v"], label="name", verbose=False),
                              lambda m: m.query(queries, k=3).to_pydict()),
        "kmeans": (kmeans.create(vectors, 2, features=["v"], seed=0, verbose=False),
                   lambda m: (m.predict(queries).to_pylist(), m.centers.tolist(), m.cluster_id.to_pydict())),
        "kmeans_on_images": (on_images, lambda m: m.predict(photos).to_pylist()),
        "image_similarity": (image_similarity.create(features, label="label", verbose=False, **options),
                             lambda m: m.query(features.head(4), k=3).to_pydict()),
        "image_tagger_pretrained": (pretrained, lambda m: m.tag(_logits(m))["tags"].to_pylist()),
        "image_tagger_trained": (trained, lambda m: (m.tag(features)["tags"].to_pylist(),
                                                     m.thresholds.to_pydict())),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_saves_and_loads_to_the_same_answers_reading_only_its_folder(kinds, kind, place, monkeypatch,
                                                                               image_model, tally):
    from framelab.toolkits.deep_features import weights as weights_module

    model, answers = kinds[kind]
    url, options, fs, root = place
    model.save(url, storage_options=options)
    document = json.loads(fs.cat_file(f"{root}/model.json"))
    if kind not in ("nearest_neighbors", "kmeans"):  # built on weights from a path: a copy travels with it
        _, _, original = image_model
        entry = document["files"]["weights.pth"]
        assert document["metadata"]["weights_file"] == "weights.pth"
        assert fs.cat_file(f"{root}/{entry['file']}") == original.read_bytes()

        def outside(url, storage_options):  # the original weights have moved: reading them is a failure
            raise AssertionError(f"the loaded model read {url}")

        monkeypatch.setattr(weights_module, "_read_bytes", outside)
        tally.fault()
    loaded = load_model(url, storage_options=options)
    assert type(loaded) is type(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowFailureWarning)
        assert answers(loaded) == answers(model)
    again = f"{url}-again"
    loaded.save(again, storage_options=options)  # a loaded model saves itself (and its weights copy) again
    assert answers(load_model(again, storage_options=options)) == answers(model)


def _write_table(name: str, table: pa.Table):
    return _arrays(lambda a: a.update({name: model_io.table_to_array(table)}))


def _set_provenance_sha(path: str):
    def change(document):
        holder = document
        for key in path.split("."):
            holder = holder[key]
        holder[0]["provenance"]["weights_sha256"] = "0" * 64

    return change


KIND_DAMAGE = {
    "nearest_neighbors": {
        "distance unknown": (_edit(_set("metadata.distance", "hamming")),
                             r"field 'metadata\.distance' is 'hamming', not one of euclidean"),
        "method unknown": (_edit(_set("metadata.method", "fast")), r"field 'metadata\.method' is 'fast'"),
        "label a number": (_edit(_set("metadata.label", 3)), r"field 'metadata\.label' must be a string or null"),
        "features a string": (_edit(_set("metadata.features", "v")), r"field 'metadata\.features' must be a list"),
        "num_examples missing": (_edit(_set("metadata.training.num_examples", _DELETE)),
                                 r"field 'metadata\.training\.num_examples' is missing"),
        "vectors of 3 values for 4 features": (_arrays(lambda a: a.update(vectors=a["vectors"][:, :3].copy())),
                                               r"array 'vectors' has shape \(20, 3\), but model\.json describes \(20, 4\)"),
        "a reference row short": (_arrays(lambda a: a.update(vectors=a["vectors"][:-1].copy())),
                                  r"array 'vectors' has shape \(19, 4\), but model\.json describes \(20, 4\)"),
        "present flags of another count": (_arrays(lambda a: a["present"].__setitem__(0, 0)),
                                           r"array 'present' flags 19 row\(s\) with features, but model\.json records 20"),
        "present flags as floats": (_arrays(lambda a: a.update(present=a["present"].astype(np.float64))),
                                    r"array 'present' has dtype float64, not integers"),
        "labels of 3 rows": (_write_table("labels", pa.table({"labels": ["a", "b", "c"]})),
                             r"array 'labels' holds 3 row\(s\)"),
    },
    "kmeans": {
        "num_clusters a string": (_edit(_set("metadata.num_clusters", "2")),
                                  r"field 'metadata\.num_clusters' must be an integer, got a string"),
        "label that the assignments lack": (_edit(_set("metadata.label", "name")),
                                            r"array 'cluster_id' has columns \['row_id', 'cluster_id', 'distance'\]"),
        "training a list": (_edit(_set("metadata.training", [])), r"field 'metadata\.training' must be an object"),
        "centres of 3 clusters for 2": (_arrays(lambda a: a.update(centers=np.vstack([a["centers"], a["centers"][:1]]))),
                                        r"array 'centers' has shape \(3, 4\), but model\.json describes \(2, 4\)"),
        "centres of 5 values for 4 features": (_arrays(lambda a: a.update(centers=np.ones((2, 5)))),
                                               r"array 'centers' has shape \(2, 5\)"),
        "sizes as floats": (_arrays(lambda a: a.update(sizes=a["sizes"].astype(np.float64))),
                            r"array 'sizes' has dtype float64, not integers"),
        "sums of 1 cluster": (_arrays(lambda a: a.update(sum_squared_distances=np.ones(1))),
                              r"array 'sum_squared_distances' has shape \(1,\)"),
        "a row in cluster 5": (_write_table("cluster_id", pa.table({"row_id": [0], "cluster_id": [5], "distance": [0.0]})),
                               r"array 'cluster_id' assigns a row to cluster 5, but model\.json describes 2"),
    },
    "kmeans_on_images": {
        "extractor a string": (_edit(_set("metadata.extractor", "mobilenet_v2")),
                               r"field 'metadata\.extractor' must be an object or null"),
        "extractor of an unknown network": (_edit(_set("metadata.extractor.model", "not_a_network")),
                                            r"field 'metadata\.extractor' is not a valid extractor config"),
        "centres from another network": (_edit(_set_provenance_sha("metadata.features")),
                                         r"field 'metadata\.features' was trained on features whose weights_sha256 differ"),
        "feature column missing": (_edit(_set("metadata.feature_column", None)),
                                   r"field 'metadata\.feature_column' is null"),
    },
    "image_similarity": {
        "feature_column a number": (_edit(_set("metadata.feature_column", 1)),
                                    r"field 'metadata\.feature_column' must be a string"),
        "distance unknown": (_edit(_set("metadata.neighbors.distance", "hamming")),
                             r"field 'metadata\.neighbors\.distance' is 'hamming'"),
        "weights_file not listed": (_edit(_set("metadata.weights_file", "other.pth")),
                                    r"field 'metadata\.weights_file' names 'other\.pth', a file model\.json does not list"),
        "index from another network": (_edit(_set_provenance_sha("metadata.neighbors.features")),
                                       r"field 'metadata\.neighbors\.features' was trained on features whose weights_sha256"),
        "vectors of 100 values for 1280": (_arrays(lambda a: a.update(vectors=a["vectors"][:, :100].copy())),
                                           r"array 'vectors' has shape \(40, 100\), but model\.json describes \(40, 1280\)"),
    },
    "image_tagger_pretrained": {
        "mode unknown": (_edit(_set("metadata.mode", "magic")), r"field 'metadata\.mode' is 'magic'"),
        "vocabulary repeats": (_edit(_set("metadata.vocabulary", ["bird", "bird", "dog"])),
                               r"field 'metadata\.vocabulary' lists a tag more than once"),
        "vocabulary empty": (_edit(_set("metadata.vocabulary", [])), r"field 'metadata\.vocabulary' must list one or more"),
        "num_classes a string": (_edit(_set("metadata.num_classes", "1000")),
                                 r"field 'metadata\.num_classes' must be an integer"),
        "thresholds of 2 tags for 3": (_arrays(lambda a: a.update(thresholds=a["thresholds"][:2].copy())),
                                       r"array 'thresholds' has shape \(2,\), but model\.json describes \(3,\)"),
        "a threshold above 1": (_arrays(lambda a: a["thresholds"].__setitem__(0, 1.5)),
                                r"array 'thresholds' holds a threshold outside \[0, 1\]"),
        "roll-up of 2 tags for 3": (_arrays(lambda a: a.update(rollup_indptr=a["rollup_indptr"][:3].copy())),
                                    r"array 'rollup_indptr' has shape \(3,\), but model\.json describes \(4,\)"),
        "roll-up past the network's classes": (_arrays(lambda a: a["rollup_indices"].__setitem__(0, 5000)),
                                               r"array 'rollup_indices' names a class outside the network's 1000"),
        "roll-up runs that go backwards": (_arrays(lambda a: a["rollup_indptr"].__setitem__(1, 10 ** 6)),
                                           r"array 'rollup_indptr' does not cut"),
    },
    "image_tagger_trained": {
        "num_features a string": (_edit(_set("metadata.num_features", "1280")),
                                  r"field 'metadata\.num_features' must be an integer"),
        "weights for one tag fewer": (_arrays(lambda a: a.update(weights=a["weights"][:, :-1].copy())),
                                      r"array 'weights' has shape \(1280, 3\), but model\.json describes \(1280, 4\)"),
        "a mean of 3 values": (_arrays(lambda a: a.update(mean=np.zeros(3))), r"array 'mean' has shape \(3,\)"),
        "a zero scale": (_arrays(lambda a: a["scale"].__setitem__(0, 0.0)), r"array 'scale' has 1 value\(s\) <= 0"),
        "held-out precision of 2 tags": (_arrays(lambda a: a.update(held_out_precision=np.zeros(2))),
                                         r"array 'held_out_precision' has shape \(2,\)"),
        "held-out recall of -5": (_arrays(lambda a: a["held_out_recall"].__setitem__(0, -5.0)),
                                  r"array 'held_out_recall' holds a value outside \[0, 1\]"),
    },
}


@pytest.mark.parametrize(("kind", "name"), [(k, n) for k, cases in KIND_DAMAGE.items() for n in cases])
def test_every_kind_refuses_a_damaged_folder_naming_the_file_and_the_field(kinds, kind, name, tmp_path, tally):
    model, _ = kinds[kind]
    damage, message = KIND_DAMAGE[kind][name]
    folder = tmp_path / "model"
    model.save(str(folder))
    damage(folder)
    tally.bad_input()
    with pytest.raises(InputError, match=message) as info:
        load_model(str(folder))
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("kind", ["kmeans_on_images", "image_similarity", "image_tagger_pretrained",
                                  "image_tagger_trained"])
def test_every_image_kind_refuses_weights_outside_its_folder_unless_allowed(kinds, kind, tmp_path, tally):
    model, _ = kinds[kind]
    folder = tmp_path / "model"
    model.save(str(folder))

    def point_outside(document):
        document["metadata"]["weights_file"] = None
        document["metadata"]["extractor"]["weights"] = "../../etc/passwd"

    _edit(point_outside)(folder)
    tally.bad_input()
    with pytest.raises(InputError, match=r"field 'metadata\.extractor\.weights' names .*outside the model folder"):
        load_model(str(folder))
    assert load_model(str(folder), allow_external=True).extractor.weights == "../../etc/passwd"
