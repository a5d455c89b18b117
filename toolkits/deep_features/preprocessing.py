"""How an image becomes the tensor a network was trained on: resize, crop, mean/std.

The geometric part is a chain of the Frame's own image operations
(:mod:`framelab.frames.images.ops`: convert to RGB, resize, centre-crop,
decode to uint8 ``(height, width, 3)`` pixels), run as the decode step of the
plan; the arithmetic part (scale, mean, std) runs beside the model, on the
accelerator when there is one. Neither imports torch, so decode workers stay
light. The image operations follow ``torchvision.transforms`` exactly (same
sizes, same rounding), so features match a plain torchvision pipeline.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from framelab.frames import images

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")


@dataclass(frozen=True)
class Preprocessing:
    """Resize, centre-crop and normalise, as a network expects its input.

    ``resize`` is an int (the shorter side, aspect kept: torchvision's
    ``Resize(256)``) or ``(height, width)`` (the whole image squeezed to that
    size: ``Resize((224, 224))``). ``crop`` is the centre crop, None for none.
    ``mean``/``std`` are per channel (RGB), on pixel values scaled to [0, 1].

    Example:
        >>> from framelab.toolkits.deep_features import Preprocessing
        >>> p = Preprocessing(resize=256, crop=224, mean=(0.485, 0.456, 0.406),
        ...                   std=(0.229, 0.224, 0.225))
        >>> p.output_size, p.pixels("image")
        ((224, 224), images.col('image').convert('RGB').resize(256).center_crop(224, 224).decode())
    """

    resize: int | tuple[int, int]
    crop: int | tuple[int, int] | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        resize = _size(self.resize, "resize", allow_int=True)
        crop = None if self.crop is None else _size(self.crop, "crop", allow_int=False)
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (R, G, B), got mean={mean}, std={std}")
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {std}")
        interpolation = str(self.interpolation).lower()
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {_INTERPOLATIONS}, got {self.interpolation!r}")
        if isinstance(resize, int) and crop is None:
            raise ValueError(
                "resize by the shorter side gives images of different sizes; add crop=<size> "
                "or resize to an exact (height, width)"
            )
        object.__setattr__(self, "resize", resize)
        object.__setattr__(self, "crop", crop)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        object.__setattr__(self, "interpolation", interpolation)

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the tensor given to the network.

        Example:
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> Preprocessing(resize=(240, 320), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3).output_size
            (240, 320)
        """
        return self.crop if self.crop is not None else self.resize  # type: ignore[return-value]

    def pixels(self, column: str) -> Any:
        """The image chain giving the network's uint8 ``(height, width, 3)`` input from ``column``.

        Example:
            >>> import io, pyarrow as pa
            >>> from PIL import Image
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> buf = io.BytesIO(); Image.new("L", (20, 10)).save(buf, "PNG")
            >>> p = Preprocessing(resize=(8, 6), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> p.pixels("img").evaluate(pa.table({"img": [buf.getvalue()]})).type.shape
            [8, 6, 3]
        """
        chain = images.col(column).convert("RGB")
        if isinstance(self.resize, int):
            chain = chain.resize(self.resize, resample=self.interpolation)
        else:
            chain = chain.resize(*self.resize, resample=self.interpolation)
        if self.crop is not None:
            chain = chain.center_crop(*self.crop)
        # Failures are counted as the extraction's decoding, the step a user knows.
        return dataclasses.replace(chain.decode(), stage="deep features: decoding")

    def to_dict(self) -> dict:
        """A JSON-able description (used in provenance and saved configs).

        Example:
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> p = Preprocessing(resize=(224, 224), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> Preprocessing.from_dict(p.to_dict()) == p
            True
        """
        return {
            "resize": self.resize if isinstance(self.resize, int) else list(self.resize),
            "crop": None if self.crop is None else list(self.crop),
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Preprocessing:
        """Rebuild from :meth:`to_dict` output.

        Example:
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> Preprocessing.from_dict({"resize": 256, "crop": [224, 224], "mean": [0.5] * 3, "std": [0.5] * 3}).crop
            (224, 224)
        """
        return cls(
            resize=data["resize"] if isinstance(data["resize"], int) else tuple(data["resize"]),
            crop=None if data.get("crop") is None else tuple(data["crop"]),
            mean=tuple(data["mean"]),
            std=tuple(data["std"]),
            interpolation=data.get("interpolation", "bilinear"),
        )

    @classmethod
    def from_torchvision(cls, transforms) -> Preprocessing:
        """From torchvision's ``ImageClassification`` (``weights.transforms()``).

        Example:
            >>> import torchvision
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> w = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
            >>> Preprocessing.from_torchvision(w.transforms()).resize
            256
        """
        resize = list(transforms.resize_size)
        crop = list(transforms.crop_size)
        return cls(
            resize=resize[0] if len(resize) == 1 else tuple(resize),
            crop=(crop[0], crop[0]) if len(crop) == 1 else tuple(crop),
            mean=tuple(transforms.mean),
            std=tuple(transforms.std),
            interpolation=transforms.interpolation.value,
        )


def _size(value, name: str, *, allow_int: bool):
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
        return int(value) if allow_int else (int(value), int(value))
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or (height, width), got {value!r}") from None
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")
    return (height, width)
