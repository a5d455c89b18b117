"""Where a features column came from, kept in its Arrow field metadata.

Deep features write it; every model reads it to refuse features of another
kind (another model, other weights, another layer or preprocessing) instead
of guessing from the vector length. It lives apart from deep features so that
models which only read features never import the network code.
"""

from __future__ import annotations

import json

import pyarrow as pa

from framelab.frames.errors import InputError

PROVENANCE_KEY = b"framelab.provenance"
_REQUIRED = ("model", "weights_sha256", "layer", "preprocessing", "dim", "dtype")


def provenance_of(field: pa.Field) -> dict | None:
    """The provenance recorded on a features column's field, or None if it has none.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.provenance import provenance_of
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
        >>> from framelab.toolkits.provenance import provenance_of, with_provenance
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


def check_provenance(name: str, expected: dict | None, found: dict | None) -> None:
    """Refuse features made by another model or preprocessing than the ones trained on.

    A model trained on features with provenance refuses a column without it:
    nothing then says the vectors come from the same network, and vectors of
    the same length from another one would be scored silently. A model
    trained on features without provenance accepts any column of the right
    type and length: it has nothing to compare with, and features extracted
    by framelab later should still be usable with it.

    Example:
        >>> from framelab.toolkits.provenance import check_provenance
        >>> check_provenance("f", {"model": "a"}, {"model": "a"})
        >>> check_provenance("f", None, {"model": "a"})   # trained without provenance: accepted
        >>> check_provenance("f", {"model": "a"}, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: column 'f' has no provenance metadata, but the model was trained on features of model 'a' ...
    """
    if expected is None or expected == found:
        return
    if found is None:
        raise InputError(
            f"column {name!r} has no provenance metadata, but the model was trained on features of "
            f"model {expected.get('model')!r} (layer {expected.get('layer')!r}): nothing says these vectors "
            "come from the same network. Extract them with framelab.toolkits.deep_features and the same "
            "model, or, if you know they match, attach the provenance with "
            "framelab.toolkits.provenance.with_provenance"
        )
    diffs = [k for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k)]
    detail = "; ".join(f"{k}: trained on {expected.get(k)!r}, got {found.get(k)!r}" for k in diffs[:4])
    raise InputError(
        f"column {name!r} holds features of another kind than the model was trained on ({detail}); "
        "extract them with the same model, layer and preprocessing"
    )
