"""Classification metrics: numbers for a dict, and a confusion matrix as a Frame.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.evaluation import classification_metrics
    >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> m = classification_metrics(np.array([0, 1, 1]), proba, ["cat", "dog"])
    >>> round(m["accuracy"], 3), m["confusion_matrix"].num_rows()
    (0.667, 3)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import InputError

METRICS = ("accuracy", "precision", "recall", "f1_score", "log_loss", "auc", "confusion_matrix")


def check_metric(metric: str) -> list[str]:
    """The metric names that ``metric`` asks for ("auto": all), or a clear error."""
    if metric == "auto":
        return list(METRICS)
    if metric not in METRICS:
        raise InputError(f"metric must be 'auto' or one of {', '.join(METRICS)}; got {metric!r}")
    return [metric]


def classification_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: Sequence[Any],
    metrics: Sequence[str] = METRICS,
) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, log loss, ROC AUC and the confusion matrix.

    ``y_true`` holds class indices into ``classes``; ``proba`` is ``(rows, classes)``.
    Precision, recall and F1 average over the classes that occur as truth or
    prediction (as scikit-learn's ``average="macro"``); a class never
    predicted scores 0 precision. AUC is one-vs-rest, averaged over the
    classes with both positives and negatives (plain AUC for two classes).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.evaluation import classification_metrics
        >>> classification_metrics(np.array([0, 1]), np.eye(2), ["a", "b"], ["accuracy"])
        {'accuracy': 1.0}
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    k = len(classes)
    if len(y_true) == 0:
        raise InputError("cannot evaluate on an empty frame; pass rows with known labels")
    y_pred = proba.argmax(axis=1)
    counts = np.bincount(y_true * k + y_pred, minlength=k * k).reshape(k, k)
    out: dict[str, Any] = {}
    tp = np.diag(counts).astype(np.float64)
    predicted = counts.sum(axis=0)
    actual = counts.sum(axis=1)
    present = (predicted + actual) > 0
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(k), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(k),
                   where=(precision + recall) > 0)
    for name in metrics:
        if name == "accuracy":
            out[name] = float(tp.sum() / len(y_true))
        elif name == "precision":
            out[name] = float(precision[present].mean())
        elif name == "recall":
            out[name] = float(recall[present].mean())
        elif name == "f1_score":
            out[name] = float(f1[present].mean())
        elif name == "log_loss":
            p = np.clip(proba[np.arange(len(y_true)), y_true], 1e-15, 1.0)
            out[name] = float(-np.log(p).mean())
        elif name == "auc":
            out[name] = _auc(y_true, proba)
        elif name == "confusion_matrix":
            out[name] = _confusion_frame(counts, classes)
    return out


def _auc(y_true: np.ndarray, proba: np.ndarray) -> float:
    if proba.shape[1] == 2:
        return _binary_auc(y_true == 1, proba[:, 1])
    scores = [
        _binary_auc(y_true == c, proba[:, c])
        for c in range(proba.shape[1])
        if 0 < (y_true == c).sum() < len(y_true)
    ]
    return float(np.mean(scores)) if scores else float("nan")


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney U / (n+ n-), with ties counted half (the trapezoid ROC area)."""
    from scipy.stats import rankdata

    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _confusion_frame(counts: np.ndarray, classes: Sequence[Any]):
    from framelab.frames import Frame

    true_idx, pred_idx = np.nonzero(counts)
    labels = pa.array(list(classes))
    return Frame.from_arrow(pa.table({
        "target_label": labels.take(pa.array(true_idx)),
        "predicted_label": labels.take(pa.array(pred_idx)),
        "count": pa.array(counts[true_idx, pred_idx], pa.int64()),
    }))


def multilabel_metrics(
    truth: np.ndarray,
    scores: np.ndarray,
    thresholds: np.ndarray,
    tags: Sequence[str],
) -> dict[str, Any]:
    """Per-tag precision, recall and average precision, and their macro means.

    ``truth`` is a ``(rows, tags)`` 0/1 matrix, ``scores`` the model's scores,
    and a row counts as tagged when its score is at least the tag's threshold.
    Only tags that occur in ``truth`` are scored (a tag without positives has
    no recall or average precision); a tag never given scores 0 precision.
    Average precision is scikit-learn's: the mean of the precisions at each
    positive's rank, with tied scores cut together.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.evaluation import multilabel_metrics
        >>> truth = np.array([[1, 0], [0, 1], [1, 1]])
        >>> scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.3]])
        >>> m = multilabel_metrics(truth, scores, np.array([0.5, 0.5]), ["cat", "dog"])
        >>> round(m["precision"], 3), round(m["recall"], 3), round(m["average_precision"], 3)
        (1.0, 0.75, 1.0)
        >>> m["per_tag"].to_pydict()["recall"]
        [1.0, 0.5]
    """
    from framelab.frames import Frame

    truth = np.asarray(truth) > 0
    scores = np.asarray(scores, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    if truth.shape[0] == 0:
        raise InputError("cannot evaluate on an empty frame; pass images with known tags")
    support = truth.sum(axis=0)
    present = np.flatnonzero(support > 0)
    if not len(present):
        raise InputError("no row has any of the model's tags; evaluate on images tagged with its vocabulary")
    given = scores >= thresholds
    tp = (given & truth).sum(axis=0)
    predicted = given.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros(len(tp)), where=predicted > 0)
    recall = tp / np.maximum(support, 1)
    ap = np.array([average_precision(truth[:, j], scores[:, j]) for j in present])
    per_tag = Frame.from_arrow(pa.table({
        "tag": pa.array([tags[j] for j in present], pa.string()),
        "support": pa.array(support[present], pa.int64()),
        "predicted": pa.array(predicted[present], pa.int64()),
        "precision": pa.array(precision[present]),
        "recall": pa.array(recall[present]),
        "average_precision": pa.array(ap),
        "threshold": pa.array(thresholds[present]),
    }))
    return {
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "average_precision": float(ap.mean()),
        "per_tag": per_tag,
    }


def average_precision(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the precision-recall steps: sum over cuts of (recall gained) x (precision there).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.evaluation import average_precision
        >>> average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1]))
        0.8333333333333333
    """
    positive = np.asarray(positive) > 0
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-np.asarray(score, dtype=np.float64), kind="stable")
    s, y = np.asarray(score, dtype=np.float64)[order], positive[order]
    cuts = np.flatnonzero(np.r_[s[1:] != s[:-1], True])  # the last row of each run of equal scores
    tp = np.cumsum(y)[cuts]
    precision = tp / (cuts + 1)
    gained = np.diff(np.r_[0, tp]) / n_pos
    return float((gained * precision).sum())
