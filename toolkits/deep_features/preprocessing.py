"""How an image becomes the tensor a network was trained on: resize, crop, mean/std.

The geometric part (resize, crop) runs in the CPU decode stage on PIL images
and yields uint8 pixels; the arithmetic part (scale, mean, std) runs beside
the model, on the accelerator when there is one. Neither part imports torch,
so decode workers stay light. Resizing and cropping follow
``torchvision.transforms`` exactly (same output sizes, same rounding), so
features match a plain torchvision pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
        >>> p.output_size
        (224, 224)
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
        """(height, width) of the tensor given to the network."""
        return self.crop if self.crop is not None else self.resize  # type: ignore[return-value]

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
        """Rebuild from :meth:`to_dict` output."""
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

    def apply(self, image) -> np.ndarray:
        """Resize and crop a PIL image; returns ``(height, width, 3)`` uint8 RGB pixels.

        Example:
            >>> from PIL import Image
            >>> from framelab.toolkits.deep_features import Preprocessing
            >>> p = Preprocessing(resize=(8, 8), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
            >>> p.apply(Image.new("L", (20, 10))).shape
            (8, 8, 3)
        """
        from PIL import Image

        if image.mode != "RGB":
            image = image.convert("RGB")
        resample = getattr(Image.Resampling, self.interpolation.upper())
        width, height = image.size
        if isinstance(self.resize, int):
            # torchvision's Resize(int): the shorter side becomes `resize`, the
            # longer one is truncated (not rounded) to keep the aspect.
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.resize, int(self.resize * long / short)
            size = (new_short, new_long) if width <= height else (new_long, new_short)
        else:
            size = (self.resize[1], self.resize[0])
        if size != image.size:
            image = image.resize(size, resample)
        if self.crop is not None:
            image = _center_crop(image, self.crop)
        return np.asarray(image, dtype=np.uint8)


def _center_crop(image, crop: tuple[int, int]):
    crop_h, crop_w = crop
    width, height = image.size
    if crop_w > width or crop_h > height:
        # As torchvision: pad with zeros to the crop size, centred.
        from PIL import Image

        padded = Image.new("RGB", (max(width, crop_w), max(height, crop_h)))
        padded.paste(image, ((max(width, crop_w) - width) // 2, (max(height, crop_h) - height) // 2))
        image, (width, height) = padded, padded.size
    top = int(round((height - crop_h) / 2.0))
    left = int(round((width - crop_w) / 2.0))
    return image.crop((left, top, left + crop_w, top + crop_h))


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
