"""Generate the awkward image files read_images must survive, all from code (nothing downloaded).

``write_bad_images(folder)`` writes one file per case and returns a dict
case -> path. Cases marked in :data:`UNREADABLE` cannot be decoded; the others
are valid but unusual and must decode to ordinary L/RGB/RGBA pixels.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

UNREADABLE = {"truncated_jpeg", "zero_byte", "text_as_jpeg", "decompression_bomb"}
# Expected (width, height, channels) after open_image + natural mode.
EXPECTED = {
    "cmyk_jpeg": (40, 30, 3),
    "png16": (40, 30, 1),
    "palette_transparent": (40, 30, 4),
    "greyscale": (40, 30, 1),
    "animated_gif": (40, 30, 3),
    "exif_rotated": (30, 40, 3),  # stored 40x30 with orientation 6 (rotate 90 clockwise)
}


def _gradient(width: int = 40, height: int = 30) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, 0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, 1)
    return np.stack([x, y, 255 - x], axis=-1)


def _jpeg(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **options)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (10 gigapixels by default)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    data = _jpeg(Image.fromarray(noise))
    return data[: int(len(data) * 0.7)]


def make_cases() -> dict[str, tuple[str, bytes]]:
    """case -> (file name, bytes)."""
    rgb = Image.fromarray(_gradient())
    good = _jpeg(rgb)
    cases: dict[str, tuple[str, bytes]] = {
        "good_jpeg": ("good.jpg", good),
        # Cut inside the entropy-coded data: the header still parses, decoding fails.
        "truncated_jpeg": ("truncated.jpg", _truncated_jpeg()),
        "zero_byte": ("empty.jpg", b""),
        "text_as_jpeg": ("notes.jpg", b"this is a text file, not a JPEG\n" * 4),
        "decompression_bomb": ("bomb.png", bomb_png()),
        "cmyk_jpeg": ("cmyk.jpg", _jpeg(rgb.convert("CMYK"))),
    }
    buf = io.BytesIO()
    arr16 = (np.linspace(0, 65535, 40 * 30).reshape(30, 40)).astype(np.uint16)
    Image.fromarray(arr16).save(buf, "PNG")
    cases["png16"] = ("deep16.png", buf.getvalue())

    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buf = io.BytesIO()
    pal.save(buf, "PNG", transparency=0)
    cases["palette_transparent"] = ("palette.png", buf.getvalue())

    buf = io.BytesIO()
    rgb.convert("L").save(buf, "PNG")
    cases["greyscale"] = ("grey.png", buf.getvalue())

    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases["animated_gif"] = ("animated.gif", buf.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6
    cases["exif_rotated"] = ("rotated.jpg", _jpeg(rgb, exif=exif.tobytes()))
    return cases


def write_bad_images(folder: Path) -> dict[str, Path]:
    """Write every case under ``folder/bad/`` and return case -> path."""
    out = Path(folder) / "bad"
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for case, (name, data) in make_cases().items():
        path = out / name
        path.write_bytes(data)
        paths[case] = path
    return paths
