"""Serving saved image models on Ray Serve: answers equal the Python methods, bad requests are 4xx, redeploys drop nothing.

One Serve instance for the module (an HTTP proxy on a free loopback port),
four small applications (one per image model kind, one replica of a tenth of a
CPU each, so the session's 2-CPU Ray keeps room), all shut down at the end.
"""

from __future__ import annotations

import base64
import io
import socket
import struct
import threading
import zlib
from pathlib import Path

import pytest
import requests

from framelab.frames import Frame
from framelab.frames.errors import InputError

CALTECH = Path(__file__).resolve().parents[2] / "toolkits" / "datasets" / "caltech101_subset"
CORAL = Path(__file__).resolve().parents[2] / "tests" / "data" / "coral_test_images"
QUERIES = [CALTECH / "ewer" / "image_0001.jpg", CALTECH / "sunflower" / "image_0002.jpg", CORAL / "owl.jpg"]
SMALL = {"replicas": 1, "cpus_per_replica": 0.1, "max_batch_size": 4, "batch_wait_ms": 20}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port() -> int:
    return _free_port()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, str]:
    """One small saved model of each image kind, trained on 12 bundled photos."""
    from framelab.toolkits import datasets, image_classifier, image_similarity, image_tagger, kmeans

    photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6).materialize()
    root = tmp_path_factory.mktemp("served")
    models = {
        "classifier": image_classifier.create(photos, "label", seed=0, verbose=False),
        "similarity": image_similarity.create(photos, label="path", verbose=False),
        "tagger": image_tagger.create(),
        "clusters": kmeans.create(photos, 2, seed=0, verbose=False),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = str(root / name)
        model.save(paths[name])
    return paths


@pytest.fixture(scope="module")
def served(saved, port):
    """The four models deployed (one replica each); Serve is shut down when the module ends."""
    from ray import serve

    from framelab.toolkits import serving

    apps = {name: serving.deploy(url, port=port, **SMALL) for name, url in saved.items()}
    yield apps
    serve.shutdown()


def _frame(*paths: Path) -> Frame:
    """The images as a Frame held in the driver: the model's own method runs on it through its warm actor.

    (A frame read on the cluster would start read tasks that need a whole CPU the replicas hold.)
    """
    import pyarrow as pa

    from framelab.frames.images import images_from_bytes

    return Frame.from_arrow(pa.table({"image": images_from_bytes([p.read_bytes() for p in paths])}))


def _post(app, path: Path | bytes, content_type: str = "image/jpeg", **params) -> requests.Response:
    data = path if isinstance(path, bytes) else path.read_bytes()
    return requests.post(app.url, data=data, params=params, headers={"Content-Type": content_type}, timeout=120)


# -------------------------------------------------------- answers as in Python
def test_a_classifier_answers_as_predict_topk(served, saved):
    from framelab.toolkits import load_model

    model = load_model(saved["classifier"])
    for path in QUERIES:
        got = _post(served["classifier"], path, k=2)
        assert got.status_code == 200, got.text
        expected = model.predict_topk(_frame(path), k=2).to_pydict()
        answer = got.json()["predictions"]
        assert [p["class"] for p in answer] == expected["class"]
        assert [p["probability"] for p in answer] == pytest.approx(expected["probability"], abs=1e-4)


def test_a_tagger_answers_as_tag(served, saved):
    from framelab.toolkits import load_model

    model = load_model(saved["tagger"])
    path = CORAL / "parrot.jpg"
    answer = served["tagger"].predict(path, k=3)["tags"]
    expected = model.tag(_frame(path), k=3).to_pydict()["tags"][0]
    assert [t["tag"] for t in answer] == [t["tag"] for t in expected]
    assert [t["score"] for t in answer] == pytest.approx([t["score"] for t in expected], abs=1e-4)


def test_a_similarity_model_answers_as_query(served, saved):
    from framelab.toolkits import load_model

    model = load_model(saved["similarity"])
    path = QUERIES[0]
    answer = served["similarity"].predict(path, k=3)["neighbors"]
    expected = model.query(_frame(path), k=3).to_pydict()
    assert [n["reference_label"] for n in answer] == expected["reference_label"]
    assert [n["rank"] for n in answer] == expected["rank"]
    assert [n["distance"] for n in answer] == pytest.approx(expected["distance"], abs=1e-4)


def test_kmeans_on_images_answers_as_predict(served, saved):
    from framelab.toolkits import load_model

    model = load_model(saved["clusters"])
    frame = _frame(*QUERIES)
    ids, distances = model.predict(frame).to_pylist(), model.predict(frame, output_type="distance").to_pylist()
    answers = served["clusters"].predict_batch(QUERIES)
    assert [a["cluster_id"] for a in answers] == ids
    assert [a["distance"] for a in answers] == pytest.approx(distances, rel=1e-4)


def test_a_readiness_get_says_what_is_served_and_serve_reports_healthy(served, port):
    described = requests.get(served["classifier"].url, timeout=30).json()
    assert described["kind"] == "image_classifier" and described["params"] == ["k"]
    assert requests.get(f"http://127.0.0.1:{port}/-/healthz", timeout=30).status_code == 200


# ---------------------------------------------------------------- bad requests
def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels in its header: a decompression bomb in 60 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


@pytest.mark.parametrize("body, content_type, status, words", [
    (b"", "image/jpeg", 400, "empty"),
    (b"this is not an image", "image/jpeg", 422, "not an image"),
    (_png_header(100_000, 100_000), "image/png", 413, "decompression bomb"),
    (QUERIES[0].read_bytes(), "text/plain", 415, "Content-Type"),
    (b"x" * 3_000, "image/jpeg", 413, "limit"),  # over the size cap set below
], ids=["empty", "not-an-image", "decompression-bomb", "wrong-content-type", "over-the-size-cap"])
def test_a_bad_request_gets_its_4xx_and_the_next_is_served(served, saved, port, body, content_type, status, words):
    from framelab.toolkits import serving

    app = served["classifier"]
    if words == "limit":
        app = serving.deploy(saved["classifier"], name="capped", port=port, max_request_bytes=2_000, **SMALL)
    got = _post(app, body, content_type)
    assert got.status_code == status, got.text
    assert words.lower() in got.json()["error"]["message"].lower()
    assert _post(served["classifier"], QUERIES[0]).status_code == 200
    if app is not served["classifier"]:
        app.shutdown()


def test_bad_query_parameters_are_400s_naming_what_the_model_takes(served):
    got = _post(served["classifier"], QUERIES[0], k="many")
    assert got.status_code == 400 and "integer" in got.json()["error"]["message"]
    got = _post(served["classifier"], QUERIES[0], colour="red")
    assert got.status_code == 400 and "takes: k" in got.json()["error"]["message"]


def test_a_batch_with_one_bad_image_answers_the_good_ones(served, saved):
    app = served["classifier"]
    images = [base64.b64encode(p.read_bytes()).decode() for p in QUERIES[:2]]
    images.insert(1, base64.b64encode(b"GIF89a-broken").decode())
    got = requests.post(app.url + "/batch", json={"images": images}, params={"k": 1}, timeout=120)
    assert got.status_code == 200, got.text
    results = got.json()["results"]
    assert results[1]["error"]["status"] == 422
    assert [r["predictions"][0]["class"] for r in (results[0], results[2])] == [
        app.predict(p, k=1)["predictions"][0]["class"] for p in QUERIES[:2]]


def test_a_folder_that_fails_load_model_stops_the_deploy_with_its_message(tmp_path, port):
    from framelab.toolkits import serving

    with pytest.raises(InputError) as err:
        serving.deploy(str(tmp_path), port=port, **SMALL)
    with pytest.raises(InputError) as expected:
        from framelab.toolkits import load_model

        load_model(str(tmp_path))
    assert str(err.value) == str(expected.value)


# ------------------------------------------------------------------- redeploy
def test_a_redeploy_switches_versions_without_a_failed_request(served, saved, port):
    from framelab.toolkits import serving

    app = served["classifier"]
    before = requests.get(app.url, timeout=30).json()["version"]
    outcomes: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        data = QUERIES[0].read_bytes()
        while not stop.is_set() and len(outcomes) < 2_000:
            try:
                outcomes.append(requests.post(app.url, data=data, headers={"Content-Type": "image/jpeg"},
                                              timeout=120).status_code)
            except requests.RequestException:
                outcomes.append(-1)

    client = threading.Thread(target=loop)
    client.start()
    try:
        again = serving.deploy(saved["classifier"], name=app.name, port=port, **SMALL)
    finally:
        stop.set()
        client.join(timeout=180)
    after = requests.get(again.url, timeout=30).json()["version"]
    assert after != before
    assert len(outcomes) >= 3 and set(outcomes) == {200}, f"{len(outcomes)} requests: {sorted(set(outcomes))}"


# -------------------------------------------------------------- operations
def test_status_lists_the_applications_and_shutdown_takes_one_down(served, saved, port, capsys):
    from framelab.toolkits import serving
    from framelab.toolkits.cli import main

    assert main(["serve", saved["classifier"], "--name", "short-lived", "--port", str(port),
                 "--replicas", "1", "--cpus-per-replica", "0.1", "--max-batch-size", "2"]) == 0
    assert "short-lived (image_classifier) is served at http://127.0.0.1" in capsys.readouterr().out
    assert main(["serve", "--status"]) == 0
    listed = capsys.readouterr().out
    assert '"name": "short-lived"' in listed and '"status": "RUNNING"' in listed
    assert main(["serve", "--shutdown", "short-lived"]) == 0
    assert "short-lived" not in [a["name"] for a in serving.status()]
    assert main(["serve", "--shutdown", "short-lived"]) == 2
    assert "no application named 'short-lived'" in capsys.readouterr().err


def test_a_model_without_images_is_refused_before_deploying(tmp_path, port):
    from framelab.toolkits import classifier, serving

    path = str(tmp_path / "numbers")
    classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False).save(path)
    with pytest.raises(InputError, match="takes no images"):
        serving.deploy(path, port=port)


