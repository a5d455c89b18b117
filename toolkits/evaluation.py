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

METRICS = ("accuracy", "precision", "recall", "f1_score", "macro_precision", "macro_recall", "macro_f1_score",
           "log_loss", "auc", "roc_curve", "confusion_matrix")


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
    """Accuracy, precision/recall/F1, log loss, ROC AUC and curve, and the confusion matrix.

    ``y_true`` holds class indices into ``classes``; ``proba`` is ``(rows, classes)``.
    ``precision``, ``recall`` and ``f1_score`` are those of the positive class
    (``classes[1]``) with two classes, as Turi Create and scikit-learn's
    ``average="binary"`` give them, and the macro averages with more;
    ``macro_precision``, ``macro_recall`` and ``macro_f1_score`` are always the
    macro averages over the classes that occur as truth or prediction (as
    scikit-learn's ``average="macro"``; a class never predicted scores 0
    precision). AUC is one-vs-rest, averaged over the classes with both
    positives and negatives (plain AUC for two classes). ``roc_curve`` is a
    Frame (:func:`roc_curve_frame`).

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
        elif name in ("precision", "recall", "f1_score"):
            per_class = {"precision": precision, "recall": recall, "f1_score": f1}[name]
            out[name] = float(per_class[1] if k == 2 else per_class[present].mean())
        elif name.startswith("macro_"):
            per_class = {"precision": precision, "recall": recall, "f1_score": f1}[name[len("macro_"):]]
            out[name] = float(per_class[present].mean())
        elif name == "roc_curve":
            out[name] = roc_curve_frame(y_true, proba, classes)
        elif name == "log_loss":
            p = np.clip(proba[np.arange(len(y_true)), y_true], 1e-15, 1.0)
            out[name] = float(-np.log(p).mean())
        elif name == "auc":
            out[name] = _auc(y_true, proba)
        elif name == "confusion_matrix":
            out[name] = _confusion_frame(counts, classes)
    return out


def roc_curve_frame(y_true: np.ndarray, proba: np.ndarray, classes: Sequence[Any]):
    """The ROC curve as a Frame of ``class``, ``threshold``, ``fpr``, ``tpr``, ``p``, ``n``, one row per threshold.

    With two classes, the curve of the positive class (``classes[1]``);
    with more, one curve per class against the rest. Thresholds are the
    distinct scores, highest first, after an infinite one (no row predicted
    positive), as scikit-learn's ``roc_curve(drop_intermediate=False)``;
    ``p`` and ``n`` count the positive and negative rows.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.evaluation import roc_curve_frame
        >>> proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
        >>> roc_curve_frame(np.array([0, 1, 1]), proba, ["cat", "dog"]).select("threshold", "fpr", "tpr").to_pydict()
        {'threshold': [inf, 0.8, 0.4, 0.1], 'fpr': [0.0, 0.0, 0.0, 1.0], 'tpr': [0.0, 0.5, 1.0, 1.0]}
    """
    from framelab.frames import Frame

    parts = []
    for c in ([1] if len(classes) == 2 else range(len(classes))):
        score = proba[:, c]
        positive = y_true == c
        order = np.argsort(-score, kind="stable")
        score, positive = score[order], positive[order]
        last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # the last row of each distinct score
        tp = np.r_[0, np.cumsum(positive)[last]]
        fp = np.r_[0, np.cumsum(~positive)[last]]
        p, n = int(positive.sum()), int((~positive).sum())
        parts.append(pa.table({
            "class": pa.array([classes[c]] * len(tp)),
            "threshold": pa.array(np.r_[np.inf, score[last]], pa.float64()),
            "fpr": pa.array(fp / n if n else np.zeros(len(fp)), pa.float64()),
            "tpr": pa.array(tp / p if p else np.zeros(len(tp)), pa.float64()),
            "p": pa.array([p] * len(tp), pa.int64()),
            "n": pa.array([n] * len(tp), pa.int64()),
        }))
    return Frame.from_arrow(pa.concat_tables(parts))


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
