"""Deep features on real images and the real bundled MobileNetV2, through real Ray Data stages."""

from __future__ import annotations

import csv
import io
import json
import os

import numpy as np
import pyarrow as pa
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms as T

from framelab.frames import ColumnNotFoundError, Frame, InputError, read_images
from framelab.frames.vectors import vectors_to_numpy
from framelab.toolkits import deep_features
from framelab.toolkits.deep_features import DeepFeatureExtractor, Preprocessing, provenance_of
from framelab.toolkits.deep_features.weights import BUNDLED_DIR

BUNDLED_PTH = BUNDLED_DIR / "mobilenet_v2_1.0_224_quant_dequantized_torchvision.pth"
TINY_PREP = Preprocessing(resize=(32, 32), crop=None, mean=(0.5,) * 3, std=(0.25,) * 3)


def _plain_mobilenet() -> torch.nn.Module:
    """The model as a PyTorch user would load it, straight from the SOURCE.md recipe."""
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(BUNDLED_PTH, weights_only=True))
    return model.eval()


def _plain_transform():
    return T.Compose([T.Resize((224, 224)), T.ToTensor(), T.Normalize([128 / 255] * 3, [128 / 255] * 3)])


def _by_path(table: pa.Table, column: str = "deep_features") -> dict[str, np.ndarray]:
    features = vectors_to_numpy(table.column(column))
    return dict(zip(table.column("path").to_pylist(), features))


def _png(seed: int, size: tuple[int, int] = (40, 30)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG")
    return buf.getvalue()


def _tiny_module(*, marker_dir: str | None = None, crash_marker: str | None = None, delay: float = 0.0):
    """A small CNN standing in for a user's own network (defined here so Ray pickles it by value).

    Inside a Ray worker (never in this test process) it can record which node
    ran it, and die once, mid-batch, the first time it runs.
    """
    driver_pid = os.getpid()

    class TinyNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, stride=2)
            self.pool = torch.nn.AdaptiveAvgPool2d(1)

        def forward(self, x):
            if os.getpid() != driver_pid:
                import time
                import uuid

                import ray

                if marker_dir:
                    node = ray.get_runtime_context().get_node_id()
                    open(os.path.join(marker_dir, f"{node}.{os.getpid()}.{uuid.uuid4().hex}"), "w").close()
                if crash_marker and not os.path.exists(crash_marker):
                    open(crash_marker, "w").close()
                    os._exit(1)
                time.sleep(delay)
            return self.pool(torch.relu(self.conv(x)))

    torch.manual_seed(0)
    return TinyNet().eval()


@pytest.fixture(scope="module")
def coral_frame(coral):
    return read_images(str(coral)).materialize()


# ---------------------------------------------------------------- correctness
def test_features_equal_a_plain_pytorch_forward_pass(caltech, coral):
    files = [str(coral / n) for n in ("cat.bmp", "owl.jpg", "parrot.jpg")]
    # Greyscale JPEGs (brain, trilobite hold some) must come out as 3-channel input too.
    files += [str(p) for p in sorted((caltech / "brain").glob("*.jpg"))[:3]]
    files += [str(p) for p in sorted((caltech / "trilobite").glob("*.jpg"))[:3]]
    out = deep_features.extract(read_images(files)).to_arrow()

    got = _by_path(out)
    assert sorted(got) == sorted(files)
    model = _plain_mobilenet()
    model.classifier = torch.nn.Identity()
    transform = _plain_transform()
    with torch.no_grad():
        batch = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
        expected = model(batch).numpy()
    for f, want in zip(files, expected):
        np.testing.assert_allclose(got[f], want, rtol=1e-3, atol=1e-4)

    field = out.schema.field("deep_features")
    assert field.type == pa.list_(pa.float32(), 1280)
    assert provenance_of(field) == {
        "model": "mobilenet_v2",
        "weights_sha256": "8d6eeb8a805c2c2ea5af342bfea30706177b7d6829a6b15ee3b45d22447f0b0c",
        "layer": "flatten",
        "preprocessing": {
            "resize": [224, 224],
            "crop": None,
            "mean": [128 / 255] * 3,
            "std": [128 / 255] * 3,
            "interpolation": "bilinear",
        },
        "dim": 1280,
        "dtype": "float32",
    }


