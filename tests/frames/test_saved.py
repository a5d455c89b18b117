"""The saved-frame format (frames/saved.py): what the manifest records, checked against the files themselves."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framelab.frames import Frame, InputError, saved


@pytest.mark.parametrize("blocks", [None, 3])
def test_the_manifest_lists_each_part_with_its_rows_size_and_sha256(tmp_path, blocks):
    frame = Frame({"x": list(range(30)), "s": [str(i) for i in range(30)]})
    frame = frame if blocks is None else frame.repartition(blocks)
    frame.save(str(tmp_path / "f"))
    document = json.loads((tmp_path / "f" / saved.MANIFEST_FILE).read_bytes())
    assert len(document["parts"]) == (blocks or 1)
    for part in document["parts"]:
        data = (tmp_path / "f" / part["file"]).read_bytes()
        assert part["bytes"] == len(data)
        assert part["sha256"] == hashlib.sha256(data).hexdigest()
        assert part["rows"] == pq.ParquetFile(tmp_path / "f" / part["file"]).metadata.num_rows
    assert document["num_rows"] == 30
    assert Frame.load(str(tmp_path / "f")).to_pydict() == frame.to_pydict()      # rows in order


def test_every_part_has_the_frames_schema_even_a_block_of_nulls(tmp_path):
    frame = Frame({"s": [None, None, "a", "b"]}).repartition(2)
    frame.save(str(tmp_path / "f"))
    manifest = saved.read_manifest(*saved.storage.filesystem(str(tmp_path / "f")))
    for part in manifest.parts:
        assert pq.read_schema(tmp_path / "f" / part.file).field("s").type == pa.string()
    assert Frame.load(str(tmp_path / "f")).to_pydict() == {"s": [None, None, "a", "b"]}


def test_an_empty_frame_saves_and_loads_with_its_schema(tmp_path):
    empty = Frame({"v": np.zeros((0, 3), dtype="float32"), "y": pa.array([], pa.string())})
    empty.save(str(tmp_path / "f"))
    loaded = Frame.load(str(tmp_path / "f"))
    assert loaded.num_rows() == 0 and loaded.schema.equals(empty.schema)


def test_a_frame_saved_by_an_older_framelab_is_refused_by_load_and_replaced_by_save(tmp_path):
    old = tmp_path / "f"
    old.mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), old / "part-00000.parquet")
    (old / "_framelab_schema.arrow").write_bytes(pa.schema([("x", pa.int64())]).serialize().to_pybytes())
    with pytest.raises(InputError, match="no _framelab_manifest.json"):
        Frame.load(str(old))
    assert Frame.read_parquet(str(old)).to_pydict() == {"x": [1, 2]}         # its rows are still readable
    Frame.read_parquet(str(old)).save(str(old))
    assert Frame.load(str(old)).to_pydict() == {"x": [1, 2]}
    listed = [p.file for p in saved.read_manifest(*saved.storage.filesystem(str(old))).parts]
    assert sorted(p.name for p in old.iterdir()) == sorted([saved.MANIFEST_FILE, *listed])   # the old files are gone
