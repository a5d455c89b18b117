"""Where a features column came from, kept in its Arrow field metadata.

Toolkits read it to refuse features of another kind (another model, other
weights, another layer or preprocessing) instead of guessing from the vector
length.
"""

from __future__ import annotations

import json

import pyarrow as pa

PROVENANCE_KEY = b"framelab.provenance"
_REQUIRED = ("model", "weights_sha256", "layer", "preprocessing", "dim", "dtype")


def provenance_of(field: pa.Field) -> dict | None:
    """The provenance recorded on a features column's field, or None if it has none.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.deep_features import provenance_of
        >>> provenance_of(pa.field("x", pa.float32())) is None
        True
    """
    if not isinstance(field, pa.Field):
        raise TypeError(
            f"provenance_of expects a pyarrow.Field (frame.schema.field(name)), got {type(field).__name__}"
        )
    raw = (field.metadata or {}).get(PROVENANCE_KEY)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def with_provenance(field: pa.Field, provenance: dict) -> pa.Field:
    """The same field carrying ``provenance`` (other metadata kept).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.deep_features.provenance import provenance_of, with_provenance
        >>> p = {"model": "m", "weights_sha256": "0", "layer": "flatten",
        ...      "preprocessing": {}, "dim": 2, "dtype": "float32"}
        >>> provenance_of(with_provenance(pa.field("f", pa.list_(pa.float32(), 2)), p))["dim"]
        2
    """
    missing = [k for k in _REQUIRED if k not in provenance]
    if missing:
        raise ValueError(f"provenance lacks {missing}; it needs all of {list(_REQUIRED)}")
    metadata = dict(field.metadata or {})
    metadata[PROVENANCE_KEY] = json.dumps(provenance, sort_keys=True).encode()
    return field.with_metadata(metadata)
