"""framelab.toolkits.nearest_neighbors: exact answers against scikit-learn's brute force, ANN, errors, save/load."""

from __future__ import annotations

import json
import warnings

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from sklearn.neighbors import NearestNeighbors

import framelab.platform.sharded as sharded
import framelab.toolkits.nearest_neighbors.nearest_neighbors as nn_module
from framelab.frames import ColumnNotFoundError, Frame, InputError, vectors_from_numpy
from framelab.platform.failures import RowFailureWarning
from framelab.toolkits import load_model, nearest_neighbors

SKLEARN_METRIC = {"euclidean": "euclidean", "squared_euclidean": "sqeuclidean", "cosine": "cosine",
                  "manhattan": "manhattan"}


def _data(n=600, q=40, d=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32) + 3.0  # an offset: cancellation in ||a||^2 - 2ab + ||b||^2
    Q = rng.standard_normal((q, d)).astype(np.float32) + 3.0
    return X, Q


@pytest.fixture()
def actor_shards(monkeypatch):
    """Small data spread over actor shards, as a large frame would be."""
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)


def _ids(result, rows: int, k: int) -> np.ndarray:
    table = result.to_arrow()
    return np.asarray(table.column("reference_label").to_pylist()).reshape(rows, k)


def _distances(result, rows: int, k: int) -> np.ndarray:
    return result.to_arrow().column("distance").to_numpy().reshape(rows, k)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine", "manhattan"])
def test_query_and_graph_equal_sklearn_brute_force(distance):
    X, Q = _data()
    model = nearest_neighbors.create(Frame({"v": X}), distance=distance, verbose=False)
    reference = NearestNeighbors(algorithm="brute", metric=SKLEARN_METRIC[distance]).fit(X)
    want_d, want_i = reference.kneighbors(Q, n_neighbors=7)
    got = model.query(Frame({"v": Q}), k=7)
    np.testing.assert_array_equal(_ids(got, len(Q), 7), want_i)
    np.testing.assert_allclose(_distances(got, len(Q), 7), want_d, rtol=1e-5, atol=1e-6)
    assert got.to_arrow().column("rank").to_pylist()[:7] == list(range(1, 8))

    graph_d, graph_i = reference.kneighbors(n_neighbors=4)  # no argument: a row is not its own neighbour
    graph = model.similarity_graph(k=4)
    np.testing.assert_array_equal(_ids(graph, len(X), 4), graph_i)
    np.testing.assert_allclose(_distances(graph, len(X), 4), graph_d, rtol=1e-5, atol=1e-6)


