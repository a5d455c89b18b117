"""Conversion between a Frame's Arrow tables and what users hand in or ask for.

In: a dict of columns, a list of row dicts, a pyarrow Table, a polars or
pandas DataFrame become one Arrow table (2-D numpy arrays become vector
columns). Out: a block as an Arrow table, a polars or pandas DataFrame, or a
dict of numpy arrays, and back again for ``map_batches``.

Example:
    >>> from framelab.frames.conversion import to_batch, to_table
    >>> table = to_table({"x": [1, 2], "s": ["a", "b"]})
    >>> to_batch(table, "numpy")["x"]
    array([1, 2])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import InputError, check_columns
from framelab.frames.expressions import normalize_type, storage_table
from framelab.frames.validation import check_distinct_columns
from framelab.frames.vectors import is_vector_type, vectors_from_numpy, vectors_to_numpy

if TYPE_CHECKING:  # frame.py is above this module: the name is for editors only
    from framelab.frames.frame import Frame

BATCH_FORMATS = ("arrow", "polars", "pandas", "numpy")


def to_table(data: Any) -> pa.Table:
    """One Arrow table from a dict of columns, a list of row dicts, or an Arrow/polars/pandas table.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.conversion import to_table
        >>> to_table({"v": np.ones((2, 3), dtype="float32")}).schema.field("v").type
        FixedSizeListType(fixed_size_list<item: float>[3])
    """
    import polars as pl

    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pl.DataFrame):
        return normalize_table(data.to_arrow())
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_numpy"):  # pandas
        return normalize_table(pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata(None))
    if isinstance(data, Mapping):
        columns = {}
        for name, values in data.items():
            if isinstance(values, np.ndarray) and values.ndim == 2:
                columns[str(name)] = vectors_from_numpy(values)
            else:
                columns[str(name)] = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            sizes = {k: len(v) for k, v in columns.items()}
            raise InputError(f"columns must all have the same length, got {sizes}")
        return pa.table(columns)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and not isinstance(data[0], Mapping):
            raise InputError("a list of rows must hold dicts, e.g. [{'x': 1}, {'x': 2}]")
        return pa.Table.from_pylist(list(data))
    raise InputError(
        f"cannot build a Frame from {type(data).__name__}; pass a dict of columns, a list of row "
        "dicts, a pyarrow Table, a polars or pandas DataFrame, or use Frame.read_parquet(...)"
    )


def normalize_table(table: pa.Table) -> pa.Table:
    """The table with polars' large and view types cast to the plain Arrow types framelab stores.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.conversion import normalize_table
        >>> normalize_table(pa.table({"s": pa.array(["a"], pa.large_string())})).schema.field("s").type
        DataType(string)
    """
    return pa.Table.from_arrays([c.cast(normalize_type(c.type)) for c in table.columns], names=table.column_names)


def set_column(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    """The table with column ``name`` replaced in place, or appended when new.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.conversion import set_column
        >>> set_column(pa.table({"x": [1]}), "y", pa.array([2])).column_names
        ['x', 'y']
    """
    field = pa.field(name, column.type)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), field, column)
    return table.append_column(field, column)


def arrow_type(dtype: Any) -> pa.DataType | None:
    """The Arrow type for ``dtype``: a pyarrow type, a Python type (int, float, str, bool, bytes) or a numpy dtype.

    Example:
        >>> from framelab.frames.conversion import arrow_type
        >>> arrow_type(int), arrow_type("float32")
        (DataType(int64), DataType(float))
    """
    if dtype is None or isinstance(dtype, pa.DataType):
        return dtype
    mapping = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(), bytes: pa.binary()}
    if dtype in mapping:
        return mapping[dtype]
    try:
        return pa.from_numpy_dtype(np.dtype(dtype))
    except TypeError as exc:
        raise InputError(f"unknown dtype {dtype!r}; use int, float, str, bool, bytes or a pyarrow type") from exc


def check_format(format: str) -> str:
    """A batch format name: one of :data:`BATCH_FORMATS`.

    Example:
        >>> from framelab.frames.conversion import check_format
        >>> check_format("polars")
        'polars'
    """
    if format not in BATCH_FORMATS:
        raise InputError(f"format={format!r} is not one of {BATCH_FORMATS}")
    return format


def to_batch(table: pa.Table, format: str) -> Any:
    """A block in the user's format: the Arrow table itself, polars, pandas, or a dict of numpy arrays.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.conversion import to_batch
        >>> to_batch(pa.table({"x": [1, 2]}), "polars").shape
        (2, 1)
    """
    if format == "arrow":
        return table
    if format == "polars":
        import polars as pl

        plain = storage_table(table)
        return pl.from_arrow(plain) if plain.num_columns else pl.DataFrame()
    if format == "pandas":
        return table.to_pandas()
    out = {}
    for name, column in zip(table.column_names, table.columns):
        out[name] = vectors_to_numpy(column) if is_vector_type(column.type) else column.to_numpy()
    return out


def to_torch_batch(table: pa.Table) -> dict[str, Any]:
    """A block as a dict of torch tensors: vector columns 2-D, numbers and booleans 1-D, other columns as lists.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.conversion import to_table, to_torch_batch
        >>> batch = to_torch_batch(to_table({"v": np.zeros((2, 3), "float32"), "s": ["a", "b"]}))
        >>> tuple(batch["v"].shape), batch["s"]
        ((2, 3), ['a', 'b'])
    """
    import torch

    out: dict[str, Any] = {}
    for name, column in zip(table.column_names, table.columns):
        if is_vector_type(column.type):
            out[name] = torch.from_numpy(np.array(vectors_to_numpy(column)))
        elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
            out[name] = torch.from_numpy(np.array(column.to_numpy()))
        else:
            out[name] = column.to_pylist()
    return out


def from_batch(batch: Any) -> pa.Table:
    """The Arrow table of a batch a user function returned (any format :func:`to_batch` gives).

    Example:
        >>> import numpy as np
        >>> from framelab.frames.conversion import from_batch
        >>> from_batch({"n": np.arange(3)}).num_rows
        3
    """
    if isinstance(batch, pa.Table):
        return batch
    if type(batch).__module__.startswith("polars"):
        return normalize_table(batch.to_arrow())
    try:
        return to_table(batch)
    except InputError as exc:
        raise InputError(
            f"map_batches: the function must return a batch (table, DataFrame or dict of arrays): {exc}"
        ) from exc


def columns_to_numpy(frame: Frame, columns: Sequence[str]) -> np.ndarray:
    """Numeric columns of a frame as one ``(rows, columns)`` array of their common type (nulls: NaN).

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.conversion import columns_to_numpy
        >>> columns_to_numpy(Frame({"a": [1, 2], "b": [3, 4]}), ["b", "a"]).tolist()
        [[3, 1], [4, 2]]
    """
    check_columns(columns, frame.columns)
    check_distinct_columns(list(columns), "to_numpy")
    if not columns:
        raise InputError("to_numpy() of a frame without columns has nothing to stack; add columns first")
    for name in columns:
        dtype = frame.schema.field(name).type
        if not (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype)):
            hint = f"to_numpy({name!r}) for its (rows, dim) array" if is_vector_type(dtype) else "select numeric columns"
            raise InputError(f"to_numpy of several columns stacks numbers, but {name!r} is {dtype}; {hint}")
    return to_batch(frame.select(*columns).to_arrow(), "polars").to_numpy()
