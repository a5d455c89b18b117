"""framelab.toolkits.kmeans: inertia against scikit-learn's KMeans, outputs, images, errors, save/load."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
from caltech_folders import copy_caltech
from sklearn.cluster import KMeans

import framelab.platform.sharded as sharded
from framelab.frames import Frame, InputError, vectors_from_numpy
from framelab.platform.failures import RowFailureWarning
from framelab.toolkits import kmeans, load_model


def _blobs(n=3000, d=16, k=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2.5
    y = rng.integers(0, k, n)
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32)


@pytest.fixture()
def actor_shards(monkeypatch):
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)


def test_lloyd_from_the_same_centres_reaches_sklearns_inertia():
    X = _blobs()
    start = X[:8].astype(np.float64)
    model = kmeans.create(Frame({"v": X}), 8, initial_centers=start, max_iterations=100, verbose=False)
    reference = KMeans(8, init=start, n_init=1, max_iter=100, tol=0.0).fit(X)
    assert model.inertia == pytest.approx(reference.inertia_, rel=1e-3)
    assert model.training["converged"]


def test_kmeans_plus_plus_is_within_two_percent_of_sklearns_best_of_ten():
    X = _blobs(seed=1)
    best = KMeans(8, n_init=10, random_state=0).fit(X).inertia_
    model = kmeans.create(Frame({"v": X}), 8, seed=0, max_iterations=100, verbose=False)
    assert model.training["initialization"] == "k-means++"
    assert model.inertia <= best * 1.02


def test_kmeans_parallel_on_actor_shards_is_within_two_percent(actor_shards):
    X = _blobs(seed=2)
    best = KMeans(8, n_init=10, random_state=0).fit(X).inertia_
    model = kmeans.create(Frame({"v": X}).repartition(4), 8, seed=0, max_iterations=100, verbose=False)
    assert model.training["initialization"] == "k-means||" and model.training["num_shards"] == 2
    assert model.inertia <= best * 1.02
    start = X[:8].astype(np.float64)
    sharded_model = kmeans.create(Frame({"v": X}).repartition(4), 8, initial_centers=start,
                                  max_iterations=100, verbose=False)
    reference = KMeans(8, init=start, n_init=1, max_iter=100, tol=0.0).fit(X)
    assert sharded_model.inertia == pytest.approx(reference.inertia_, rel=1e-3)


def test_minibatch_gets_close_to_lloyd():
    X = _blobs(seed=3)
    best = KMeans(8, n_init=10, random_state=0).fit(X).inertia_
    model = kmeans.create(Frame({"v": X}), 8, batch_size=256, max_iterations=100, seed=0, verbose=False)
    assert model.training["batch_size"] == 256
    assert model.inertia <= best * 1.05


def test_outputs_agree_with_each_other_and_with_predict():
    X = _blobs(n=500)
    names = [f"p{i}" for i in range(len(X))]
    model = kmeans.create(Frame({"v": X, "name": names}), 8, label="name", seed=0, verbose=False)
    assigned = model.cluster_id.to_pydict()
    assert assigned["name"] == names and assigned["row_id"] == list(range(len(X)))
    info = model.cluster_info.to_pydict()
    assert info["cluster_id"] == list(range(8))
    assert sum(info["size"]) == len(X)
    assert np.bincount(assigned["cluster_id"], minlength=8).tolist() == info["size"]
    centers = np.array(info["v"])
    d2 = ((X[:, None, :].astype(np.float64) - centers[None]) ** 2).sum(axis=2)
    assert assigned["cluster_id"] == d2.argmin(axis=1).tolist()
    np.testing.assert_allclose(assigned["distance"], np.sqrt(d2.min(axis=1)), rtol=1e-4)
    assert model.inertia == pytest.approx(float(d2.min(axis=1).sum()), rel=1e-5)
    assert model.predict(Frame({"v": X[:50]})).to_pylist() == assigned["cluster_id"][:50]
    np.testing.assert_allclose(model.predict(Frame({"v": X[:5]}), output_type="distance").to_pylist(),
                               assigned["distance"][:5], rtol=1e-5)


def test_numeric_columns_and_missing_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=60)
    x[[5, 9]] = np.nan  # NaN is refused; a null is a missing feature
    table = pa.table({"x": pa.array(x, mask=np.isnan(x)), "y": rng.normal(size=60)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = kmeans.create(Frame(table), 3, seed=0, verbose=False)
    assert sum(issubclass(w.category, RowFailureWarning) for w in caught) == 1
    assigned = model.cluster_id.to_pydict()
    assert len(assigned["row_id"]) == 60
    assert assigned["cluster_id"][5] is None and assigned["distance"][9] is None
    assert sum(v is not None for v in assigned["cluster_id"]) == 58
    assert set(model.cluster_info.columns) == {"x", "y", "cluster_id", "size", "sum_squared_distance"}


def test_bad_input_gets_a_message_that_says_what_to_do():
    X = _blobs(n=10, d=3)
    with pytest.raises(InputError, match="num_clusters=11 is larger than the 10 rows"):
        kmeans.create(Frame({"v": X}), 11, verbose=False)
    bad = X.copy()
    bad[2, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        kmeans.create(Frame({"v": bad}), 2, verbose=False)
    with pytest.raises(InputError, match="empty"):
        kmeans.create(Frame(pa.table({"v": vectors_from_numpy(np.zeros((0, 3), np.float32))})), 2, verbose=False)
    ragged = Frame(pa.table({"v": pa.array([[1.0, 2.0], [1.0]], pa.list_(pa.float32()))}))
    with pytest.raises(InputError, match="different lengths"):
        kmeans.create(ragged, 1, verbose=False)
    with pytest.raises(InputError, match="initial_centers must have 2 rows of 3 values"):
        kmeans.create(Frame({"v": X}), 2, initial_centers=np.zeros((3, 3)), verbose=False)
    with pytest.raises(InputError, match="num_clusters must be a positive integer"):
        kmeans.create(Frame({"v": X}), 0, verbose=False)
    with pytest.raises(InputError, match="weights configure deep features, but this k-means clusters the frame's"):
        kmeans.create(Frame({"v": X}), 2, weights="my_weights.pth", verbose=False)
    model = kmeans.create(Frame({"v": X}), 2, seed=0, verbose=False)
    with pytest.raises(InputError, match="length 4 but the model was trained on vectors of length 3"):
        model.predict(Frame({"v": np.ones((1, 4), dtype=np.float32)}))


def test_save_and_load_keep_centres_and_assignments(tmp_path):
    X = _blobs(n=300)
    model = kmeans.create(Frame({"v": X}), 4, seed=0, verbose=False)
    model.save(str(tmp_path / "km"))
    loaded = load_model(str(tmp_path / "km"))
    np.testing.assert_array_equal(loaded.centers, model.centers)
    assert loaded.cluster_id.to_pydict() == model.cluster_id.to_pydict()
    assert loaded.predict(Frame({"v": X[:20]})).to_pylist() == model.predict(Frame({"v": X[:20]})).to_pylist()
    assert "KMeansModel" in repr(loaded)


def test_images_are_clustered_through_deep_features_and_explored(tmp_path):
    root = tmp_path / "images"
    copy_caltech(root, ("Faces_easy", "sunflower", "Motorbikes"), 6)
    photos = Frame.read_images(str(root), label_from="folder")
    model = kmeans.create(photos, 3, seed=0, verbose=False)
    assert model.features == ["deep_features"] and model.extractor is not None
    clusters = model.cluster_id.to_pydict()["cluster_id"]
    labels = photos.to_pydict()["label"]
    # Deep features separate these three classes: each class lands in one cluster.
    assert all(len({c for c, lab in zip(clusters, labels) if lab == name}) == 1 for name in set(labels))
    assert model.predict(photos.head(4)).to_pylist() == clusters[:4]
    page = model.explore(path=str(tmp_path / "clusters.html"), per_cluster=2)
    text = open(page, encoding="utf-8").read()
    assert text.count("data:image/") == 6 and "cluster_id" in text


@pytest.mark.multinode
def test_two_nodes_give_the_one_node_inertia_with_shards_on_both(two_node_cluster, monkeypatch):
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    X = _blobs(seed=4)
    start = X[:8].astype(np.float64)
    model = kmeans.create(Frame({"v": X}).repartition(6), 8, initial_centers=start, max_iterations=100,
                          verbose=False)
    assert model.training["num_nodes"] == 2
    reference = KMeans(8, init=start, n_init=1, max_iter=100, tol=0.0).fit(X)
    assert model.inertia == pytest.approx(reference.inertia_, rel=1e-3)
    assert model.cluster_id.to_pydict()["row_id"] == list(range(len(X)))


def test_a_label_named_row_id_keeps_rows_in_row_order_and_lines_up_with_predict(tmp_path):
    # Regression: the gather sorted by "row_id", which the label had replaced, so rows came back
    # in the label's text order ('0a', '10a', '11a', ...) and no longer matched predict.
    X = _blobs(n=30, d=3, k=3)
    names = [f"{i}a" for i in range(len(X))]
    model = kmeans.create(Frame({"v": X, "row_id": names}), 3, label="row_id", seed=0, verbose=False)
    assigned = model.cluster_id.to_pydict()
    assert list(assigned) == ["row_id", "cluster_id", "distance"]
    assert assigned["row_id"] == names
    assert assigned["cluster_id"] == model.predict(Frame({"v": X})).to_pylist()
    model.save(str(tmp_path / "m"))
    assert load_model(str(tmp_path / "m")).cluster_id.to_pydict() == assigned


@pytest.mark.parametrize("shards", ["in_process", "actors"])
def test_max_iterations_zero_assigns_rows_to_the_given_centres(shards, monkeypatch):
    if shards == "actors":
        monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
        monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    X = _blobs(n=200, d=4, k=3)
    start = X[[0, 50, 100]].astype(np.float64)
    model = kmeans.create(Frame({"v": X}), 3, initial_centers=start, max_iterations=0, verbose=False)
    np.testing.assert_allclose(model.centers, start)
    d2 = ((X[:, None, :].astype(np.float64) - start[None]) ** 2).sum(axis=2)
    assert model.cluster_id.to_pydict()["cluster_id"] == d2.argmin(axis=1).tolist()
    assert model.training["iterations"] == 0
    assert model.inertia == pytest.approx(float(d2.min(axis=1).sum()), rel=1e-5)
    with pytest.raises(InputError, match="non-negative integer"):
        kmeans.create(Frame({"v": X}), 3, max_iterations=-1, verbose=False)
