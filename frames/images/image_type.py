"""The ``framelab.image`` Arrow extension type: encoded image bytes plus what they hold.

A column of this type keeps each file's encoded bytes (JPEG, PNG, ...) with its
format, width, height and channels, so a frame of a million JPEGs stays the size
of the files until something decodes it. Decoded pixels are a separate
representation, a uint8 ``H x W x C`` tensor column (see :func:`pixels_type`);
:func:`images_to_pixels` and :func:`images_from_pixels` convert between the two.

Importing this module registers the type with pyarrow, so Parquet files and
Arrow IPC streams written with an image column read back with the type intact
in any process that imported ``framelab.frames.images`` (every framelab block
function does, so Ray workers do too). :func:`restore_image_columns` re-wraps a
table that was read in a process that had not.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

IMAGE_TYPE_NAME = "framelab.image"
STORAGE_TYPE = pa.struct(
    [
        pa.field("bytes", pa.binary()),
        pa.field("format", pa.string()),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("channels", pa.int8()),
    ]
)
_EXT_NAME_KEY = b"ARROW:extension:name"


class ImageType(pa.ExtensionType):
    """Arrow type of an image column: struct<bytes, format, width, height, channels>.

    ``width``/``height`` are the size *after* EXIF orientation is applied and
    ``channels`` is the number of channels :func:`open_image`'s pixels have
    (1 greyscale, 3 RGB, 4 RGBA).

    Example:
        >>> from framelab.frames.images import image_type
        >>> image_type()
        ImageType(extension<framelab.image>)
    """

    def __init__(self) -> None:
        super().__init__(STORAGE_TYPE, IMAGE_TYPE_NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> ImageType:
        if storage_type != STORAGE_TYPE:
            raise TypeError(f"framelab.image needs storage {STORAGE_TYPE}, got {storage_type}")
        return cls()

    def __arrow_ext_class__(self) -> type[pa.ExtensionArray]:
        return ImageArray

    def __reduce__(self):  # pickles by reference, so unpickling imports (and registers) us
        return image_type, ()

    def __repr__(self) -> str:
        return "ImageType(extension<framelab.image>)"

    def __str__(self) -> str:
        return "image"


class ImageArray(pa.ExtensionArray):
    """An Arrow array of images; ``to_pylist`` gives dicts, :func:`image_bytes` the bytes."""

    def __repr__(self) -> str:
        return f"<framelab image array: {len(self)} images, {self.null_count} null>"


_IMAGE_TYPE = ImageType()


def image_type() -> ImageType:
    """The ``framelab.image`` Arrow type.

    Example:
        >>> from framelab.frames.images import image_type, is_image_type
        >>> is_image_type(image_type())
        True
    """
    return _IMAGE_TYPE


def is_image_type(dtype: pa.DataType) -> bool:
    """True for a ``framelab.image`` column type.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images import is_image_type
        >>> is_image_type(pa.binary())
        False
    """
    return isinstance(dtype, pa.ExtensionType) and dtype.extension_name == IMAGE_TYPE_NAME


def image_array(
    data: Sequence[bytes | None],
    formats: Sequence[str | None],
    widths: Sequence[int | None],
    heights: Sequence[int | None],
    channels: Sequence[int | None],
) -> ImageArray:
    """Build an image column from parallel lists (a None in ``data`` makes a null image).

    Example:
        >>> from framelab.frames.images import image_array
        >>> len(image_array([None], [None], [None], [None], [None]))
        1
    """
    mask = pa.array([d is None for d in data], type=pa.bool_())
    storage = pa.StructArray.from_arrays(
        [
            pa.array(list(data), type=pa.binary()),
            pa.array(list(formats), type=pa.string()),
            pa.array(list(widths), type=pa.int32()),
            pa.array(list(heights), type=pa.int32()),
            pa.array(list(channels), type=pa.int8()),
        ],
        fields=list(STORAGE_TYPE),
        mask=mask,
    )
    return pa.ExtensionArray.from_storage(_IMAGE_TYPE, storage)


def _storage(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """The image struct storage of a column, or the column itself when it holds encoded files as binary."""
    if isinstance(column, pa.ChunkedArray):
        column = pa.concat_arrays(column.chunks) if column.num_chunks else pa.array([], column.type)
    if is_image_type(column.type):
        return column.storage
    if column.type == STORAGE_TYPE or is_encoded_type(column.type):
        return column
    raise TypeError(
        f"expected an image column (framelab.image), got {column.type}; "
        "read images with Frame.read_images(...) or wrap bytes with images_from_bytes(...)"
    )


def is_encoded_type(dtype: pa.DataType) -> bool:
    """True for a column framelab reads images from: ``framelab.image``, or binary holding encoded files.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images import image_type, is_encoded_type
        >>> is_encoded_type(image_type()), is_encoded_type(pa.binary()), is_encoded_type(pa.string())
        (True, True, False)
    """
    return is_image_type(dtype) or pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype)


def image_bytes(column: pa.Array | pa.ChunkedArray) -> list[bytes | None]:
    """The encoded bytes of each image (None for a null image): the one way framelab gets image bytes.

    ``column`` is an image column (``framelab.image``, or its struct storage)
    or a binary column of encoded files.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images import image_array, image_bytes
        >>> image_bytes(image_array([b"x", None], ["png", None], [1, None], [1, None], [1, None]))
        [b'x', None]
        >>> image_bytes(pa.array([b"y", None], pa.binary()))
        [b'y', None]
    """
    storage = _storage(column)
    if not pa.types.is_struct(storage.type):
        return storage.to_pylist()
    data = storage.field("bytes").to_pylist()
    if storage.null_count:
        valid = storage.is_valid().to_pylist()
        data = [d if ok else None for d, ok in zip(data, valid)]
    return data


def pixel_limits(column: pa.Array | pa.ChunkedArray, floor: int) -> list[int]:
    """Per image, the most pixels decoding may allocate: at least ``floor``, or the size the reader accepted.

    ``read_images(max_pixels=...)`` refused every image over its limit and
    recorded each kept image's width and height, so a row's own recorded size
    is the limit it was read under. A binary column was never checked: it
    gets ``floor``. A row whose bytes hold a bigger image than it records is
    still refused, since its recorded size does not cover it.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images import image_array
        >>> from framelab.frames.images.image_type import pixel_limits
        >>> pixel_limits(image_array([b"x"], ["png"], [3000], [2000], [3]), 1_000_000)
        [6000000]
        >>> pixel_limits(pa.array([b"y"], pa.binary()), 1_000_000)
        [1000000]
    """
    storage = _storage(column)
    if not pa.types.is_struct(storage.type) or storage.type.get_field_index("width") < 0:
        return [floor] * len(storage)
    widths = storage.field("width").to_pylist()
    heights = storage.field("height").to_pylist()
    return [max(floor, (w or 0) * (h or 0)) for w, h in zip(widths, heights)]


def image_formats(column: pa.Array | pa.ChunkedArray) -> list[str | None]:
    """The format of each image ("jpeg", "png", ...; None where unknown, as for a binary column).

    Example:
        >>> from framelab.frames.images import image_array, image_formats
        >>> image_formats(image_array([b"x"], ["png"], [1], [1], [1]))
        ['png']
    """
    storage = _storage(column)
    if not pa.types.is_struct(storage.type):
        return [None] * len(storage)
    return storage.field("format").to_pylist()


def images_from_bytes(data: Iterable[bytes | None], *, max_pixels: int | None = None) -> ImageArray:
    """Wrap encoded image files as an image column, reading each header for its size.

    Bytes that are not a readable image become null (use ``Frame.read_images``
    to keep the reason in an ``error`` column).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from framelab.frames.images import images_from_bytes
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 3)).save(buf, "PNG")
        >>> images_from_bytes([buf.getvalue()]).to_pylist()[0]["width"]
        4
    """
    from framelab.frames.images.decode import DEFAULT_MAX_PIXELS, probe_image

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    cols: list[list] = [[], [], [], [], []]
    for one in data:
        info = None
        if one is not None:
            try:
                info = probe_image(one, max_pixels=limit)
            except Exception:  # noqa: BLE001 - an unreadable file becomes a null image
                info = None
        row = (one, *info) if info is not None else (None, None, None, None, None)
        for col, value in zip(cols, row):
            col.append(value)
    return image_array(*cols)


def pixels_type(shape: tuple[int, int, int] | None = None, dtype: str = "uint8") -> pa.DataType:
    """Arrow type of decoded pixels: fixed ``H x W x C`` when ``shape`` is given, else ragged.

    A fixed shape uses Arrow's canonical ``arrow.fixed_shape_tensor``; images of
    different sizes use Ray Data's variable-shaped tensor type (``ndim=3``).

    Example:
        >>> from framelab.frames.images import pixels_type
        >>> pixels_type((2, 2, 3)).shape
        [2, 2, 3]
    """
    value = pa.from_numpy_dtype(np.dtype(dtype))
    if shape is not None:
        return pa.fixed_shape_tensor(value, list(shape))
    from ray.data._internal.tensor_extensions.arrow import ArrowVariableShapedTensorType

    return ArrowVariableShapedTensorType(value, 3)


def pixels_array(
    arrays: Sequence[np.ndarray | None], shape: tuple[int, ...] | None = None, dtype: str = "uint8"
) -> pa.ExtensionArray:
    """A tensor column from one ndarray per row (None gives a null row).

    With ``shape`` every array must have that shape (a fixed-shape tensor
    column); without it rows may differ (a variable-shaped one).

    Example:
        >>> import numpy as np
        >>> from framelab.frames.images import pixels_array
        >>> pixels_array([np.zeros((2, 3, 3), "uint8"), None], (2, 3, 3)).null_count
        1
    """
    np_dtype = np.dtype(dtype)
    if shape is not None:
        typ = pixels_type(tuple(shape), dtype)
        size = int(np.prod(shape))
        flat = np.zeros((len(arrays), size), dtype=np_dtype)
        mask = np.zeros(len(arrays), dtype=bool)
        for i, arr in enumerate(arrays):
            if arr is None:
                mask[i] = True
            else:
                flat[i] = np.asarray(arr, dtype=np_dtype).reshape(-1)
        storage = pa.FixedSizeListArray.from_arrays(
            pa.array(flat.reshape(-1)), size, mask=pa.array(mask) if mask.any() else None
        )
        return pa.ExtensionArray.from_storage(typ, storage)
    from ray.data._internal.tensor_extensions.arrow import ArrowVariableShapedTensorArray

    if any(a is None for a in arrays):
        # Ray's ragged tensor array has no nulls: build it, then mask the storage.
        filled = [np.zeros((0, 0, 0), np_dtype) if a is None else np.asarray(a, np_dtype) for a in arrays]
        arr = ArrowVariableShapedTensorArray.from_numpy(np.array(filled + [None], dtype=object)[:-1])
        mask = pa.array([a is None for a in arrays])
        st = arr.storage
        storage = pa.StructArray.from_arrays(
            [st.field(i) for i in range(st.type.num_fields)], fields=list(st.type), mask=mask
        )
        return pa.ExtensionArray.from_storage(arr.type, storage)
    if not arrays:
        return pa.array([], type=pixels_type(None, dtype))
    objs = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        objs[i] = np.asarray(a, dtype=np_dtype)
    return ArrowVariableShapedTensorArray.from_numpy(objs)


def pixels_to_batch(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-shape pixels column as one ``(rows, *shape)`` array and its valid-row mask.

    A view of the column's memory when it is one chunk (what a model stage
    wants: no copy per image); null rows hold zeros.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.images import pixels_array, pixels_to_batch
        >>> batch, valid = pixels_to_batch(pixels_array([np.ones((2, 2, 3), "uint8"), None], (2, 2, 3)))
        >>> batch.shape, valid.tolist()
        ((2, 2, 2, 3), [True, False])
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else pa.concat_arrays(column.chunks)
    if not isinstance(column.type, pa.FixedShapeTensorType):
        raise TypeError(f"expected a fixed-shape pixels column, got {column.type}; resize or crop to one size first")
    shape = tuple(column.type.shape)
    size = int(np.prod(shape))
    n = len(column)
    storage = column.storage
    values = storage.values
    # .values ignores the storage's offset and keeps null slots (flatten() would drop them).
    flat = np.frombuffer(values.buffers()[1], dtype=column.type.value_type.to_pandas_dtype(),
                         count=n * size, offset=(values.offset + storage.offset * size) * values.type.byte_width)
    valid = np.ones(n, dtype=bool) if storage.null_count == 0 else storage.is_valid().to_numpy(zero_copy_only=False)
    return flat.reshape((n, *shape)), valid


def pixels_to_numpy(column: pa.Array | pa.ChunkedArray) -> list[np.ndarray | None]:
    """One ndarray per row of a pixels (tensor) column, None for null rows.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.images import pixels_array, pixels_to_numpy
        >>> pixels_to_numpy(pixels_array([np.zeros((2, 2, 3), "uint8")], (2, 2, 3)))[0].shape
        (2, 2, 3)
    """
    if isinstance(column, pa.ChunkedArray):
        return [x for chunk in column.chunks for x in pixels_to_numpy(chunk)]
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    if isinstance(column.type, pa.FixedShapeTensorType):
        shape = tuple(column.type.shape)
        size = int(np.prod(shape))
        storage = column.storage
        # .values keeps null slots (flatten() would drop them and shift the rows).
        flat = storage.values.slice(storage.offset * size, len(storage) * size)
        values = flat.to_numpy(zero_copy_only=False).reshape((len(column), *shape))
        return [values[i] if valid[i] else None for i in range(len(column))]
    if len(column) == 0:
        return []
    dense = column.to_numpy(zero_copy_only=False)
    return [np.asarray(dense[i]) if valid[i] else None for i in range(len(column))]


def images_to_pixels(
    column: pa.Array | pa.ChunkedArray, *, mode: str | None = None
) -> pa.ExtensionArray:
    """Decode an image column to a uint8 ``H x W x C`` tensor column (nulls stay null).

    ``mode`` ("RGB", "L", "RGBA") makes every image that many channels. The
    result has a fixed shape when all images share one, else it is ragged.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from framelab.frames.images import images_from_bytes, images_to_pixels
        >>> buf = io.BytesIO(); Image.new("RGB", (4, 3)).save(buf, "PNG")
        >>> images_to_pixels(images_from_bytes([buf.getvalue()])).type.shape
        [3, 4, 3]
    """
    from framelab.frames.images.decode import open_image, to_numpy

    out: list[np.ndarray | None] = []
    for data in image_bytes(column):
        out.append(None if data is None else to_numpy(open_image(data), mode))
    shapes = {a.shape for a in out if a is not None}
    return pixels_array(out, shapes.pop() if len(shapes) == 1 else None)


def images_from_pixels(column: pa.Array | pa.ChunkedArray, *, format: str = "PNG") -> ImageArray:
    """Encode a uint8 tensor column (``H x W x C`` or ``H x W``) as an image column.

    PNG (the default) is lossless, so ``images_to_pixels`` gives the pixels back.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.images import images_from_pixels, images_to_pixels, pixels_array
        >>> px = pixels_array([np.full((2, 3, 3), 7, "uint8")], (2, 3, 3))
        >>> int(images_to_pixels(images_from_pixels(px)).to_numpy_ndarray()[0, 0, 0, 0])
        7
    """
    from PIL import Image

    data, fmts, widths, heights, chans = [], [], [], [], []
    for arr in pixels_to_numpy(column):
        if arr is None:
            for col in (data, fmts, widths, heights, chans):
                col.append(None)
            continue
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            raise TypeError(f"pixels must be uint8 to encode as an image, got {arr.dtype}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        img = Image.fromarray(arr)
        buf = io.BytesIO()
        img.save(buf, format=format)
        data.append(buf.getvalue())
        fmts.append(format.lower())
        heights.append(arr.shape[0])
        widths.append(arr.shape[1])
        chans.append(1 if arr.ndim == 2 else arr.shape[2])
    return image_array(data, fmts, widths, heights, chans)


def restore_image_columns(table: pa.Table) -> pa.Table:
    """Re-wrap image columns that arrived as plain structs (read where the type was not registered).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images import restore_image_columns
        >>> restore_image_columns(pa.table({"x": [1]})).column_names
        ['x']
    """
    for i, field in enumerate(table.schema):
        meta = field.metadata or {}
        if meta.get(_EXT_NAME_KEY) == IMAGE_TYPE_NAME.encode() and field.type == STORAGE_TYPE:
            column = table.column(i)
            chunks = [pa.ExtensionArray.from_storage(_IMAGE_TYPE, c) for c in column.chunks]
            rest = {k: v for k, v in meta.items() if not k.startswith(b"ARROW:extension:")}
            new_field = pa.field(field.name, _IMAGE_TYPE, field.nullable, rest or None)
            table = table.set_column(i, new_field, pa.chunked_array(chunks, type=_IMAGE_TYPE))
    return table


def _register() -> None:
    try:
        pa.register_extension_type(_IMAGE_TYPE)
    except pa.ArrowKeyError:  # already registered (module reloaded)
        pass


_register()
