"""Initial centres on sharded vectors: greedy k-means++, and k-means|| when the shards are actors.

k-means++ (Arthur & Vassilvitskii 2007, with scikit-learn's greedy trials)
draws each centre with probability proportional to its squared distance to
the centres already chosen: three short rounds over the shards per centre.
k-means|| (Bahmani et al. 2012) draws about ``2k`` rows per round, in a few
rounds, each shard independently, then weighs them by the rows nearest to
each and reduces them to ``k`` with weighted k-means++ and Lloyd in the driver.
Every draw is seeded, per shard and round.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.kmeans.initialization import weighted_kmeans
    >>> X = np.array([[0.0], [0.1], [9.0], [9.2]])
    >>> centers = weighted_kmeans(X, np.ones(4), 2, np.random.default_rng(0))
    >>> sorted(np.round(centers[:, 0], 2).tolist())
    [0.05, 9.1]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from framelab.toolkits.vector_shards import present_positions, rows_at

# k-means|| rounds and oversampling factor (l = OVERSAMPLING * k), as in the paper's experiments.
PARALLEL_ROUNDS = 5
OVERSAMPLING = 2.0
# Weighted Lloyd iterations that reduce k-means||'s candidates to k centres.
RECLUSTER_ITERATIONS = 30


# ------------------------------------------------------------ inside shards
def shard_reset(state: dict) -> int:
    """Forget the distances to chosen centres; return the rows with features."""
    state["closest"] = [np.where(s.present, np.inf, 0.0) for s in state["segments"]]
    return int(sum(int(s.present.sum()) for s in state["segments"]))


def _sq_distances(X: np.ndarray, sq_norms: np.ndarray, centers: np.ndarray) -> np.ndarray:
    C = np.asarray(centers, dtype=np.float32)
    c_sq = np.einsum("ij,ij->i", C.astype(np.float64), C.astype(np.float64))
    D = (X @ (-2.0 * C).T).astype(np.float64)
    D += c_sq
    D += sq_norms[:, None]
    return np.maximum(D, 0.0)


def shard_update(state: dict, centers: np.ndarray) -> float:
    """Lower each row's squared distance to the nearest chosen centre; return the shard's potential."""
    total = 0.0
    for seg, closest in zip(state["segments"], state["closest"]):
        if len(centers):
            D = _sq_distances(seg.X, seg.sq_norms, centers).min(axis=1)
            np.minimum(closest, np.where(seg.present, D, 0.0), out=closest)
        total += float(closest[np.isfinite(closest)].sum())
    return total


def shard_trials(state: dict, candidates: np.ndarray) -> np.ndarray:
    """The shard's potential if each candidate were added (k-means++'s greedy trials)."""
    out = np.zeros(len(candidates))
    for seg, closest in zip(state["segments"], state["closest"]):
        D = _sq_distances(seg.X, seg.sq_norms, candidates)
        out += np.minimum(D, closest[:, None]).sum(axis=0)
    return out


def shard_pick(state: dict, values: np.ndarray, by_weight: bool) -> np.ndarray:
    """Rows by rank among present rows, or where the running sum of squared distances passes ``values``."""
    if not by_weight:
        positions = present_positions(state)[np.asarray(values, dtype=np.int64)]
        return rows_at(state, positions)[1]
    weights = np.concatenate(state["closest"])
    cumulative = np.cumsum(weights)
    at = np.minimum(np.searchsorted(cumulative, values, side="right"), len(weights) - 1)
    return rows_at(state, at.astype(np.int64))[1]


def shard_oversample(state: dict, factor: float, potential: float, seed: list) -> np.ndarray:
    """k-means||: each row drawn independently with probability ``factor * d^2 / potential``."""
    rng = np.random.default_rng(seed)
    weights = np.concatenate(state["closest"]) if state["closest"] else np.zeros(0)
    p = np.minimum(1.0, factor * weights / max(potential, 1e-300))
    chosen = np.flatnonzero(rng.random(len(p)) < p)
    return rows_at(state, chosen)[1]


def shard_nearest_counts(state: dict, candidates: np.ndarray) -> np.ndarray:
    """How many of the shard's rows each candidate is nearest to (k-means||'s weights)."""
    counts = np.zeros(len(candidates), dtype=np.int64)
    for seg in state["segments"]:
        X = seg.X if seg.all_present else seg.X[seg.present]
        sq = seg.sq_norms if seg.all_present else seg.sq_norms[seg.present]
        for s in range(0, len(X), 4096):
            nearest = _sq_distances(X[s:s + 4096], sq[s:s + 4096], candidates).argmin(axis=1)
            counts += np.bincount(nearest, minlength=len(candidates))
    return counts


# ------------------------------------------------------------- in the driver
def kmeans_plus_plus(shards: Any, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ over the shards: ``2 + log(k)`` candidates per centre, the best kept."""
    present = np.array(shards.map(shard_reset))
    centers = [_pick_uniform(shards, present, rng)]
    potentials = np.array(shards.map(shard_update, centers[0][None, :]))
    trials = 2 + int(math.log(k))
    for _ in range(1, k):
        candidates = _pick_weighted(shards, potentials, trials, rng)
        scores = np.sum(shards.map(shard_trials, candidates), axis=0)
        best = candidates[int(np.argmin(scores))]
        centers.append(best)
        potentials = np.array(shards.map(shard_update, best[None, :]))
    return np.array(centers, dtype=np.float64)


