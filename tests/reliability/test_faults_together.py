"""Faults an operator meets together or in the wrong place: two writers at once, a full disk, a wrong secret.

Each test goes in one way and checks one promise; every fault is counted in
the reliability tally.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from framelab.frames import Frame, StorageError, saved
from framelab.toolkits import classifier, load_model, model_io

ROUNDS = 20
# A save writes its parts, then commits: two processes started together overlap in both.
_WRITER = textwrap.dedent("""
    import sys
    from framelab.frames import Frame
    from framelab.toolkits import load_model
    kind, url, value, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    model = load_model(sys.argv[5]) if kind == "model" else None
    for _ in range(rounds):
        sys.stdin.readline()                              # wait for the go: both writers start each round together
        if kind == "frame":
            Frame({"who": [value] * 40, "i": list(range(40))}).save(url)
        else:
            model.save(url)
        print("saved", flush=True)
""")


def _writers(kind: str, url: str, values: list[str], models: list[str] | None, check) -> int:
    """Run two writer processes ROUNDS times in lock-step; ``check()`` after each round; rounds checked."""
    env = {**os.environ, "RAY_ADDRESS": ""}  # driver-side saves: the writers start no Ray of their own
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, kind, url, value, str(ROUNDS), (models or ["", ""])[i]],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i, value in enumerate(values)
    ]
    try:
        for _ in range(ROUNDS):
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                line = p.stdout.readline()
                if line.strip() != "saved":
                    p.kill()
                    raise AssertionError(f"a writer failed: {line}{p.stderr.read()}")
            check()
    finally:
        for p in procs:
            p.stdin.close()
            p.wait(timeout=60)
    return ROUNDS


def test_two_processes_saving_frames_to_one_folder_leave_exactly_one_of_them_every_time(tmp_path, tally):
    url = str(tmp_path / "one_folder")
    seen = []

    def check():
        loaded = Frame.load(url).to_pydict()
        assert len(set(loaded["who"])) == 1 and loaded["i"] == list(range(40)), "the frames were mixed"
        seen.append(loaded["who"][0])
        listed = {p.file for p in saved.read_manifest(*saved.storage.filesystem(url)).parts}
        parts = {n for n in os.listdir(url) if n.endswith(".parquet")}
        assert listed <= parts

    rounds = _writers("frame", url, ["a", "b"], None, check)
    tally.fault(rounds)
    tally.rows(40 * rounds, 40 * len(seen))


def test_two_processes_saving_models_to_one_folder_leave_exactly_one_of_them_every_time(tmp_path, tally):
    x = np.linspace(0, 1, 20)
    sources = []
    for i, labels in enumerate([["a", "b"], ["b", "a"]]):
        model = classifier.create(Frame({"x": x, "y": [labels[int(v > 0.5)] for v in x]}), "y", verbose=False)
        model.save(str(tmp_path / f"source{i}"))
        sources.append((str(tmp_path / f"source{i}"), model.predict(Frame({"x": [0.1, 0.9]})).to_pylist()))
    url = str(tmp_path / "one_folder")
    load_model(sources[0][0]).save(url)                      # the models replace an existing one
    answers = [answer for _, answer in sources]

    def check():
        assert load_model(url).predict(Frame({"x": [0.1, 0.9]})).to_pylist() in answers

    rounds = _writers("model", url, ["a", "b"], [s for s, _ in sources], check)
    tally.fault(rounds)


def test_a_reader_during_a_thousand_replaces_always_gets_one_whole_frame(tmp_path, tally):
    url = str(tmp_path / "replaced")
    Frame({"v": [0] * 8}).save(url)
    context = multiprocessing.get_context("spawn")
    stop, count = context.Event(), context.Value("i", 0)
    writer = context.Process(target=_writer_process, args=(url, stop, count, 1000))
    writer.start()
    reads = 0
    try:
        while writer.is_alive() or reads == 0:
            loaded = Frame.load(url).to_pydict()["v"]
            assert len(loaded) == 8 and len(set(loaded)) == 1, f"a read mixed versions: {loaded}"
            reads += 1
    finally:
        stop.set()
        writer.join(timeout=120)
    assert writer.exitcode == 0 and count.value == 1000
    tally.fault(count.value)
    tally.rows(8 * reads, 8 * reads)


def _writer_process(url: str, stop, count, replaces: int) -> None:
    for value in range(1, replaces + 1):
        if stop.is_set():
            return
        Frame({"v": [value] * 8}).save(url)
        count.value += 1


def _full_disk_at_commit(monkeypatch, module, name: str) -> None:
    """The disk fills exactly when the commit file is written: the data fitted, the commit does not."""
    real = module.write_atomically

    def write(fs, path, data):
        if path.rsplit("/", 1)[-1] == name:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real(fs, path, data)

    monkeypatch.setattr(module, "write_atomically", write)


def test_a_frame_save_whose_commit_runs_out_of_space_leaves_nothing_and_the_next_save_succeeds(tmp_path, monkeypatch,
                                                                                                tally):
    url = str(tmp_path / "frame")
    Frame({"x": [1, 2, 3]}).save(url)
    before = sorted(os.listdir(url))
    _full_disk_at_commit(monkeypatch, saved, saved.MANIFEST_FILE)
    with pytest.raises(StorageError, match=r"disk is full"):
        Frame({"y": list(range(100))}).save(url)
    monkeypatch.undo()
    assert sorted(os.listdir(url)) == before and sorted(os.listdir(tmp_path)) == ["frame"]
    assert Frame.load(url).to_pydict() == {"x": [1, 2, 3]}
    Frame({"y": list(range(100))}).save(url)
    assert Frame.load(url).num_rows() == 100
    tally.fault()
    tally.rows(3, 3)


def test_a_model_save_whose_commit_runs_out_of_space_leaves_nothing_and_the_next_save_succeeds(tmp_path, monkeypatch,
                                                                                                tally):
    x = np.linspace(0, 1, 20)
    first = classifier.create(Frame({"x": x, "y": ["a"] * 10 + ["b"] * 10}), "y", verbose=False)
    second = classifier.create(Frame({"x": x, "y": ["b"] * 10 + ["a"] * 10}), "y", verbose=False)
    url = str(tmp_path / "model")
    first.save(url)
    before = sorted(os.listdir(url))
    _full_disk_at_commit(monkeypatch, model_io, model_io.METADATA_FILE)
    with pytest.raises(StorageError, match=r"disk is full"):
        second.save(url)
    monkeypatch.undo()
    assert sorted(os.listdir(url)) == before
    assert load_model(url).predict(Frame({"x": [0.0]})).to_pylist() == ["a"]
    second.save(url)
    assert load_model(url).predict(Frame({"x": [0.0]})).to_pylist() == ["b"]
    tally.fault()


@pytest.fixture()
def wrong_secret(s3_server, tmp_path):
    """(bucket prefix, right options, wrong options, endpoint) with a frame, a model and images already there."""
    bucket = s3_server.make_bucket("secrets")
    prefix = f"s3://{bucket}/{tmp_path.name}"
    right = s3_server.storage_options
    Frame({"x": [1]}).save(f"{prefix}/frame", storage_options=right)
    model = classifier.create(Frame({"x": [0.0, 1.0] * 5, "y": ["a", "b"] * 5}), "y", verbose=False)
    model.save(f"{prefix}/model", storage_options=right)
    s3_server.filesystem().pipe_file(f"{bucket}/{tmp_path.name}/images/a/one.png", b"not really a png")
    wrong = json.loads(json.dumps(right))
    wrong["secret"] = "not-the-secret"
    return prefix, bucket, wrong, s3_server.endpoint, model


@pytest.mark.parametrize("path", ["Frame.load", "Frame.save", "read_parquet", "read_images", "model.save",
                                  "load_model"])
def test_a_wrong_s3_secret_names_the_bucket_the_endpoint_and_the_credentials(wrong_secret, path, tally):
    prefix, bucket, wrong, endpoint, model = wrong_secret
    calls = {
        "Frame.load": lambda: Frame.load(f"{prefix}/frame", storage_options=wrong).to_pydict(),
        "Frame.save": lambda: Frame({"x": [2]}).save(f"{prefix}/frame2", storage_options=wrong),
        "read_parquet": lambda: Frame.read_parquet(f"{prefix}/frame", storage_options=wrong).to_pydict(),
        "read_images": lambda: Frame.read_images(f"{prefix}/images", storage_options=wrong).to_pydict(),
        "model.save": lambda: model.save(f"{prefix}/model2", storage_options=wrong),
        "load_model": lambda: load_model(f"{prefix}/model", storage_options=wrong),
    }
    with pytest.raises(StorageError) as caught:
        calls[path]()
    message = str(caught.value)
    assert f"bucket '{bucket}'" in message and endpoint in message and "credentials" in message, message
    assert "\x1b[" not in message and "Traceback" not in message and "RayTaskError" not in message
    tally.bad_input()


def test_a_277_file_read_with_3_bad_images_warns_3_of_277(tmp_path, tally):
    import warnings

    from framelab.platform.failures import RowFailureWarning
    from framelab.toolkits import datasets

    sources = sorted(datasets.caltech101_path().rglob("*.jpg"))
    for i in range(277):
        data = b"not an image at all" if i in (3, 140, 270) else sources[i % len(sources)].read_bytes()
        (tmp_path / f"{i:03d}.jpg").write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = Frame.read_images(str(tmp_path)).to_arrow()
    messages = [str(w.message) for w in caught if issubclass(w.category, RowFailureWarning)]
    assert len(messages) == 1 and "3 of 277 file(s) failed" in messages[0], messages
    tally.bad_input(3)
    tally.rows(277, frame.num_rows)
