"""Frames on disk and readers: saves that replace whole, loads that read only what the save wrote, readers that name what they refuse.

Every save and load runs on a local folder and on the SeaweedFS S3 server (no
rename there: the manifest, written last in one PUT, is the commit), for a
frame held in the driver and for one written by Ray Data on the cluster.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framelab.frames import Frame, InputError, SchemaMismatchError, planner, saved
from framelab.frames.images.read import ImageReadError
from framelab.toolkits import datasets


class Crash(BaseException):
    """A process dying at this point of a save (BaseException: nothing catches it on the way out)."""


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: a reader that opens a named pipe would block the suite forever."""

    def expired(signum, frame):
        raise AssertionError(f"the read did not finish in {seconds} s: did it open a named pipe?")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(params=["local", "s3"])
def place(request, tmp_path):
    """(url, storage_options, filesystem, folder) of an empty frame location, on local disk or on S3."""
    if request.param == "local":
        import fsspec

        return str(tmp_path / "frame"), None, fsspec.filesystem("file"), str(tmp_path / "frame")
    server = request.getfixturevalue("s3_server")
    bucket = server.make_bucket("reliability")
    prefix = f"{bucket}/{tmp_path.name}/frame"
    return f"s3://{prefix}", server.storage_options, server.filesystem(), prefix


def _frame(columns: dict, where: str) -> Frame:
    """The same rows held in the driver, or spread over the cluster (written there by Ray Data)."""
    frame = Frame(columns)
    return frame.repartition(3) if where == "cluster" else frame


def _load(place) -> dict:
    url, options, _, _ = place
    return Frame.load(url, storage_options=options).to_pydict()


def _files(place) -> list[str]:
    _, _, fs, folder = place
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls(folder, detail=False))


@pytest.mark.parametrize("where", ["driver", "cluster"])
def test_saving_twice_replaces_the_frame_and_never_mixes_rows_or_columns(place, where, tally):
    url, options, _, _ = place
    ten = {"x": list(range(10))}
    _frame(ten, where).save(url, storage_options=options)
    _frame(ten, where).save(url, storage_options=options)
    assert _load(place) == ten
    Frame({"x": [7, 8, 9]}).save(url, storage_options=options)        # a driver save over a cluster save
    assert _load(place) == {"x": [7, 8, 9]}
    _frame({"y": ["a", "b", "c", "d"]}, where).save(url, storage_options=options)   # other columns
    assert _load(place) == {"y": ["a", "b", "c", "d"]}
    assert Frame.read_parquet(url, storage_options=options).to_pydict() == {"y": ["a", "b", "c", "d"]}
    parts = [f for f in _files(place) if f.endswith(".parquet")]
    assert len(parts) == len(saved.read_manifest(place[2], place[3]).parts)   # the replaced parts are gone
    tally.bad_input(3)
    tally.rows(4, len(_load(place)["y"]))


def test_save_modes_error_and_append(place, tally):
    url, options, _, _ = place
    Frame({"x": [1, 2]}).save(url, storage_options=options, mode="error")   # a new folder: fine
    with pytest.raises(InputError, match="already holds a frame.*mode='overwrite'"):
        Frame({"x": [3]}).save(url, storage_options=options, mode="error")
    Frame({"x": [3, 4, 5]}).repartition(2).save(url, storage_options=options, mode="append")
    assert _load(place) == {"x": [1, 2, 3, 4, 5]}
    with pytest.raises(SchemaMismatchError, match="cannot append.*'x: int64'.*'x: string'"):
        Frame({"x": ["a"]}).save(url, storage_options=options, mode="append")
    with pytest.raises(InputError, match="mode must be one of"):
        Frame({"x": [1]}).save(url, storage_options=options, mode="replace")
    assert _load(place) == {"x": [1, 2, 3, 4, 5]}
    tally.bad_input(3)
    tally.rows(5, len(_load(place)["x"]))


POINTS = ["while writing the parts", "before the manifest", "before removing the old parts"]