def kmeans_parallel(shards: Any, k: int, rng: np.random.Generator, seed: int) -> tuple[np.ndarray, int]:
    """k-means|| over the shards; (centres, number of candidates it reduced)."""
    present = np.array(shards.map(shard_reset))
    chosen = [_pick_uniform(shards, present, rng)[None, :]]
    potentials = np.array(shards.map(shard_update, chosen[0]))
    for round_ in range(PARALLEL_ROUNDS):
        potential = float(potentials.sum())
        if potential <= 0:
            break
        refs = [shards.submit(shard_oversample, OVERSAMPLING * k, potential, [seed, round_, i], shard=i)[0]
                for i in range(shards.num_shards)]
        drawn = np.concatenate(shards.get(refs))
        if len(drawn) == 0:
            continue
        chosen.append(drawn)
        potentials = np.array(shards.map(shard_update, drawn))
    candidates = np.concatenate(chosen).astype(np.float64)
    if len(candidates) < k:
        # Too few drawn (tiny or duplicated data): top up with k-means++ from the shards.
        extra = _pick_weighted(shards, potentials, k - len(candidates), rng)
        candidates = np.concatenate([candidates, extra])
    weights = np.sum(shards.map(shard_nearest_counts, candidates), axis=0).astype(np.float64)
    return weighted_kmeans(candidates, weights, k, rng), len(candidates)


def weighted_kmeans(X: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator,
                    iterations: int = RECLUSTER_ITERATIONS) -> np.ndarray:
    """k centres of weighted points: weighted greedy k-means++, then weighted Lloyd (in memory)."""
    X = np.asarray(X, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    sq = np.einsum("ij,ij->i", X, X)

    def dist(C: np.ndarray) -> np.ndarray:
        return np.maximum(sq[:, None] - 2.0 * X @ C.T + np.einsum("ij,ij->i", C, C)[None, :], 0.0)

    p = weights / weights.sum() if weights.sum() > 0 else None
    centers = [X[rng.choice(len(X), p=p)]]
    closest = dist(np.array(centers))[:, 0]
    trials = 2 + int(math.log(k))
    for _ in range(1, k):
        pot = weights * closest
        if pot.sum() <= 0:
            centers.append(X[rng.integers(len(X))])
            continue
        candidates = rng.choice(len(X), size=trials, p=pot / pot.sum())
        D = dist(X[candidates])
        best = int(np.argmin((weights[:, None] * np.minimum(D, closest[:, None])).sum(axis=0)))
        centers.append(X[candidates[best]])
        closest = np.minimum(closest, D[:, best])
    C = np.array(centers)
    for _ in range(iterations):
        labels = dist(C).argmin(axis=1)
        mass = np.bincount(labels, weights=weights, minlength=k)
        sums = np.zeros_like(C)
        np.add.at(sums, labels, weights[:, None] * X)
        nonempty = mass > 0
        new = C.copy()
        new[nonempty] = sums[nonempty] / mass[nonempty, None]
        if np.allclose(new, C):
            break
        C = new
    return C


def _pick_uniform(shards: Any, present: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shard = int(rng.choice(len(present), p=present / present.sum()))
    rank = int(rng.integers(present[shard]))
    return shards.get(shards.submit(shard_pick, np.array([rank]), False, shard=shard))[0][0].astype(np.float64)


def _pick_weighted(shards: Any, potentials: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    total = float(potentials.sum())
    if total <= 0:  # every row already is a centre: repeat one
        return np.repeat(_pick_uniform(shards, np.maximum(potentials, 1.0), rng)[None, :], n, axis=0)
    draws = rng.random(n) * total
    bounds = np.cumsum(potentials)
    owner = np.minimum(np.searchsorted(bounds, draws, side="right"), len(potentials) - 1)
    local = draws - np.concatenate([[0.0], bounds[:-1]])[owner]
    out = np.empty((n, 0))
    parts = {}
    for shard in np.unique(owner):
        rows = np.flatnonzero(owner == shard)
        parts[int(shard)] = (rows, shards.submit(shard_pick, local[rows], True, shard=int(shard))[0])
    for rows, ref in parts.values():
        values = shards.get([ref])[0]
        if out.shape[1] == 0:
            out = np.empty((n, values.shape[1]))
        out[rows] = values
    return out