def test_dot_product_ranks_by_largest_inner_product():
    X, Q = _data(n=300, q=10)
    model = nearest_neighbors.create(Frame({"v": X}), distance="dot_product", verbose=False)
    got = model.query(Frame({"v": Q}), k=5)
    scores = Q.astype(np.float64) @ X.T.astype(np.float64)
    want = np.argsort(-scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(_ids(got, 10, 5), want)
    np.testing.assert_allclose(_distances(got, 10, 5), -np.take_along_axis(scores, want, axis=1), rtol=1e-9)


def test_radius_queries_equal_sklearn_radius_neighbors():
    X, Q = _data(n=500, q=20, d=8)
    model = nearest_neighbors.create(Frame({"v": X}), verbose=False)
    reference = NearestNeighbors(algorithm="brute").fit(X)
    _, want = reference.radius_neighbors(Q, radius=2.5)
    got = model.query(Frame({"v": Q}), k=None, radius=2.5).to_polars()
    for i, ids in enumerate(want):
        assert sorted(got.filter(got["query_label"] == i)["reference_label"].to_list()) == sorted(ids.tolist())
    capped = model.query(Frame({"v": Q}), k=2, radius=2.5).to_polars()
    assert capped.group_by("query_label").len()["len"].max() <= 2
    assert (capped["distance"] <= 2.5).all()


def test_shards_on_actors_give_the_in_process_answers(actor_shards):
    X, Q = _data(n=2000, q=30)
    labels = [f"img_{i:04d}.jpg" for i in range(len(X))]
    frame = Frame({"v": X, "name": labels}).repartition(5)
    model = nearest_neighbors.create(frame, label="name", verbose=False)
    assert model.training["num_shards"] == 2
    reference = NearestNeighbors(algorithm="brute").fit(X)
    _, want = reference.kneighbors(Q, n_neighbors=6)
    got = model.query(Frame({"v": Q}), k=6)
    np.testing.assert_array_equal(_ids(got, len(Q), 6), np.array(labels)[want])
    graph = model.similarity_graph(k=3).to_polars().sort("query_label", "rank")
    _, want_graph = reference.kneighbors(n_neighbors=3)
    assert graph["reference_label"].to_list() == np.array(labels)[want_graph].ravel().tolist()


def test_large_k_is_not_capped():
    X, Q = _data(n=3000, q=3, d=4)
    model = nearest_neighbors.create(Frame({"v": X}), verbose=False)
    got = model.query(Frame({"v": Q}), k=2500)
    _, want = NearestNeighbors(algorithm="brute").fit(X).kneighbors(Q, n_neighbors=2500)
    np.testing.assert_array_equal(_ids(got, 3, 2500), want)


def test_connected_components_equal_scipy_on_the_radius_graph(actor_shards):
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(3)
    X = rng.uniform(0, 10, size=(1500, 2)).astype(np.float32)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(4), verbose=False)
    groups = model.connected_components(radius=0.2).to_polars()
    assert groups["row_id"].to_list() == list(range(len(X)))
    graph = NearestNeighbors(algorithm="brute").fit(X).radius_neighbors_graph(radius=0.2)
    _, want = connected_components(graph, directed=False)
    # Same partition: each of our groups is exactly one of scipy's components.
    pairs = set(zip(groups["group_id"].to_list(), want.tolist()))
    assert len(pairs) == len(set(want.tolist())) == groups["group_id"].n_unique()
    # A group is named by its smallest row id, and group_size counts its rows.
    per_group = groups.group_by("group_id").agg(first=pl.col("row_id").min(), n=pl.len(),
                                                size=pl.col("group_size").first())
    assert (per_group["first"] == per_group["group_id"]).all()
    assert (per_group["n"] == per_group["size"]).all()


