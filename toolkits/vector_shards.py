"""Feature vectors held in shard memory: what nearest neighbours and k-means search and cluster.

A frame's feature columns become, in each shard (:mod:`framelab.platform.sharded`),
float32 *segments* of at most :data:`SEGMENT_ROWS` rows: a block of one float32
vector column is viewed where it lies in Ray's object store (no copy); any
other block is encoded once. Rows whose features are missing (an image that
failed to decode) keep their place and their row id, marked absent, so
results still name every row by its position in the frame.

Example:
    >>> import numpy as np
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits.vector_shards import open_vector_shards
    >>> vectors = open_vector_shards(Frame({"x": [1.0, 2.0, None]}), features=None, label=None)
    >>> vectors.num_rows, vectors.num_present
    (3, 2)
    >>> vectors.close()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import ColumnNotFoundError, InputError
from framelab.platform import failures
from framelab.platform.resources import resident_pool
from framelab.toolkits.features import FeatureEncoder, check_frame, merge_observations

if TYPE_CHECKING:
    from framelab.frames import Frame

# Rows per segment: one (queries x SEGMENT_ROWS) score matrix stays a few tens
# of MB, and blocks smaller than this are joined so matrix products stay large.
SEGMENT_ROWS = 8192


@dataclass
class Segment:
    """Consecutive rows of a shard: vectors, their squared norms, presence and global row ids."""

    X: np.ndarray  # (rows, dim) float32, possibly a read-only view of an object-store block
    sq_norms: np.ndarray  # (rows,) float64
    present: np.ndarray  # (rows,) bool
    ids: np.ndarray  # (rows,) int64 global row ids
    start: int  # position of the first row within the shard

    @property
    def all_present(self) -> bool:
        """True when no row of the segment lacks its features."""
        return bool(self.present.all())


@dataclass(frozen=True)
class BlockLoader:
    """A shard's blocks, kept as Arrow tables of the feature and label columns (no copy)."""

    columns: tuple[str, ...]

    def __call__(self, blocks: list[pa.Table], offsets: list[int]) -> dict:
        kept = [(b.select(list(self.columns)), int(o)) for b, o in zip(blocks, offsets)]
        return {"blocks": kept}


def shard_observe(state: dict, encoder: FeatureEncoder) -> dict:
    """Vector lengths seen in a shard (for list columns of unknown length)."""
    observed = [encoder.observe(table) for table, _ in state["blocks"]]
    return {"levels": {}, "lengths": merge_observations(observed)[1]}


def shard_encode(state: dict, encoder: FeatureEncoder, label: str | None, label_type: pa.DataType) -> dict:
    """Turn a shard's blocks into segments; return its row count, present rows and a few absent row ids."""
    segments: list[Segment] = []
    labels: list[pa.ChunkedArray] = []
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    position = 0

    def flush() -> None:
        nonlocal position
        if not pending:
            return
        X = np.concatenate([p[0] for p in pending]) if len(pending) > 1 else pending[0][0]
        present = np.concatenate([p[1] for p in pending])
        ids = np.concatenate([p[2] for p in pending])
        segments.append(_segment(X, present, ids, position))
        position += len(ids)
        pending.clear()

    for table, offset in state.pop("blocks"):
        X, present = encoder.encode_rows(table)
        ids = np.arange(offset, offset + table.num_rows, dtype=np.int64)
        if label is not None:
            labels.append(table.column(label))
        if table.num_rows >= SEGMENT_ROWS:
            flush()
            for s in range(0, table.num_rows, SEGMENT_ROWS):
                e = min(s + SEGMENT_ROWS, table.num_rows)
                segments.append(_segment(X[s:e], present[s:e], ids[s:e], position))
                position += e - s
        else:
            pending.append((X, present, ids))
            if sum(len(p[2]) for p in pending) >= SEGMENT_ROWS:
                flush()
    flush()
    state["segments"] = segments
    state["dim"] = encoder.num_dims
    if label is not None:
        chunks = [c for column in labels for c in column.chunks]
        state["labels"] = pa.chunked_array(chunks, type=label_type)
    else:
        state["labels"] = None
    absent = [s.ids[~s.present][:3] for s in segments if not s.all_present]
    return {
        "segments": [len(s.ids) for s in segments],
        "rows": int(sum(len(s.ids) for s in segments)),
        "present": int(sum(int(s.present.sum()) for s in segments)),
        "absent_examples": np.concatenate(absent)[:3].tolist() if absent else [],
    }


def _segment(X: np.ndarray, present: np.ndarray, ids: np.ndarray, start: int) -> Segment:
    sq = np.empty(len(X), dtype=np.float64)
    for s in range(0, len(X), 2048):  # float64 copies of 2,048 rows at a time, not of the segment
        part = X[s:s + 2048].astype(np.float64)
        sq[s:s + 2048] = np.einsum("ij,ij->i", part, part)
    return Segment(X=X, sq_norms=sq, present=present, ids=ids, start=start)


def shard_labels(state: dict, positions: np.ndarray) -> pa.Array | None:
    """Labels of a shard's rows at ``positions`` (None when the model has no label column)."""
    labels = state.get("labels")
    if labels is None:
        return None
    return labels.take(pa.array(positions, pa.int64())).combine_chunks()


