"""The model :func:`framelab.toolkits.classifier.create` returns: a multinomial logistic classifier.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> train = Frame({"x": [0.0, 0.1, 0.9, 1.0] * 5, "label": ["lo", "lo", "hi", "hi"] * 5})
    >>> model = classifier.create(train, "label", verbose=False)
    >>> model.predict(Frame({"x": [0.05, 0.95]})).to_pylist()
    ['lo', 'hi']
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import ColumnNotFoundError, InputError
from framelab.frames.vectors import vectors_from_numpy, vectors_to_numpy
from framelab.toolkits.evaluation import check_metric, classification_metrics
from framelab.toolkits.features import FeatureEncoder, check_frame, target_values

OUTPUT_TYPES = ("class", "probability", "probability_vector")


class LogisticClassifier:
    """Softmax regression on numeric, vector and categorical features.

    Fitted state is plain arrays: the feature mean and scale used to
    standardise, and the weights and bias in that standardised space
    (:attr:`coefficients` gives them in the original units).
    """

    _kind = "logistic_classifier"

    def __init__(
        self,
        *,
        target: str,
        classes: list,
        encoder: FeatureEncoder,
        mean: np.ndarray,
        scale: np.ndarray,
        weights: np.ndarray,
        bias: np.ndarray,
        training: dict[str, Any],
    ):
        self.target = target
        self.classes = list(classes)
        self.encoder = encoder
        self.mean = np.asarray(mean, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.weights = np.asarray(weights, dtype=np.float64)
        self.bias = np.asarray(bias, dtype=np.float64)
        self.training = dict(training)

    # ------------------------------------------------------------ properties
    @property
    def features(self) -> list[str]:
        """The input columns the model reads."""
        return self.encoder.names

    @property
    def num_classes(self) -> int:
        """How many classes the model tells apart."""
        return len(self.classes)

    @property
    def coefficients(self):
        """The coefficients in the features' original units, as a Frame.

        Columns: ``name`` (input column, or "(intercept)"), ``index`` (vector
        element or category level; null for numbers and intercepts),
        ``class`` (the class the coefficient scores; with two classes only the
        second class is scored, against the first) and ``value``.

        Example:
            >>> model.coefficients.head(3)  # doctest: +SKIP
        """
        from framelab.frames import Frame

        W = self.weights / self.scale[:, None]
        b = self.bias - (self.mean / self.scale) @ self.weights
        scored = self.classes[1:] if self.weights.shape[1] == 1 else self.classes
        names, index = [], []
        for f in self.encoder.features:
            for label in f.labels():
                names.append(f.name)
                index.append(label or None)
        rows_name, rows_index, rows_class, rows_value = [], [], [], []
        for j, cls in enumerate(scored):
            rows_name += ["(intercept)"] + names
            rows_index += [None] + index
            rows_class += [cls] * (len(names) + 1)
            rows_value += [float(b[j])] + W[:, j].tolist()
        return Frame.from_arrow(pa.table({
            "name": pa.array(rows_name, pa.string()),
            "index": pa.array(rows_index, pa.string()),
            "class": pa.array(rows_class),
            "value": pa.array(rows_value, pa.float64()),
        }))

    # ----------------------------------------------------------- prediction
    def predict(self, frame, output_type: str = "class") -> pa.ChunkedArray:
        """One prediction per row: the class, P(second class) for two classes, or all probabilities.

        ``output_type``: "class"; "probability" (two classes only: the
        probability of ``classes[1]``); "probability_vector" (a vector column,
        one probability per class in :attr:`classes` order).

        Example:
            >>> model.predict(test, output_type="probability_vector")  # doctest: +SKIP
        """
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}; got {output_type!r}")
        if output_type == "probability" and self.num_classes != 2:
            raise InputError(
                f"output_type='probability' is for two classes; this model has {self.num_classes}: "
                "use 'probability_vector' (or predict_topk)"
            )
        labels = self._labels()

        def run(table: pa.Table) -> pa.Table:
            proba = self._probabilities(table)
            if output_type == "class":
                out = labels.take(pa.array(proba.argmax(axis=1)))
            elif output_type == "probability":
                out = pa.array(proba[:, 1])
            else:
                out = vectors_from_numpy(proba)
            return pa.table({output_type: out})

        return self._run(frame, run).column(0)

    def predict_topk(self, frame, output_type: str = "probability", k: int = 3):
        """The ``k`` likeliest classes of each row, as a Frame of (id, class, probability | rank).

        ``id`` is the row's position in ``frame``; rows come in ``id`` order,
        likeliest class first.

        Example:
            >>> model.predict_topk(test, k=2)  # doctest: +SKIP
        """
        from framelab.frames import Frame

        if output_type not in ("probability", "rank"):
            raise InputError(f"output_type must be 'probability' or 'rank'; got {output_type!r}")
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer; got {k!r}")
        k = min(int(k), self.num_classes)
        proba = self._proba_matrix(frame)
        order = np.argsort(-proba, axis=1, kind="stable")[:, :k]
        n = proba.shape[0]
        columns = {
            "id": pa.array(np.repeat(np.arange(n, dtype=np.int64), k)),
            "class": self._labels().take(pa.array(order.ravel())),
        }
        if output_type == "probability":
            columns["probability"] = pa.array(np.take_along_axis(proba, order, axis=1).ravel())
        else:
            columns["rank"] = pa.array(np.tile(np.arange(k, dtype=np.int64), n))
        return Frame.from_arrow(pa.table(columns))

    def classify(self, frame):
        """Each row's likeliest class and its probability, as a Frame (class, probability).

        Example:
            >>> model.classify(test).head()  # doctest: +SKIP
        """
        from framelab.frames import Frame

        labels = self._labels()

        def run(table: pa.Table) -> pa.Table:
            proba = self._probabilities(table)
            best = proba.argmax(axis=1)
            return pa.table({
                "class": labels.take(pa.array(best)),
                "probability": pa.array(proba[np.arange(len(best)), best]),
            })

        return Frame.from_arrow(self._run(frame, run))

    def evaluate(self, frame, metric: str = "auto") -> dict[str, Any]:
        """Score the model on labelled rows: a dict of metrics (see :mod:`framelab.toolkits.evaluation`).

        Keys with ``metric="auto"``: accuracy, precision, recall, f1_score
        (macro averages), log_loss, auc (one-vs-rest when multiclass) and
        confusion_matrix (a Frame of target_label, predicted_label, count).

        Example:
            >>> model.evaluate(test)["accuracy"]  # doctest: +SKIP
        """
        metrics = check_metric(metric)
        if self.target not in frame.schema.names:
            raise ColumnNotFoundError([self.target], frame.schema.names)
        target = self.target

        def run(table: pa.Table) -> pa.Table:
            proba = self._probabilities(table)
            return pa.table({"label": pa.array(target_values(table, target)),
                             "proba": vectors_from_numpy(proba)})

        result = self._run(frame, run, extra=[target])
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

    # ---------------------------------------------------------- persistence
    def save(self, url: str, storage_options: dict | None = None) -> None:
        """Save to a folder (path or fsspec URL); bring it back with :func:`framelab.toolkits.load_model`.

        Example:
            >>> model.save("s3://bucket/models/caltech")  # doctest: +SKIP
        """
        from framelab.toolkits.model_io import save_model

        metadata, arrays = self._state()
        save_model(url, self._kind, metadata, arrays, storage_options=storage_options)

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON metadata, arrays) that :meth:`_from_saved` rebuilds the model from (for models that embed this one)."""
        metadata = {
            "target": self.target,
            "classes": self.classes,
            "features": self.encoder.to_json(),
            "training": self.training,
        }
        arrays = {"mean": self.mean, "scale": self.scale, "weights": self.weights, "bias": self.bias}
        return metadata, arrays

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> LogisticClassifier:
        return cls(
            target=metadata["target"],
            classes=metadata["classes"],
            encoder=FeatureEncoder.from_json(metadata["features"]),
            mean=arrays["mean"],
            scale=arrays["scale"],
            weights=arrays["weights"],
            bias=arrays["bias"],
            training=metadata.get("training", {}),
        )

    # -------------------------------------------------------------- display
    def summary(self) -> None:
        """Print what the model is and how its training went.

        Example:
            >>> model.summary()  # doctest: +SKIP
        """
        print(self._describe())

    def __repr__(self) -> str:
        return self._describe()

    def _describe(self) -> str:
        t = self.training
        dims = self.encoder.num_dims
        valid = t.get("validation_accuracy")
        rows = [
            ("Schema", None),
            ("Number of classes", self.num_classes),
            ("Number of feature columns", len(self.features)),
            ("Number of unpacked features", dims),
            ("Number of coefficients", int(self.weights.size + self.bias.size)),
            ("Target", self.target),
            ("Features", ", ".join(self.features)),
            ("Training", None),
            ("Number of examples", t.get("num_examples")),
            ("Solver", "L-BFGS on standardised features"),
            ("L2 penalty", t.get("l2_penalty")),
            ("Iterations", t.get("iterations")),
            ("Converged", t.get("converged")),
            ("Training time (s)", _fmt(t.get("training_time_s"))),
            ("Training loss", _fmt(t.get("training_loss"))),
            ("Training accuracy", _fmt(t.get("training_accuracy"))),
            ("Validation accuracy", _fmt(valid) if valid is not None else "n/a"),
            ("Shards", f"{t.get('num_shards')} on {t.get('num_nodes')} node(s)"),
        ]
        width = max(len(k) for k, _ in rows)
        lines = ["Class                          : LogisticClassifier"]
        for key, value in rows:
            lines += ["", key, "-" * len(key)] if value is None else [f"{key:<{width}} : {value}"]
        return "\n".join(lines)

    # ------------------------------------------------------------ internals
    def _labels(self) -> pa.Array:
        return pa.array(self.classes)

    def _probabilities(self, table: pa.Table) -> np.ndarray:
        X = self.encoder.encode(table).astype(np.float64)
        X -= self.mean
        X /= self.scale
        Z = X @ self.weights + self.bias
        if self.weights.shape[1] == 1:
            p = 0.5 * (1.0 + np.tanh(0.5 * Z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)

    def _proba_matrix(self, frame) -> np.ndarray:
        result = self._run(frame, lambda t: pa.table({"p": vectors_from_numpy(self._probabilities(t))}))
        if result.num_rows == 0:
            return np.zeros((0, self.num_classes))
        return vectors_to_numpy(result.column(0))

    def _run(self, frame, fn, extra: list[str] = ()) -> pa.Table:
        """Check the frame, then run ``fn`` on its batches where the rows are; gather the outputs."""
        frame = check_frame(frame, "frame")
        self.encoder.check_schema(frame.schema)
        columns = list(dict.fromkeys(self.features + list(extra)))
        return frame.select(*columns).map_batches(fn, preserves_rows=True).to_arrow()


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)
