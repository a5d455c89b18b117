"""Images in frames: the image type, open_image on awkward files, read_images, column operations."""

from __future__ import annotations

import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framelab.frames import Frame, images
from framelab.frames.errors import InputError
from framelab.frames.images import (
    ImageDecodeError,
    image_bytes,
    image_type,
    images_from_bytes,
    images_from_pixels,
    images_to_pixels,
    is_image_type,
    open_image,
    pixels_to_numpy,
    restore_image_columns,
    to_numpy,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bad_images import EXPECTED, UNREADABLE, make_cases, write_bad_images  # noqa: E402

CLASSES = ("ewer", "brain")


def read_images(paths, **kwargs) -> Frame:
    """Frame.read_images once the lead has wired it; the module function until then."""
    if hasattr(Frame, "read_images"):
        return Frame.read_images(paths, **kwargs)
    from framelab.frames import read_images as read

    return read(paths, **kwargs)


@pytest.fixture(scope="module")
def small_tree(caltech: Path, tmp_path_factory) -> Path:
    """Two classes x 6 real Caltech images, copied so tests can add files beside them."""
    root = tmp_path_factory.mktemp("tree")
    for cls in CLASSES:
        (root / cls).mkdir()
        for src in sorted((caltech / cls).glob("*.jpg"))[:6]:
            shutil.copy(src, root / cls / src.name)
    return root


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("bad")
    return root, write_bad_images(root)


def _by_path(table: pa.Table) -> pa.Table:
    return table.sort_by("path")


# --------------------------------------------------------------------------- the type
def test_image_column_roundtrips_through_parquet_pickle_and_frame_save(small_tree, tmp_path):
    data = [p.read_bytes() for p in sorted(small_tree.rglob("*.jpg"))[:3]] + [None]
    column = images_from_bytes(data)
    assert is_image_type(column.type) and column.null_count == 1
    table = pa.table({"image": column, "n": [1, 2, 3, 4]})

    pq.write_table(table, tmp_path / "t.parquet")
    back = pq.read_table(tmp_path / "t.parquet")
    assert back.schema.field("image").type == image_type()
    assert image_bytes(back.column("image")) == data
    assert pickle.loads(pickle.dumps(table)).equals(table)

    frame = Frame(table)
    assert str(frame.schema.field("image").type) == "image"
    frame.save(str(tmp_path / "saved"))
    loaded = Frame.load(str(tmp_path / "saved"))
    assert loaded.schema.field("image").type == image_type()
    assert image_bytes(loaded.to_arrow().column("image")) == data


def test_struct_read_without_the_type_registered_is_restored():
    column = images_from_bytes([make_cases()["good_jpeg"][1]])
    field = pa.field("image", column.type.storage_type, metadata={
        b"ARROW:extension:name": b"framelab.image", b"ARROW:extension:metadata": b""})
    plain = pa.Table.from_arrays([column.storage], schema=pa.schema([field]))
    restored = restore_image_columns(plain)
    assert restored.schema.field("image").type == image_type()


def test_ray_data_blocks_keep_the_image_type(small_tree, tmp_path):
    import ray.data

    tables = [pa.table({"image": images_from_bytes([p.read_bytes()])}) for p in sorted(small_tree.rglob("*.jpg"))[:3]]
    ds = ray.data.from_arrow(tables).materialize()
    assert ds.schema().base_schema.field("image").type == image_type()
    # Concatenation of blocks (one batch spanning several blocks) keeps the type.
    batch = next(iter(ds.iter_batches(batch_size=len(tables), batch_format="pyarrow")))
    assert batch.schema.field("image").type == image_type() and batch.num_rows == len(tables)
    ds.write_parquet(str(tmp_path / "rd"))
    again = ray.data.read_parquet(str(tmp_path / "rd")).to_arrow_refs()
    table = pa.concat_tables(ray.get(again))
    assert restore_image_columns(table).schema.field("image").type == image_type()


def test_pixels_convert_to_and_from_the_image_type(small_tree):
    column = images_from_bytes([p.read_bytes() for p in sorted(small_tree.rglob("*.jpg"))[:4]])
    pixels = images_to_pixels(column, mode="RGB")
    arrays = pixels_to_numpy(pixels)
    assert all(a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 for a in arrays)
    again = pixels_to_numpy(images_to_pixels(images_from_pixels(pixels)))  # PNG is lossless
    assert all(np.array_equal(a, b) for a, b in zip(arrays, again))


# ----------------------------------------------------------------- awkward files
@pytest.mark.parametrize("case", sorted(UNREADABLE))
def test_open_image_refuses_unreadable_files_with_a_reason(case):
    _, data = make_cases()[case]
    with pytest.raises(ImageDecodeError) as info:
        to_numpy(open_image(data))
    if case == "decompression_bomb":
        assert "decompression bomb" in str(info.value)
    if case == "zero_byte":
        assert "empty" in str(info.value)


def test_decompression_bomb_is_refused_by_the_size_limit_before_allocating():
    from bad_images import bomb_png

    # 20,000 x 20,000 is under PIL's own hard limit: our limit must refuse it.
    with pytest.raises(ImageDecodeError, match="over the limit"):
        open_image(bomb_png(20_000, 20_000), max_pixels=10_000_000)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_open_image_decodes_unusual_but_valid_files(case):
    _, data = make_cases()[case]
    pixels = to_numpy(open_image(data))
    width, height, channels = EXPECTED[case]
    assert pixels.shape == (height, width, channels) and pixels.dtype == np.uint8
    if case == "png16":  # scaled from 16 bits, not clipped at 255
        assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 100
    if case == "animated_gif":  # first frame is red
        assert tuple(pixels[0, 0]) == (255, 0, 0)


# ------------------------------------------------------------------ read_images
def test_read_images_reads_the_caltech_subset_with_folder_labels(caltech):
    frame = read_images(str(caltech), label_from="folder")
    assert frame.columns == ["image", "path", "label", "error"]
    assert frame.schema.field("image").type == image_type()
    table = frame.to_arrow()
    assert table.num_rows == 1200 and table.column("error").null_count == 1200
    import csv

    with open(caltech / "labels.csv") as f:
        expected = {str(caltech / r["path"]): r["label"] for r in csv.DictReader(f)}
    assert dict(zip(table.column("path").to_pylist(), table.column("label").to_pylist())) == expected
    first = table.column("image").to_pylist()[0]
    assert first["format"] == "jpeg" and first["width"] > 0 and first["channels"] in (1, 3)


def test_read_images_accepts_lists_globs_file_urls_and_no_paths(small_tree):
    files = sorted(str(p) for p in small_tree.rglob("*.jpg"))
    from_list = read_images(files).to_arrow()
    from_glob = read_images(str(small_tree / "*" / "*.jpg")).to_arrow()
    from_url = read_images("file://" + str(small_tree)).to_arrow()
    for table in (from_list, from_glob, from_url):
        assert sorted(table.column("path").to_pylist()) == files
    bare = read_images(str(small_tree), include_paths=False).to_arrow()
    assert bare.column_names == ["image", "error"] and bare.num_rows == len(files)
    flat = read_images(str(small_tree), recursive=False).to_arrow()
    assert flat.num_rows == 0


@pytest.mark.parametrize(
    "options",
    [{}, {"include_paths": False}, {"label_from": "folder"}, {"on_error": "drop", "label_from": "folder"},
     {"on_error": "raise", "include_paths": False}],
)
def test_read_images_knows_its_schema_without_reading_and_it_matches_the_data(small_tree, options):
    frame = read_images(str(small_tree), **options)
    assert frame._node.declared_schema is not None  # declared up front: asking for it runs nothing
    # No per-operator CPU reservation: it kept a core idle behind the finished listing.
    assert frame.to_ray().context.op_resource_reservation_enabled is False
    assert getattr(frame.to_ray().context, "_max_num_blocks_in_streaming_gen_buffer", 64) == 64
    assert frame.schema == frame.to_arrow().schema
    with pytest.raises(InputError, match="pyarrow.Schema"):
        Frame.from_ray(frame.to_ray(), schema={"image": "image"})


def test_read_images_validates_its_arguments_in_one_place(small_tree):
    with pytest.raises(InputError, match="on_error"):
        read_images(str(small_tree), on_error="ignore")
    with pytest.raises(InputError, match="label_from"):
        read_images(str(small_tree), label_from="parent")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_images(str(small_tree / "nope"))


def test_bad_files_keep_their_rows_with_a_null_image_and_a_reason(bad_folder, small_tree):
    root, paths = bad_folder
    vanished = str(root / "bad" / "listed_then_deleted.jpg")
    listing = [str(p) for p in paths.values()] + [vanished]
    table = read_images(listing).to_arrow()
    assert table.num_rows == len(listing)  # same row count before and after under "null"
    rows = {Path(p).name: (img, err) for p, img, err in zip(
        table.column("path").to_pylist(), table.column("image").to_pylist(), table.column("error").to_pylist())}
    for case, path in paths.items():
        img, err = rows[path.name]
        if case in UNREADABLE:
            assert img is None and err, case
        else:
            assert err is None and img is not None, (case, err)
            width, height, channels = EXPECTED.get(case, (40, 30, 3))
            assert (img["width"], img["height"], img["channels"]) == (width, height, channels), case
    assert rows["listed_then_deleted.jpg"][0] is None and "not found" in rows["listed_then_deleted.jpg"][1]
    assert "decompression bomb" in rows["bomb.png"][1]
    assert "truncated" in rows["truncated.jpg"][1]


def test_bad_files_are_dropped_or_stop_the_job_naming_the_file(bad_folder):
    root, paths = bad_folder
    dropped = read_images(str(root)).to_arrow()
    assert dropped.num_rows == len(paths)
    kept = read_images(str(root), on_error="drop").to_arrow()
    assert kept.num_rows == len(paths) - len(UNREADABLE) and "error" not in kept.column_names
    with pytest.raises(Exception, match=r"(truncated|empty|notes|bomb)\.(jpg|png)"):
        read_images(str(root), on_error="raise").to_arrow()


def _damaged_inside(jpeg: bytes) -> bytes:
    """The JPEG with junk in its middle (end marker intact) that PIL refuses to decode."""
    import io
    import random

    from PIL import Image

    for seed in range(50):
        rng, data = random.Random(seed), bytearray(jpeg)
        for i in range(len(data) // 2, len(data) // 2 + 200):
            data[i] = rng.randrange(256)
        try:
            Image.open(io.BytesIO(bytes(data))).load()
        except OSError:
            return bytes(data)
    raise AssertionError("no seed broke the stream")


def test_verify_catches_truncation_by_default_and_inner_damage_when_full(small_tree, tmp_path):
    src = sorted(small_tree.rglob("*.jpg"))[0]
    damaged = tmp_path / "damaged.jpg"
    damaged.write_bytes(_damaged_inside(src.read_bytes()))
    quick = read_images([str(damaged)]).to_arrow()
    assert quick.column("error")[0].as_py() is None  # complete file: the end marker passes it
    with pytest.warns(UserWarning, match="1 of 1 image"):
        pixels = images.col("image").decode().evaluate(quick)
    assert pixels.null_count == 1  # ...and the decode step nulls the row and says why
    full = read_images([str(damaged)], verify="full").to_arrow()
    assert "cannot decode" in full.column("error")[0].as_py()
    with pytest.raises(InputError, match="verify"):
        read_images(str(small_tree), verify="fast")


def test_a_read_task_warns_with_the_count_of_failed_files(bad_folder):
    import fsspec

    from framelab.frames.images.read import read_block

    _, paths = bad_folder
    with pytest.warns(UserWarning, match=rf"{len(UNREADABLE)} of {len(paths)} file"):
        table = read_block(fsspec.filesystem("file"), [str(p) for p in paths.values()])
    assert table.num_rows == len(paths)


def test_read_images_from_s3_gives_the_same_frame_as_local_disk(small_tree, s3_server):
    bucket = s3_server.make_bucket("images-tree")
    s3_server.upload(small_tree, f"s3://{bucket}/corpus")
    remote = read_images(
        f"s3://{bucket}/corpus", label_from="folder", storage_options=s3_server.storage_options
    ).to_arrow()
    local = read_images(str(small_tree), label_from="folder").to_arrow()
    remote = remote.set_column(1, "path", pa.array(
        [p.replace(f"s3://{bucket}/corpus", str(small_tree)) for p in remote.column("path").to_pylist()]))
    assert _by_path(remote).equals(_by_path(local))


# ------------------------------------------------------------ column operations
def test_resize_crop_convert_decode_and_to_tensor_run_as_column_operations(small_tree):
    frame = read_images(str(small_tree), label_from="folder")
    out = (
        frame.with_column("small", images.col("image").resize(24, 32))  # (height, width)
        .with_column("pixels", images.col("image").resize(40, 40, keep_aspect="cover").center_crop(32, 32).convert("RGB").decode())
        .with_column("grey", images.col("image").convert("L").decode())
        .with_column("x", images.col("image").resize(16, 16).convert("RGB").to_tensor())
    )
    assert out.schema.field("small").type == image_type()
    table = out.to_arrow()
    small = table.column("small").to_pylist()
    assert {(s["width"], s["height"]) for s in small} == {(32, 24)}
    pixels = pixels_to_numpy(table.column("pixels"))
    assert {p.shape for p in pixels} == {(32, 32, 3)}
    assert {p.shape[2] for p in pixels_to_numpy(table.column("grey"))} == {1}
    x = pixels_to_numpy(table.column("x"))
    assert {a.shape for a in x} == {(3, 16, 16)} and all(a.dtype == np.float32 and a.max() <= 1.0 for a in x)


def test_operations_honour_exif_orientation_and_keep_null_rows(bad_folder):
    root, paths = bad_folder
    frame = read_images([str(paths["exif_rotated"]), str(paths["zero_byte"])])
    table = frame.with_column("px", images.col("image").convert("RGB").decode()).to_arrow()
    px = dict(zip([Path(p).name for p in table.column("path").to_pylist()], pixels_to_numpy(table.column("px"))))
    assert px["rotated.jpg"].shape == (40, 30, 3)  # stored 40 wide, shown 30 wide after EXIF
    assert px["empty.jpg"] is None


def test_image_chain_refuses_bad_arguments_clearly():
    with pytest.raises(InputError, match="convert mode"):
        images.col("image").convert("CMYK")
    with pytest.raises(InputError, match="positive integer"):
        images.col("image").resize(0, 10)
    with pytest.raises(InputError, match="ends the chain"):
        images.col("image").decode().resize(2, 2)
