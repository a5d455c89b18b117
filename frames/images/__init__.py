"""Images in frames: the ``framelab.image`` column type, reading, decoding and column operations.

Importing this package registers the ``framelab.image`` Arrow extension type.

Example:
    >>> from framelab.frames import images
    >>> images.image_type()
    ImageType(extension<framelab.image>)
"""

from framelab.frames.images.decode import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    open_image,
    probe_image,
    to_numpy,
)
from framelab.frames.images.image_type import (
    IMAGE_TYPE_NAME,
    ImageArray,
    ImageType,
    image_array,
    image_bytes,
    image_formats,
    image_type,
    images_from_bytes,
    images_from_pixels,
    images_to_pixels,
    is_encoded_type,
    is_image_type,
    pixels_array,
    pixels_to_batch,
    pixels_to_numpy,
    pixels_type,
    restore_image_columns,
)
from framelab.frames.images.ops import ImageExpr, col
from framelab.frames.images.read import ReadOptions

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ReadOptions",
    "IMAGE_TYPE_NAME",
    "ImageArray",
    "ImageDecodeError",
    "ImageExpr",
    "ImageType",
    "col",
    "image_array",
    "image_bytes",
    "image_formats",
    "image_type",
    "images_from_bytes",
    "images_from_pixels",
    "images_to_pixels",
    "is_encoded_type",
    "is_image_type",
    "open_image",
    "pixels_array",
    "pixels_to_batch",
    "pixels_to_numpy",
    "pixels_type",
    "probe_image",
    "restore_image_columns",
    "to_numpy",
]