def test_default_model_top1_matches_the_reference_on_coral_photos(coral_frame, coral):
    out = deep_features.extract(coral_frame, layer="classifier.1", output_column="logits").to_arrow()
    top1 = {os.path.basename(p): int(v.argmax()) for p, v in _by_path(out, "logits").items()}
    with open(coral / "expected_top1.csv") as f:
        expected = {r["file"]: int(r["torch_stock_top1_index"]) for r in csv.DictReader(f)}
    assert top1 == expected
    assert provenance_of(out.schema.field("logits"))["layer"] == "classifier.1"


def test_null_and_undecodable_images_get_null_features_and_keep_their_rows():
    data = [_png(0), None, b"not an image at all", _png(1), _png(2)]
    frame = Frame({"id": list(range(5)), "data": pa.array(data, pa.binary())})
    extractor = DeepFeatureExtractor(_tiny_module(), preprocessing=TINY_PREP, output_dtype="float16")
    out = extractor.transform(frame, image_column="data").to_arrow()

    rows = dict(zip(out.column("id").to_pylist(), out.column("deep_features").to_pylist()))
    assert sorted(rows) == [0, 1, 2, 3, 4]
    assert rows[1] is None and rows[2] is None
    assert all(rows[i] is not None and len(rows[i]) == 8 for i in (0, 3, 4))
    assert out.schema.field("deep_features").type == pa.list_(pa.float16(), 8)
    assert provenance_of(out.schema.field("deep_features"))["model"] == "custom:TinyNet"


def test_bfloat16_autocast_keeps_features_close_to_float32(caltech):
    import ray

    from framelab.toolkits.deep_features.decode import decode_batch
    from framelab.toolkits.deep_features.inference import FeatureActor, StageConfig

    files = sorted((caltech / "ewer").glob("*.jpg"))[:4]
    table = pa.table({"data": pa.array([f.read_bytes() for f in files], pa.binary())})
    extractor = DeepFeatureExtractor()
    prep = extractor._resolve().preprocessing
    table = decode_batch(table, column="data", preprocessing=prep)
    network = [ray.put((extractor._resolve().model, extractor._resolve().state_dict))]

    def features(precision: str) -> np.ndarray:
        config = StageConfig(network, None, prep, extractor.output_field(), "__framelab_pixels__",
                             "cpu", 1.0, precision, 4)
        return vectors_to_numpy(FeatureActor(config)(table).column("deep_features"))

    full, half = features("float32"), features("bfloat16")
    cosine = (full * half).sum(1) / np.linalg.norm(full, axis=1) / np.linalg.norm(half, axis=1)
    assert cosine.min() > 0.99


# ------------------------------------------------------- models and weights
def test_weights_load_from_a_path_and_a_url_and_are_pinned_by_sha256(tmp_path):
    import fsspec

    sha = "8d6eeb8a805c2c2ea5af342bfea30706177b7d6829a6b15ee3b45d22447f0b0c"
    copy = tmp_path / "mnv2.pth"
    copy.write_bytes(BUNDLED_PTH.read_bytes())
    with fsspec.open("memory://models/mnv2.pth", "wb") as f:
        f.write(BUNDLED_PTH.read_bytes())
    for source in (str(copy), "memory://models/mnv2.pth"):
        ext = DeepFeatureExtractor("mobilenet_v2", weights=source, weights_sha256=sha)
        assert ext.provenance["weights_sha256"] == sha
        # A file says nothing of its preprocessing: torchvision's ImageNet recipe is assumed.
        assert ext.provenance["preprocessing"]["mean"] == [0.485, 0.456, 0.406]
    with pytest.raises(InputError, match="sha256"):
        _ = DeepFeatureExtractor("mobilenet_v2", weights=str(copy), weights_sha256="0" * 64).dim


def test_weights_load_from_s3(s3_server):
    bucket = s3_server.make_bucket("models")
    s3_server.filesystem().pipe_file(f"{bucket}/mobilenet_v2.pth", BUNDLED_PTH.read_bytes())
    ext = DeepFeatureExtractor(
        "mobilenet_v2", weights=f"s3://{bucket}/mobilenet_v2.pth", storage_options=s3_server.storage_options
    )
    assert ext.provenance["weights_sha256"].startswith("8d6eeb8a")


