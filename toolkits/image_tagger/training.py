"""Training a tagger on your own tags: one-vs-rest logistic regression on sharded rows, then thresholds.

The rows stay where they are, loaded once into shard actors as the
classifier's are (:mod:`framelab.toolkits.classifier._training`); every
L-BFGS step sums an independent logistic loss per (row, tag) over the shards.
The held-out rows' scores then come to the driver, where each tag gets the
threshold that gives it the most recall at a precision of ``min_precision``.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.image_tagger.training import choose_thresholds
    >>> scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    >>> truth = np.array([[1], [1], [0], [1]])
    >>> choose_thresholds(scores, truth, min_precision=0.9).threshold.round(2).tolist()
    [0.75]
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from framelab.frames.errors import InputError
from framelab.toolkits.features import FeatureEncoder, merge_observations

# Rows held out to choose thresholds when validation_set="auto".
VALIDATION_FRACTION = 0.2
# The threshold of a tag with no held-out example to choose one on: the logistic model's own even odds.
DEFAULT_THRESHOLD = 0.5


@dataclass(frozen=True)
class Thresholds:
    """Per-tag thresholds and what they gave on the held-out rows (NaN where a tag had none there)."""

    threshold: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    chosen: np.ndarray  # bool: chosen on held-out rows (else DEFAULT_THRESHOLD)


def choose_thresholds(scores: np.ndarray, truth: np.ndarray, min_precision: float) -> Thresholds:
    """For each tag, the held-out score to tag at for the most recall with precision >= ``min_precision``.

    A row is tagged when its score is at least the threshold. Of the cuts
    giving the most recall at that precision, the most precise is chosen,
    and the threshold sits halfway between its lowest kept score and the next
    held-out score below. A tag that never reaches the precision gets the
    lowest cut of its best precision; a tag without any held-out example gets
    :data:`DEFAULT_THRESHOLD`.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_tagger.training import choose_thresholds
        >>> t = choose_thresholds(np.array([[0.9, 0.2], [0.4, 0.3]]), np.array([[1, 0], [0, 0]]), 0.9)
        >>> t.threshold.round(2).tolist(), t.chosen.tolist(), t.recall.round(2).tolist()
        ([0.65, 0.5], [True, False], [1.0, nan])
    """
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth) > 0
    num_tags = scores.shape[1]
    out = Thresholds(
        threshold=np.full(num_tags, DEFAULT_THRESHOLD),
        precision=np.full(num_tags, np.nan),
        recall=np.full(num_tags, np.nan),
        chosen=np.zeros(num_tags, dtype=bool),
    )
    for j in range(num_tags):
        positives = int(truth[:, j].sum())
        if positives == 0:
            continue
        order = np.argsort(-scores[:, j], kind="stable")
        s, y = scores[order, j], truth[order, j]
        tp = np.cumsum(y)
        seen = np.arange(1, len(s) + 1)
        # Only the last row of a run of equal scores is a reachable cut.
        cuts = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
        precision = tp[cuts] / seen[cuts]
        good = np.flatnonzero(precision >= min_precision)
        if not len(good):  # out of reach: the best precision, at its lowest threshold
            good = np.flatnonzero(precision == precision.max())[-1:]
        # The most recall the target allows, at the highest threshold giving it: lower ones add
        # only false positives.
        found = tp[cuts[good]]
        pick = cuts[good[np.argmax(found == found.max())]]
        # Halfway down to the next held-out score: the same held-out rows pass, and a new image
        # scoring a little under the lowest kept positive still does.
        out.threshold[j] = (s[pick] + s[pick + 1]) / 2 if pick + 1 < len(s) else s[pick]
        out.precision[j] = tp[pick] / (pick + 1)
        out.recall[j] = tp[pick] / positives
        out.chosen[j] = True
    return out


@dataclass
class FitResult:
    """A trained one-vs-rest model and its thresholds, in the standardised feature space."""

    encoder: FeatureEncoder
    vocabulary: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: np.ndarray
    thresholds: Thresholds
    training: dict[str, Any]


def fit_tagger(
    features: Any,
    feature_column: str,
    tags_column: str,
    *,
    validation: Any,
    vocabulary: list[str] | None = None,
    min_precision: float,
    l2_penalty: float,
    max_iterations: int,
    seed: int,
    verbose: bool,
) -> FitResult:
    """Train on a frame of (features, tags); ``validation`` is "auto" (hold rows out) or a Frame.

    ``vocabulary`` keeps only those tags (None: every tag a training row has).

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.image_tagger.training import fit_tagger
        >>> rows = Frame({"x": np.array([[0.0], [0.2], [1.0], [1.2]] * 10, np.float32),
        ...               "t": [["low"], ["low"], ["high", "odd"], ["high"]] * 10})
        >>> fit = fit_tagger(rows, "x", "t", validation="auto", min_precision=0.9, l2_penalty=0.1,
        ...                  max_iterations=50, seed=0, verbose=False)
        >>> fit.vocabulary, fit.thresholds.chosen.tolist()
        (['high', 'low', 'odd'], [True, True, True])
    """
    from framelab.platform.sharded import ShardedArrays, plan_shards
    from framelab.toolkits.classifier import _training as tr

    started = time.perf_counter()
    schema = features.schema
    encoder = FeatureEncoder.plan(schema, tags_column, [feature_column])
    dataset = features.to_ray().materialize()
    num_rows = dataset.count()
    if num_rows == 0:
        raise InputError("the training frame is empty; a tagger needs images with tags")
    num_shards = plan_shards(dataset.size_bytes())
    if dataset.num_blocks() < num_shards:
        # A block is never split between shards: cut the rows into as many blocks as shards.
        dataset = dataset.repartition(num_shards).materialize()
    refs = list(dataset.to_arrow_refs())
    if validation != "auto":
        refs += list(validation.to_ray().materialize().to_arrow_refs())
    loader = tr.ShardLoader(
        schema=schema, columns=(feature_column, tags_column), num_train_rows=num_rows,
        holdout_fraction=VALIDATION_FRACTION if validation == "auto" else 0.0, seed=seed,
    )
    with ShardedArrays(refs, loader, num_shards=min(num_shards, len(refs))) as shards:
        del refs, dataset  # the actors hold the rows now
        observed = shards.map(tr.shard_observe_tags, encoder, tags_column)
        _, lengths = merge_observations([o[p] for o in observed for p in ("train", "valid")])
        encoder = encoder.with_dims(lengths)
        train_counts = _merge_counts(o["train_tags"] for o in observed)
        valid_counts = _merge_counts(o["valid_tags"] for o in observed)
        num_train = sum(o["num_train"] for o in observed)
        num_valid = sum(o["num_valid"] for o in observed)
        vocabulary = _vocabulary(train_counts, valid_counts, tags_column, num_train, vocabulary)
        shards_stats = shards.map(tr.shard_encode_tags, encoder, tags_column, vocabulary)
        mean, scale = tr.pooled_mean_scale(shards_stats)
        shards.map(tr.shard_standardize, mean, scale)
        if verbose:
            print(f"Image tagger: {num_train} training rows, {num_valid} held-out rows, "
                  f"{len(vocabulary)} tags, {encoder.num_dims} features, {shards!r}")
        fit = tr.fit_lbfgs(
            lambda W, b: shards.map(tr.shard_sigmoid_loss_grad, W, b),
            encoder.num_dims, len(vocabulary),
            l2_penalty=l2_penalty, max_iterations=max_iterations,
            # Accuracies count (row, tag) decisions.
            num_train=num_train * len(vocabulary), num_valid=num_valid * len(vocabulary),
            on_iteration=_print_iteration if verbose else None,
        )
        held_out = shards.map(tr.shard_sigmoid_scores, fit.weights, fit.bias)
        num_nodes = len(set(shards.nodes))
        num_shards = shards.num_shards
    scores = np.concatenate([s for s, _ in held_out]) if held_out else np.zeros((0, len(vocabulary)))
    truth = np.concatenate([y for _, y in held_out]) if held_out else np.zeros((0, len(vocabulary)))
    thresholds = choose_thresholds(scores, truth, min_precision)
    _warn_thresholds(vocabulary, thresholds, num_valid)
    if verbose:
        state = "converged" if fit.converged else "stopped"
        print(f"L-BFGS {state} after {fit.iterations} iterations: {fit.message}")
    training = {
        "num_examples": num_train,
        "num_validation_examples": num_valid,
        "tag_counts": {t: int(train_counts.get(t, 0)) for t in vocabulary},
        "l2_penalty": float(l2_penalty),
        "max_iterations": int(max_iterations),
        "min_precision": float(min_precision),
        "iterations": fit.iterations,
        "passes": fit.evaluations,
        "converged": fit.converged,
        "solver_message": fit.message,
        "training_loss": fit.loss,
        "training_label_accuracy": fit.training_accuracy,
        "validation_label_accuracy": fit.validation_accuracy,
        "training_time_s": time.perf_counter() - started,
        "seed": seed,
        "num_shards": num_shards,
        "num_nodes": num_nodes,
    }
    return FitResult(encoder, vocabulary, mean, scale, fit.weights, fit.bias, thresholds, training)


def _merge_counts(parts) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in parts:
        for tag, n in counts.items():
            total[tag] = total.get(tag, 0) + n
    return total


def _vocabulary(
    train: dict[str, int], valid: dict[str, int], column: str, num_train: int, wanted: list[str] | None
) -> list[str]:
    """The tags to learn: every tag some training row carries (of ``wanted``, if given), with warnings
    for the ones that cannot be learned or cannot get a threshold."""
    if num_train == 0:
        raise InputError("no training rows are left after holding out the validation rows")
    if wanted is not None:
        absent = sorted(set(wanted) - set(train))
        if len(absent) == len(set(wanted)):
            raise InputError(
                f"no training image has any tag of the vocabulary {sorted(set(wanted))[:10]}; "
                f"check its spelling against the column {column!r}"
            )
        if absent:
            warnings.warn(
                f"{len(absent)} tag(s) of the vocabulary are on no training image and are left out: "
                f"{absent[:10]}",
                stacklevel=4,
            )
        train = {t: n for t, n in train.items() if t in set(wanted)}
        valid = {t: n for t, n in valid.items() if t in set(wanted)}
    if not train:
        raise InputError(
            f"no training image has a tag (column {column!r} holds only empty lists); "
            "a tagger needs tagged examples"
        )
    only_held_out = sorted(set(valid) - set(train))
    if only_held_out:
        warnings.warn(
            f"{len(only_held_out)} tag(s) appear only in the held-out rows and cannot be learned: "
            f"{only_held_out[:10]}; tag more training images with them",
            stacklevel=4,
        )
    once = sorted(t for t in train if train[t] + valid.get(t, 0) == 1)
    if once:
        warnings.warn(
            f"{len(once)} tag(s) appear on only one image, too few to learn well or to choose a threshold "
            f"on: {once[:10]}; they are trained, with threshold {DEFAULT_THRESHOLD}. Tag more images "
            "with them",
            stacklevel=4,
        )
    return sorted(train)


def _warn_thresholds(vocabulary: list[str], thresholds: Thresholds, num_valid: int) -> None:
    unset = [t for t, ok in zip(vocabulary, thresholds.chosen) if not ok]
    if unset and num_valid:
        warnings.warn(
            f"{len(unset)} tag(s) have no held-out image to choose a threshold on: {unset[:10]}; they use "
            f"{DEFAULT_THRESHOLD}",
            stacklevel=4,
        )


def _print_iteration(row: dict) -> None:
    valid = row["validation_accuracy"]
    print(f"  iteration {row['iteration']:>3}  passes {row['passes']:>3}  {row['elapsed_s']:7.2f}s  "
          f"loss {row['loss']:.5f}  label accuracy {row['training_accuracy']:.4f}"
          + (f" (held out {valid:.4f})" if valid is not None else ""))
