"""A 64-bit hash of Arrow values that framelab defines itself, so its values never change.

``random_split`` and ``sample`` draw each row from a hash of its key. A
library's hash (polars' ``hash_rows``, Python's ``hash``) may change between
versions, and then the same seed would split the same data differently. This
one is written out here in numpy: splitmix64 mixing of each value's canonical
bits, position-weighted sums for strings, lists and structs. A stored expected
split in the tests pins it.

Canonical bits: every integer as int64, every float as float64 (``-0.0`` as
``0.0``, one NaN), strings and binaries as their bytes, dictionary values as
what they decode to, extension values as their storage, nulls as one constant.

Example:
    >>> import pyarrow as pa
    >>> from framelab.frames.hashing import hash_array
    >>> [hex(h) for h in hash_array(pa.array(["cat", "dog", None]))]
    ['0x9febdf9d810eaa0f', '0x7fe47931ed9e5351', '0x5bd1e9955bd1e995']
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_U64 = np.uint64
# Distinct tags keep values of different kinds apart (the string "1" and the number 1, a list and its item).
_NULL, _STRING, _LIST, _STRUCT, _ROW = (np.uint64(t) for t in (
    0x5BD1E9955BD1E995, 0x27D4EB2F165667C5, 0x165667B19E3779F9, 0x85EBCA77C2B2AE63, 0xC2B2AE3D27D4EB4F,
))
_ODD = np.uint64(0x9E3779B97F4A7C15)


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on an array of uint64 (wrapping arithmetic, a new array).

    Example:
        >>> import numpy as np
        >>> from framelab.frames.hashing import mix
        >>> hex(int(mix(np.array([1], dtype=np.uint64))[0]))
        '0x5692161d100b05e5'
    """
    z = np.asarray(values, dtype=_U64).copy()
    z ^= z >> _U64(30)
    z *= _U64(0xBF58476D1CE4E5B9)
    z ^= z >> _U64(27)
    z *= _U64(0x94D049BB133111EB)
    z ^= z >> _U64(31)
    return z


def hash_array(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """One uint64 per value, fixed by the value alone (not its position, block or library version).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.hashing import hash_array
        >>> a, b = hash_array(pa.array([1, 2])), hash_array(pa.array([1.0, 2.0], pa.float32()))
        >>> bool(a[0] == hash_array(pa.array([1], pa.int8()))[0]), bool(a[0] != b[0])
        (True, True)
    """
    if isinstance(array, pa.ChunkedArray):
        parts = [hash_array(chunk) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=_U64)
    if isinstance(array, pa.ExtensionArray):
        return hash_array(array.storage)
    kind = array.type
    if pa.types.is_dictionary(kind):
        return hash_array(array.dictionary_decode())
    if pa.types.is_null(kind):
        return np.full(len(array), _NULL, dtype=_U64)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind) or \
            pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind) or \
            pa.types.is_fixed_size_binary(kind):
        out = _hash_bytes(array.cast(pa.large_binary()))
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) or \
            pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind) or pa.types.is_map(kind):
        out = _hash_lists(array)
    elif pa.types.is_struct(kind):
        out = np.full(len(array), _STRUCT, dtype=_U64)
        for child in array.flatten():
            out = mix(out * _ODD + hash_array(child))
    else:
        out = mix(_canonical_bits(array) + _ODD)  # + a constant: the finaliser maps 0 to 0
    if array.null_count:
        out[np.asarray(array.is_null().to_numpy(zero_copy_only=False))] = _NULL
    return out


def hash_rows(table: pa.Table, columns: list[str] | None = None) -> np.ndarray:
    """One uint64 per row, combining the hashes of ``columns`` (all by default) in order.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.hashing import hash_rows
        >>> h = hash_rows(pa.table({"x": [1, 1, 2], "y": ["a", "a", "a"]}))
        >>> bool(h[0] == h[1]), bool(h[0] != h[2])
        (True, True)
    """
    names = table.column_names if columns is None else list(columns)
    out = np.full(table.num_rows, _ROW, dtype=_U64)
    for name in names:
        out = mix(out * _ODD + hash_array(table.column(name)))
    return out


def _canonical_bits(array: pa.Array) -> np.ndarray:
    """Fixed-width values as uint64: integers via int64, floats via float64, times via their integers."""
    kind = array.type
    if pa.types.is_boolean(kind):
        return np.asarray(array.fill_null(False).to_numpy(zero_copy_only=False), dtype=_U64)
    if pa.types.is_floating(kind):
        values = np.asarray(array.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        values = np.where(values == 0.0, 0.0, values)  # -0.0 == 0.0
        values = np.where(np.isnan(values), np.nan, values)  # one NaN
        return values.view(_U64)
    if pa.types.is_integer(kind):
        if pa.types.is_unsigned_integer(kind):
            values = array.cast(pa.uint64())
        else:
            values = array.cast(pa.int64())
        return np.asarray(values.fill_null(0).to_numpy(zero_copy_only=False)).view(_U64)
    if pa.types.is_temporal(kind) or pa.types.is_decimal(kind):
        width = kind.bit_width
        if width in (32, 64):
            as_int = array.view(pa.int32() if width == 32 else pa.int64())
            return _canonical_bits(as_int)
    # Anything else (decimals of other widths, intervals): its text form.
    return _hash_bytes(pc.cast(array, pa.string()).cast(pa.large_binary()))


def _hash_bytes(array: pa.Array) -> np.ndarray:
    """Strings and binaries (as large_binary): position-weighted sum of mixed bytes, then the length."""
    n = len(array)
    _, offsets_buf, data_buf = array.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=array.offset * 8)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    first, last = int(offsets[0]), int(offsets[-1])
    lengths = (ends - starts).astype(np.int64)
    position = np.arange(last - first, dtype=np.int64) - np.repeat(starts - first, lengths)
    terms = mix(data[first:last].astype(_U64) | (position.astype(_U64) << _U64(8)))
    return mix(_segment_sums(terms, starts - first, ends - first) ^ mix(lengths.astype(_U64) + _STRING))


def _hash_lists(array: pa.Array) -> np.ndarray:
    """Lists (any kind): position-weighted sum of the items' hashes, then the length."""
    if pa.types.is_map(array.type):
        # A map is a list of (key, value) structs; nulls are set by the caller.
        array = pa.ListArray.from_arrays(array.offsets, array.values)
    lengths = np.asarray(pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
    items = hash_array(array.flatten())
    ends = np.cumsum(lengths)
    starts = ends - lengths
    position = np.arange(len(items), dtype=np.int64) - np.repeat(starts, lengths)
    terms = mix(items ^ mix(position.astype(_U64) + _LIST))
    return mix(_segment_sums(terms, starts, ends) ^ mix(lengths.astype(_U64) + _LIST))


def _segment_sums(terms: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Sum of ``terms[s:e]`` for each segment, modulo 2**64 (empty segments sum to 0)."""
    running = np.concatenate([np.zeros(1, dtype=_U64), np.cumsum(terms, dtype=_U64)])
    return running[ends] - running[starts]
