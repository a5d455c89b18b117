"""Thresholds, per-tag selection and one-vs-rest scores, each against a brute-force or scikit-learn reference."""

from __future__ import annotations

import numpy as np
import pytest

from framelab.toolkits.image_tagger.scoring import OneVsRest, Rollup, top_tags
from framelab.toolkits.image_tagger.training import DEFAULT_THRESHOLD, choose_thresholds


def _brute_force_threshold(s: np.ndarray, y: np.ndarray, target: float) -> float:
    """Try every held-out score as a cut: most recall at precision >= target, then most precision;
    the threshold is halfway to the next lower score."""
    best = None
    for t in np.unique(s):
        given = s >= t
        precision = (given & y).sum() / given.sum()
        recall = (given & y).sum() / y.sum()
        key = (precision >= target, recall if precision >= target else precision, precision, -t if precision < target else t)
        if best is None or key > best[0]:
            best = (key, t)
    lower = s[s < best[1]]
    return (best[1] + lower.max()) / 2 if len(lower) else best[1]


@pytest.mark.parametrize("seed", range(20))
def test_thresholds_match_a_brute_force_search(seed):
    rng = np.random.default_rng(seed)
    n, tags = 60, 4
    truth = rng.random((n, tags)) < 0.3
    scores = np.round(np.clip(truth * 0.3 + rng.random((n, tags)) * 0.8, 0, 1), 2)  # ties on purpose
    got = choose_thresholds(scores, truth, 0.9)
    for j in range(tags):
        assert got.threshold[j] == pytest.approx(_brute_force_threshold(scores[:, j], truth[:, j], 0.9))
        given = scores[:, j] >= got.threshold[j]
        assert got.precision[j] == pytest.approx((given & truth[:, j]).sum() / given.sum())
        assert got.recall[j] == pytest.approx((given & truth[:, j]).sum() / truth[:, j].sum())


def test_a_tag_without_held_out_examples_keeps_the_default_threshold():
    got = choose_thresholds(np.array([[0.2], [0.7]]), np.array([[0], [0]]), 0.9)
    assert got.threshold.tolist() == [DEFAULT_THRESHOLD] and not got.chosen[0] and np.isnan(got.precision[0])


def _python_top_tags(scores, names, k, thresholds, missing):
    out = []
    for i, row in enumerate(scores):
        if missing[i]:
            out.append(None)
            continue
        kept = [(-s, j) for j, s in enumerate(row) if s >= thresholds[j]]
        out.append([names[j] for _, j in sorted(kept)][:k])
    return out


@pytest.mark.parametrize("k", [1, 3, None])
def test_top_tags_are_the_best_above_threshold_in_vocabulary_order_on_ties(k):
    rng = np.random.default_rng(k or 0)
    scores = np.round(rng.random((50, 7)), 1).astype(np.float32)  # many exact ties
    thresholds = rng.random(7) * 0.5
    missing = rng.random(50) < 0.1
    names = list("abcdefg")
    got = top_tags(scores, names, k, thresholds, missing).to_pylist()
    want = _python_top_tags(scores, names, k or 7, thresholds, missing)
    assert [None if r is None else [t["tag"] for t in r] for r in got] == want


def test_rollup_and_one_vs_rest_scores_match_numpy_and_scikit_learn():
    from scipy.special import softmax
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    rollup = Rollup(indptr=np.array([0, 1, 3, 7]), indices=np.array([2, 0, 1, 0, 1, 2, 3]), num_classes=4)
    p = softmax(logits.astype(np.float64), axis=1)
    expected = np.stack([p[:, 2], p[:, 0] + p[:, 1], p.sum(axis=1)], axis=1)
    np.testing.assert_allclose(rollup.scores(logits), np.minimum(expected, 1.0), atol=1e-6)

    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] + rng.normal(scale=0.5, size=40) > 0).astype(int)
    scaler = StandardScaler().fit(X)
    lr = LogisticRegression().fit(scaler.transform(X), y)
    model = OneVsRest(scaler.mean_, scaler.scale_, lr.coef_.T, lr.intercept_)
    np.testing.assert_allclose(model.scores(X)[:, 0], lr.predict_proba(scaler.transform(X))[:, 1], atol=1e-6)
    assert model.scores(X).dtype == np.float32