@pytest.mark.parametrize("point", POINTS)
def test_an_interrupted_overwrite_leaves_the_old_frame_or_the_new_never_a_mix(place, point, monkeypatch, tally):
    url, options, fs, folder = place
    Frame({"x": [1, 2, 3]}).save(url, storage_options=options)
    real_write, real_publish = saved._WritePart.write, saved.write_atomically

    def write(self, block):
        raise Crash("part")

    def write_file(fs_, path, data):
        if path.endswith(saved.MANIFEST_FILE):
            raise Crash(path)
        real_publish(fs_, path, data)

    def remove_stale(fs_, paths, listed):
        raise Crash("clean-up")

    if point == POINTS[0]:
        monkeypatch.setattr(saved._WritePart, "write", write)
    elif point == POINTS[1]:
        monkeypatch.setattr(saved, "write_atomically", write_file)
    else:
        monkeypatch.setattr(saved, "_remove_stale", remove_stale)
    with pytest.raises(Crash):
        Frame({"y": ["new"] * 5}).save(url, storage_options=options)
    survivor = {"y": ["new"] * 5} if point == POINTS[2] else {"x": [1, 2, 3]}
    assert _load(place) == survivor
    assert Frame.read_parquet(url, storage_options=options).to_pydict() == survivor
    monkeypatch.setattr(saved._WritePart, "write", real_write)
    monkeypatch.setattr(saved, "write_atomically", real_publish)
    monkeypatch.undo()
    Frame({"z": [0.5]}).save(url, storage_options=options)             # the next save works, and replaces whole
    assert _load(place) == {"z": [0.5]}
    listed = [p.file for p in saved.read_manifest(fs, folder).parts]
    assert _files(place) == sorted([saved.MANIFEST_FILE, *listed])    # what the crash left is gone
    tally.fault()
    tally.rows(len(next(iter(survivor.values()))), len(next(iter(survivor.values()))))


def test_a_new_local_frame_folder_is_complete_or_absent(tmp_path, monkeypatch, tally):
    monkeypatch.setattr(saved, "write_atomically", lambda fs, path, data: (_ for _ in ()).throw(Crash(path)))
    with pytest.raises(Crash):
        Frame({"x": [1]}).save(str(tmp_path / "new"))
    assert sorted(os.listdir(tmp_path)) == []                          # no folder, no staging left behind
    tally.fault()


def test_load_refuses_a_folder_that_lost_a_part_or_whose_part_changed(place, tally):
    url, options, fs, folder = place
    Frame({"x": list(range(40))}).repartition(4).save(url, storage_options=options)
    parts = [f for f in _files(place) if f.endswith(".parquet")]
    assert len(parts) == 4
    lost = f"{folder}/{parts[1]}"
    data = fs.cat_file(lost)
    fs.rm_file(lost)
    with pytest.raises(InputError, match=f"{parts[1]} is listed in _framelab_manifest.json but is missing"):
        Frame.load(url, storage_options=options)
    with pytest.raises(InputError, match="is missing"):
        Frame.read_parquet(url, storage_options=options)
    fs.pipe_file(lost, data + b"\0")
    with pytest.raises(InputError, match=f"{parts[1]} has {len(data) + 1} bytes, but _framelab_manifest.json says {len(data)}"):
        Frame.load(url, storage_options=options)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    fs.pipe_file(lost, bytes(flipped))                                 # same size, other bytes
    with pytest.raises(InputError, match="does not match the sha256"):
        Frame.load(url, storage_options=options, verify=True)
    fs.pipe_file(lost, data)
    assert sorted(Frame.load(url, storage_options=options, verify=True).to_pydict()["x"]) == list(range(40))
    tally.bad_input(3)
    tally.rows(40, Frame.load(url, storage_options=options).num_rows())


