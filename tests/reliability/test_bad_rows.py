"""Bad rows never sink a job: undecodable images give nulls and one count, bad input gets a clear error.

The frame mixes real Caltech images with three bad files: one that the reader
accepts but nothing can decode (a JPEG with no scan data), a truncated JPEG
and a text file named .jpg (both refused by the reader).
"""

from __future__ import annotations

import contextlib
import io
import shutil
import warnings

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from caltech_folders import copy_caltech

from framelab.frames import Frame, InputError, vectors_from_numpy
from framelab.platform.failures import RowFailureWarning
from framelab.toolkits import (
    classifier,
    datasets,
    deep_features,
    image_classifier,
    image_similarity,
    image_tagger,
    kmeans,
    nearest_neighbors,
)

CLASSES = ["Faces_easy", "Motorbikes"]
BAD = {
    "Faces_easy/no_scan_data.jpg": "decoded",  # read fine; only decoding finds the damage
    "Motorbikes/truncated.jpg": "read",
    "Motorbikes/notes.jpg": "read",
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_rows")
    copy_caltech(root, CLASSES, 6)
    jpeg = (datasets.caltech101_path() / "Faces_easy" / "image_0007.jpg").read_bytes()
    (root / "Faces_easy" / "no_scan_data.jpg").write_bytes(jpeg[: jpeg.find(b"\xff\xda")] + b"\xff\xd9")
    (root / "Motorbikes" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "Motorbikes" / "notes.jpg").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def featured(folder):
    """Deep features of all 15 rows (null for the 3 bad ones), extracted once for the module."""
    with _quiet():
        return deep_features.extract(Frame.read_images(str(folder), label_from="folder")).materialize()


@pytest.fixture(scope="module")
def model(featured):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = image_classifier.create(featured, "label", validation_set=None, verbose=False, seed=0)
    counts = _counts(caught, "image classifier: training")
    assert counts == ["3 of 15"], counts
    assert model.classifier.training["num_examples"] == 12
    return model


@contextlib.contextmanager
def _quiet():
    """Row-failure warnings a test expects but does not check here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RowFailureWarning)
        yield


def _counts(caught, stage: str) -> list[str]:
    """The "N of M" of every RowFailureWarning that ``stage`` gave."""
    out = []
    for w in caught:
        text = str(w.message)
        if issubclass(w.category, RowFailureWarning) and text.startswith(stage + ":"):
            out.append(" ".join(text[len(stage) + 2:].split()[:3]))
    return out


def _bad_rows(frame) -> list[int]:
    paths = frame.to_arrow().column("path").to_pylist()
    return sorted(i for i, p in enumerate(paths) if any(p.endswith(name) for name in BAD))


def test_predict_gives_null_for_undecodable_images_and_counts_them_once(featured, model, tally):
    tally.bad_input(len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predicted = model.predict(featured).to_pylist()
    tally.rows(featured.num_rows(), len(predicted))
    bad = _bad_rows(featured)
    assert [i for i, p in enumerate(predicted) if p is None] == bad
    good = featured.filter(pl.col("deep_features").is_not_null())
    assert [p for p in predicted if p is not None] == model.predict(good).to_pylist()
    assert _counts(caught, "image classifier: predict") == ["3 of 15"]


def test_a_bad_first_row_is_counted_once_not_again_for_the_output_schema(featured, model, tally):
    table = featured.to_arrow()
    bad = _bad_rows(featured)
    first_bad = Frame.from_arrow(table.take([bad[0], *[i for i in range(table.num_rows) if i != bad[0]]]))
    tally.bad_input(len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predicted = model.predict(first_bad).to_pylist()
    tally.rows(15, len(predicted))
    assert predicted[0] is None
    assert _counts(caught, "image classifier: predict") == ["3 of 15"]


def test_predict_on_raw_images_extracts_on_the_way_with_the_same_nulls(folder, featured, model, tally):
    photos = Frame.read_images(str(folder), label_from="folder")
    tally.bad_input(len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predicted = model.predict(photos).to_pylist()
    tally.rows(15, len(predicted))
    with _quiet():
        assert predicted == model.predict(featured).to_pylist()
    assert _counts(caught, "image classifier: predict") == ["3 of 15"]
    assert _counts(caught, "deep features: decoding") == ["1 of 15"]  # the file only decoding could catch


def test_predict_topk_classify_and_evaluate_keep_every_row_or_count_it(featured, model, tally):
    bad = _bad_rows(featured)
    tally.bad_input(3 * len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        top = model.predict_topk(featured, k=2).to_pydict()
        classified = model.classify(featured).to_pydict()
        metrics = model.evaluate(featured)
    tally.rows(15 * 2, len(top["id"]))
    tally.rows(15, len(classified["class"]))
    assert top["id"] == [i for i in range(15) for _ in range(2)]
    assert [i for i, c in zip(top["id"], top["class"]) if c is None] == [i for i in bad for _ in range(2)]
    assert [i for i, c in enumerate(classified["class"]) if c is None] == bad
    assert [i for i, p in enumerate(classified["probability"]) if p is None] == bad
    good = featured.filter(pl.col("deep_features").is_not_null())
    assert metrics["accuracy"] == model.evaluate(good)["accuracy"]
    for stage in ("predict_topk", "classify", "evaluate"):
        assert _counts(caught, f"image classifier: {stage}") == ["3 of 15"], stage


def test_kmeans_predict_gives_null_for_undecodable_images_and_counts_them_once(folder, featured, tally):
    with _quiet():
        model = kmeans.create(featured, 2, seed=0, verbose=False)  # on images: their features column is reused
    assert model.extractor is not None
    photos = Frame.read_images(str(folder), label_from="folder")
    tally.bad_input(2 * len(BAD))
    for frame in (featured, photos):  # features with nulls, and raw images extracted on the way
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            predicted = model.predict(frame).to_pylist()
        tally.rows(15, len(predicted))
        assert [i for i, p in enumerate(predicted) if p is None] == _bad_rows(frame)
        assert _counts(caught, "kmeans: predict") == ["3 of 15"]
    good = featured.filter(pl.col("deep_features").is_not_null())
    assert [p for p in predicted if p is not None] == model.predict(good).to_pylist()
    distances = model.predict(featured, output_type="distance").to_pylist()
    assert [i for i, d in enumerate(distances) if d is None] == _bad_rows(featured)


def test_image_similarity_query_keeps_one_null_row_for_each_undecodable_image(featured, tally):
    with _quiet():
        model = image_similarity.create(featured, label="path", verbose=False)
    tally.bad_input(len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = model.query(featured, k=2).to_pydict()
    queries = found["query_label"]
    tally.rows(15, len(set(queries)))
    bad = _bad_rows(featured)
    assert queries == sorted(queries)  # each query's rows in their place
    assert [q for q, r in zip(queries, found["reference_label"]) if r is None] == bad
    assert all(d is None and r is None for q, d, r in zip(queries, found["distance"], found["rank"]) if q in bad)
    assert all(queries.count(q) == 2 for q in set(queries) - set(bad))
    assert _counts(caught, "nearest_neighbors query") == ["3 of 15"]


def test_nearest_neighbors_query_with_null_vectors_keeps_their_rows_and_answers_the_others(tally):
    rng = np.random.default_rng(0)
    X, Q = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    missing = np.array([False, True, False, False, True, False])
    model = nearest_neighbors.create(Frame({"v": X}), verbose=False)
    tally.bad_input(int(missing.sum()))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        found = model.query(Frame(pa.table({"v": vectors_from_numpy(Q, mask=missing)})), k=3).to_pydict()
    tally.rows(len(Q), len(set(found["query_label"])))
    assert [q for q, r in zip(found["query_label"], found["reference_label"]) if r is None] == [1, 4]
    good = model.query(Frame({"v": Q[~missing]}), k=3).to_pydict()  # the others' answers are unchanged
    kept = [i for i, q in enumerate(found["query_label"]) if not missing[q]]
    assert [found["reference_label"][i] for i in kept] == good["reference_label"]
    assert [found["distance"][i] for i in kept] == good["distance"]
    assert _counts(caught, "nearest_neighbors query") == ["2 of 6"]


def test_image_tagger_keeps_null_tags_for_undecodable_images_and_counts_them_once(folder, tally):
    tagger = image_tagger.create()
    photos = Frame.read_images(str(folder), label_from="folder")
    tally.bad_input(len(BAD))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tagged = tagger.tag(photos).select("path", "tags").materialize()
    tally.rows(15, tagged.num_rows())
    tags = tagged.to_arrow().column("tags").to_pylist()
    assert [i for i, t in enumerate(tags) if t is None] == _bad_rows(tagged)
    assert _counts(caught, "image tagger: images without features (undecodable)") == ["3 of 15"]


def test_create_on_an_empty_frame_says_the_frame_is_empty(folder, tally):
    photos = Frame.read_images(str(folder), label_from="folder")
    tally.bad_input(2)
    with _quiet(), pytest.raises(InputError, match="the training frame is empty"):
        image_classifier.create(photos.filter(pl.col("label") == "no such class"), "label", verbose=False)
    with _quiet(), pytest.raises(InputError, match="the training frame is empty"):
        image_classifier.create(photos.head(0), "label", verbose=False)


def test_create_on_a_frame_of_only_bad_images_says_none_could_be_decoded(folder, tmp_path, tally):
    for name in BAD:
        target = tmp_path / name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(folder / name, target)
    tally.bad_input(len(BAD))
    with _quiet():
        with pytest.raises(InputError, match="no image in the training frame could be decoded"):
            image_classifier.create(Frame.read_images(str(tmp_path), label_from="folder"), "label", verbose=False)


@pytest.mark.parametrize(
    ("column", "values"),
    [("x", [0.0, None, 1.0, 0.5] * 5), ("kind", ["p", None, "q", "p"] * 5)],
    ids=["a null number", "a null category"],
)
def test_a_null_feature_is_refused_at_training_and_at_prediction(column, values, tally):
    data = {"x": [0.0, 0.2, 1.0, 0.5] * 5, "kind": ["p", "q", "q", "p"] * 5, "y": ["a", "b"] * 10}
    tally.bad_input(2)
    with pytest.raises(InputError, match=f"column '{column}' has 5 missing value"):
        classifier.create(Frame({**data, column: values}), "y", verbose=False)
    model = classifier.create(Frame(data), "y", verbose=False, seed=0)
    with pytest.raises(InputError, match=f"column '{column}' has 5 missing value"):
        model.predict(Frame({**data, column: values}))


def test_features_without_provenance_are_refused_by_a_model_trained_with_it(featured, tally):
    good = featured.filter(pl.col("deep_features").is_not_null()).select("deep_features", "label")
    with_provenance = classifier.create(good, "label", validation_set=None, verbose=False, seed=0)
    stripped = Frame(good.to_polars())  # a round trip through polars drops the field metadata
    tally.bad_input()
    with pytest.raises(InputError, match="has no provenance metadata, but the model was trained on features of model 'mobilenet_v2'"):
        with_provenance.predict(stripped)
    # Trained without provenance, a model has nothing to compare with: features with provenance are fine.
    without = classifier.create(stripped, "label", validation_set=None, verbose=False, seed=0)
    assert without.predict(good).to_pylist() == without.predict(stripped).to_pylist()


def _png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_decode_stage_lets_through_images_as_large_as_the_reader_accepted(tally):
    from framelab.frames import images
    from framelab.frames.images.image_type import STORAGE_TYPE, image_type, images_from_bytes

    # Scaled down: the decode step's own limit is 1,000 pixels, the images have 2,400.
    big = _png(60, 40)
    read = images_from_bytes([big, big], max_pixels=10_000)  # read_images(max_pixels=10_000)
    storage = read.storage
    forged = pa.StructArray.from_arrays(  # a row that claims a 10x10 image but holds a 60x40 one
        [storage.field("bytes"), storage.field("format"), pa.array([10, 60], pa.int32()),
         pa.array([10, 40], pa.int32()), storage.field("channels")],
        fields=list(STORAGE_TYPE),
    )
    table = pa.table({
        "read": read,
        "forged": pa.ExtensionArray.from_storage(image_type(), forged),
        "bytes": pa.array([big, big], pa.binary()),
    })

    def decode(column):  # the chain deep features decode with (Preprocessing.pixels), at a 1,000-pixel limit
        return images.col(column, max_pixels=1_000).convert("RGB").resize(8, 8).decode().evaluate(table)

    tally.bad_input(2)
    with _quiet():
        nulls = {c: decode(c).null_count for c in ("read", "forged", "bytes")}
    # What the reader accepted decodes; a row that lies about its size and a never-checked
    # binary column keep the decode step's limit.
    assert nulls == {"read": 0, "forged": 1, "bytes": 2}
    assert np.asarray(decode("read")[0].as_py()).reshape(8, 8, 3)[0, 0].tolist() == [200, 30, 30]
