"""Fitting a softmax (multinomial logistic) model on sharded rows with L-BFGS.

The driver holds only the parameter vector; every function evaluation is
one :meth:`ShardedArrays.map` round in which each shard returns its part of
the loss and gradient. The functions prefixed ``shard_`` run inside the
shard actors.

Objective (Turi Create's scaling, on standardised features)::

    sum_i w_i * crossentropy_i(W, b) + l2_penalty * ||W||^2        (b not penalised)

scikit-learn minimises ``C * sum_i loss_i + ||W||^2 / 2``, the same
minimiser when ``C = 1 / (2 * l2_penalty)``; with two classes both use one
coefficient vector (a sigmoid), with more both use one per class. The
optimiser sees the objective divided by ``sum_i w_i`` (as scikit-learn
does), which changes nothing but the scale of the gradient tolerance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from framelab.toolkits.features import FeatureEncoder, tag_lists, tag_matrix, target_values

# Rows per matrix product inside a shard: bounds the (rows, classes) temporaries.
_CHUNK_ROWS = 8192


# ------------------------------------------------------------ inside shards
@dataclass(frozen=True)
class ShardLoader:
    """Builds a shard's state from its blocks: training rows and held-out rows, still Arrow."""

    schema: pa.Schema
    columns: tuple[str, ...]
    num_train_rows: int  # rows at global offset >= this come from an explicit validation frame
    holdout_fraction: float  # > 0: hold out this fraction of the training rows
    seed: int

    def __call__(self, blocks: list[pa.Table], offsets: list[int]) -> dict:
        train, valid = [], []
        for block, start in zip(blocks, offsets):
            block = block.select(list(self.columns))
            if start >= self.num_train_rows:
                valid.append(block)
            elif self.holdout_fraction > 0:
                held = holdout_mask(np.arange(start, start + block.num_rows), self.holdout_fraction, self.seed)
                valid.append(block.filter(pa.array(held)))
                train.append(block.filter(pa.array(~held)))
            else:
                train.append(block)
        schema = self.schema.empty_table().select(list(self.columns)).schema
        return {"train": _concat(train, schema), "valid": _concat(valid, schema)}


