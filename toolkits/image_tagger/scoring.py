"""From a block's features to its tags: per-tag scores, then each row's best tags as a list column.

Two scorers: :class:`Rollup` (out of the box: the network's ImageNet logits,
a softmax, then each broader tag sums the probabilities of the classes below
it) and :class:`OneVsRest` (trained: one logistic model per tag on deep
features). :class:`TagScores` is the column expression ``tag()`` adds, run
block by block where the rows are.

Order: a broader tag scores at least as much as any tag below it, so by score
alone "animal" would come first. When the scorer knows which tags are finer
(:attr:`Rollup.finer`), a row's tags go finest first instead: the finest
confident tag, then the broader tags above it, finest to broadest, then the
next finest tag not yet listed, and so on; ``k`` keeps the first ``k``.

Example:
    >>> import numpy as np
    >>> from framelab.toolkits.image_tagger.scoring import top_tags
    >>> scores = np.array([[0.2, 0.9, 0.6], [0.1, 0.0, 0.05]], np.float32)
    >>> top_tags(scores, ["cat", "animal", "dog"], k=2, thresholds=np.full(3, 0.1)).to_pylist()[0]
    [{'tag': 'animal', 'score': 0.8999999761581421}, {'tag': 'dog', 'score': 0.6000000238418579}]
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from framelab.frames.expressions import ColumnExpr
from framelab.frames.vectors import vectors_to_numpy

TAG_STRUCT = pa.struct([pa.field("tag", pa.string()), pa.field("score", pa.float32())])
TAGS_TYPE = pa.list_(TAG_STRUCT)


@dataclass(frozen=True, eq=False)
class Rollup:
    """Out-of-the-box scores: softmax over class logits, then sums up the tag hierarchy.

    Tag ``j`` covers the classes ``indices[indptr[j]:indptr[j + 1]]``; its
    score is the sum of their probabilities.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_tagger.scoring import Rollup
        >>> r = Rollup(indptr=np.array([0, 1, 3]), indices=np.array([0, 0, 1]), num_classes=2)
        >>> r.scores(np.log(np.array([[0.25, 0.75]], np.float32))).round(2).tolist()
        [[0.25, 1.0]]
    """

    indptr: np.ndarray
    indices: np.ndarray
    num_classes: int

    @functools.cached_property
    def _matrix(self):
        from scipy import sparse

        num_tags = len(self.indptr) - 1
        data = np.ones(len(self.indices), dtype=np.float32)
        # (tags, classes): each row sums the classes a tag covers.
        return sparse.csr_matrix((data, self.indices, self.indptr), shape=(num_tags, self.num_classes))

    @property
    def num_inputs(self) -> int:
        """Length of the feature vectors it reads (the network's class logits).

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import Rollup
            >>> Rollup(np.array([0, 1]), np.array([0]), num_classes=3).num_inputs
            3
        """
        return self.num_classes

    def scores(self, logits: np.ndarray) -> np.ndarray:
        """``(rows, tags)`` float32 scores in [0, 1] from ``(rows, classes)`` logits.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import Rollup
            >>> both = Rollup(np.array([0, 2]), np.array([0, 1]), num_classes=2)
            >>> both.scores(np.array([[3.0, -1.0]], np.float32)).tolist()  # one tag over both classes
            [[1.0]]
        """
        z = logits.astype(np.float32, copy=True)
        z -= z.max(axis=1, keepdims=True) if len(z) else 0
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        out = np.asarray((self._matrix @ z.T).T, dtype=np.float32)
        return np.clip(out, 0.0, 1.0, out=out)  # sums of many floats may pass 1 by an ulp

    @functools.cached_property
    def finer(self) -> TagOrder:
        """Which tags are finer than which: a tag is finer than every tag covering all of its classes.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import Rollup
            >>> order = Rollup(indptr=np.array([0, 1, 3]), indices=np.array([0, 0, 1]), num_classes=2).finer
            >>> order.sizes.tolist(), order.broader.tolist()  # tag 1 covers tag 0's class and another
            ([1, 2], [[False, True], [False, False]])
        """
        m = self._matrix
        sizes = np.diff(self.indptr).astype(np.int64)
        shared = np.asarray((m @ m.T).todense())  # classes each pair of tags has in common
        broader = shared >= sizes[:, None]  # b covers every class of a
        np.fill_diagonal(broader, False)
        return TagOrder(sizes=sizes, broader=broader)


@dataclass(frozen=True, eq=False)
class TagOrder:
    """How specific each tag is: ``sizes[t]`` classes under tag ``t``; ``broader[a, b]``: b covers all of a."""

    sizes: np.ndarray
    broader: np.ndarray

    def finest_first(self, kept: np.ndarray, scores: np.ndarray, k: int | None) -> list[int]:
        """The tags ``kept`` (indices) in finest-first chains: a tag, then its broader tags; at most ``k``.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import TagOrder
            >>> order = TagOrder(np.array([1, 1, 2]), np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]], bool))
            >>> order.finest_first(np.array([0, 1, 2]), np.array([0.3, 0.6, 0.9]), None)  # 2 is above 0 and 1
            [1, 2, 0]
        """
        # Finest first, then the best score; ties keep vocabulary order (lexsort is stable).
        candidates = kept[np.lexsort((kept, -scores[kept], self.sizes[kept]))]
        listed: list[int] = []
        seen = np.zeros(len(self.sizes), dtype=bool)
        for t in candidates:
            if seen[t]:
                continue
            above = candidates[self.broader[t, candidates] & ~seen[candidates]]
            chain = [int(t)] + [int(b) for b in above]  # candidates' order: finest to broadest
            seen[chain] = True
            listed.extend(chain)
            if k is not None and len(listed) >= k:
                return listed[:k]
        return listed


@dataclass(frozen=True, eq=False)
class OneVsRest:
    """Trained scores: standardise the features, then one logistic model per tag.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_tagger.scoring import OneVsRest
        >>> m = OneVsRest(mean=np.zeros(1), scale=np.ones(1), weights=np.array([[2.0, -2.0]]), bias=np.zeros(2))
        >>> m.scores(np.array([[1.0]], np.float32)).astype(float).round(3).tolist()
        [[0.881, 0.119]]
    """

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # (features, tags), in the standardised space
    bias: np.ndarray

    @property
    def num_inputs(self) -> int:
        """Length of the feature vectors it reads.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import OneVsRest
            >>> OneVsRest(np.zeros(4), np.ones(4), np.zeros((4, 2)), np.zeros(2)).num_inputs
            4
        """
        return len(self.mean)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``(rows, tags)`` float32 probabilities.

        The arithmetic is the training shards' (float32, the same order), so
        a held-out image scores here what it scored when its tag's threshold
        was chosen.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import OneVsRest
            >>> m = OneVsRest(np.ones(1), np.full(1, 2.0), np.array([[4.0]]), np.zeros(1))
            >>> m.scores(np.array([[1.0], [3.0]], np.float32)).astype(float).round(3).tolist()  # (x - 1) / 2 * 4
            [[0.5], [0.982]]
        """
        X = features.astype(np.float32, copy=True)
        X -= self.mean.astype(np.float32)
        X *= (1.0 / self.scale).astype(np.float32)
        z = X @ self.weights.astype(np.float32) + self.bias.astype(np.float32)
        return 0.5 * (1.0 + np.tanh(0.5 * z))


