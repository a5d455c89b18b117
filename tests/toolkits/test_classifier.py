"""framelab.toolkits.classifier: accuracy against scikit-learn, outputs, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from framelab.frames import ColumnNotFoundError, Frame, InputError, vectors_from_numpy
from framelab.toolkits import classifier

PER_CLASS = 15  # 20 classes x 15 = 300 Caltech images
TRAIN_PER_CLASS = 9


@pytest.fixture(scope="session")
def caltech_features(caltech, bundled_weights):
    """MobileNetV2 (ImageNet weights) pooled features of 300 Caltech images, split 9/6 per class.

    Computed once per test session with plain torch, independently of
    framelab's own deep-features toolkit, so this test checks only the classifier.
    """
    import torch
    import torchvision
    from PIL import Image

    root = caltech
    weights = bundled_weights
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    torch.set_num_threads(2)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    paths, labels = [], []
    for c in classes:
        for p in sorted((root / c).glob("*.jpg"))[:PER_CLASS]:
            paths.append(p)
            labels.append(c)
    norm = 128.0 / 255.0
    feats = []
    with torch.inference_mode():
        for i in range(0, len(paths), 50):
            batch = []
            for p in paths[i:i + 50]:
                img = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
                arr = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
                batch.append((arr - norm) / norm)
            x = model.features(torch.stack(batch))
            feats.append(torch.nn.functional.adaptive_avg_pool2d(x, 1).flatten(1).numpy())
    X = np.concatenate(feats).astype(np.float32)
    y = np.array(labels)
    position = np.concatenate([np.arange(PER_CLASS)] * len(classes))
    train = position < TRAIN_PER_CLASS
    return X[train], y[train], X[~train], y[~train]


def _frame(X: np.ndarray, y, provenance: dict | None = None) -> Frame:
    field = pa.field("features", vectors_from_numpy(X).type,
                     metadata={b"framelab.provenance": json.dumps(provenance)} if provenance else None)
    return Frame(pa.table([vectors_from_numpy(X), pa.array(list(y))],
                          schema=pa.schema([field, pa.field("label", pa.string())])))


def _blobs(n=400, d=8, k=3, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 2
    y = rng.integers(0, k, n)
    X = (centers[y] + rng.normal(scale=scale, size=(n, d))).astype(np.float32)
    return X, np.array([f"c{i}" for i in y])


def _sklearn(X, y, l2_penalty):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    # framelab's l2_penalty * ||W||^2 on summed loss == sklearn's C = 1 / (2 * l2_penalty).
    return make_pipeline(StandardScaler(), LogisticRegression(C=1 / (2 * l2_penalty), max_iter=2000)).fit(X, y)


def test_accuracy_on_caltech_deep_features_is_within_one_point_of_sklearn(caltech_features):
    X_train, y_train, X_test, y_test = caltech_features
    model = classifier.create(_frame(X_train, y_train), "label", l2_penalty=1.0,
                              max_iterations=500, validation_set=None, verbose=False)
    ours = model.evaluate(_frame(X_test, y_test))["accuracy"]
    theirs = _sklearn(X_train, y_train, 1.0).score(X_test, y_test)
    print(f"Caltech test accuracy: framelab {ours:.4f}, scikit-learn {theirs:.4f}")
    assert ours > 0.8  # deep features of 20 distinct classes separate well
    assert abs(ours - theirs) <= 0.01, (ours, theirs)


def test_binary_model_with_categorical_and_numeric_columns_matches_sklearn():
    rng = np.random.default_rng(1)
    n = 300
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.normal(size=n)
    logit = 1.5 * size + np.where(color == "red", 2.0, np.where(color == "blue", -1.0, 0.0))
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    frame = Frame({"color": color.tolist(), "size": size.tolist(), "label": y.tolist()})
    model = classifier.create(frame, "label", l2_penalty=0.5, validation_set=None, verbose=False)
    onehot = np.stack([color == c for c in ("blue", "green", "red")], axis=1).astype(float)
    sk = _sklearn(np.column_stack([size, onehot]), y, 0.5)
    ours = model.predict(frame, output_type="probability").to_numpy()
    np.testing.assert_allclose(ours, sk.predict_proba(np.column_stack([size, onehot]))[:, 1], atol=2e-3)
    coef = model.coefficients.to_pydict()
    assert ("color", "red") in set(zip(coef["name"], coef["index"]))
    assert set(coef["class"]) == {"yes"}  # two classes: the second is scored against the first


def test_predict_classify_and_topk_agree():
    X, y = _blobs()
    frame = _frame(X, y)
    model = classifier.create(frame, "label", verbose=False, seed=0)
    classes = model.predict(frame).to_pylist()
    proba = np.array(model.predict(frame, output_type="probability_vector").to_pylist())
    assert proba.shape == (len(y), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert classes == [model.classes[i] for i in proba.argmax(axis=1)]
    top = model.predict_topk(frame, k=2).to_pydict()
    assert top["id"][:4] == [0, 0, 1, 1]
    assert top["class"][0::2] == classes
    assert all(a >= b for a, b in zip(top["probability"][0::2], top["probability"][1::2]))
    assert model.classify(frame).to_pydict()["class"] == classes
    with pytest.raises(InputError, match="probability_vector"):
        model.predict(frame, output_type="probability")


def test_evaluate_matches_sklearn_metrics():
    from sklearn import metrics

    X, y = _blobs(scale=3.0)
    frame = _frame(X, y)
    model = classifier.create(frame, "label", verbose=False, seed=0)
    result = model.evaluate(frame)
    proba = np.array(model.predict(frame, output_type="probability_vector").to_pylist())
    pred = np.array(model.classes)[proba.argmax(axis=1)]
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(y, pred))
    assert result["precision"] == pytest.approx(metrics.precision_score(y, pred, average="macro"))
    assert result["recall"] == pytest.approx(metrics.recall_score(y, pred, average="macro"))
    assert result["f1_score"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    assert result["log_loss"] == pytest.approx(metrics.log_loss(y, proba, labels=model.classes))
    assert result["auc"] == pytest.approx(
        metrics.roc_auc_score(y, proba, multi_class="ovr", labels=model.classes))
    cm = result["confusion_matrix"].to_pydict()
    assert sum(cm["count"]) == len(y)
    assert set(cm) == {"target_label", "predicted_label", "count"}
    assert model.evaluate(frame, metric="accuracy") == {"accuracy": result["accuracy"]}


def test_validation_auto_holds_out_a_fifth_of_the_rows_and_none_disables_it():
    X, y = _blobs(n=245)  # the corpus where the old 5% rule left 10 rows
    frame = _frame(X, y)
    auto = classifier.create(frame, "label", seed=3, verbose=False).training
    assert auto["num_validation_examples"] == 49 >= 0.2 * 245  # exactly the rule's count, whatever the seed
    assert auto["num_examples"] + auto["num_validation_examples"] == 245
    assert auto["validation_accuracy"] is not None
    off = classifier.create(frame, "label", validation_set=None, verbose=False).training
    assert off["num_validation_examples"] == 0 and off["validation_accuracy"] is None
    given = classifier.create(frame, "label", validation_set=_frame(*_blobs(n=50, seed=0)),
                              verbose=False).training
    assert given["num_validation_examples"] == 50


def test_class_weights_auto_favours_the_rare_class():
    X, y = _blobs(n=600, k=2, scale=3.0)
    keep = (y == "c0") | (np.arange(len(y)) % 6 == 0)
    frame = _frame(X[keep], y[keep])
    plain = classifier.create(frame, "label", validation_set=None, verbose=False)
    balanced = classifier.create(frame, "label", class_weights="auto", validation_set=None, verbose=False)
    rare = "c1" if (y[keep] == "c1").sum() < (y[keep] == "c0").sum() else "c0"
    count = {m: m.predict(frame).to_pylist().count(rare) for m in (plain, balanced)}
    assert count[balanced] > count[plain]


def test_provenance_of_features_is_checked_at_prediction():
    X, y = _blobs()
    prov = {"model": "mobilenet_v2", "layer": "pool", "dim": 8}
    model = classifier.create(_frame(X, y, prov), "label", verbose=False)
    model.predict(_frame(X, y, prov))
    with pytest.raises(InputError, match="another kind"):
        model.predict(_frame(X, y, {**prov, "model": "resnet50"}))


@pytest.mark.parametrize(
    ("data", "target", "error", "message"),
    [
        ({"x": [1.0, 2.0], "y": ["a", "b"]}, "nope", ColumnNotFoundError, "nope"),
        ({"x": [1.0, 2.0, 3.0], "y": ["a", "a", "a"]}, "y", InputError, "only one class"),
        ({"x": [1.0, float("nan"), 3.0], "y": ["a", "b", "a"]}, "y", InputError, "NaN or infinite"),
        ({"x": [1.0, float("inf"), 3.0], "y": ["a", "b", "a"]}, "y", InputError, "NaN or infinite"),
        ({"x": [[1.0, 2.0], [1.0], [3.0, 4.0]], "y": ["a", "b", "a"]}, "y", InputError, "different lengths"),
        ({"x": [1.0, 2.0], "y": [0.5, 1.5]}, "y", InputError, "regression"),
        ({"x": [1.0, None, 2.0], "y": ["a", "b", "a"]}, "y", InputError, "missing value"),
    ],
)
def test_bad_training_input_gets_a_clear_error(data, target, error, message):
    with pytest.raises(error, match=message):
        classifier.create(Frame(data), target, verbose=False)


def test_empty_frame_and_bad_options_are_refused():
    empty = Frame(pa.table({"x": pa.array([], pa.float64()), "y": pa.array([], pa.string())}))
    with pytest.raises(InputError, match="empty"):
        classifier.create(empty, "y", verbose=False)
    frame = Frame({"x": [1.0, 2.0], "y": ["a", "b"]})
    with pytest.raises(InputError, match="l2_penalty"):
        classifier.create(frame, "y", l2_penalty=-1, verbose=False)
    with pytest.raises(InputError, match="Frame"):
        classifier.create({"x": [1.0]}, "y", verbose=False)
    with pytest.raises(InputError, match="class_weights"):
        classifier.create(frame, "y", class_weights={"a": 1.0}, verbose=False)


def test_unseen_class_at_evaluation_is_refused():
    X, y = _blobs()
    model = classifier.create(_frame(X, y), "label", verbose=False)
    y2 = y.copy()
    y2[:3] = "zebra"
    with pytest.raises(InputError, match="never saw"):
        model.evaluate(_frame(X, y2))


def test_summary_and_repr_describe_the_training(capsys):
    X, y = _blobs()
    model = classifier.create(_frame(X, y), "label", verbose=True)
    printed = capsys.readouterr().out
    assert "Iteration" in printed and "Validation Accuracy" in printed
    model.summary()
    text = capsys.readouterr().out
    assert "Number of classes" in text and "3" in text
    assert repr(model) == text.strip()


@pytest.mark.multinode
def test_two_node_training_matches_one_node_accuracy(caltech_features, two_node_cluster, monkeypatch):
    import framelab.platform.sharded as sharded

    X_train, y_train, X_test, y_test = caltech_features
    test = _frame(X_test, y_test)
    # The Caltech features are ~1 MB; still cut them into one shard per node.
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1)
    monkeypatch.setattr(sharded, "IN_PROCESS_MAX_BYTES", 0)
    two = classifier.create(_frame(X_train, y_train).repartition(4), "label", l2_penalty=1.0,
                            max_iterations=500, validation_set=None, verbose=False)
    assert two.training["num_shards"] == 2 and two.training["num_nodes"] == 2
    # Same cluster, one shard on one node.
    monkeypatch.setattr(sharded, "MIN_SHARD_BYTES", 1 << 40)
    one = classifier.create(_frame(X_train, y_train), "label", l2_penalty=1.0,
                            max_iterations=500, validation_set=None, verbose=False)
    assert one.training["num_shards"] == 1 and one.training["num_nodes"] == 1
    two_acc, one_acc = two.evaluate(test)["accuracy"], one.evaluate(test)["accuracy"]
    assert abs(two_acc - one_acc) <= 0.005, (two_acc, one_acc)


def _binary_data(n=400, seed=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) * [1.0, 3.0] + [0.5, -2.0]
    logit = 0.8 * X[:, 0] - 0.4 * X[:, 1] - 1.0
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "pos", "neg")
    return X, y


def test_margins_are_sklearns_decision_function_and_give_the_probabilities():
    X, y = _binary_data()
    frame = Frame({"a": X[:, 0].tolist(), "b": X[:, 1].tolist(), "label": y.tolist()})
    model = classifier.create(frame, "label", l2_penalty=0.5, validation_set=None, verbose=False)
    margin = model.predict(frame, output_type="margin").to_numpy()
    np.testing.assert_allclose(margin, _sklearn(X, y, 0.5).decision_function(X), atol=2e-3)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), model.predict(frame, output_type="probability").to_numpy())
    Xm, ym = _blobs(n=150)
    multi = classifier.create(_frame(Xm, ym), "label", validation_set=None, verbose=False)
    margins = np.array(multi.predict(_frame(Xm, ym), output_type="margin").to_pylist())
    softmax = np.exp(margins - margins.max(axis=1, keepdims=True))
    proba = np.array(multi.predict(_frame(Xm, ym), output_type="probability_vector").to_pylist())
    np.testing.assert_allclose(softmax / softmax.sum(axis=1, keepdims=True), proba, rtol=1e-5, atol=1e-7)


def test_coefficient_standard_errors_are_the_inverse_fisher_information_of_the_fit():
    from sklearn.linear_model import LogisticRegression

    X, y = _binary_data()
    frame = Frame({"a": X[:, 0].tolist(), "b": X[:, 1].tolist(), "label": y.tolist()})
    model = classifier.create(frame, "label", l2_penalty=0.0, validation_set=None, verbose=False,
                              max_iterations=200)
    # The reference: an unpenalised fit by scikit-learn, and the textbook (X^T diag(p(1-p)) X)^-1 in raw units.
    sk = LogisticRegression(penalty=None, tol=1e-10, max_iter=10000).fit(X, y == "pos")
    Xa = np.column_stack([X, np.ones(len(X))])
    p = sk.predict_proba(X)[:, 1]
    stderr = np.sqrt(np.diag(np.linalg.inv((Xa * (p * (1 - p))[:, None]).T @ Xa)))
    coef = model.coefficients.to_pydict()
    assert coef["name"] == ["(intercept)", "a", "b"]
    np.testing.assert_allclose(coef["value"], [sk.intercept_[0], *sk.coef_[0]], rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(coef["stderr"], [stderr[2], stderr[0], stderr[1]], rtol=5e-3)
    Xm, ym = _blobs(n=150)
    multi = classifier.create(_frame(Xm, ym), "label", validation_set=None, verbose=False)
    assert set(multi.coefficients.to_pydict()["stderr"]) == {None}  # defined for two classes only


def test_binary_evaluation_scores_the_positive_class_and_gives_the_roc_curve_as_sklearn():
    from sklearn import metrics

    X, y = _binary_data(seed=4)
    frame = Frame({"a": X[:, 0].tolist(), "b": X[:, 1].tolist(), "label": y.tolist()})
    model = classifier.create(frame, "label", validation_set=None, verbose=False)
    result = model.evaluate(frame)
    pred = np.array(model.predict(frame).to_pylist())
    assert model.classes == ["neg", "pos"]
    assert result["precision"] == pytest.approx(metrics.precision_score(y, pred, pos_label="pos"))
    assert result["recall"] == pytest.approx(metrics.recall_score(y, pred, pos_label="pos"))
    assert result["f1_score"] == pytest.approx(metrics.f1_score(y, pred, pos_label="pos"))
    assert result["macro_precision"] == pytest.approx(metrics.precision_score(y, pred, average="macro"))
    assert result["macro_f1_score"] == pytest.approx(metrics.f1_score(y, pred, average="macro"))
    score = model.predict(frame, output_type="probability").to_numpy()
    fpr, tpr, thresholds = metrics.roc_curve(y == "pos", score, drop_intermediate=False)
    roc = result["roc_curve"].to_pydict()
    assert set(roc["class"]) == {"pos"}
    np.testing.assert_allclose(roc["fpr"], fpr)
    np.testing.assert_allclose(roc["tpr"], tpr)
    np.testing.assert_allclose(roc["threshold"][1:], thresholds[1:])
    assert roc["p"][0] == int((y == "pos").sum()) and roc["n"][0] == int((y == "neg").sum())


def test_multiclass_roc_curve_is_one_vs_rest_per_class():
    from sklearn import metrics

    X, y = _blobs(n=200, scale=4.0)
    model = classifier.create(_frame(X, y), "label", validation_set=None, verbose=False)
    roc = model.evaluate(_frame(X, y), metric="roc_curve")["roc_curve"].to_polars()
    proba = np.array(model.predict(_frame(X, y), output_type="probability_vector").to_pylist())
    for j, cls in enumerate(model.classes):
        fpr, tpr, _ = metrics.roc_curve(np.asarray(y) == cls, proba[:, j], drop_intermediate=False)
        mine = roc.filter(roc["class"] == cls)
        np.testing.assert_allclose(mine["fpr"].to_numpy(), fpr)
        np.testing.assert_allclose(mine["tpr"].to_numpy(), tpr)


def test_missing_values_at_prediction_are_refused_with_the_fix():
    X, y = _binary_data(n=60)
    model = classifier.create(Frame({"a": X[:, 0].tolist(), "label": y.tolist()}), "label",
                              validation_set=None, verbose=False)
    with pytest.raises(InputError, match=r"column 'a' has 1 missing value.*frame.fillna"):
        model.predict(Frame({"a": [None, 1.0]}))
