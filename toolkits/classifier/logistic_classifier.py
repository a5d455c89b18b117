"""The logistic classifier: :func:`create` trains one, :class:`LogisticClassifier` is the model it returns.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> train = Frame({"x": [0.0, 0.1, 0.9, 1.0] * 5, "label": ["lo", "lo", "hi", "hi"] * 5})
    >>> model = classifier.create(train, "label", verbose=False)
    >>> model.predict(Frame({"x": [0.05, 0.95]})).to_pylist()
    ['lo', 'hi']
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.frames.validation import (
    SEED,
    check_arguments,
    check_seed,
    integer,
    number,
)
from framelab.platform.client import on_cluster
from framelab.toolkits.features import (
    FeatureEncoder,
    check_frame,
    check_target,
    merge_observations,
)
from framelab.toolkits.model import Section
from framelab.toolkits.scoring import Classifier

if TYPE_CHECKING:
    from framelab.frames import Frame
    from framelab.toolkits.model_io import SavedModel

# validation_set="auto": with more than AUTO_VALIDATION_MIN_ROWS rows, hold out 20% of them, at most
# 1,000 (enough to read accuracy within about 2 points) unless 5% is more. Turi Create's 5% left a
# 245-image corpus 10 validation rows, whose accuracy moves 10 points with one image.
AUTO_VALIDATION_FRACTION = 0.2
AUTO_VALIDATION_MAX_ROWS = 1000
AUTO_VALIDATION_MIN_FRACTION = 0.05
AUTO_VALIDATION_MIN_ROWS = 100


def auto_validation_rows(num_rows: int) -> int:
    """How many rows ``validation_set="auto"`` holds out of ``num_rows`` (see the rule above).

    Example:
        >>> from framelab.toolkits.classifier.logistic_classifier import auto_validation_rows
        >>> [auto_validation_rows(n) for n in (100, 245, 4_000, 10_000, 100_000)]
        [0, 49, 800, 1000, 5000]
    """
    if num_rows <= AUTO_VALIDATION_MIN_ROWS:
        return 0
    fraction_rows = round(AUTO_VALIDATION_FRACTION * num_rows)
    return max(min(fraction_rows, AUTO_VALIDATION_MAX_ROWS), round(AUTO_VALIDATION_MIN_FRACTION * num_rows))
# Standard errors need a (dims + 1)^2 Hessian inverted in the driver: above this many features, none.
STDERR_MAX_DIMS = 2000
# Times each shard of the training rows may be rebuilt after its actor dies (a lost node, an OOM kill).
SHARD_RESTARTS = 3


class LogisticClassifier(Classifier):
    """Softmax regression on numeric, vector and categorical features.

    Fitted state is plain arrays: the feature mean and scale used to
    standardise, and the weights and bias in that standardised space
    (:attr:`coefficients` gives them in the original units). Its answers
    (``predict``, ``predict_topk``, ``classify``, ``evaluate``) are every
    classifier's (:class:`~framelab.toolkits.scoring.Classifier`), from the
    probabilities :meth:`_probabilities` gives.
    """

    kind = "logistic_classifier"

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
        second class is scored, against the first), ``value`` and ``stderr``.

        ``stderr`` is the standard error from the inverse Hessian of the
        training objective (penalty included) at the fit, as Turi Create gives
        it. It is defined for two classes with at most ``STDERR_MAX_DIMS``
        unpacked features and a Hessian that can be inverted; elsewhere it is null.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> train = Frame({"size": [1.0, 1.2, 3.0, 3.3] * 5, "kind": ["cat", "cat", "dog", "dog"] * 5})
            >>> model = classifier.create(train, "kind", verbose=False)
            >>> model.coefficients.select("name", "class").to_pydict()
            {'name': ['(intercept)', 'size'], 'class': ['dog', 'dog']}
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
        stderr = self.training.get("coefficient_stderr")
        stderr = [None] * len(rows_value) if stderr is None else [stderr[-1]] + list(stderr[:-1])
        return Frame.from_arrow(pa.table({
            "name": pa.array(rows_name, pa.string()),
            "index": pa.array(rows_index, pa.string()),
            "class": pa.array(rows_class),
            "value": pa.array(rows_value, pa.float64()),
            "stderr": pa.array(stderr, pa.float64()),
        }))

    # ---------------------------------------------------------- persistence
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
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse saved fields of the wrong type and arrays whose shapes do not fit the features and classes."""
        target = saved.field("target", str)
        if not target:
            saved.refuse("target", "is empty")
        classes = saved.field("classes", list)
        if len(classes) < 2 or not all(_is_label(c) for c in classes):
            saved.refuse("classes", "must list two or more class labels (strings, integers or booleans)")
        if len({json.dumps(c) for c in classes}) != len(classes):
            saved.refuse("classes", "lists a class more than once")
        encoder = FeatureEncoder.from_saved(saved)
        saved.field("training", dict, required=False)
        d = encoder.num_dims
        k = 1 if len(classes) == 2 else len(classes)
        features = f" ({d} unpacked feature(s))"
        saved.array("mean", (d,), meaning=features)
        saved.array("scale", (d,), meaning=features, positive=True)
        saved.array("weights", (d, k), meaning=f" ({d} unpacked feature(s) x {k} scored class(es))")
        saved.array("bias", (k,), meaning=f" ({k} scored class(es) for {len(classes)} classes)")

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
    def _summary_sections(self) -> list[Section]:
        t = self.training
        return [
            ("Schema", [
                ("Number of classes", self.num_classes),
                ("Number of feature columns", len(self.features)),
                ("Number of unpacked features", self.encoder.num_dims),
                ("Number of coefficients", int(self.weights.size + self.bias.size)),
                ("Target", self.target),
                ("Features", ", ".join(self.features)),
            ]),
            ("Training", [
                ("Number of examples", t.get("num_examples")),
                ("Solver", "L-BFGS on standardised features"),
                ("L2 penalty", t.get("l2_penalty")),
                ("Iterations", t.get("iterations")),
                ("Converged", t.get("converged")),
                ("Training time (s)", t.get("training_time_s")),
                ("Training loss", t.get("training_loss")),
                ("Training accuracy", t.get("training_accuracy")),
                ("Validation accuracy", t.get("validation_accuracy")),
                ("Shards", f"{t.get('num_shards')} on {t.get('num_nodes')} node(s)"),
            ]),
        ]

    # ------------------------------------------------------------ scoring
    def _feature_columns(self, schema: pa.Schema) -> list[str]:
        # The encoder names a missing or mistyped column, and a vector made by another extractor.
        self.encoder.check_schema(schema)
        return self.features

    def _margins(self, table: pa.Table) -> np.ndarray:
        """The linear scores ``X W + b`` on standardised features: (rows, 1) with two classes, else (rows, classes)."""
        X = self.encoder.encode(table).astype(np.float64)
        X -= self.mean
        X /= self.scale
        return X @ self.weights + self.bias

    def _probabilities(self, table: pa.Table) -> np.ndarray:
        Z = self._margins(table)
        if self.weights.shape[1] == 1:
            p = 0.5 * (1.0 + np.tanh(0.5 * Z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        Z -= Z.max(axis=1, keepdims=True)
        E = np.exp(Z)
        return E / E.sum(axis=1, keepdims=True)


@on_cluster
def create(
    frame: Frame,
    target: str,
    features: Sequence[str] | None = None,
    l2_penalty: float = 0.01,
    max_iterations: int = 100,
    validation_set: Any = "auto",
    class_weights: str | Mapping[Any, float] | None = None,
    seed: int | None = None,
    verbose: bool = True,
) -> LogisticClassifier:
    """Train a multinomial logistic classifier of ``target`` on ``features``.

    Parameters:
        frame: the training rows (a Frame; it may be spread over the cluster).
        target: the column of class labels (strings, integers or booleans).
        features: input columns; ``None`` uses every column but the target.
            Numbers, vectors (deep features: fixed-size lists, or lists of
            one length) and strings (one-hot encoded) are accepted.
        l2_penalty: weight of ``||W||^2`` in the objective, which sums the
            per-row cross-entropy (Turi Create's scaling), on standardised
            features. (``training["training_loss"]`` reports that objective
            divided by the rows' total weight: a per-row mean.) scikit-learn's equivalent is
            ``make_pipeline(StandardScaler(), LogisticRegression(C=1 / (2 * l2_penalty)))``.
        max_iterations: most L-BFGS iterations (each is about one pass over the rows).
        validation_set: "auto" holds out 20% of the rows (at most 1,000,
            unless 5% is more) when there are more than 100; a Frame is
            used as given; None disables validation.
        class_weights: None (all 1), "auto" (each class weighs
            ``rows / (classes * rows of the class)``), or a dict label -> weight.
        seed: a non-negative integer seeding the validation hold-out; None draws one (recorded on the model).
        verbose: print a line per iteration.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import classifier
        >>> f = Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10})
        >>> classifier.create(f, "y", verbose=False).evaluate(f)["accuracy"]
        1.0
    """
    from framelab.platform.resources import cluster_facts
    from framelab.platform.sharded import ShardedArrays, plan_shards
    from framelab.toolkits.classifier import _training as tr

    started = time.perf_counter()
    frame = check_frame(frame, "frame")
    _check_options(l2_penalty, max_iterations, validation_set, class_weights, seed)
    schema = frame.schema
    check_target(schema, target)
    encoder = FeatureEncoder.plan(schema, target, features)
    columns = tuple(encoder.names + [target])
    if isinstance(validation_set, str):
        validation_set = None if validation_set.lower() == "none" else validation_set
    valid_frame = None
    if validation_set is not None and not isinstance(validation_set, str):
        valid_frame = check_frame(validation_set, "validation_set")
        check_target(valid_frame.schema, target)
        encoder.check_schema(valid_frame.schema)
    seed = check_seed(seed)

    # No select() here: on frames already in the object store it would copy
    # every block in a Ray Data stage; the shards pick their columns instead.
    dataset = frame.to_ray().materialize()
    num_rows = dataset.count()
    if num_rows == 0:
        raise InputError("the training frame is empty; a classifier needs labelled rows")
    total_bytes = dataset.size_bytes()
    num_shards = plan_shards(total_bytes)
    if dataset.num_blocks() < num_shards:
        # A block is never split between shards: cut the rows into as many blocks as shards.
        dataset = dataset.repartition(num_shards).materialize()
    refs = list(dataset.to_arrow_refs())
    if valid_frame is not None:
        refs += list(valid_frame.to_ray().materialize().to_arrow_refs())
    holdout = tr.holdout_cut(num_rows, auto_validation_rows(num_rows), seed) if validation_set == "auto" else 0.0
    loader = tr.ShardLoader(schema=schema, columns=columns, num_train_rows=num_rows,
                            holdout_fraction=holdout, seed=seed)
    # A shard whose actor dies is rebuilt from the blocks (kept in the object store while
    # training runs) and the fit carries on from its last parameters with the same numbers.
    with ShardedArrays(refs, loader, num_shards=min(num_shards, len(refs)), max_restarts=SHARD_RESTARTS) as shards:
        del refs, dataset  # the shards hold the rows now
        observed = shards.map(tr.shard_observe, encoder, target, changes_state=False)
        levels, _ = merge_observations(o["train"] for o in observed)
        _, lengths = merge_observations([o["train"] for o in observed] + [o["valid"] for o in observed])
        encoder = encoder.with_levels(levels).with_dims(lengths)
        counts: dict = {}
        for o in observed:
            for label, n in o["classes"].items():
                counts[label] = counts.get(label, 0) + n
        num_train = sum(o["num_train"] for o in observed)
        num_valid = sum(o["num_valid"] for o in observed)
        classes = sorted(counts)
        if num_train == 0:
            raise InputError("no training rows are left after holding out the validation rows")
        if len(classes) < 2:
            raise InputError(
                f"target column {target!r} has only one class ({classes[0]!r}); "
                "a classifier needs at least two"
            )
        weights = _class_weights(class_weights, classes, counts)
        if encoder.num_dims == 0:
            raise InputError("the features encode to zero columns (empty vectors or categories)")

        stats = shards.map(tr.shard_encode, encoder, target, classes, weights)
        mean, scale = tr.pooled_mean_scale(stats)
        shards.map(tr.shard_standardize, mean, scale)
        num_outputs = 1 if len(classes) == 2 else len(classes)
        setup_s = time.perf_counter() - started
        if verbose:
            _print_header(num_train, num_valid, len(classes), encoder.num_dims, shards)
        fit = tr.fit_lbfgs(
            lambda W, b: shards.map(tr.shard_loss_grad, W, b, changes_state=False),
            encoder.num_dims, num_outputs,
            l2_penalty=l2_penalty, max_iterations=max_iterations,
            num_train=num_train, num_valid=num_valid,
            on_iteration=_print_row if verbose else None,
        )
        stderr = None
        if num_outputs == 1 and encoder.num_dims <= STDERR_MAX_DIMS:
            hessian = sum(shards.map(tr.shard_hessian, fit.weights, fit.bias, changes_state=False))
            stderr = tr.coefficient_stderr(hessian, l2_penalty, mean, scale)
        num_nodes = len(set(shards.nodes))
        num_shards = shards.num_shards
        shard_restarts = shards.restarts
    if verbose:
        _print_footer(fit)

    training = {
        "num_examples": num_train,
        "num_validation_examples": num_valid,
        "l2_penalty": float(l2_penalty),
        "max_iterations": int(max_iterations),
        "iterations": fit.iterations,
        "passes": fit.evaluations,
        "converged": fit.converged,
        "solver_message": fit.message,
        "training_loss": fit.loss,
        "training_accuracy": fit.training_accuracy,
        "validation_accuracy": fit.validation_accuracy,
        "training_time_s": time.perf_counter() - started,
        "setup_time_s": setup_s,  # checks, sharding, encoding: before the first L-BFGS pass
        "class_weights": [[c, float(w)] for c, w in zip(classes, weights)],
        "seed": seed,
        "num_shards": num_shards,
        "num_nodes": num_nodes,
        "shard_restarts": shard_restarts,  # shard actors that died and were rebuilt during training
        "progress": fit.progress,
        # (weights..., intercept) in original units; None where not defined (see LogisticClassifier.coefficients)
        "coefficient_stderr": None if stderr is None else stderr.tolist(),
    }
    training["cluster_nodes"] = cluster_facts().nodes
    return LogisticClassifier(
        target=target, classes=classes, encoder=encoder, mean=mean, scale=scale,
        weights=fit.weights, bias=fit.bias, training=training,
    )


def _is_label(value: Any) -> bool:
    return isinstance(value, (str, int, bool))


# What create() accepts, declared once and checked by the one helper every toolkit uses.
_CREATE_ARGUMENTS = {"l2_penalty": number(0), "max_iterations": integer(1), "seed": SEED}


def _check_options(l2_penalty, max_iterations, validation_set, class_weights, seed) -> None:
    check_arguments({"l2_penalty": l2_penalty, "max_iterations": max_iterations, "seed": seed}, _CREATE_ARGUMENTS)
    if isinstance(validation_set, str) and validation_set.lower() not in ("auto", "none"):
        raise InputError(f"validation_set must be 'auto', None or a Frame; got {validation_set!r}")
    if isinstance(class_weights, str) and class_weights != "auto":
        raise InputError(f"class_weights must be None, 'auto' or a dict; got {class_weights!r}")
    if class_weights is not None and not isinstance(class_weights, (str, Mapping)):
        raise InputError(f"class_weights must be None, 'auto' or a dict; got {type(class_weights).__name__}")


def _class_weights(spec, classes: list, counts: dict) -> list[float]:
    if spec is None:
        return [1.0] * len(classes)
    if isinstance(spec, str):
        total = sum(counts.values())
        return [total / (len(classes) * counts[c]) for c in classes]
    unknown = [k for k in spec if k not in counts]
    missing = [c for c in classes if c not in spec]
    if unknown or missing:
        raise InputError(
            "class_weights must give a weight to every class and only to them"
            + (f"; unknown: {unknown[:10]}" if unknown else "")
            + (f"; missing: {missing[:10]}" if missing else "")
        )
    weights = [float(spec[c]) for c in classes]
    if any(not np.isfinite(w) or w <= 0 for w in weights):
        raise InputError("class_weights must all be positive numbers")
    return weights


def _print_header(num_train: int, num_valid: int, num_classes: int, dims: int, shards) -> None:
    print(f"Logistic classifier: {num_train} training rows, {num_valid} validation rows, "
          f"{num_classes} classes, {dims} unpacked features, {shards!r}")
    print("+-----------+--------+--------------+---------------+-------------------+---------------------+")
    print("| Iteration | Passes | Elapsed Time | Training Loss | Training Accuracy | Validation Accuracy |")
    print("+-----------+--------+--------------+---------------+-------------------+---------------------+")


def _print_row(row: dict) -> None:
    valid = row["validation_accuracy"]
    valid_text = f"{valid:.4f}" if valid is not None else "n/a"
    print(f"| {row['iteration']:>9} | {row['passes']:>6} | {row['elapsed_s']:>11.2f}s | "
          f"{row['loss']:>13.5f} | {row['training_accuracy']:>17.4f} | {valid_text:>19} |")


def _print_footer(fit) -> None:
    print("+-----------+--------+--------------+---------------+-------------------+---------------------+")
    state = "converged" if fit.converged else "stopped"
    print(f"L-BFGS {state} after {fit.iterations} iterations: {fit.message}")
