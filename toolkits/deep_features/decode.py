"""The CPU stage: encoded images -> fixed-size uint8 pixels, ready for the model stage.

It runs as plain Ray Data tasks, so decoding scales with the cluster's CPUs
and an accelerator never waits on JPEG decoding. Pixels travel as one
fixed-size binary value per row (``height * width * 3`` bytes), which the
model stage views as an ``(n, height, width, 3)`` array without copying; a
row whose image is null or undecodable gets a null value and keeps its place.
This module imports no torch, so decode workers start fast and stay small.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from framelab.toolkits.deep_features.preprocessing import Preprocessing

PIXELS_COLUMN = "__framelab_pixels__"


def decode_batch(
    table: pa.Table, *, column: str, preprocessing: Preprocessing, pixels_column: str = PIXELS_COLUMN
) -> pa.Table:
    """Append ``pixels_column``: each image of ``column`` decoded, resized and cropped.

    Example:
        >>> import io, pyarrow as pa
        >>> from PIL import Image
        >>> from framelab.toolkits.deep_features import Preprocessing
        >>> from framelab.toolkits.deep_features.decode import decode_batch
        >>> buf = io.BytesIO(); Image.new("RGB", (9, 7)).save(buf, "PNG")
        >>> p = Preprocessing(resize=(4, 4), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> out = decode_batch(pa.table({"img": [buf.getvalue(), None]}), column="img", preprocessing=p)
        >>> out.column("__framelab_pixels__").null_count
        1
    """
    from framelab.frames.images import open_image

    encoded = encoded_images(table.column(column))
    height, width = preprocessing.output_size
    pixels = np.zeros((len(encoded), height, width, 3), dtype=np.uint8)
    valid = np.zeros(len(encoded), dtype=bool)
    for i, data in enumerate(encoded):
        if data is None:
            continue
        try:
            pixels[i] = preprocessing.apply(open_image(data))
        except Exception:  # noqa: BLE001 - one bad image must not lose the other rows
            continue
        valid[i] = True
    return table.append_column(pixels_column, pixels_to_arrow(pixels, valid))


def encoded_images(column: pa.ChunkedArray | pa.Array) -> list[bytes | None]:
    """The encoded bytes of an image column (framelab.image or its struct storage) or a binary column.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.deep_features.decode import encoded_images
        >>> encoded_images(pa.array([b"x", None]))
        [b'x', None]
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(column, pa.ExtensionArray):
        column = column.storage
    if pa.types.is_struct(column.type):
        data = column.field("bytes").to_pylist()
        if column.null_count:
            data = [d if ok else None for d, ok in zip(data, column.is_valid().to_pylist())]
        return data
    return column.to_pylist()


def pixels_to_arrow(pixels: np.ndarray, valid: np.ndarray) -> pa.FixedSizeBinaryArray:
    """Wrap ``(n, h, w, 3)`` uint8 pixels as a fixed-size binary column without copying.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.deep_features.decode import pixels_to_arrow
        >>> pixels_to_arrow(np.zeros((2, 1, 1, 3), np.uint8), np.array([True, False])).null_count
        1
    """
    n = len(pixels)
    row_bytes = int(np.prod(pixels.shape[1:]))
    bitmap = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
    data = pa.py_buffer(np.ascontiguousarray(pixels))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(row_bytes), n, [bitmap, data])


def pixels_from_arrow(column: pa.ChunkedArray | pa.Array, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(n, h, w, 3)`` uint8 pixels (a view when the column is one chunk) and the valid-row mask.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits.deep_features.decode import pixels_from_arrow, pixels_to_arrow
        >>> arr = pixels_to_arrow(np.ones((2, 1, 1, 3), np.uint8), np.array([True, False]))
        >>> pixels, valid = pixels_from_arrow(arr, (1, 1))
        >>> pixels.shape, valid.tolist()
        ((2, 1, 1, 3), [True, False])
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    row_bytes = column.type.byte_width
    if n == 0:
        return np.zeros((0, *shape, 3), dtype=np.uint8), np.zeros(0, dtype=bool)
    buffer = column.buffers()[1]
    pixels = np.frombuffer(buffer, dtype=np.uint8, count=n * row_bytes, offset=column.offset * row_bytes)
    valid = np.ones(n, dtype=bool) if column.null_count == 0 else column.is_valid().to_numpy(zero_copy_only=False)
    return pixels.reshape(n, *shape, 3), valid
