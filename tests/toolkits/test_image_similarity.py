"""image_similarity on the bundled Caltech images: similar images share labels, copies are near-duplicates."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest
from PIL import Image, ImageOps

from framelab.frames import Frame
from framelab.toolkits import datasets, deep_features, image_similarity, load_model

COPIES = 30  # originals copied four ways each
KINDS = ("resized", "jpeg30", "crop5", "flip")


def _copy(path, kind: str, out) -> None:
    image = Image.open(path).convert("RGB")
    w, h = image.size
    if kind == "resized":
        image.resize((w // 2, h // 2), Image.BILINEAR).save(out, quality=90)
    elif kind == "jpeg30":
        image.save(out, quality=30)
    elif kind == "crop5":
        dx, dy = int(w * 0.05), int(h * 0.05)  # 5% off each side
        image.crop((dx, dy, w - dx, h - dy)).save(out, quality=90)
    else:
        ImageOps.mirror(image).save(out, quality=90)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, coral):
    """The 1,200 Caltech photos plus copies of 30 of them, and the 8 coral photos with theirs; features extracted once."""
    root = tmp_path_factory.mktemp("copies")
    originals = sorted(datasets.caltech101_path().glob("*/*.jpg"))
    rng = np.random.default_rng(0)
    chosen = [originals[i] for i in rng.choice(len(originals), COPIES, replace=False)]
    (root / "coral").mkdir()
    for path in sorted(p for p in coral.iterdir() if p.suffix in (".bmp", ".jpg")):
        shutil.copy(path, root / "coral" / path.name)  # the originals: different photos of different things
        chosen.append(root / "coral" / path.name)
    for path in chosen:
        for kind in KINDS:
            (root / path.parent.name).mkdir(exist_ok=True)
            _copy(path, kind, root / path.parent.name / f"{path.stem}__{kind}.jpg")
    frame = datasets.caltech101().union(Frame.read_images(str(root), label_from="folder"))
    return deep_features.extract(frame).materialize()


def _key(path: str) -> str:
    """class/stem of an original, or of the original a copy was made from."""
    parts = path.replace("\\", "/").split("/")
    return f"{parts[-2]}/{parts[-1].split('__')[0].split('.')[0]}"


def test_nearest_other_image_shares_its_label_in_over_90_percent(photos):
    originals = photos.filter(~pl.col("path").str.contains("__") & (pl.col("label") != "coral"))
    model = image_similarity.create(originals, label="path", verbose=False)  # features reused, not extracted
    assert model.neighbors.distance == "cosine" and model.num_rows == 1200
    graph = model.similarity_graph(k=1).to_polars()
    same = [_key(a).split("/")[0] == _key(b).split("/")[0]
            for a, b in zip(graph["query_label"].to_list(), graph["reference_label"].to_list())]
    assert len(same) == 1200
    assert np.mean(same) > 0.90


def test_near_duplicates_group_copies_with_their_original_and_not_other_photos(photos):
    model = image_similarity.create(photos, label="path", verbose=False)
    groups = model.near_duplicates().to_polars().with_columns(
        key=pl.col("path").map_elements(_key, return_dtype=pl.String),
        copy=pl.col("path").str.contains("__"),
    )
    assert len(groups) == 1200 + 8 + (COPIES + 8) * len(KINDS)
    group_of = dict(zip(groups["path"].to_list(), groups["group_id"].to_list()))
    original_group = {k: g for k, g, c in zip(groups["key"], groups["group_id"], groups["copy"]) if not c}
    caught = {(corpus, kind): np.mean([group_of[p] == original_group[_key(p)] for p in groups["path"]
                                       if p.endswith(f"__{kind}.jpg") and ("/coral/" in p) == (corpus == "coral")])
              for corpus in ("caltech", "coral") for kind in KINDS}
    # Measured at the default threshold (see image_similarity's docstring and the README).
    assert caught["caltech", "jpeg30"] >= 0.8 and caught["coral", "jpeg30"] >= 0.8
    assert caught["caltech", "crop5"] >= 0.8 and caught["coral", "crop5"] >= 0.8
    assert caught["caltech", "flip"] >= 0.7
    # No group joins photos of two classes, no two coral photos are joined, and few Caltech originals
    # are joined to other originals (those that are, are copies already in Caltech: the same menorah photo).
    assert groups.group_by("group_id").agg(pl.col("key").str.split("/").list.first().n_unique())[
        "key"].max() == 1
    assert groups.filter(pl.col("key").str.starts_with("coral/")).group_by("group_id").agg(
        pl.col("key").n_unique())["key"].max() == 1
    joined = groups.filter(~pl.col("copy")).group_by("group_id").len().filter(pl.col("len") > 1)["len"].sum()
    assert joined <= 0.03 * 1200


def test_queries_take_raw_images_and_survive_save_and_load(photos, tmp_path):
    originals = photos.filter(~pl.col("path").str.contains("__"))
    model = image_similarity.create(originals, label="path", verbose=False)
    copies = photos.filter(pl.col("path").str.contains("__jpeg30")).head(4).drop("deep_features")
    found = model.query(copies, k=1, label="path").to_polars()  # raw images: extracted on the way
    assert [_key(p) for p in found["query_label"]] == [_key(p) for p in found["reference_label"]]
    model.save(str(tmp_path / "sim"))
    loaded = load_model(str(tmp_path / "sim"))
    again = loaded.query(photos.filter(pl.col("path").str.contains("__jpeg30")).head(4), k=1, label="path")
    assert again.to_pydict()["reference_label"] == found["reference_label"].to_list()
    assert "ImageSimilarityModel" in repr(loaded)