def holdout_draws(row_ids: np.ndarray, seed: int) -> np.ndarray:
    """Each row's draw in [0, 1): a hash of (seed, global row id), so independent of blocks and nodes."""
    with np.errstate(over="ignore"):  # splitmix64 relies on uint64 wrap-around
        z = row_ids.astype(np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def holdout_mask(row_ids: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """True for rows held out: those whose draw (:func:`holdout_draws`) is under ``fraction``."""
    return holdout_draws(row_ids, seed) < fraction


def holdout_cut(num_rows: int, count: int, seed: int) -> float:
    """The ``fraction`` for :func:`holdout_mask` that holds out exactly ``count`` of rows ``0 .. num_rows - 1``.

    Above a million rows the draws are not all made in the driver: ``count / num_rows``
    holds out that many give or take a tenth of a percent.
    """
    if count <= 0:
        return 0.0
    if count >= num_rows:
        return 1.0
    if num_rows > 1_000_000:
        return count / num_rows
    return float(np.partition(holdout_draws(np.arange(num_rows), seed), count)[count])


def shard_observe(state: dict, encoder: FeatureEncoder, target: str) -> dict:
    """Levels, vector lengths and class counts of a shard (merged in the driver)."""
    out = {"train": encoder.observe(state["train"]), "valid": encoder.observe(state["valid"])}
    labels, counts = np.unique(target_values(state["train"], target), return_counts=True)
    out["classes"] = dict(zip(labels.tolist(), counts.tolist()))
    out["num_train"] = state["train"].num_rows
    out["num_valid"] = state["valid"].num_rows
    return out


def shard_observe_tags(state: dict, encoder: FeatureEncoder, tags_column: str) -> dict:
    """Vector lengths and, per tag, how many training and held-out rows carry it (merged in the driver)."""
    out = {"train": encoder.observe(state["train"]), "valid": encoder.observe(state["valid"])}
    for part in ("train", "valid"):
        rows, tags = tag_lists(state[part], tags_column)
        # A tag listed twice on one image counts once.
        pairs = set(zip(rows.tolist(), tags.tolist()))
        counts: dict[str, int] = {}
        for _, tag in pairs:
            counts[tag] = counts.get(tag, 0) + 1
        out[f"{part}_tags"] = counts
    out["num_train"] = state["train"].num_rows
    out["num_valid"] = state["valid"].num_rows
    return out


def shard_encode(
    state: dict, encoder: FeatureEncoder, target: str, classes: list, class_weights: list[float]
) -> tuple[int, np.ndarray, np.ndarray]:
    """Replace the Arrow rows by float32 matrices and class codes; return (n, mean, M2) for scaling."""
    index = {label: i for i, label in enumerate(classes)}
    for part, (x_key, y_key) in (("train", ("X", "y")), ("valid", ("Xv", "yv"))):
        table = state.pop(part)
        state[x_key] = encoder.encode(table)
        labels = target_values(table, target).tolist()
        # Held-out labels never seen in training can only be predicted wrong: code -1.
        state[y_key] = np.array([index.get(v, -1) for v in labels], dtype=np.int64)
    state["w"] = np.asarray(class_weights, dtype=np.float32)[state["y"]]
    return _moments(state["X"])


def shard_encode_tags(
    state: dict, encoder: FeatureEncoder, tags_column: str, vocabulary: list[str]
) -> tuple[int, np.ndarray, np.ndarray]:
    """Multi-label: float32 features and a 0/1 ``(rows, tags)`` matrix; return (n, mean, M2) for scaling."""
    for part, (x_key, y_key) in (("train", ("X", "Y")), ("valid", ("Xv", "Yv"))):
        table = state.pop(part)
        state[x_key] = encoder.encode(table)
        # Tags outside the vocabulary were counted in the observe pass; here they are only skipped.
        state[y_key], _ = tag_matrix(table, tags_column, vocabulary)
    return _moments(state["X"])


def _moments(X: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    n = X.shape[0]
    if n == 0:
        return 0, np.zeros(X.shape[1]), np.zeros(X.shape[1])
    mean = X.mean(axis=0, dtype=np.float64)
    m2 = np.zeros(X.shape[1])
    for s in range(0, n, _CHUNK_ROWS):
        m2 += ((X[s:s + _CHUNK_ROWS] - mean) ** 2).sum(axis=0)
    return n, mean, m2


def shard_standardize(state: dict, mean: np.ndarray, scale: np.ndarray) -> None:
    """Centre and scale the shard's matrices in place (float32)."""
    mean32, inv32 = mean.astype(np.float32), (1.0 / scale).astype(np.float32)
    for key in ("X", "Xv"):
        X = state[key]
        for s in range(0, X.shape[0], _CHUNK_ROWS):
            X[s:s + _CHUNK_ROWS] -= mean32
            X[s:s + _CHUNK_ROWS] *= inv32


def shard_loss_grad(state: dict, weights: np.ndarray, bias: np.ndarray) -> tuple:
    """(weighted loss, dW, db, weight sum, correct train, correct held-out) on one shard."""
    W = weights.astype(np.float32)
    b = bias.astype(np.float32)
    X, y, w = state["X"], state["y"], state["w"]
    binary = W.shape[1] == 1
    loss = 0.0
    gW = np.zeros(W.shape)
    gb = np.zeros(b.shape)
    correct = 0
    for s in range(0, X.shape[0], _CHUNK_ROWS):
        Xc, yc, wc = X[s:s + _CHUNK_ROWS], y[s:s + _CHUNK_ROWS], w[s:s + _CHUNK_ROWS]
        Z = Xc @ W + b
        if binary:
            z = Z[:, 0]
            yf = yc.astype(np.float32)
            loss += float(np.dot(wc, np.logaddexp(0.0, z) - yf * z))
            R = ((_sigmoid(z) - yf) * wc)[:, None]
            correct += int(((z > 0) == (yc == 1)).sum())
        else:
            correct += int((Z.argmax(axis=1) == yc).sum())
            Z -= Z.max(axis=1, keepdims=True)
            E = np.exp(Z)
            S = E.sum(axis=1)
            rows = np.arange(len(yc))
            loss += float(np.dot(wc, np.log(S) - Z[rows, yc]))
            R = E / S[:, None]
            R[rows, yc] -= 1.0
            R *= wc[:, None]
        gW += Xc.T @ R
        gb += R.sum(axis=0)
    return loss, gW, gb, float(w.sum(dtype=np.float64)), correct, _correct(state["Xv"], state["yv"], W, b)


def shard_hessian(state: dict, weights: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The shard's part of the binary loss's Hessian in (W, b): ``sum_i w_i p_i (1 - p_i) [x_i, 1] [x_i, 1]^T``."""
    X, w = state["X"], state["w"]
    W, b = weights[:, 0].astype(np.float64), float(bias[0])
    H = np.zeros((X.shape[1] + 1, X.shape[1] + 1))
    for s in range(0, X.shape[0], _CHUNK_ROWS):
        Xc = np.hstack([X[s:s + _CHUNK_ROWS].astype(np.float64), np.ones((min(_CHUNK_ROWS, X.shape[0] - s), 1))])
        p = _sigmoid(Xc[:, :-1] @ W + b)
        H += (Xc * (w[s:s + _CHUNK_ROWS] * p * (1.0 - p))[:, None]).T @ Xc
    return H


def coefficient_stderr(hessian: np.ndarray, l2_penalty: float, mean: np.ndarray, scale: np.ndarray) -> np.ndarray | None:
    """Standard errors of (weights, intercept) in the features' original units, or None where they are not defined.

    The covariance is the inverse Hessian of the objective at the fit (the
    penalty adds ``2 * l2_penalty`` to the weights' diagonal), carried from the
    standardised features to the original ones by the same linear map as the
    coefficients. A singular Hessian (a constant or duplicated feature, separable
    classes without a penalty) has no inverse: None.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.classifier._training import coefficient_stderr
        >>> coefficient_stderr(np.diag([4.0, 1.0]), 0.0, np.zeros(1), np.array([2.0])).round(3).tolist()
        [0.25, 1.0]
    """
    d = len(mean)
    H = hessian.copy()
    H[np.arange(d), np.arange(d)] += 2.0 * l2_penalty
    if not np.all(np.isfinite(H)) or np.linalg.cond(H) > 1e12:
        return None
    cov = np.linalg.inv(H)
    A = np.zeros((d + 1, d + 1))  # original (w, b) = A @ standardised (w, b)
    A[np.arange(d), np.arange(d)] = 1.0 / scale
    A[d, :d] = -mean / scale
    A[d, d] = 1.0
    variance = np.diag(A @ cov @ A.T)
    return np.sqrt(np.clip(variance, 0.0, None))


def shard_sigmoid_loss_grad(state: dict, weights: np.ndarray, bias: np.ndarray) -> tuple:
    """One-vs-rest: (loss, dW, db, rows, right train labels, right held-out labels) on one shard.

    The loss sums an independent logistic loss per (row, tag), so one joint
    minimisation reaches every tag's own optimum.
    """
    W = weights.astype(np.float32)
    b = bias.astype(np.float32)
    X, Y = state["X"], state["Y"]
    loss = 0.0
    gW = np.zeros(W.shape)
    gb = np.zeros(b.shape)
    correct = 0
    for s in range(0, X.shape[0], _CHUNK_ROWS):
        Xc, Yc = X[s:s + _CHUNK_ROWS], Y[s:s + _CHUNK_ROWS].astype(np.float32)
        Z = Xc @ W + b
        loss += float((np.logaddexp(0.0, Z) - Yc * Z).sum(dtype=np.float64))
        R = _sigmoid(Z) - Yc
        correct += int(((Z > 0) == (Yc > 0)).sum())
        gW += Xc.T @ R
        gb += R.sum(axis=0)
    Xv, Yv = state["Xv"], state["Yv"]
    correct_valid = int((((Xv @ W + b) > 0) == (Yv > 0)).sum()) if Xv.shape[0] else 0
    return loss, gW, gb, float(X.shape[0]), correct, correct_valid


def shard_sigmoid_scores(state: dict, weights: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The held-out rows' per-tag probabilities and their 0/1 tags (for choosing thresholds)."""
    Xv = state["Xv"]
    scores = _sigmoid(Xv @ weights.astype(np.float32) + bias.astype(np.float32))
    return scores.astype(np.float32), state["Yv"]


def _correct(X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray) -> int:
    if X.shape[0] == 0:
        return 0
    Z = X @ W + b
    pred = (Z[:, 0] > 0).astype(np.int64) if W.shape[1] == 1 else Z.argmax(axis=1)
    return int((pred == y).sum())


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    return pa.concat_tables(tables).combine_chunks() if len(tables) > 1 else tables[0]


# ------------------------------------------------------------- in the driver
def pooled_mean_scale(stats: list[tuple[int, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
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


@dataclass
class FitResult:
    """What L-BFGS found, in the standardised feature space."""

    weights: np.ndarray
    bias: np.ndarray
    loss: float
    iterations: int
    evaluations: int
    converged: bool
    message: str
    training_accuracy: float
    validation_accuracy: float | None
    progress: list[dict] = field(default_factory=list)


def fit_lbfgs(
    loss_grad: Callable[[np.ndarray, np.ndarray], list[tuple]],
    num_dims: int,
    num_outputs: int,
    *,
    l2_penalty: float,
    max_iterations: int,
    num_train: int,
    num_valid: int,
    tolerance: float = 1e-4,
    on_iteration: Callable[[dict], None] | None = None,
) -> FitResult:
    """Minimise the penalised cross-entropy with L-BFGS; ``loss_grad`` sums over the shards."""
    from scipy import optimize  # driver only: shards need not import it

    size_w = num_dims * num_outputs
    last: dict = {}

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W = theta[:size_w].reshape(num_dims, num_outputs)
        b = theta[size_w:]
        parts = loss_grad(W, b)
        total = sum(p[3] for p in parts) or 1.0
        loss = sum(p[0] for p in parts) + l2_penalty * float(np.dot(theta[:size_w], theta[:size_w]))
        gW = sum(p[1] for p in parts) + 2.0 * l2_penalty * W
        gb = sum(p[2] for p in parts)
        last.update(
            theta=theta.copy(), loss=loss / total, evaluations=last.get("evaluations", 0) + 1,
            train=sum(p[4] for p in parts) / max(num_train, 1),
            valid=sum(p[5] for p in parts) / num_valid if num_valid else None,
        )
        return loss / total, np.concatenate([gW.ravel(), gb]) / total

    progress: list[dict] = []
    started = time.perf_counter()

    def callback(intermediate_result) -> None:
        if not np.array_equal(intermediate_result.x, last.get("theta")):
            evaluate(intermediate_result.x)
        row = {
            "iteration": len(progress) + 1,
            "passes": last["evaluations"],
            "elapsed_s": time.perf_counter() - started,
            "loss": last["loss"],
            "training_accuracy": last["train"],
            "validation_accuracy": last["valid"],
        }
        progress.append(row)
        if on_iteration is not None:
            on_iteration(row)

    theta0 = np.zeros(size_w + num_outputs)
    result = optimize.minimize(
        evaluate, theta0, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": max_iterations, "gtol": tolerance, "ftol": 64 * np.finfo(float).eps,
                 "maxls": 50},
    )
    if not np.array_equal(result.x, last.get("theta")):
        evaluate(result.x)
    return FitResult(
        weights=result.x[:size_w].reshape(num_dims, num_outputs).copy(),
        bias=result.x[size_w:].copy(),
        loss=float(last["loss"]),
        iterations=int(result.nit),
        evaluations=int(last["evaluations"]),
        converged=bool(result.success),
        message=str(result.message),
        training_accuracy=float(last["train"]),
        validation_accuracy=last["valid"],
        progress=progress,
    )
