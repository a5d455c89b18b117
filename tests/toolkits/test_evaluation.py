"""Multi-label metrics against scikit-learn's on the same scores."""

from __future__ import annotations

import numpy as np
import pytest

from framelab.frames import InputError
from framelab.toolkits.evaluation import average_precision, multilabel_metrics


@pytest.mark.parametrize("seed", range(5))
def test_multilabel_metrics_equal_scikit_learns(seed):
    from sklearn.metrics import average_precision_score, precision_score, recall_score

    rng = np.random.default_rng(seed)
    truth = rng.random((80, 6)) < 0.3
    truth[:, 5] = False  # a tag absent from the frame is not scored
    scores = np.round(np.clip(truth * 0.4 + rng.random((80, 6)) * 0.7, 0, 1), 2)
    thresholds = rng.random(6)
    got = multilabel_metrics(truth, scores, thresholds, list("abcdef"))
    given = scores >= thresholds
    present = list(range(5))
    assert got["per_tag"]["tag"].to_pylist() == list("abcde")
    assert got["average_precision"] == pytest.approx(
        average_precision_score(truth[:, present], scores[:, present], average="macro"))
    assert got["precision"] == pytest.approx(
        precision_score(truth[:, present], given[:, present], average="macro", zero_division=0))
    assert got["recall"] == pytest.approx(recall_score(truth[:, present], given[:, present], average="macro"))
    assert got["per_tag"]["support"].to_pylist() == truth[:, present].sum(axis=0).tolist()


def test_average_precision_of_a_tag_without_positives_is_undefined_and_empty_input_is_refused():
    assert np.isnan(average_precision(np.array([0, 0]), np.array([0.1, 0.2])))
    with pytest.raises(InputError, match="empty"):
        multilabel_metrics(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(2), ["a", "b"])
    with pytest.raises(InputError, match="no row has any"):
        multilabel_metrics(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(2), ["a", "b"])
