"""framelab.toolkits.scoring: every classifier's answers come from its scorer's probabilities, against scikit-learn."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, log_loss

from framelab.frames import Frame
from framelab.platform.failures import RowFailureWarning
from framelab.toolkits.scoring import Classifier, NullRows

P = [0.1, 0.8, 0.4, 0.9, 0.7]
LABELS = ["a", "b", "b", "b", "a"]


class ColumnScores(Classifier):
    """A classifier whose P(classes[1]) is the column ``p``: answers known without any training."""

    target = "y"
    classes = ["a", "b"]

    def _feature_columns(self, schema: pa.Schema) -> list[str]:
        return ["p"]

    def _probabilities(self, table: pa.Table) -> np.ndarray:
        p = table.column("p").to_numpy()
        return np.stack([1 - p, p], axis=1)


class Wrapping(Classifier):
    """A model that wraps ColumnScores and answers null for a row whose ``p`` is null."""

    target = "y"
    classes = ["a", "b"]

    def _scorer(self) -> Classifier:
        return ColumnScores()

    def _nulls(self, stage: str, action: str = "predicted null") -> NullRows:
        return NullRows("p", f"wrapping: {stage}", "no score", action=action)


def test_the_answers_are_those_of_the_scorers_probabilities_as_sklearn_reads_them():
    model, frame = ColumnScores(), Frame({"p": P, "y": LABELS})
    proba = np.stack([1 - np.array(P), np.array(P)], axis=1)
    expected = [model.classes[i] for i in proba.argmax(axis=1)]
    assert model.predict(frame).to_pylist() == expected
    assert model.predict(frame, output_type="probability").to_pylist() == P
    assert np.allclose(model.predict(frame, output_type="probability_vector").to_pylist(), proba)
    assert model.classify(frame).to_pydict() == {"class": expected, "probability": proba.max(axis=1).tolist()}
    top = model.predict_topk(frame, k=1).to_pydict()
    assert top["class"] == expected and top["id"] == list(range(len(P)))
    metrics = model.evaluate(frame)
    y = [model.classes.index(v) for v in LABELS]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(LABELS, expected))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, proba))


def test_a_wrapping_model_answers_null_for_rows_its_scorer_cannot_read_and_counts_them_once():
    frame = Frame({"p": [0.9, None, 0.2], "y": ["b", "a", "a"]})
    model = Wrapping()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert model.predict(frame).to_pylist() == ["b", None, "a"]
    assert [str(w.message).count("1 of 3") for w in caught if issubclass(w.category, RowFailureWarning)] == [1]
    with pytest.warns(RowFailureWarning, match="predict_topk: 1 of 3"):
        top = model.predict_topk(frame, k=2).to_pydict()
    assert top["id"] == [0, 0, 1, 1, 2, 2] and top["class"][2:4] == [None, None]
    with pytest.warns(RowFailureWarning, match="left out of the scores"):
        assert model.evaluate(frame)["accuracy"] == 1.0