def test_weights_for_another_architecture_say_which_keys_differ():
    with pytest.raises(InputError, match=r"do not fit resnet18: missing \(\d+\): conv1.weight"):
        _ = DeepFeatureExtractor("resnet18", weights=str(BUNDLED_PTH)).dim


def test_weights_fine_tuned_for_other_classes_still_give_penultimate_features(tmp_path):
    state = torch.load(BUNDLED_PTH, weights_only=True)
    state["classifier.1.weight"] = state["classifier.1.weight"][:10]
    state["classifier.1.bias"] = state["classifier.1.bias"][:10]
    torch.save(state, tmp_path / "ten_classes.pth")
    assert DeepFeatureExtractor("mobilenet_v2", weights=str(tmp_path / "ten_classes.pth")).dim == 1280


def test_weights_files_that_hold_code_are_refused(tmp_path):
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled_module.pth")  # a pickled object
    with pytest.raises(InputError, match="weights_only=True"):
        _ = DeepFeatureExtractor("mobilenet_v2", weights=str(tmp_path / "pickled_module.pth")).dim


def test_missing_torchvision_weights_offline_say_how_to_give_a_file(tmp_path, monkeypatch):
    # An empty torch cache and a dead proxy: nothing can be downloaded here,
    # which is the situation the error message is for.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    published = "IMAGENET1K_V1"
    with pytest.raises(InputError, match=r"pass weights='/path/to/resnet18-f37072fd.pth'"):
        _ = DeepFeatureExtractor("resnet18", weights=published).dim
    assert not list(tmp_path.rglob("*.pth"))


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(InputError, match="unknown model 'resnet9000'; known models: .*mobilenet_v2.*vit_b_16"):
        DeepFeatureExtractor("resnet9000")
    assert {"mobilenet_v2", "resnet18", "resnet50", "efficientnet_b0", "vit_b_16"} <= set(
        deep_features.known_models()
    )


def test_unknown_layer_suggests_close_names():
    with pytest.raises(InputError, match="no layer 'features.81'; did you mean .*'features.18'"):
        _ = DeepFeatureExtractor(layer="features.81").dim
    assert DeepFeatureExtractor(layer="features.18").dim == 1280 * 7 * 7


def test_config_round_trips_through_json_and_pins_the_weights(tmp_path):
    extractor = DeepFeatureExtractor("mobilenet_v2", layer="classifier.1")
    config = json.loads(json.dumps(extractor.to_config()))
    again = DeepFeatureExtractor.from_config(config, device="cpu")
    assert again.provenance == extractor.provenance
    assert again.device == "cpu"
    config["weights_sha256"] = "f" * 64
    with pytest.raises(InputError, match="sha256"):
        _ = DeepFeatureExtractor.from_config(config).dim
    with pytest.raises(InputError, match="cannot be saved as a config"):
        DeepFeatureExtractor(_tiny_module(), preprocessing=TINY_PREP).to_config()


# ----------------------------------------------------------- input checking
def test_image_column_is_found_or_the_choices_are_named():
    frame = Frame({"label": ["a"], "n": [1]})
    with pytest.raises(InputError, match=r"no image column; its columns are 'label' \(string\), 'n' \(int64\)"):
        deep_features.extract(frame)
    with pytest.raises(InputError, match="column 'label' holds string, not images"):
        deep_features.extract(frame, image_column="label")
    with pytest.raises(ColumnNotFoundError, match="no column named 'photo'"):
        deep_features.extract(frame, image_column="photo")


def test_several_image_columns_ask_which_one(coral_frame):
    two = coral_frame.select("image").to_arrow()
    two = two.append_column("thumb", two.column("image"))
    with pytest.raises(InputError, match="2 image columns \\('image', 'thumb'\\); pass image_column="):
        deep_features.extract(Frame(two))


def test_bad_options_are_refused_before_any_work():
    with pytest.raises(InputError, match="output_dtype"):
        DeepFeatureExtractor(output_dtype="int8")
    with pytest.raises(InputError, match="batch_size"):
        DeepFeatureExtractor(batch_size=0)
    with pytest.raises(InputError, match="device"):
        DeepFeatureExtractor(device="tpu")
    with pytest.raises(InputError, match="preprocessing="):
        DeepFeatureExtractor(_tiny_module())