def test_load_reads_only_what_the_manifest_lists(place, tally):
    url, options, fs, folder = place
    Frame({"x": [1, 2, 3]}).save(url, storage_options=options)
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": [100], "other": ["stray"]}), buffer)
    stray = buffer.getvalue().to_pybytes()
    fs.pipe_file(f"{folder}/stray.parquet", stray)                      # a stray file of other columns
    fs.pipe_file(f"{folder}/part-00000.parquet", stray)                 # a leftover part of an older framelab
    fs.makedirs(f"{folder}/_temporary/0", exist_ok=True)
    fs.pipe_file(f"{folder}/_temporary/0/part-1.parquet", stray)        # a writer's temporary folder
    Frame({"x": [9]}).save(f"{url}/sub", storage_options=options)       # a frame saved into a sub-folder
    assert _load(place) == {"x": [1, 2, 3]}
    assert Frame.read_parquet(url, storage_options=options).to_pydict() == {"x": [1, 2, 3]}
    tally.bad_input(4)
    tally.rows(3, len(_load(place)["x"]))


def test_load_refuses_a_folder_without_a_manifest_naming_the_fix(place, tally):
    url, options, fs, folder = place
    fs.makedirs(folder, exist_ok=True)
    fs.pipe_file(f"{folder}/part-0.parquet", _parquet({"x": [1]}))
    with pytest.raises(InputError, match="has no _framelab_manifest.json.*Frame.read_parquet"):
        Frame.load(url, storage_options=options)
    fs.pipe_file(f"{folder}/_framelab_manifest.json", b'{"format": "framelab.frame"}')
    with pytest.raises(InputError, match="_framelab_manifest.json is not a framelab frame manifest"):
        Frame.load(url, storage_options=options)
    tally.bad_input(2)


def test_a_save_never_replaces_a_folder_of_other_files(tmp_path, tally):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"not a frame")
    with pytest.raises(InputError, match="not a saved frame.*does not replace it"):
        Frame({"x": [1]}).save(str(tmp_path / "photos"))
    assert os.listdir(tmp_path / "photos") == ["cat.jpg"]
    tally.bad_input()


def _parquet(columns: dict) -> bytes:
    buffer = pa.BufferOutputStream()
    pq.write_table(pa.table(columns), buffer)
    return buffer.getvalue().to_pybytes()


@pytest.fixture(params=["driver", "cluster"])
def where(request, monkeypatch):
    """Read in the driver (pyarrow), or on the cluster (Ray Data): the planner decides by size."""
    if request.param == "cluster":
        monkeypatch.setattr(planner, "LOCAL_BYTES", -1)
    return request.param


def test_read_parquet_refuses_a_file_of_other_columns_by_name_unless_asked_to_unify(tmp_path, where, tally):
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"x": [3]}), tmp_path / "b.parquet")
    pq.write_table(pa.table({"y": ["odd"]}), tmp_path / "c.parquet")
    with pytest.raises(InputError, match=r"c\.parquet does not match .*a\.parquet.*union_schemas=True"):
        Frame.read_parquet(str(tmp_path))
    both = Frame.read_parquet(str(tmp_path), union_schemas=True).to_pydict()
    assert both == {"x": [1, 2, 3, None], "y": [None, None, None, "odd"]}
    pq.write_table(pa.table({"x": ["text"]}), tmp_path / "c.parquet")
    with pytest.raises(InputError, match=r"c\.parquet.*column 'x' is string, in the first file int64"):
        Frame.read_parquet(str(tmp_path))
    tally.bad_input(2)
    tally.rows(4, len(both["x"]))


def test_csv_files_with_other_headers_are_refused_by_name_unless_asked_to_unify(tmp_path, where, tally):
    (tmp_path / "a.csv").write_text("x,y\n1,a\n")
    (tmp_path / "b.csv").write_text("x,z\n2,b\n")
    with pytest.raises(InputError, match=r"b\.csv does not match .*a\.csv.*\['x', 'z'\]"):
        Frame.read_csv(str(tmp_path))
    assert Frame.read_csv(str(tmp_path), union_schemas=True).to_pydict() == {
        "x": [1, 2], "y": ["a", None], "z": [None, "b"]}
    tally.bad_input()


