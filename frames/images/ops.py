"""Image operations as column expressions, chained from :func:`col`.

One style everywhere: start from ``images.col("image")``, chain steps, hand the
result to ``frame.with_column``. Sizes are ``(height, width)``, as in numpy
pixels and torchvision; ``resize(n)`` alone resizes the shorter side to ``n``
(torchvision's ``Resize(n)``)::

    from framelab.frames import images
    frame.with_column("small", images.col("image").resize(224, 224))          # an image column
    frame.with_column("pixels", images.col("image").convert("RGB").resize(224, 224).decode())
    frame.with_column("x", images.col("image").convert("RGB").resize(256).center_crop(224).to_tensor())

Resizing and cropping follow ``torchvision.transforms`` exactly (same output
sizes, same rounding, same padding of small images), so a network's
preprocessing is one of these chains (see deep features' ``Preprocessing``).

A chain decodes each image once, runs every step on the decoded pixels, and
only then produces its output: an image column (re-encoded; the default), a
uint8 ``H x W x C`` tensor column (``decode()``) or a float32 ``C x H x W``
tensor in [0, 1] (``to_tensor()``). Steps run block by block on the cluster.
Every decode is EXIF-upright (see :func:`open_image`). A null image, or one that
fails to decode, gives a null result in its row (with a warning that counts
them); other rows are unaffected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
from PIL import Image

from framelab.frames.errors import InputError
from framelab.frames.expressions import ColumnExpr
from framelab.frames.images.decode import DEFAULT_MAX_PIXELS, open_image, to_mode, to_numpy
from framelab.frames.images.image_type import (
    image_array,
    image_bytes,
    image_formats,
    image_type,
    is_encoded_type,
    pixel_limits,
    pixels_array,
    pixels_type,
)
from framelab.platform import failures

RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
MODES = ("L", "RGB", "RGBA")
_KEEP_ASPECT = (False, True, "fit", "cover")
_ENCODE = {"jpeg": ("JPEG", {"quality": 95}), "png": ("PNG", {}), "webp": ("WEBP", {"lossless": True})}


@dataclass(frozen=True)
class _Step:
    kind: str  # "resize" | "resize_short" | "center_crop" | "convert"
    height: int = 0
    width: int = 0
    keep_aspect: bool | str = False
    resample: str = "bilinear"
    mode: str = ""


@dataclass(frozen=True)
class ImageExpr(ColumnExpr):
    """A chain of image steps on one image column; build it with :func:`col`."""

    column: str
    steps: tuple[_Step, ...] = ()
    output: str = "image"  # "image" | "pixels" | "tensor"
    format: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    # What failures are counted under ("deep features: decoding"); the chain itself when None.
    stage: str | None = field(default=None, compare=False)

    # ------------------------------------------------------------ chain steps
    def resize(
        self,
        height: int,
        width: int | None = None,
        *,
        keep_aspect: bool | str = False,
        resample: str = "bilinear",
    ) -> ImageExpr:
        """Resize to ``height x width``, or the shorter side to ``height`` when ``width`` is None.

        With both sides, ``keep_aspect=False`` stretches to exactly that size;
        ``True``/``"fit"`` scales to fit inside the box (one side may be
        shorter); ``"cover"`` scales so the image covers the box (follow with
        :meth:`center_crop`). With one, the aspect is kept and the longer side
        is truncated as torchvision's ``Resize(n)`` truncates it.

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").resize(224, 320), images.col("image").resize(256)
            (images.col('image').resize(224, 320), images.col('image').resize(256))
        """
        self._check_open()
        if resample not in RESAMPLE:
            raise InputError(f"resample must be one of {sorted(RESAMPLE)}, got {resample!r}")
        if width is None:
            (size,) = _check_sizes("resize", height)
            return replace(self, steps=self.steps + (_Step("resize_short", size, size, resample=resample),))
        height, width = _check_sizes("resize", height, width)
        if keep_aspect not in _KEEP_ASPECT:
            raise InputError(f"keep_aspect must be one of {_KEEP_ASPECT}, got {keep_aspect!r}")
        step = _Step("resize", height, width, "fit" if keep_aspect is True else keep_aspect, resample)
        return replace(self, steps=self.steps + (step,))

    def center_crop(self, height: int, width: int | None = None) -> ImageExpr:
        """Crop the central ``height x width`` region (a square when ``width`` is None; small images are padded with black).

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").center_crop(224)
            images.col('image').center_crop(224, 224)
        """
        self._check_open()
        height, width = _check_sizes("center_crop", height, height if width is None else width)
        return replace(self, steps=self.steps + (_Step("center_crop", height, width),))

    def convert(self, mode: str) -> ImageExpr:
        """Convert to ``"RGB"``, ``"L"`` (greyscale) or ``"RGBA"``.

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").convert("RGB")
            images.col('image').convert('RGB')
        """
        self._check_open()
        if mode not in MODES:
            raise InputError(f"convert mode must be one of {MODES}, got {mode!r}")
        return replace(self, steps=self.steps + (_Step("convert", mode=mode),))

    # ---------------------------------------------------------------- outputs
    def encode(self, format: str = "png") -> ImageExpr:
        """End the chain as an image column encoded as ``"png"``, ``"jpeg"`` or ``"webp"``.

        Without it, an image chain keeps JPEGs as JPEG (quality 95) and writes
        everything else as PNG.

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").resize(64, 64).encode("jpeg")
            images.col('image').resize(64, 64).encode('jpeg')
        """
        self._check_open()
        if format.lower() not in _ENCODE:
            raise InputError(f"format must be one of {sorted(_ENCODE)}, got {format!r}")
        return replace(self, output="image", format=format.lower())

    def decode(self) -> ImageExpr:
        """End the chain as decoded pixels: a uint8 ``H x W x C`` tensor column.

        The column has a fixed shape when the chain fixes both size and mode
        (``resize`` without keep_aspect or ``center_crop``, plus ``convert``);
        otherwise it is ragged (Ray Data's variable-shaped tensor).

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").resize(8, 8).convert("RGB").decode().output_type(None).shape
            [8, 8, 3]
        """
        self._check_open()
        return replace(self, output="pixels")

    def to_tensor(self) -> ImageExpr:
        """End the chain as a float32 ``C x H x W`` tensor in [0, 1] (what torchvision's ToTensor gives).

        Example:
            >>> from framelab.frames import images
            >>> images.col("image").resize(8, 8).convert("RGB").to_tensor().output_type(None).shape
            [3, 8, 8]
        """
        self._check_open()
        return replace(self, output="tensor")

    # ------------------------------------------------------- ColumnExpr parts
    def input_columns(self) -> list[str]:
        return [self.column]

    def output_type(self, schema: pa.Schema | None) -> pa.DataType | None:
        if self.output == "image":
            return image_type()
        shape = self._static_shape()
        if self.output == "pixels":
            return pixels_type(shape, "uint8")
        chw = None if shape is None else (shape[2], shape[0], shape[1])
        return pixels_type(chw, "float32")

    def evaluate(self, table: pa.Table) -> pa.Array:
        column = table.column(self.column)
        if not is_encoded_type(column.type):
            raise InputError(
                f"column {self.column!r} is {column.type}, not an image column; "
                "read images with Frame.read_images(...) or wrap bytes with images_from_bytes(...)"
            )
        results: list = []
        formats: list[str | None] = []
        storage_fmt = image_formats(column) if self.output == "image" else [None] * len(column)
        failed, examples = 0, []
        paths = table.column("path").to_pylist() if "path" in table.column_names else None
        # An image as large as read_images(max_pixels=...) accepted decodes here too.
        limits = pixel_limits(column, self.max_pixels)
        for i, (data, fmt) in enumerate(zip(image_bytes(column), storage_fmt)):
            img = None
            if data is not None:
                try:
                    img = self._apply(open_image(data, max_pixels=limits[i]))
                except Exception as exc:  # noqa: BLE001 - one bad image gives one null row
                    failed += 1
                    examples.append(f"{paths[i] if paths else f'row {i} of its block'}: {exc}")
            results.append(img)
            formats.append(fmt)
        # read_images(verify=True) passes a complete JPEG damaged inside; say so here.
        failures.report(self.stage or repr(self), failed, len(column), examples[:3], unit="image(s)")
        if self.output == "image":
            return self._encode(results, formats)
        arrays = [None if img is None else to_numpy(img) for img in results]
        shape = self._static_shape()
        if self.output == "tensor":
            arrays = [None if a is None else (a.transpose(2, 0, 1).astype(np.float32) / 255.0) for a in arrays]
            chw = None if shape is None else (shape[2], shape[0], shape[1])
            return pixels_array(arrays, chw, "float32")
        return pixels_array(arrays, shape, "uint8")

    # -------------------------------------------------------------- internals
    def _check_open(self) -> None:
        if self.output != "image" or self.format is not None:
            raise InputError(
                f"{self!r} already ends the chain; add resize/crop/convert steps before "
                "decode(), to_tensor() or encode()"
            )

    def _static_shape(self) -> tuple[int, int, int] | None:
        size: tuple[int, int] | None = None
        mode: str | None = None
        for step in self.steps:
            if step.kind == "resize":
                size = (step.height, step.width) if step.keep_aspect is False else None
            elif step.kind == "resize_short":
                size = None
            elif step.kind == "center_crop":
                size = (step.height, step.width)
            elif step.kind == "convert":
                mode = step.mode
        if size is None or mode is None:
            return None
        return (size[0], size[1], len(mode))

    def _apply(self, img: Image.Image) -> Image.Image:
        img = to_mode(img)  # every step sees L, RGB or RGBA
        for step in self.steps:
            if step.kind in ("resize", "resize_short"):
                img = _resize(img, step)
            elif step.kind == "center_crop":
                img = _center_crop(img, step.height, step.width)
            else:
                img = to_mode(img, step.mode)
        return img

    def _encode(self, results: list, source_formats: list[str | None]) -> pa.Array:
        data, fmts, widths, heights, chans = [], [], [], [], []
        for img, src in zip(results, source_formats):
            if img is None:
                for col in (data, fmts, widths, heights, chans):
                    col.append(None)
                continue
            fmt = self.format or ("jpeg" if src == "jpeg" and img.mode in ("L", "RGB") else "png")
            pil_name, options = _ENCODE[fmt]
            if fmt == "jpeg" and img.mode == "RGBA":
                img = img.convert("RGB")
            buf = io.BytesIO()
            img.save(buf, format=pil_name, **options)
            data.append(buf.getvalue())
            fmts.append(fmt)
            widths.append(img.size[0])
            heights.append(img.size[1])
            chans.append(len(img.getbands()))
        return image_array(data, fmts, widths, heights, chans)

    def __repr__(self) -> str:
        text = f"images.col({self.column!r})"
        for s in self.steps:
            extra = "" if s.resample == "bilinear" or s.kind == "center_crop" else f", resample={s.resample!r}"
            if s.kind == "resize":
                extra = ("" if s.keep_aspect is False else f", keep_aspect={s.keep_aspect!r}") + extra
                text += f".resize({s.height}, {s.width}{extra})"
            elif s.kind == "resize_short":
                text += f".resize({s.height}{extra})"
            elif s.kind == "center_crop":
                text += f".center_crop({s.height}, {s.width})"
            else:
                text += f".convert({s.mode!r})"
        if self.output == "pixels":
            text += ".decode()"
        elif self.output == "tensor":
            text += ".to_tensor()"
        elif self.format is not None:
            text += f".encode({self.format!r})"
        return text


def col(name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageExpr:
    """Start an image operation chain on the image column ``name``.

    Example:
        >>> from framelab.frames import images
        >>> images.col("image").resize(224, 224).convert("RGB").decode()
        images.col('image').resize(224, 224).convert('RGB').decode()
    """
    if not isinstance(name, str) or not name:
        raise InputError(f"images.col needs a column name, got {name!r}")
    return ImageExpr(name, max_pixels=max_pixels)


def _check_sizes(method: str, *sizes: int) -> tuple[int, ...]:
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v > 0 for v in sizes):
        raise InputError(f"{method} needs positive integer sizes (height, width), got {', '.join(map(repr, sizes))}")
    return tuple(int(v) for v in sizes)


def _resize(img: Image.Image, step: _Step) -> Image.Image:
    width, height = img.size
    if step.kind == "resize_short":
        # torchvision's Resize(n): the shorter side becomes n, the longer is truncated (not rounded).
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = step.height, int(step.height * long / short)
        target = (new_short, new_long) if width <= height else (new_long, new_short)
    elif step.keep_aspect in ("fit", "cover"):
        scale_w, scale_h = step.width / width, step.height / height
        scale = min(scale_w, scale_h) if step.keep_aspect == "fit" else max(scale_w, scale_h)
        target = (max(1, round(width * scale)), max(1, round(height * scale)))
    else:
        target = (step.width, step.height)
    if img.size == target:
        return img
    return img.resize(target, RESAMPLE[step.resample], reducing_gap=None)


def _center_crop(img: Image.Image, height: int, width: int) -> Image.Image:
    """torchvision's CenterCrop: pad a smaller image with black (centred, extra on the right and bottom), then crop."""
    w, h = img.size
    if width > w or height > h:
        padded = Image.new(img.mode, (max(w, width), max(h, height)))
        padded.paste(img, ((max(w, width) - w) // 2, (max(h, height) - h) // 2))
        img, (w, h) = padded, padded.size
    top = int(round((h - height) / 2.0))
    left = int(round((w - width) / 2.0))
    return img.crop((left, top, left + width, top + height))