# ------------------------------------------------------ distributed execution
def test_a_killed_extraction_actor_is_restarted_and_no_row_is_lost_or_repeated(tmp_path):
    crash = str(tmp_path / "crashed-once")
    frame = Frame({"id": list(range(24)), "data": pa.array([_png(i) for i in range(24)], pa.binary())})
    extractor = DeepFeatureExtractor(
        _tiny_module(crash_marker=crash), preprocessing=TINY_PREP, batch_size=4
    )
    out = extractor.transform(frame.repartition(6), image_column="data").to_arrow()
    assert os.path.exists(crash), "the actor never died: the test did not test anything"
    assert sorted(out.column("id").to_pylist()) == list(range(24))
    assert out.column("deep_features").null_count == 0


@pytest.mark.multinode
def test_extraction_spreads_over_both_nodes_and_returns_every_row_once(two_node_cluster, tmp_path):
    frame = Frame({"id": list(range(48)), "data": pa.array([_png(i) for i in range(48)], pa.binary())})
    extractor = DeepFeatureExtractor(
        _tiny_module(marker_dir=str(tmp_path), delay=0.3), preprocessing=TINY_PREP, batch_size=2
    )
    # Input already in the object store: the actor pool starts whole, one actor per node.
    featured = extractor.transform(frame.repartition(12).materialize(), image_column="data")
    plan = featured.explain()
    out = featured.to_arrow()
    assert sorted(out.column("id").to_pylist()) == list(range(48))
    assert out.column("deep_features").null_count == 0
    nodes = {name.split(".")[0] for name in os.listdir(tmp_path)}
    processes = sorted({".".join(name.split(".")[:2]) for name in os.listdir(tmp_path)})
    assert len(nodes) == 2, f"the model ran on {len(nodes)} node(s), in {processes}; plan:\n{plan}"


def test_the_features_frame_knows_its_schema_before_running_the_model():
    from framelab.platform import warm_pools

    frame = Frame({"id": list(range(4)), "data": pa.array([_png(i) for i in range(4)], pa.binary())})
    out = DeepFeatureExtractor(_tiny_module(), preprocessing=TINY_PREP).transform(frame, image_column="data")
    key = out._node.stage.key
    warm_pools.release(key)
    declared = out.schema
    assert key not in warm_pools.warm_keys(), "asking for the schema started the model's actors"
    table = out.to_arrow()
    assert key in warm_pools.warm_keys(), "running the frame did not start the model's actors"
    assert declared.equals(table.schema, check_metadata=True)


def test_a_warm_session_runs_small_calls_on_the_same_model_actor():
    from framelab.platform import warm_pools

    frame = Frame({"id": [0, 1], "data": pa.array([_png(0), _png(1)], pa.binary())})
    extractor = DeepFeatureExtractor(_tiny_module(), preprocessing=TINY_PREP)
    first = extractor.transform(frame, image_column="data")
    assert "one call to a warm actor" in first.explain() and "ActorMap  @driver" in first.explain()
    key = first._node.stage.key
    first.to_arrow()
    actors = warm_pools.find(key).where()
    again = DeepFeatureExtractor(_tiny_module(), preprocessing=TINY_PREP).transform(frame, image_column="data")
    np.testing.assert_array_equal(again.to_numpy("deep_features"), first.to_numpy("deep_features"))
    assert warm_pools.find(key).where() == actors  # the second extractor found the first one's actors


def test_head_of_an_extraction_runs_the_model_on_those_rows_only(tmp_path):
    frame = Frame({"id": list(range(40)), "data": pa.array([_png(i) for i in range(40)], pa.binary())})
    extractor = DeepFeatureExtractor(_tiny_module(marker_dir=str(tmp_path)), preprocessing=TINY_PREP, batch_size=4)
    featured = extractor.transform(frame.repartition(4), image_column="data")
    assert "ActorMap  @cluster" in featured.explain()
    assert featured.head(2).to_pydict()["id"] == [0, 1]
    assert len(os.listdir(tmp_path)) == 1, "the model ran on more than the two rows asked for"