def rows_at(state: dict, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Global ids and vectors (a float32 copy) of a shard's rows at ``positions``."""
    segments = state["segments"]
    starts = np.array([s.start for s in segments])
    which = np.searchsorted(starts, positions, side="right") - 1
    ids = np.empty(len(positions), dtype=np.int64)
    X = np.empty((len(positions), state["dim"]), dtype=np.float32)
    for s in np.unique(which):
        rows = np.flatnonzero(which == s)
        local = positions[rows] - segments[s].start
        ids[rows] = segments[s].ids[local]
        X[rows] = segments[s].X[local]
    return ids, X


def present_positions(state: dict) -> np.ndarray:
    """Shard positions of the rows that have features."""
    parts = [s.start + np.flatnonzero(s.present) for s in state["segments"]]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


class VectorShards:
    """A frame's feature vectors loaded into shards, with what was learnt while loading them.

    Built by :func:`open_vector_shards`; ``shards`` is the
    :class:`~framelab.platform.sharded.ShardedArrays` whose states hold
    ``segments`` (a list of :class:`Segment`) and ``labels``.
    """

    def __init__(self, shards: Any, encoder: FeatureEncoder, label: str | None,
                 label_type: pa.DataType, counts: list[dict]):
        self.shards = shards
        self.encoder = encoder
        self.label = label
        self.label_type = label_type
        self.rows_per_shard = [c["rows"] for c in counts]
        self.segments_per_shard = [c["segments"] for c in counts]
        self.num_rows = int(sum(self.rows_per_shard))
        self.num_present = int(sum(c["present"] for c in counts))
        self.absent_examples = [i for c in counts for i in c["absent_examples"]][:3]

    @property
    def dim(self) -> int:
        """Length of the vectors."""
        return self.encoder.num_dims

    @property
    def num_absent(self) -> int:
        """Rows kept without features (missing values)."""
        return self.num_rows - self.num_present

    def report_absent(self, toolkit: str, action: str) -> None:
        """Count the rows without features in one warning (see :mod:`framelab.platform.failures`)."""
        if self.num_absent:
            examples = [f"row {i}: no {', '.join(self.encoder.names)}" for i in self.absent_examples]
            failures.report(toolkit, self.num_absent, self.num_rows, examples, action=action)

    def close(self) -> None:
        """Free the shards."""
        self.shards.close()


def open_vector_shards(
    frame: Frame,
    features: Any,
    label: str | None,
    *,
    toolkit: str = "this model",
    resident: bool = False,
    use_gpu: bool = False,
    encoder: FeatureEncoder | None = None,
) -> VectorShards:
    """Check a frame's feature columns and load them into shards.

    ``features=None`` takes every column but ``label``; strings are refused
    (these toolkits measure distances between numbers). ``resident=True``
    sizes the pool for actors that outlive the call (a model's reference
    data: see :func:`framelab.platform.resources.resident_pool`); otherwise
    the actors take whole CPUs, as a fit does, and should be closed after.
    ``encoder`` checks the frame against one already planned (a model's).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.vector_shards import open_vector_shards
        >>> v = open_vector_shards(Frame({"x": [1.0, 2.0], "y": [0.0, 1.0]}), ["x", "y"], None)
        >>> v.dim
        2
        >>> v.close()
    """
    from framelab.platform.sharded import ShardedArrays, plan_shards

    frame = check_frame(frame, "frame")
    schema = frame.schema
    if label is not None:
        if not isinstance(label, str):
            raise InputError(f"label must be a column name (a str) or None, got {type(label).__name__}")
        if label not in schema.names:
            raise ColumnNotFoundError([label], schema.names)
    if encoder is None:
        encoder = FeatureEncoder.plan(schema, label, features)
        strings = encoder.categorical()
        if strings:
            raise InputError(
                f"{toolkit} measures distances between numbers, but feature column(s) {strings} hold "
                "strings; drop them, pass features=[...] without them, or encode them as numbers first"
            )
    else:
        encoder.check_schema(schema)
    label_type = schema.field(label).type if label is not None else pa.int64()
    columns = tuple(dict.fromkeys(encoder.names + ([label] if label else [])))

    # No select() before sharding: on frames already in the object store it
    # would copy every block in a Ray Data stage; the shards pick columns.
    dataset = frame.to_ray().materialize()
    num_rows = dataset.count()
    if num_rows == 0:
        raise InputError(f"the frame is empty; {toolkit} needs rows with features")
    num_shards = plan_shards(dataset.size_bytes())
    kwargs: dict[str, Any] = {}
    if num_shards > 1 and resident:
        pool = resident_pool(use_gpu=use_gpu)
        num_shards = min(num_shards, pool.max_size) if not use_gpu else pool.max_size
        kwargs = {"cpus_per_shard": pool.num_cpus, "gpus_per_shard": pool.num_gpus, "threads_per_shard": 1}
    if dataset.num_blocks() < num_shards:
        # A block is never split between shards: cut the rows into as many blocks as shards.
        dataset = dataset.repartition(num_shards).materialize()
    refs = list(dataset.to_arrow_refs())
    shards = ShardedArrays(refs, BlockLoader(columns), num_shards=min(num_shards, len(refs)), **kwargs)
    try:
        del refs, dataset  # the shards hold the blocks now
        if encoder.unsized():
            _, lengths = merge_observations(shards.map(shard_observe, encoder))
            encoder = encoder.with_dims(lengths)
        if encoder.num_dims == 0:
            raise InputError("the feature columns hold empty vectors; there is nothing to measure")
        counts = shards.map(shard_encode, encoder, label, label_type)
    except BaseException:
        shards.close()
        raise
    return VectorShards(shards, encoder, label, label_type, counts)