def top_tags(
    scores: np.ndarray,
    names: list[str] | pa.Array,
    k: int | None,
    thresholds: np.ndarray,
    missing: np.ndarray | None = None,
    order: TagOrder | None = None,
) -> pa.ListArray:
    """Each row's tags scoring at least their threshold, at most ``k``: finest first with an ``order``, else best first.

    Without ``order``, ties keep vocabulary order. Rows where ``missing`` is
    True get a null list (no features, so no tags).

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_tagger.scoring import top_tags
        >>> s = np.array([[0.5, 0.5, 0.9], [0.0, 0.0, 0.0]], np.float32)
        >>> out = top_tags(s, ["b", "a", "c"], k=None, thresholds=np.full(3, 0.4), missing=np.array([False, True]))
        >>> [[t["tag"] for t in row] if row is not None else None for row in out.to_pylist()]
        [['c', 'b', 'a'], None]
    """
    names = names if isinstance(names, pa.Array) else pa.array(list(names), pa.string())
    n, num_tags = scores.shape
    keep = scores >= thresholds
    if order is not None:
        return _finest_first(scores, keep, names, k, order, missing)
    masked = np.where(keep, scores, -np.inf)
    # A stable sort keeps equal scores in vocabulary order, the same on every node.
    order = np.argsort(-masked, axis=1, kind="stable")
    if k is not None and k < num_tags:
        order = order[:, :k]
    best = np.take_along_axis(masked, order, axis=1)
    chosen = np.isfinite(best)
    if missing is not None:
        chosen[missing] = False
    counts = chosen.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    values = pa.StructArray.from_arrays(
        [names.take(pa.array(order[chosen])), pa.array(best[chosen].astype(np.float32))],
        fields=list(TAG_STRUCT),
    )
    mask = None if missing is None or not missing.any() else pa.array(missing)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=TAGS_TYPE, mask=mask)


