"""framelab.toolkits.vector_shards: vectors viewed where they lie, missing rows kept in place."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from framelab.frames import Frame, InputError, vectors_from_numpy
from framelab.toolkits.features import FeatureEncoder
from framelab.toolkits.vector_shards import (
    SEGMENT_ROWS,
    BlockLoader,
    open_vector_shards,
    shard_encode,
)


def test_a_float32_vector_block_is_viewed_not_copied():
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    table = pa.table({"v": vectors_from_numpy(X)})
    view, present = FeatureEncoder.plan(table.schema, None).encode_rows(table)
    assert np.shares_memory(view, table.column("v").chunk(0).values.to_numpy())
    assert present.all() and view.tolist() == X.tolist()


def test_missing_vectors_keep_their_place_and_nan_is_refused():
    X = np.ones((3, 2), dtype=np.float32)
    table = pa.table({"v": vectors_from_numpy(X, mask=np.array([False, True, False]))})
    matrix, present = FeatureEncoder.plan(table.schema, None).encode_rows(table)
    assert present.tolist() == [True, False, True] and matrix[1].tolist() == [0.0, 0.0]
    X[2, 1] = np.nan
    with pytest.raises(InputError, match="NaN"):
        FeatureEncoder.plan(table.schema, None).encode_rows(pa.table({"v": vectors_from_numpy(X)}))


def test_segments_cover_every_row_with_global_ids_in_order():
    small = [pa.table({"v": vectors_from_numpy(np.full((100, 2), i, np.float32))}) for i in range(3)]
    big = pa.table({"v": vectors_from_numpy(np.zeros((SEGMENT_ROWS + 5, 2), np.float32))})
    state = BlockLoader(("v",))(small + [big], [0, 100, 200, 300])
    encoder = FeatureEncoder.plan(small[0].schema, None)
    counts = shard_encode(state, encoder, None, pa.int64())
    ids = np.concatenate([s.ids for s in state["segments"]])
    assert ids.tolist() == list(range(300 + SEGMENT_ROWS + 5))
    assert counts["segments"] == [300, SEGMENT_ROWS, 5]
    assert [s.start for s in state["segments"]] == [0, 300, 300 + SEGMENT_ROWS]


def test_open_counts_rows_and_absent_rows():
    x = pa.array([1.0, None, 3.0, 4.0])
    vectors = open_vector_shards(Frame(pa.table({"x": x, "y": [1.0, 2.0, 3.0, 4.0]})), None, None)
    assert (vectors.num_rows, vectors.num_present, vectors.dim) == (4, 3, 2)
    assert vectors.absent_examples == [1]
    vectors.close()
