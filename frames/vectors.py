"""Columns of fixed-length float vectors (deep features): Arrow fixed-size lists <-> 2-D numpy."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def vector_type(dim: int, dtype: str | np.dtype | pa.DataType = "float32") -> pa.DataType:
    """The Arrow type of a column of ``dim``-long vectors.

    Example:
        >>> from framelab.frames.vectors import vector_type
        >>> vector_type(3)
        FixedSizeListType(fixed_size_list<item: float>[3])
    """
    value = dtype if isinstance(dtype, pa.DataType) else pa.from_numpy_dtype(np.dtype(dtype))
    return pa.list_(value, int(dim))


def is_vector_type(dtype: pa.DataType) -> bool:
    """True for a fixed-size list of floats or integers (a vector column).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.vectors import is_vector_type, vector_type
        >>> is_vector_type(vector_type(4)), is_vector_type(pa.int64())
        (True, False)
    """
    return pa.types.is_fixed_size_list(dtype) and (
        pa.types.is_floating(dtype.value_type) or pa.types.is_integer(dtype.value_type)
    )


def vectors_from_numpy(matrix: np.ndarray, mask: np.ndarray | None = None) -> pa.FixedSizeListArray:
    """Wrap an ``(n, d)`` array as a vector column without copying (rows where ``mask`` is True are null).

    Example:
        >>> import numpy as np
        >>> from framelab.frames.vectors import vectors_from_numpy
        >>> len(vectors_from_numpy(np.zeros((2, 3), dtype="float32")))
        2
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"expected a 2-D array of shape (rows, dim), got shape {matrix.shape}")
    values = pa.array(np.ascontiguousarray(matrix).reshape(-1))
    mask_arr = None if mask is None else pa.array(np.asarray(mask, dtype=bool))
    return pa.FixedSizeListArray.from_arrays(values, matrix.shape[1], mask=mask_arr)


def vectors_to_numpy(column: pa.Array | pa.ChunkedArray, *, fill: float | None = None) -> np.ndarray:
    """View a vector column as an ``(n, d)`` array (zero-copy for one null-free chunk).

    Null rows raise unless ``fill`` is given, which fills them with that value.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.vectors import vectors_from_numpy, vectors_to_numpy
        >>> vectors_to_numpy(vectors_from_numpy(np.eye(2, dtype="float32"))).shape
        (2, 2)
    """
    if isinstance(column, pa.ChunkedArray):
        chunks = column.chunks
        if len(chunks) == 1:
            return vectors_to_numpy(chunks[0], fill=fill)
        if not chunks:
            dim = column.type.list_size if pa.types.is_fixed_size_list(column.type) else 0
            return np.zeros((0, dim), dtype=column.type.value_type.to_pandas_dtype())
        return np.concatenate([vectors_to_numpy(c, fill=fill) for c in chunks])
    if not is_vector_type(column.type):
        raise TypeError(
            f"expected a vector column (fixed-size list of numbers), got {column.type}"
        )
    dim = column.type.list_size
    if column.null_count:
        if fill is None:
            raise ValueError(
                f"the vector column has {column.null_count} null row(s); "
                "drop them first (frame.dropna(column)) or pass fill="
            )
        column = column.fill_null(pa.scalar([fill] * dim, type=column.type))
    flat = column.flatten()  # honours the array's offset
    return flat.to_numpy(zero_copy_only=False).reshape(len(column), dim)
