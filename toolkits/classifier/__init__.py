"""A logistic (softmax) classifier trained where the rows are.

The training rows stay spread over the cluster: they are loaded once into a
pool of actors (:class:`framelab.platform.sharded.ShardedArrays`), and each
L-BFGS step asks every shard for its part of the loss and gradient, so the
driver only ever holds the parameters.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> train = Frame({"x": [0.0, 0.1, 0.9, 1.0] * 5, "label": ["lo", "lo", "hi", "hi"] * 5})
    >>> model = classifier.create(train, "label", verbose=False)
    >>> model.classes
    ['hi', 'lo']
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from framelab.frames.errors import InputError
from framelab.toolkits.classifier.logistic_classifier import LogisticClassifier
from framelab.toolkits.features import (
    FeatureEncoder,
    check_frame,
    check_target,
    merge_observations,
)

# Turi Create's rule: hold out 5% for validation when there are more than 100 rows.
AUTO_VALIDATION_FRACTION = 0.05
AUTO_VALIDATION_MIN_ROWS = 100

__all__ = ["LogisticClassifier", "create"]


def create(
    frame,
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
        l2_penalty: weight of ``||W||^2`` in the loss, which sums the
            per-row cross-entropy (Turi Create's scaling), on standardised
            features. scikit-learn's equivalent is
            ``make_pipeline(StandardScaler(), LogisticRegression(C=1 / (2 * l2_penalty)))``.
        max_iterations: most L-BFGS iterations (each is about one pass over the rows).
        validation_set: "auto" holds out 5% of the rows when there are more
            than 100; a Frame is used as given; None disables validation.
        class_weights: None (all 1), "auto" (each class weighs
            ``rows / (classes * rows of the class)``), or a dict label -> weight.
        seed: seeds the validation hold-out; None draws one (recorded on the model).
        verbose: print a line per iteration.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import classifier
        >>> f = Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10})
        >>> classifier.create(f, "y", verbose=False).evaluate(f)["accuracy"]
        1.0
    """
    import ray

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
    if seed is None:
        seed = int(np.random.SeedSequence().entropy & 0x7FFFFFFF)

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
    holdout = (
        AUTO_VALIDATION_FRACTION
        if validation_set == "auto" and num_rows > AUTO_VALIDATION_MIN_ROWS else 0.0
    )
    loader = tr.ShardLoader(schema=schema, columns=columns, num_train_rows=num_rows,
                            holdout_fraction=holdout, seed=seed)
    with ShardedArrays(refs, loader, num_shards=min(num_shards, len(refs))) as shards:
        del refs, dataset  # the actors hold the rows now
        observed = shards.map(tr.shard_observe, encoder, target)
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
        mean, scale = _pooled_mean_scale(stats)
        shards.map(tr.shard_standardize, mean, scale)
        num_outputs = 1 if len(classes) == 2 else len(classes)
        setup_s = time.perf_counter() - started
        if verbose:
            _print_header(num_train, num_valid, len(classes), encoder.num_dims, shards)
        fit = tr.fit_lbfgs(
            lambda W, b: shards.map(tr.shard_loss_grad, W, b),
            encoder.num_dims, num_outputs,
            l2_penalty=l2_penalty, max_iterations=max_iterations,
            num_train=num_train, num_valid=num_valid,
            on_iteration=_print_row if verbose else None,
        )
        num_nodes = len(set(shards.nodes))
        num_shards = shards.num_shards
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
        "progress": fit.progress,
    }
    ray_nodes = len([n for n in ray.nodes() if n.get("Alive")])
    training["cluster_nodes"] = ray_nodes
    return LogisticClassifier(
        target=target, classes=classes, encoder=encoder, mean=mean, scale=scale,
        weights=fit.weights, bias=fit.bias, training=training,
    )


def _check_options(l2_penalty, max_iterations, validation_set, class_weights, seed) -> None:
    if not isinstance(l2_penalty, (int, float)) or not np.isfinite(l2_penalty) or l2_penalty < 0:
        raise InputError(f"l2_penalty must be a number >= 0; got {l2_penalty!r}")
    if not isinstance(max_iterations, (int, np.integer)) or max_iterations < 1:
        raise InputError(f"max_iterations must be a positive integer; got {max_iterations!r}")
    if isinstance(validation_set, str) and validation_set.lower() not in ("auto", "none"):
        raise InputError(f"validation_set must be 'auto', None or a Frame; got {validation_set!r}")
    if isinstance(class_weights, str) and class_weights != "auto":
        raise InputError(f"class_weights must be None, 'auto' or a dict; got {class_weights!r}")
    if class_weights is not None and not isinstance(class_weights, (str, Mapping)):
        raise InputError(f"class_weights must be None, 'auto' or a dict; got {type(class_weights).__name__}")
    if seed is not None and not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer or None; got {seed!r}")


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


def _pooled_mean_scale(stats: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-shard (n, mean, M2) (Chan et al.) into the mean and standard deviation."""
    n_total, mean, m2 = 0, None, None
    for n, m, s in stats:
        if n == 0:
            continue
        if mean is None:
            n_total, mean, m2 = n, m.copy(), s.copy()
            continue
        delta = m - mean
        combined = n_total + n
        mean = mean + delta * n / combined
        m2 = m2 + s + delta**2 * n_total * n / combined
        n_total = combined
    std = np.sqrt(m2 / n_total)
    # Constant columns carry no information; scaling them by 1 keeps them harmless.
    scale = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
    return mean, scale


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
