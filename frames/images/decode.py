"""Opening one encoded image safely: EXIF orientation, first frame, a pixel limit.

Every decode in framelab goes through :func:`open_image`, so every image is
upright, single-frame, and refused *before* allocation when its header claims
more pixels than ``max_pixels`` (a decompression bomb is an error string in a
row, never an out-of-memory kill of a worker).
"""

from __future__ import annotations

import io
import threading
import warnings

import numpy as np
from PIL import Image, ImageOps

from framelab.frames.errors import FramelabError

# PIL's own default; big enough for a 9,000 x 9,000 photo.
DEFAULT_MAX_PIXELS = 89_478_485
_EXIF_ORIENTATION = 0x0112
_PIL_LIMIT_LOCK = threading.Lock()
_EXIF_IN_INFO = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "MPO"}
# Modes open_image's callers get pixels in, by channel count.
_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


class ImageDecodeError(FramelabError, ValueError):
    """An image that cannot be decoded (corrupt, truncated, not an image, too large)."""


def open_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode one encoded image into a loaded, upright PIL image.

    EXIF orientation is applied, an animation gives its first frame, and an
    image whose header claims more than ``max_pixels`` pixels is refused before
    any pixel memory is allocated. The mode is PIL's own (it may be "CMYK",
    "I;16", "P", ...); use :func:`to_numpy` for uint8 pixels in "L"/"RGB"/"RGBA".

    Raises:
        ImageDecodeError: naming what is wrong with the bytes.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from framelab.frames.images import open_image
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 3)).save(buf, "PNG")
        >>> open_image(buf.getvalue()).size
        (4, 3)
    """
    img = _open_checked(data, max_pixels)
    try:
        img.load()
        if _orientation(img) == 1:  # most files: skip exif_transpose's copy and re-parse
            return img
        return ImageOps.exif_transpose(img)
    except ImageDecodeError:
        raise
    except Exception as exc:  # noqa: BLE001 - PIL raises many types for corrupt data
        raise ImageDecodeError(f"cannot decode the image: {_describe(exc)}") from exc


def probe_image(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, verify: bool | str = False
) -> tuple[str, int, int, int]:
    """Format, width, height and channels of an encoded image, from its header.

    ``verify`` also checks the rest of the file, so bad files are caught here
    rather than at the first real decode. ``"full"`` decodes the whole image
    (JPEGs at 1/8 scale, which still reads every byte of the compressed stream).
    ``True`` does the same, except that a JPEG ending with its end-of-image
    marker passes on that marker: that catches every truncated JPEG at a tenth
    of the cost, and misses only damage inside a complete file.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from framelab.frames.images.decode import probe_image
        >>> buf = io.BytesIO(); Image.new("L", (4, 3)).save(buf, "PNG")
        >>> probe_image(buf.getvalue())
        ('png', 4, 3, 1)
    """
    img = _open_checked(data, max_pixels)
    fmt = (img.format or "unknown").lower()
    width, height = img.size
    if _orientation(img) in (5, 6, 7, 8):
        width, height = height, width
    channels = _CHANNELS[_target_mode(img)]
    if verify == "full" or (verify and not (fmt == "jpeg" and _ends_with_jpeg_eoi(data))):
        try:
            if fmt == "jpeg":
                img.draft(img.mode, (max(1, img.size[0] // 8), max(1, img.size[1] // 8)))
            img.load()
        except Exception as exc:  # noqa: BLE001
            raise ImageDecodeError(f"cannot decode the image: {_describe(exc)}") from exc
    return fmt, int(width), int(height), channels


def _ends_with_jpeg_eoi(data: bytes) -> bool:
    # Some writers pad after the marker; a truncated file has no marker at all.
    return bytes(data[-16:]).rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def to_numpy(img: Image.Image, mode: str | None = None) -> np.ndarray:
    """uint8 ``H x W x C`` pixels of a PIL image, in ``mode`` or its natural L/RGB/RGBA.

    CMYK becomes RGB, 16-bit greyscale is scaled to 8 bits, palette images
    become RGB (RGBA when they have transparency).

    Example:
        >>> from PIL import Image
        >>> from framelab.frames.images.decode import to_numpy
        >>> to_numpy(Image.new("CMYK", (4, 3))).shape
        (3, 4, 3)
    """
    img = to_mode(img, mode)
    arr = np.asarray(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def to_mode(img: Image.Image, mode: str | None = None) -> Image.Image:
    """Convert a PIL image to ``mode`` ("L", "RGB", "RGBA"), or to its natural one of those."""
    if mode is not None and mode not in _CHANNELS:
        raise ValueError(f"mode must be one of {sorted(_CHANNELS)}, got {mode!r}")
    natural = _target_mode(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # PIL's convert("L") clips 16-bit values at 255; scale them instead.
        arr = np.asarray(img)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
        img = Image.fromarray(arr, "L")
    elif img.mode != natural:
        img = img.convert(natural)
    target = mode or natural
    return img if img.mode == target else img.convert(target)


def _target_mode(img: Image.Image) -> str:
    mode = img.mode
    if mode in _CHANNELS:
        return mode
    if mode in ("1", "I;16", "I;16B", "I;16L", "I", "F"):
        return "L"
    if mode in ("LA", "La", "PA", "RGBa"):
        return "RGBA"
    if mode == "P":
        return "RGBA" if "transparency" in img.info else "RGB"
    return "RGB"  # CMYK, YCbCr, LAB, HSV, RGBX


def _orientation(img: Image.Image) -> int:
    if img.format in _EXIF_IN_INFO and "exif" not in img.info:
        return 1  # these formats only carry orientation in an EXIF block
    try:
        return int(img.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - a broken EXIF block is not a broken image
        return 1


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    if data is None or len(data) == 0:
        raise ImageDecodeError("the file is empty (0 bytes)")
    try:
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Our own limit (checked just below, from the header alone) replaces
            # PIL's global one, so max_pixels can be raised or lowered per call.
            previous, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                img = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = previous
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageDecodeError(f"refused as a decompression bomb: {exc}") from exc
    except Image.UnidentifiedImageError:
        raise ImageDecodeError(
            f"not an image in a format PIL can read (starts with {bytes(data[:8])!r})"
        ) from None
    except Exception as exc:  # noqa: BLE001
        raise ImageDecodeError(f"not a readable image: {_describe(exc)}") from exc
    width, height = img.size
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"refused as a decompression bomb: {width}x{height} = {width * height:,} pixels "
            f"is over the limit of {max_pixels:,} (raise max_pixels= to allow it)"
        )
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"the image has no pixels ({width}x{height})")
    return img


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