def test_connected_components_with_a_local_radius_follow_the_documented_rule(actor_shards):
    """Crowded places join only within min_radius, sparse ones up to radius: the same partition as scipy
    on the graph of pairs within max(min_radius, min(radius, LOCAL_RATIO * the pair's larger local scale))."""
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(5)
    crowded = rng.normal(0, 0.3, size=(300, 2))
    sparse = rng.uniform(5, 40, size=(300, 2))
    X = np.concatenate([crowded, sparse]).astype(np.float32)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(3), verbose=False)
    groups = model.connected_components(radius=2.0, min_radius=0.05).to_polars()
    D = np.sqrt(((X[:, None, :].astype(np.float64) - X[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(D, np.inf)
    scale = np.sort(D, axis=1)[:, nn_module.LOCAL_NEIGHBOR - 1]
    limit = np.maximum(0.05, np.minimum(2.0, nn_module.LOCAL_RATIO * np.maximum(scale[:, None], scale[None, :])))
    _, want = connected_components(D <= limit, directed=False)
    pairs = set(zip(groups["group_id"].to_list(), want.tolist()))
    assert len(pairs) == len(set(want.tolist())) == groups["group_id"].n_unique()
    # The rule differs from either fixed radius here, so the test sees the local radius at work.
    assert groups["group_id"].n_unique() not in (connected_components(D <= 0.05, directed=False)[0],
                                                 connected_components(D <= 2.0, directed=False)[0])


def test_ann_reports_recall_and_returns_exact_distances(actor_shards):
    X, Q = _data(n=3000, q=20, d=16)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(4), method="ann", seed=0, verbose=False)
    assert 0.8 <= model.training["recall"] <= 1.0
    got = model.query(Frame({"v": Q}), k=5)
    reference = NearestNeighbors(algorithm="brute").fit(X)
    want_d, want_i = reference.kneighbors(Q, n_neighbors=5)
    found = _ids(got, len(Q), 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, want_i)])
    assert recall >= 0.8
    exact = np.linalg.norm(X[found].astype(np.float64) - Q[:, None, :].astype(np.float64), axis=2)
    np.testing.assert_allclose(_distances(got, len(Q), 5), exact, rtol=1e-9)
    assert "recall" in repr(model)


def test_missing_features_keep_their_rows_and_are_counted_once():
    X, Q = _data(n=50, q=5, d=4)
    mask = np.zeros(len(X), dtype=bool)
    mask[[3, 7]] = True
    frame = Frame(pa.table({"v": vectors_from_numpy(X, mask=mask)}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = nearest_neighbors.create(frame, verbose=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, RowFailureWarning)]
    assert len(messages) == 1 and "2 of 50" in messages[0]
    assert model.num_rows == 50 and model.num_with_features == 48
    graph = model.similarity_graph(k=47).to_polars()
    assert not set(graph["reference_label"].to_list()) & {3, 7}
    assert not set(graph["query_label"].to_list()) & {3, 7}
    keep = np.flatnonzero(~mask)
    _, want = NearestNeighbors(algorithm="brute").fit(X[keep]).kneighbors(Q, n_neighbors=3)
    np.testing.assert_array_equal(_ids(model.query(Frame({"v": Q}), k=3), len(Q), 3), keep[want])


def test_bad_input_gets_a_message_that_says_what_to_do():
    X, _ = _data(n=20, q=1, d=4)
    model = nearest_neighbors.create(Frame({"v": X}), verbose=False)
    bad = X.copy()
    bad[4, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        nearest_neighbors.create(Frame({"v": bad}), verbose=False)
    with pytest.raises(InputError, match="NaN"):
        model.query(Frame({"v": bad}), k=1)
    ragged = Frame(pa.table({"v": pa.array([[1.0, 2.0], [1.0, 2.0, 3.0]], pa.list_(pa.float32()))}))
    with pytest.raises(InputError, match="different lengths"):
        nearest_neighbors.create(ragged, verbose=False)
    with pytest.raises(InputError, match="length 8 but the model was trained on vectors of length 4"):
        model.query(Frame({"v": np.ones((2, 8), dtype=np.float32)}), k=1)
    with pytest.raises(InputError, match="empty"):
        nearest_neighbors.create(Frame(pa.table({"v": vectors_from_numpy(np.zeros((0, 4), np.float32))})),
                                 verbose=False)
    with pytest.raises(InputError, match="distance must be"):
        nearest_neighbors.create(Frame({"v": X}), distance="hamming", verbose=False)
    with pytest.raises(ColumnNotFoundError):
        nearest_neighbors.create(Frame({"v": X}), label="name", verbose=False)
    with pytest.raises(InputError, match="strings"):
        nearest_neighbors.create(Frame({"v": X, "s": ["a"] * 20}), verbose=False)
    with pytest.raises(InputError, match="give k, radius or both"):
        model.query(Frame({"v": X}), k=None)


def test_features_of_another_model_are_refused():
    X, _ = _data(n=20, d=4)
    provenance = {"model": "mobilenet_v2", "weights_sha256": "aa", "layer": "pool", "preprocessing": {},
                  "dim": 4, "dtype": "float32"}

    def frame(p):
        field = pa.field("f", vectors_from_numpy(X).type, metadata={b"framelab.provenance": json.dumps(p)})
        return Frame(pa.table([vectors_from_numpy(X)], schema=pa.schema([field])))

    model = nearest_neighbors.create(frame(provenance), verbose=False)
    with pytest.raises(InputError, match="resnet50"):
        model.query(frame({**provenance, "model": "resnet50"}), k=1)


def test_save_and_load_give_the_same_answers(tmp_path, actor_shards):
    X, Q = _data(n=400, q=10, d=8)
    names = [f"r{i}" for i in range(len(X))]
    model = nearest_neighbors.create(Frame({"v": X, "name": names}).repartition(3), label="name",
                                     distance="cosine", verbose=False)
    model.save(str(tmp_path / "nn"))
    loaded = load_model(str(tmp_path / "nn"))
    assert loaded.label == "name" and loaded.distance == "cosine"
    want = model.query(Frame({"v": Q}), k=4).to_pydict()
    assert loaded.query(Frame({"v": Q}), k=4).to_pydict() == want
    assert "NearestNeighborsModel" in repr(loaded)


@pytest.mark.multinode
def test_two_nodes_give_the_one_node_answers_with_shards_on_both(two_node_cluster, monkeypatch):
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    X, Q = _data(n=1500, q=20, d=16)
    reference = NearestNeighbors(algorithm="brute").fit(X)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(6), verbose=False)
    assert model.training["num_nodes"] == 2
    _, want = reference.kneighbors(Q, n_neighbors=5)
    np.testing.assert_array_equal(_ids(model.query(Frame({"v": Q}), k=5), len(Q), 5), want)
    _, want_graph = reference.kneighbors(n_neighbors=3)
    graph = model.similarity_graph(k=3).to_polars().sort("query_label", "rank")
    np.testing.assert_array_equal(graph["reference_label"].to_numpy().reshape(-1, 3), want_graph)
    groups = model.connected_components(radius=3.0).to_polars()
    assert groups["row_id"].to_list() == list(range(len(X)))


@pytest.mark.parametrize("shards", ["in_process", "actors"])
def test_k_larger_than_the_rows_is_cut_to_them_with_a_warning_as_turi_does(shards, monkeypatch):
    if shards == "actors":
        monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
        monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    X, Q = _data(n=20, q=3, d=4)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(2), verbose=False)
    with pytest.warns(UserWarning, match="k=21 is larger than the 20 reference rows.*gets 20 neighbour"):
        got = model.query(Frame({"v": Q}), k=21)
    _, want = NearestNeighbors(algorithm="brute").fit(X).kneighbors(Q, n_neighbors=20)
    np.testing.assert_array_equal(_ids(got, len(Q), 20), want)
    with pytest.warns(UserWarning, match="k=20 is larger than the 19 other reference rows"):
        graph = model.similarity_graph(k=20)
    _, want = NearestNeighbors(algorithm="brute").fit(X).kneighbors(n_neighbors=19)
    np.testing.assert_array_equal(_ids(graph, len(X), 19), want)


def test_radius_queries_on_actor_shards_equal_sklearn(actor_shards):
    X, Q = _data(n=400, q=10, d=6)
    model = nearest_neighbors.create(Frame({"v": X}).repartition(3), verbose=False)
    _, want = NearestNeighbors(algorithm="brute").fit(X).radius_neighbors(Q, radius=2.0)
    got = model.query(Frame({"v": Q}), k=None, radius=2.0).to_polars()
    for i, ids in enumerate(want):
        assert sorted(got.filter(got["query_label"] == i)["reference_label"].to_list()) == sorted(ids.tolist())


def test_a_composite_distance_is_refused_with_the_weighted_squared_euclidean_instead():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(30, 2)), rng.normal(size=(30, 3))
    frame = Frame({"a": a.astype(np.float32), "b": b.astype(np.float32)})
    with pytest.raises(InputError, match="scale each column by sqrt.weight.*squared_euclidean"):
        nearest_neighbors.create(frame, distance=[[["a"], "euclidean", 1.0], [["b"], "cosine", 2.0]], verbose=False)
    # The way the message gives: 1 * |da|^2 + 4 * |db|^2, as a hand-computed reference.
    scaled = Frame({"a": a.astype(np.float32), "b": (2.0 * b).astype(np.float32)})
    model = nearest_neighbors.create(scaled, distance="squared_euclidean", verbose=False)
    got = model.query(scaled.head(3), k=4).to_polars()
    want = ((a[:3, None] - a[None]) ** 2).sum(-1) + 4 * ((b[:3, None] - b[None]) ** 2).sum(-1)
    order = np.argsort(want, axis=1, kind="stable")[:, :4]
    assert np.asarray(got["reference_label"].to_list()).reshape(3, 4).tolist() == order.tolist()
    np.testing.assert_allclose(got["distance"].to_numpy().reshape(3, 4), np.take_along_axis(want, order, 1),
                               rtol=1e-4, atol=1e-5)