def _finest_first(scores, keep, names, k, order: TagOrder, missing) -> pa.ListArray:
    rows = [[] if missing is not None and missing[r] else order.finest_first(np.flatnonzero(keep[r]), scores[r], k)
            for r in range(len(scores))]
    offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    flat = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(offsets[-1]))
    row_of = np.repeat(np.arange(len(rows)), np.diff(offsets))
    values = pa.StructArray.from_arrays(
        [names.take(pa.array(flat)), pa.array(scores[row_of, flat].astype(np.float32))], fields=list(TAG_STRUCT)
    )
    mask = None if missing is None or not missing.any() else pa.array(missing)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=TAGS_TYPE, mask=mask)


@dataclass(frozen=True, eq=False)
class TagScores(ColumnExpr):
    """The column ``tag()`` adds: each row's best tags from its features column, block by block.

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.image_tagger.scoring import OneVsRest, TagScores
        >>> scorer = OneVsRest(np.zeros(1), np.ones(1), np.array([[3.0, -3.0]]), np.zeros(2))
        >>> expr = TagScores("f", scorer, ("sunny", "cloudy"), k=1, thresholds=np.full(2, 0.5))
        >>> [t["tag"] for t in Frame({"f": np.array([[1.0], [-1.0]], np.float32)}).with_column("tags", expr)["tags"][1].as_py()]
        ['cloudy']
    """

    features: str
    scorer: Any  # Rollup or OneVsRest
    names: tuple[str, ...]
    k: int | None
    thresholds: np.ndarray
    warn: bool = field(default=True)

    def input_columns(self) -> list[str]:
        """The features column.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.image_tagger.scoring import OneVsRest, TagScores
            >>> scorer = OneVsRest(np.zeros(1), np.ones(1), np.ones((1, 1)), np.zeros(1))
            >>> TagScores("f", scorer, ("a",), k=1, thresholds=np.zeros(1)).input_columns()
            ['f']
        """
        return [self.features]

    def output_type(self, schema: pa.Schema) -> pa.DataType:
        """A list of (tag, score) structs, whatever the input.

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.toolkits.image_tagger.scoring import OneVsRest, TagScores
            >>> scorer = OneVsRest(np.zeros(1), np.ones(1), np.ones((1, 1)), np.zeros(1))
            >>> TagScores("f", scorer, ("a",), k=1, thresholds=np.zeros(1)).output_type(pa.schema([]))
            ListType(list<item: struct<tag: string, score: float>>)
        """
        return TAGS_TYPE

    def evaluate(self, table: pa.Table) -> pa.Array:
        """The tags of one block (null where the features are null: the image did not decode).

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.frames import vectors_from_numpy
            >>> from framelab.toolkits.image_tagger.scoring import OneVsRest, TagScores
            >>> scorer = OneVsRest(np.zeros(1), np.ones(1), np.full((1, 1), 5.0), np.zeros(1))
            >>> block = pa.table({"f": vectors_from_numpy(np.array([[1.0], [-1.0]], np.float32))})
            >>> rows = TagScores("f", scorer, ("sunny",), k=1, thresholds=np.full(1, 0.5)).evaluate(block)
            >>> [[(t["tag"], round(t["score"], 3)) for t in row] for row in rows.to_pylist()]
            [[('sunny', 0.993)], []]
        """
        column = table.column(self.features)
        missing = column.is_null().to_numpy(zero_copy_only=False) if column.null_count else None
        features = vectors_to_numpy(column, fill=0.0) if len(column) else np.zeros((0, self.scorer.num_inputs))
        scores = self.scorer.scores(features)
        if missing is not None and self.warn:
            from framelab.platform import failures

            # Counted once per job with the other stages' failures, not warned per block.
            failures.report("image tagger: images without features (undecodable)", int(missing.sum()),
                            len(missing), action="kept with no tags (null)", unit="image(s)")
        return top_tags(scores, self.names, self.k, self.thresholds, missing, getattr(self.scorer, "finer", None))
