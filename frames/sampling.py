"""Deterministic per-row randomness for ``random_split`` and ``sample``.

A row's draw is a seeded hash (:mod:`framelab.frames.hashing`, whose values
never change) of the row's *key*, so the same seed gives the same split on any
machine, in any folder, however the rows are spread over blocks. The key is:

- the column the user names (``key="path"``): rows with the same key land in
  the same part, which keeps groups together;
- else the row key a reader recorded: ``read_images`` marks its ``path``
  column, and the key is each path relative to the folder that was read, so the
  same images read from another folder or bucket split the same way;
- else the row's content, plus how many identical rows came before it in its
  block, so duplicate rows still split independently.

Example:
    >>> from framelab.frames import Frame
    >>> train, test = Frame({"x": list(range(10))}).random_split(0.5, seed=0)
    >>> sorted(train.to_pydict()["x"])
    [0, 1, 2, 6, 8, 9]
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framelab.frames.errors import check_columns
from framelab.frames.hashing import hash_array, hash_rows, mix

# Field metadata naming the column that identifies a row, and the prefixes to strip from it.
ROW_KEY = b"framelab.row_key"


def row_key_field(field: pa.Field, relative_to: list[str]) -> pa.Field:
    """``field`` marked as the row key, its values taken relative to the folders in ``relative_to``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.sampling import row_key_field, row_keys
        >>> f = row_key_field(pa.field("path", pa.string()), ["/data/photos"])
        >>> t = pa.Table.from_arrays([pa.array(["/data/photos/cat/1.jpg"])], schema=pa.schema([f]))
        >>> row_keys(t).to_pylist()
        ['cat/1.jpg']
    """
    metadata = dict(field.metadata or {})
    metadata[ROW_KEY] = json.dumps({"relative_to": list(relative_to)}).encode()
    return field.with_metadata(metadata)


def row_keys(table: pa.Table, key: str | None = None) -> pa.Array | None:
    """Each row's key (see the module's docstring), or None when rows are keyed by their content.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.sampling import row_keys
        >>> row_keys(pa.table({"id": [3, 4], "x": [0.5, 0.7]}), key="id").to_pylist()
        [3, 4]
    """
    if key is not None:
        check_columns([key], table.column_names)
        field = table.schema.field(key)
    else:
        field = next((f for f in table.schema if ROW_KEY in (f.metadata or {})), None)
        if field is None:
            return None
    values = table.column(field.name).combine_chunks()
    marked = (field.metadata or {}).get(ROW_KEY)
    if marked is None:
        return values
    return _relative(values, json.loads(marked).get("relative_to", []))


def row_uniforms(table: pa.Table, seed: int, key: str | None = None) -> np.ndarray:
    """One number in [0, 1) per row, fixed by the row's key and ``seed``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.sampling import row_uniforms
        >>> u = row_uniforms(pa.table({"x": [1, 2, 3]}), seed=0)
        >>> bool(((u >= 0) & (u < 1)).all()), u.round(3).tolist()
        (True, [0.287, 0.5, 0.591])
    """
    if table.num_rows == 0:
        return np.zeros(0)
    keys = row_keys(table, key)
    if keys is None:
        hashes = hash_rows(table)
        hashes = mix(hashes ^ mix(_occurrences(hashes)))
    else:
        hashes = hash_array(keys)
    seeded = mix(hashes ^ mix(np.array([seed], dtype=np.uint64)))
    return (seeded >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _occurrences(hashes: np.ndarray) -> np.ndarray:
    """How many equal hashes come before each one (0 for the first of each)."""
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    new_group = np.concatenate([[True], ranked[1:] != ranked[:-1]])
    starts = np.maximum.accumulate(np.where(new_group, np.arange(len(ranked)), 0))
    out = np.empty(len(hashes), dtype=np.uint64)
    out[order] = (np.arange(len(ranked)) - starts).astype(np.uint64)
    return out


def _relative(paths: pa.Array, folders: list[str]) -> pa.Array:
    """Each path relative to the longest of ``folders`` it lies in; a path in none keeps its file name."""
    strings = paths.cast(pa.string())
    out = pc.replace_substring_regex(strings, pattern=r"^.*/", replacement="")
    for folder in sorted({f.rstrip("/") for f in folders}, key=len):
        prefix = folder + "/"
        inside = pc.fill_null(pc.starts_with(strings, prefix), False)
        out = pc.if_else(inside, pc.utf8_slice_codeunits(strings, len(prefix)), out)
    return out
