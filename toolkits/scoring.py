"""One scoring path for classifiers: ``predict``, ``predict_topk``, ``classify`` and ``evaluate``, written once.

A :class:`Classifier` (Turi Create's ``Classifier``, scikit-learn's
``ClassifierMixin``) has a ``target`` and its ``classes``; the model that
scores its rows (itself, or the classifier a wrapping model keeps: the
logistic head of an image classifier) says which columns it reads and gives
class probabilities for a batch of them. Everything a user sees of a
classifier's answers is derived here from those probabilities: the same
output types, the same errors, and the same handling of rows a wrapping model
cannot score (:class:`NullRows`).

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> from framelab.toolkits.scoring import Classifier
    >>> train = Frame({"x": [0.0, 0.1, 0.9, 1.0] * 5, "label": ["lo", "lo", "hi", "hi"] * 5})
    >>> model = classifier.create(train, "label", verbose=False)
    >>> isinstance(model, Classifier), model.classify(Frame({"x": [0.95]})).to_pydict()["class"]
    (True, ['hi'])
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import ColumnNotFoundError, InputError
from framelab.frames.validation import check_positive_int
from framelab.frames.vectors import vectors_from_numpy, vectors_to_numpy
from framelab.platform import failures
from framelab.toolkits.evaluation import check_metric, classification_metrics
from framelab.toolkits.features import check_frame, target_values
from framelab.toolkits.model import Model, Section

if TYPE_CHECKING:
    from framelab.frames import Frame

OUTPUT_TYPES = ("class", "probability", "probability_vector", "margin")


@dataclass(frozen=True)
class NullRows:
    """How a model that wraps a classifier predicts rows it cannot score: a null, counted once per job.

    Rows whose ``column`` is null (deep features of an image that could not be
    decoded) get a null prediction instead of an error, and
    :func:`framelab.platform.failures.report` counts them under ``stage``, with
    a few examples named by ``key`` when the frame has that column.

    Example:
        >>> from framelab.toolkits.scoring import NullRows
        >>> NullRows("deep_features", "image classifier: predict", "its image could not be decoded").action
        'predicted null'
    """

    column: str
    stage: str
    why: str
    key: str = "path"
    action: str = "predicted null"


class Classifier(Model):
    """A model that tells ``classes`` apart: its answers, from the class probabilities of its scorer.

    A subclass gives ``target`` and ``classes``, and either scores rows itself
    (:meth:`_feature_columns`, :meth:`_probabilities`, :meth:`_margins`) or
    names the classifier that does (:meth:`_scorer`), with the frame of
    features it scores (:meth:`_features`) and how rows without them are
    scored (:meth:`_nulls`).

    Example:
        >>> from framelab.toolkits.classifier import LogisticClassifier
        >>> from framelab.toolkits.image_classifier import ImageClassifier
        >>> from framelab.toolkits.scoring import Classifier
        >>> issubclass(LogisticClassifier, Classifier), issubclass(ImageClassifier, Classifier)
        (True, True)
    """

    target: str
    classes: list

    # ------------------------------------------------- what a classifier gives
    def _scorer(self) -> Classifier:
        """The classifier whose probabilities answer for this one (itself, unless it wraps another)."""
        return self

    def _features(self, frame: Frame) -> Frame:
        """The frame the scorer reads: ``frame`` itself, unless the model computes features first."""
        return check_frame(frame, "frame")

    def _nulls(self, stage: str, action: str = "predicted null") -> NullRows | None:
        """How rows the scorer cannot read are answered; None: they are refused (every row must be complete)."""
        return None

    def _feature_columns(self, schema: pa.Schema) -> list[str]:
        """Refuse a schema without the columns the model scores, else name them (a scorer implements this)."""
        raise NotImplementedError

    def _probabilities(self, table: pa.Table) -> np.ndarray:
        """(rows, classes) probabilities of a batch of complete rows, in :attr:`classes` order (a scorer's)."""
        raise NotImplementedError

    def _margins(self, table: pa.Table) -> np.ndarray:
        """The scores before the probabilities, for ``output_type="margin"`` (a scorer's)."""
        raise NotImplementedError

    def _scoring_sections(self) -> list[Section]:
        """The summary sections of the scorer, for a model that shows them among its own."""
        return self._scorer()._summary_sections()

    # ----------------------------------------------------------- the answers
    def predict(self, frame: Frame, output_type: str = "class") -> pa.ChunkedArray:
        """One prediction per row: the class, P(second class) for two classes, or all probabilities.

        ``output_type``: "class"; "probability" (two classes only: the
        probability of ``classes[1]``); "probability_vector" (a vector column,
        one probability per class in :attr:`classes` order); "margin" (the
        linear score before the sigmoid or softmax: with two classes, the
        log-odds of ``classes[1]``; with more, a vector of one score per class).

        Missing values are refused, not imputed: a null or NaN feature raises
        an error naming the column (fill it with ``Frame.fillna`` first). Turi
        Create's ``missing_value_action="impute"`` scores a missing number as its
        training mean, which gives an answer that looks as sure as any other;
        a refusal keeps the choice of a fill value with the user, who knows it.
        A model that computes its features (an image classifier) predicts null
        for a row without them (an image that could not be decoded), and one
        warning counts those rows (a ``RowFailureWarning``).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> train = Frame({"size": [1.0, 1.2, 3.0, 3.3] * 5, "kind": ["cat", "cat", "dog", "dog"] * 5})
            >>> model = classifier.create(train, "kind", verbose=False)
            >>> model.predict(Frame({"size": [1.1, 3.1]})).to_pylist()
            ['cat', 'dog']
            >>> model.predict(Frame({"size": [3.2]}), output_type="probability").to_pylist()[0] > 0.9  # P("dog")
            True
            >>> model.predict(Frame({"size": [3.2]}), output_type="margin").to_pylist()[0] > 0  # log-odds of "dog"
            True
        """
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        if output_type == "probability" and len(self.classes) != 2:
            raise InputError(
                f"output_type='probability' is for two classes; this model has {len(self.classes)}: "
                "use 'probability_vector' (or predict_topk)"
            )
        scorer, labels = self._scorer(), pa.array(self.classes)
        nulls = self._nulls("predict")
        score = scorer._margins if output_type == "margin" else None

        def run(table: pa.Table) -> pa.Table:
            proba, valid = _scores(scorer, table, nulls, score)
            if output_type == "margin" and proba.shape[1] == 1:
                out = _spread(proba[:, 0], valid)
            elif output_type == "class":
                out = labels.take(_spread(proba.argmax(axis=1), valid))
            elif output_type == "probability":
                out = _spread(proba[:, 1], valid)
            else:
                out = _vectors_or_null(proba, valid)
            return pa.table({output_type: out})

        with _job(nulls):
            return _run(scorer, self._features(frame), run, nulls=nulls).column(0)

    def predict_topk(self, frame: Frame, output_type: str = "probability", k: int = 3) -> Frame:
        """The ``k`` likeliest classes of each row, as a Frame of (id, class, probability | rank).

        ``id`` is the row's position in ``frame``; rows come in ``id`` order,
        likeliest class first. A row the model cannot score (an image that
        could not be decoded) keeps its ``k`` rows, with a null class and probability.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> train = Frame({"size": [1.0, 1.2, 3.0, 3.3] * 5, "kind": ["cat", "cat", "dog", "dog"] * 5})
            >>> model = classifier.create(train, "kind", verbose=False)
            >>> model.predict_topk(Frame({"size": [3.1]}), k=2).select("id", "class").to_pydict()
            {'id': [0, 0], 'class': ['dog', 'cat']}
        """
        from framelab.frames import Frame

        if output_type not in ("probability", "rank"):
            raise InputError(f"output_type must be 'probability' or 'rank'; got {output_type!r}")
        k = min(check_positive_int(k, "k"), len(self.classes))
        scorer = self._scorer()
        nulls = self._nulls("predict_topk")
        with _job(nulls):
            result = _run(
                scorer, self._features(frame),
                lambda t: pa.table({"p": _vectors_or_null(*_scores(scorer, t, nulls))}),
                nulls=nulls,
            )
        column = result.column(0)
        proba = vectors_to_numpy(column, fill=0.0) if result.num_rows else np.zeros((0, len(self.classes)))
        missing = np.repeat(column.is_null().to_numpy(zero_copy_only=False), k) if column.null_count else None
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        n = proba.shape[0]
        # A row without features keeps its k rows, with a null class and probability.
        columns = {
            "id": pa.array(np.repeat(np.arange(n, dtype=np.int64), k)),
            "class": pa.array(self.classes).take(pa.array(order.ravel(), mask=missing)),
        }
        if output_type == "probability":
            columns["probability"] = pa.array(np.take_along_axis(proba, order, axis=1).ravel(), mask=missing)
        else:
            columns["rank"] = pa.array(np.tile(np.arange(k, dtype=np.int64), n))
        return Frame.from_arrow(pa.table(columns))

    def classify(self, frame: Frame) -> Frame:
        """Each row's likeliest class and its probability, as a Frame (class, probability); nulls for unscorable rows.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> train = Frame({"size": [1.0, 1.2, 3.0, 3.3] * 5, "kind": ["cat", "cat", "dog", "dog"] * 5})
            >>> model = classifier.create(train, "kind", verbose=False)
            >>> model.classify(Frame({"size": [1.1, 3.1]})).to_pydict()["class"]
            ['cat', 'dog']
        """
        from framelab.frames import Frame

        scorer, labels = self._scorer(), pa.array(self.classes)
        nulls = self._nulls("classify")

        def run(table: pa.Table) -> pa.Table:
            proba, valid = _scores(scorer, table, nulls)
            best = proba.argmax(axis=1)
            return pa.table({
                "class": labels.take(_spread(best, valid)),
                "probability": _spread(proba[np.arange(len(best)), best], valid),
            })

        with _job(nulls):
            return Frame.from_arrow(_run(scorer, self._features(frame), run, nulls=nulls))

    def evaluate(self, frame: Frame, metric: str = "auto") -> dict[str, Any]:
        """Score the model on labelled rows: a dict of metrics (see :mod:`framelab.toolkits.evaluation`).

        Keys with ``metric="auto"``: accuracy, precision, recall, f1_score
        (macro averages), log_loss, auc (one-vs-rest when multiclass) and
        confusion_matrix (a Frame of target_label, predicted_label, count).
        Rows the model cannot score (images that could not be decoded) are
        left out of the scores; one warning counts them.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> train = Frame({"size": [1.0, 1.2, 3.0, 3.3] * 5, "kind": ["cat", "cat", "dog", "dog"] * 5})
            >>> model = classifier.create(train, "kind", verbose=False)
            >>> metrics = model.evaluate(train)
            >>> metrics["accuracy"], metrics["confusion_matrix"].num_rows()
            (1.0, 2)
        """
        scorer, target = self._scorer(), self.target
        nulls = self._nulls("evaluate", action="left out of the scores")

        def run(table: pa.Table) -> pa.Table:
            proba, valid = _scores(scorer, table, nulls)
            scored = table if valid is None else table.filter(pa.array(valid))
            return pa.table({"label": pa.array(target_values(scored, target)),
                             "proba": vectors_from_numpy(proba)})

        with _job(nulls):
            features = self._features(frame)
            metrics = check_metric(metric)
            if target not in features.schema.names:
                raise ColumnNotFoundError([target], features.schema.names)
            # Rows without features are left out of the scores (and counted), so rows may drop.
            result = _run(scorer, features, run, extra=[target], nulls=nulls, preserves_rows=nulls is None)
        if result.num_rows == 0 and nulls is not None:
            raise InputError(f"no row of the frame has {nulls.column!r} ({nulls.why}): nothing to evaluate")
        labels = result.column("label").to_pylist()
        index = {c: i for i, c in enumerate(self.classes)}
        unseen = sorted({v for v in labels if v not in index}, key=str)
        if unseen:
            raise InputError(
                f"the frame has label(s) the model never saw in training: {unseen[:10]}; "
                f"it knows {self.classes[:20]}: drop those rows or retrain with them"
            )
        y = np.array([index[v] for v in labels], dtype=np.int64)
        return classification_metrics(y, vectors_to_numpy(result.column("proba")), self.classes, metrics)


def _job(nulls: NullRows | None) -> contextlib.AbstractContextManager:
    # Only rows that may fail are counted, so only then is the job's failure ledger asked.
    return failures.job() if nulls is not None else contextlib.nullcontext()


def _run(scorer: Classifier, frame: Frame, fn: Callable[[pa.Table], pa.Table], extra: Sequence[str] = (),
         nulls: NullRows | None = None, preserves_rows: bool = True) -> pa.Table:
    """Check the frame, then run ``fn`` on its batches where the rows are; gather the outputs.

    ``fn`` closes over the scorer alone, never over a wrapping model: an
    image classifier's extractor does not travel with every batch.
    """
    frame = check_frame(frame, "frame")
    key = [nulls.key] if nulls is not None and nulls.key in frame.schema.names else []
    columns = list(dict.fromkeys(scorer._feature_columns(frame.schema) + list(extra) + key))
    selected = frame.select(*columns)
    # The output schema from an empty batch: found from the first row instead, a failed first
    # row would be counted twice (once for the schema, once for the result).
    schema = fn(selected.schema.empty_table()).schema
    return selected.map_batches(fn, preserves_rows=preserves_rows, schema=schema).to_arrow()


def _scores(scorer: Classifier, table: pa.Table, nulls: NullRows | None,
            score: Callable[[pa.Table], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Probabilities (or ``score(table)``) of the rows that can be scored, and which rows those are (None: every row).

    Without ``nulls`` every row must be complete (the scorer refuses missing
    values); with it, rows whose ``nulls.column`` is null are left out and
    counted as failures of the job.
    """
    score = score or scorer._probabilities
    if nulls is None or table.column(nulls.column).null_count == 0:
        return score(table), None
    valid = np.asarray(table.column(nulls.column).is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    failed = np.flatnonzero(~valid)
    keys = table.column(nulls.key).to_pylist() if nulls.key in table.column_names else None
    examples = [f"{keys[i] if keys else f'row {i} of its block'}: no {nulls.column} ({nulls.why})"
                for i in failed[:3]]
    failures.report(nulls.stage, len(failed), table.num_rows, examples, action=nulls.action)
    return score(table.filter(pa.array(valid))), valid


def _spread(values: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    """``values`` of the scored rows as a column over all rows, null where ``valid`` is False."""
    if valid is None:
        return pa.array(values)
    return pa.array(_fill(values, valid), mask=~valid)


def _fill(values: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    if valid is None:
        return values
    out = np.zeros((len(valid), *values.shape[1:]), dtype=values.dtype)
    out[valid] = values
    return out


def _vectors_or_null(proba: np.ndarray, valid: np.ndarray | None) -> pa.Array:
    return vectors_from_numpy(_fill(proba, valid), mask=None if valid is None else ~valid)