def test_parse_errors_name_the_file_and_line(tmp_path, where, tally):
    (tmp_path / "good.csv").write_text("x,y\n1,2\n")
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n3,4\n5\n6,7\n")
    with pytest.raises(InputError, match=r"cannot parse .*bad\.csv as CSV at line 4: .*Expected 2 columns, got 1"):
        Frame.read_csv(str(tmp_path)).to_pydict()
    (tmp_path / "a.jsonl").write_text('{"x": 1}\n{"x": \n')
    with pytest.raises(InputError, match=r"a\.jsonl as JSON.*row"):
        Frame.read_json(str(tmp_path / "a.jsonl")).to_pydict()
    tally.bad_input(2)


def test_compressed_and_upper_case_files_are_read_beside_plain_ones(tmp_path, where, tally):
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "B.CSV").write_text("x\n2\n")
    (tmp_path / "c.csv.gz").write_bytes(gzip.compress(b"x\n3\n"))
    assert sorted(Frame.read_csv(str(tmp_path)).to_pydict()["x"]) == [1, 2, 3]
    (tmp_path / "d.json.gz").write_bytes(gzip.compress(b'{"x": 4}\n{"x": 5}\n'))
    (tmp_path / "e.JSONL").write_text('{"x": 6}\n')
    assert sorted(Frame.read_json(str(tmp_path)).to_pydict()["x"]) == [4, 5, 6]
    tally.rows(6, 6)


def test_hive_partition_folders_are_kept_as_columns(tmp_path, where, tally):
    for year, city, rows in [(2023, "Paris", [1, 2]), (2024, "New York", [3]), (2024, "Paris", [4])]:
        folder = tmp_path / f"year={year}" / f"city={city.replace(' ', '%20')}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": rows}), folder / "part-0.parquet")
    frame = Frame.read_parquet(str(tmp_path))
    assert frame.dtypes == {"x": pa.int64(), "year": pa.int64(), "city": pa.string()}
    got = sorted(zip(*frame.to_pydict().values()))
    assert got == [(1, 2023, "Paris"), (2, 2023, "Paris"), (3, 2024, "New York"), (4, 2024, "Paris")]
    import polars as pl

    assert sorted(frame.filter(pl.col("year") == 2024).to_pydict()["x"]) == [3, 4]
    assert Frame.read_parquet(str(tmp_path), columns=["city"]).num_rows() == 4
    tally.rows(4, len(got))


def test_hidden_and_underscore_files_and_folders_are_skipped_at_every_depth(tmp_path, tally):
    (tmp_path / "sub" / "_temporary").mkdir(parents=True)
    (tmp_path / ".cache").mkdir()
    (tmp_path / "a.csv").write_text("x\n1\n")
    (tmp_path / "sub" / "b.csv").write_text("x\n2\n")
    for skipped in ["_SUCCESS.csv", ".hidden.csv", "sub/_temporary/c.csv", ".cache/d.csv"]:
        (tmp_path / skipped).write_text("y,z\nnot,this\n")
    assert sorted(Frame.read_csv(str(tmp_path)).to_pydict()["x"]) == [1, 2]
    tally.bad_input(4)


def _special_files(folder) -> list[str]:
    """A named pipe and a Unix socket named like data files (a character device needs root: /dev/null stands in)."""
    os.mkfifo(folder / "pipe.csv")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(folder / "sock.csv"))
    listener.close()
    return ["pipe.csv", "sock.csv"]


def test_tabular_readers_refuse_pipes_and_sockets_by_name_without_opening_them(tmp_path, tally):
    (tmp_path / "a.csv").write_text("x\n1\n")
    _special_files(tmp_path)
    with deadline(60):
        with pytest.raises(InputError, match=r"pipe\.csv is a named pipe \(FIFO\), not a regular file"):
            Frame.read_csv(str(tmp_path))
        os.remove(tmp_path / "pipe.csv")
        with pytest.raises(InputError, match=r"sock\.csv is a socket"):
            Frame.read_csv(str(tmp_path))
        with pytest.raises(InputError, match="/dev/null is a character device"):
            Frame.read_csv("/dev/null")
    tally.bad_input(3)


def _image_folder(root, names=("image_0001.jpg", "image_0002.jpg")):
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(datasets.caltech101_path() / "ewer" / name, root / name)