def test_the_python_client_reads_a_path_and_raises_the_servers_message(served):
    assert served["classifier"].predict(QUERIES[0], k=1)["predictions"][0]["class"] in {"ewer", "sunflower"}
    with pytest.raises(InputError, match="HTTP 422"):
        served["classifier"].predict(io.BytesIO(b"nope").getvalue())


# ------------------------------------------------------------------- README
def _readme_blocks() -> dict[str, str]:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```")[1::2]
    return {block.split("\n", 1)[0]: block.split("\n", 1)[1] for block in blocks}


def test_the_readme_deploys_curls_and_calls_the_python_client(served, saved, port, capsys):
    """The README's snippets, run as written except for the model, the photo and this test cluster's port and size."""
    import json
    import shlex
    import subprocess

    from framelab.toolkits.cli import main

    blocks = _readme_blocks()
    here = {"models/caltech": saved["classifier"], "photo.jpg": str(QUERIES[0]), "8000": str(port)}

    def local(text: str) -> str:
        for old, new in here.items():
            text = text.replace(old, new)
        return text

    command, curl = local(blocks["bash"]).strip().splitlines()
    # The test session's Ray has 2 CPUs shared with the other applications: one small replica.
    assert main(shlex.split(command)[1:] + ["--replicas", "1", "--cpus-per-replica", "0.1"]) == 0
    assert f"caltech (image_classifier) is served at http://127.0.0.1:{port}/caltech" in capsys.readouterr().out
    answered = subprocess.run(shlex.split(curl), capture_output=True, text=True, timeout=120, check=True)
    from_curl = json.loads(answered.stdout)
    assert len(from_curl["predictions"]) == 2
    code = local(blocks["python"]).replace(f"port={port})", f"port={port}, replicas=1, cpus_per_replica=0.1)")
    *setup, last = code.strip().splitlines()
    scope: dict = {}
    exec("\n".join(setup), scope)
    from_python = eval(last.split("#")[0], scope)
    assert [p["class"] for p in from_python["predictions"]] == [p["class"] for p in from_curl["predictions"]]
    scope["app"].shutdown()
