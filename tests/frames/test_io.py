"""Reading and writing frames (frames/io.py) on real files."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framelab.frames import Frame


def test_save_and_load_keep_schema_and_metadata(tmp_path):
    vectors = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    frame = Frame({"v": vectors, "label": list("abcab")})
    table = frame.to_arrow()
    meta_field = table.schema.field("v").with_metadata({b"framelab.provenance": b'{"model": "m"}'})
    frame = Frame(table.cast(pa.schema([meta_field, table.schema.field("label")])))
    frame.save(str(tmp_path / "f"))
    loaded = Frame.load(str(tmp_path / "f"))
    assert loaded.schema.field("v").metadata == {b"framelab.provenance": b'{"model": "m"}'}
    np.testing.assert_array_equal(loaded.to_numpy("v"), vectors)
    assert loaded.to_pydict()["label"] == list("abcab")


def test_distributed_save_writes_many_files_and_loads_back(tmp_path):
    frame = Frame({"x": list(range(100))}).repartition(4)
    frame.save(str(tmp_path / "d"))
    assert len(list((tmp_path / "d").glob("*.parquet"))) >= 2
    assert sorted(Frame.load(str(tmp_path / "d")).to_pydict()["x"]) == list(range(100))


def test_read_parquet_files_folders_globs_and_urls(tmp_path):
    for i in range(3):
        pq.write_table(pa.table({"x": [i, i]}), tmp_path / f"part{i}.parquet")
    assert Frame.read_parquet(str(tmp_path)).num_rows() == 6
    assert Frame.read_parquet(str(tmp_path / "part*.parquet")).num_rows() == 6
    assert Frame.read_parquet(f"file://{tmp_path}/part1.parquet").to_pydict() == {"x": [1, 1]}
    assert Frame.read_parquet([str(tmp_path / "part0.parquet"), str(tmp_path / "part2.parquet")]).num_rows() == 4
    assert Frame.read_parquet(str(tmp_path), columns=["x"]).columns == ["x"]


def test_read_csv_and_json(tmp_path):
    (tmp_path / "a.csv").write_text("x,name\n1,ann\n2,bob\n")
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps({"x": i}) for i in range(3)) + "\n")
    assert Frame.read_csv(str(tmp_path / "a.csv")).to_pydict() == {"x": [1, 2], "name": ["ann", "bob"]}
    assert Frame.read_json(str(tmp_path / "a.jsonl")).num_rows() == 3


def test_fsspec_memory_filesystem_round_trip():
    frame = Frame({"x": [1, 2, 3]})
    frame.save("memory://framelab-test/f")
    assert Frame.load("memory://framelab-test/f").to_pydict() == {"x": [1, 2, 3]}


def test_missing_paths_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        Frame.read_parquet(str(tmp_path / "nothing-here"))
    with pytest.raises(FileNotFoundError, match="no files match"):
        Frame.read_csv(str(tmp_path / "*.csv"))
    with pytest.raises(FileNotFoundError, match="no saved frame"):
        Frame.load(str(tmp_path / "gone"))


@pytest.mark.parametrize("where", ["driver", "cluster"])
def test_a_column_of_only_nulls_in_one_file_takes_the_other_files_type(tmp_path, where, monkeypatch):
    from framelab.frames import planner

    if where == "cluster":
        monkeypatch.setattr(planner, "LOCAL_BYTES", -1)
    pq.write_table(pa.table({"x": [1, 2], "error": pa.array(["bad", None])}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3], "error": pa.nulls(1)}), tmp_path / "b.parquet")
    frame = Frame.read_parquet(str(tmp_path))
    assert frame.dtypes == {"x": pa.int64(), "error": pa.string()}
    assert frame.sort("x").to_pydict() == {"x": [1, 2, 3], "error": ["bad", None, None]}