def test_read_images_lists_a_pipe_as_a_row_with_an_error_and_never_opens_it(tmp_path, tally):
    _image_folder(tmp_path / "cls")
    os.mkfifo(tmp_path / "cls" / "pipe.jpg")
    os.mkfifo(tmp_path / "alone.png")
    with deadline(120):
        rows = Frame.read_images(str(tmp_path), label_from="folder").to_pydict()
        named = Frame.read_images(str(tmp_path / "alone.png")).to_pydict()
    errors = dict(zip((p.rsplit("/", 1)[-1] for p in rows["path"]), rows["error"]))
    assert errors["image_0001.jpg"] is None and errors["image_0002.jpg"] is None
    assert "named pipe (FIFO), not a regular file" in errors["pipe.jpg"]
    assert "named pipe" in errors["alone.png"] and "named pipe" in named["error"][0]
    tally.bad_input(2)
    tally.rows(4, len(rows["path"]))


def test_a_class_folder_that_is_a_symbolic_link_is_followed_and_a_loop_read_once(tmp_path, tally):
    _image_folder(tmp_path / "root" / "cls_a")
    _image_folder(tmp_path / "elsewhere", ("image_0003.jpg",))
    os.symlink(tmp_path / "elsewhere", tmp_path / "root" / "cls_b")
    os.symlink(tmp_path / "root", tmp_path / "root" / "cls_a" / "loop")      # a link back up: a loop
    rows = Frame.read_images(str(tmp_path / "root"), label_from="folder").to_pydict()
    assert sorted(zip(rows["label"], (p.rsplit("/", 1)[-1] for p in rows["path"]))) == [
        ("cls_a", "image_0001.jpg"), ("cls_a", "image_0002.jpg"), ("cls_b", "image_0003.jpg")]
    assert rows["error"] == [None, None, None]
    tally.bad_input(2)
    tally.rows(3, len(rows["path"]))


@pytest.mark.parametrize("on", ["local", "s3"])
def test_read_images_skips_hidden_and_underscore_files_and_folders_at_every_depth(tmp_path, on, request, tally):
    _image_folder(tmp_path / "cls" / "sub")
    for hidden in ["_temporary", ".cache", "sub/_staging"]:
        _image_folder(tmp_path / "cls" / hidden, ("image_0003.jpg",))
    shutil.copy(tmp_path / "cls" / "sub" / "image_0001.jpg", tmp_path / "cls" / "._image_0001.jpg")
    url, options = str(tmp_path), None
    if on == "s3":
        server = request.getfixturevalue("s3_server")
        url, options = f"s3://{server.make_bucket('reliability')}/{tmp_path.name}", server.storage_options
        server.upload(tmp_path, url)
    rows = Frame.read_images(url, storage_options=options).to_pydict()
    assert sorted(p.rsplit("/", 1)[-1] for p in rows["path"]) == ["image_0001.jpg", "image_0002.jpg"]
    tally.bad_input(4)
    tally.rows(2, len(rows["path"]))


def test_on_error_raise_raises_image_read_error_naming_the_file_in_the_driver(tmp_path, tally):
    import ray

    _image_folder(tmp_path)
    (tmp_path / "notes.jpg").write_bytes(b"a text file, not a JPEG")
    with pytest.raises(ImageReadError) as caught:
        Frame.read_images(str(tmp_path), on_error="raise").to_pydict()
    error = caught.value
    assert not isinstance(error, ray.exceptions.RayError)
    assert str(error).startswith(f"cannot read {tmp_path / 'notes.jpg'} as an image: ")
    assert "\n" not in str(error) and error.__cause__ is None           # no worker traceback, no retry advice
    tally.bad_input()


def test_a_csv_parse_error_on_the_cluster_is_framelabs_own(tmp_path, monkeypatch, tally):
    import ray

    monkeypatch.setattr(planner, "LOCAL_BYTES", -1)
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n5\n")
    with pytest.raises(InputError) as caught:
        Frame.read_csv(str(tmp_path)).to_pydict()
    assert not isinstance(caught.value, ray.exceptions.RayError)
    assert str(caught.value).startswith(f"cannot parse {tmp_path / 'bad.csv'} as CSV at line 3")
    tally.bad_input()
