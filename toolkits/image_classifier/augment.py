"""The CPU side of fine-tuning: images decoded, augmented and labelled in Ray Data tasks ahead of the workers.

Each epoch's training rows are one Ray Data pipeline (:func:`training_batch`
mapped over the frame's blocks): decode, torchvision's ``RandomResizedCrop``
and a horizontal flip, drawn from a generator seeded by (seed, epoch, row), so
a run resumed from a checkpoint sees the very images an uninterrupted run
would have seen. Validation rows go through the network's own preprocessing,
the Frame's image chain (:meth:`Preprocessing.pixels`), as the extractor does.
Pixels leave as uint8: a quarter of the bytes of floats, and the worker
normalises them on its device for free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from framelab.frames.images import pixels_to_batch
from framelab.frames.images.decode import open_image, to_mode
from framelab.frames.images.image_type import image_bytes
from framelab.frames.images.ops import RESAMPLE
from framelab.toolkits.deep_features.preprocessing import Preprocessing

ROW_COLUMN = "__framelab_row__"


@dataclass(frozen=True)
class Augmentation:
    """``RandomResizedCrop(size, scale, ratio)`` then a horizontal flip with probability ``flip``.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.image_classifier.augment import Augmentation
        >>> left, top, w, h = Augmentation(size=(64, 64)).crop_box(100, 80, np.random.default_rng(0))
        >>> 0 <= left <= 100 - w and 0 <= top <= 80 - h and 0.25 * 8000 <= w * h * 1.05
        True
    """

    size: tuple[int, int]
    scale: tuple[float, float] = (0.25, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    interpolation: str = "bilinear"

    def crop_box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """(left, top, crop width, crop height): torchvision's ``RandomResizedCrop.get_params``, on a numpy generator."""
        area = width * height
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
        # Fallback, as torchvision: a centre crop at the nearest allowed aspect.
        in_ratio = width / height
        if in_ratio < self.ratio[0]:
            w, h = width, int(round(width / self.ratio[0]))
        elif in_ratio > self.ratio[1]:
            h, w = height, int(round(height * self.ratio[1]))
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def apply(self, img, rng: np.random.Generator) -> np.ndarray:
        """One augmented ``(height, width, 3)`` uint8 array from a PIL image."""
        left, top, w, h = self.crop_box(img.size[0], img.size[1], rng)
        out_h, out_w = self.size
        img = img.resize((out_w, out_h), RESAMPLE[self.interpolation], box=(left, top, left + w, top + h),
                         reducing_gap=None)
        pixels = np.asarray(img, dtype=np.uint8)
        if rng.random() < self.flip:
            pixels = pixels[:, ::-1]
        return pixels


def row_rng(seed: int, epoch: int, key: int) -> np.random.Generator:
    """The generator of one row's augmentation in one epoch: the same wherever and whenever it runs.

    Example:
        >>> from framelab.toolkits.image_classifier.augment import row_rng
        >>> row_rng(0, 1, 7).random() == row_rng(0, 1, 7).random() != row_rng(0, 2, 7).random()
        True
    """
    return np.random.default_rng([seed, epoch, key])


def training_batch(
    table: pa.Table,
    *,
    image_column: str,
    target: str,
    classes: list,
    augmentation: Augmentation | None,
    preprocessing: Preprocessing,
    seed: int,
    epoch: int,
) -> dict[str, np.ndarray]:
    """Rows of images and labels -> ``{"pixels": (n, h, w, 3) uint8, "label": (n,) int64, "row": (n,) int64}``.

    ``augmentation=None`` gives the network's own preprocessing (validation).
    Rows whose image is null or cannot be decoded are left out: the linear
    probe that starts every fine-tune has counted them already, once.

    Example:
        >>> import io, pyarrow as pa
        >>> from PIL import Image
        >>> from framelab.toolkits.deep_features import Preprocessing
        >>> from framelab.toolkits.image_classifier.augment import Augmentation, training_batch
        >>> buf = io.BytesIO(); Image.new("RGB", (30, 20)).save(buf, "PNG")
        >>> t = pa.table({"img": [buf.getvalue(), b"junk"], "y": ["a", "b"], "__framelab_row__": [0, 1]})
        >>> p = Preprocessing(resize=(16, 16), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> out = training_batch(t, image_column="img", target="y", classes=["a", "b"],
        ...                      augmentation=Augmentation((16, 16)), preprocessing=p, seed=0, epoch=0)
        >>> out["pixels"].shape, out["label"].tolist()
        ((1, 16, 16, 3), [0])
    """
    index = {c: i for i, c in enumerate(classes)}
    labels = table.column(target).to_pylist()
    rows = table.column(ROW_COLUMN).to_pylist()
    height, width = preprocessing.output_size if augmentation is None else augmentation.size
    if augmentation is None:
        # The Frame's own image chain, exactly as the extractor prepares an image.
        decoded = preprocessing.pixels(image_column).evaluate(table.select([image_column] + (
            ["path"] if "path" in table.column_names else [])))
        pixels, valid = pixels_to_batch(decoded)
        keep = np.flatnonzero(valid)
        out = np.asarray(pixels)[keep] if len(keep) else np.zeros((0, height, width, 3), np.uint8)
    else:
        arrays, keep = [], []
        for i, data in enumerate(image_bytes(table.column(image_column))):
            if data is None:
                continue
            try:
                img = to_mode(open_image(data), "RGB")
            except Exception:  # noqa: BLE001 - an undecodable row is left out; the probe counted it
                continue
            arrays.append(augmentation.apply(img, row_rng(seed, epoch, rows[i])))
            keep.append(i)
        out = np.stack(arrays) if arrays else np.zeros((0, height, width, 3), np.uint8)
    return {
        "pixels": np.ascontiguousarray(out),
        "label": np.array([index[labels[i]] for i in keep], dtype=np.int64),
        "row": np.array([rows[i] for i in keep], dtype=np.int64),
    }

