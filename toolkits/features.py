"""Feature columns for toolkits: the one place that checks and encodes them.

A toolkit names its feature columns; this module decides what each one is
(a number, a vector of deep features, a category), rejects what a model
cannot use with a message that says how to fix it, and turns Arrow blocks
into one float32 matrix the same way at training and at prediction time.

Example:
    >>> import pyarrow as pa
    >>> from framelab.toolkits.features import FeatureEncoder
    >>> table = pa.table({"x": [1.0, 2.0], "color": ["red", "blue"], "y": [0, 1]})
    >>> enc = FeatureEncoder.plan(table.schema, "y").with_levels({"color": ["blue", "red"]})
    >>> enc.encode(table).tolist()
    [[1.0, 0.0, 1.0], [2.0, 1.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framelab.frames.errors import ColumnNotFoundError, InputError, check_columns
from framelab.frames.vectors import is_vector_type
from framelab.toolkits.provenance import check_provenance, provenance_of

if TYPE_CHECKING:
    from framelab.frames import Frame

NUMERIC, VECTOR, CATEGORICAL = "numeric", "vector", "categorical"


@dataclass(frozen=True)
class FeatureSpec:
    """How one input column becomes columns of the model's matrix."""

    name: str
    kind: str  # NUMERIC, VECTOR or CATEGORICAL
    dim: int | None = 1  # None: a variable-size list whose length is read from the data
    levels: tuple = ()
    provenance: dict | None = None

    @property
    def width(self) -> int:
        """Matrix columns this feature takes."""
        return len(self.levels) if self.kind == CATEGORICAL else int(self.dim or 0)

    def labels(self) -> list[str]:
        """One label per matrix column (the "index" of a coefficient)."""
        if self.kind == NUMERIC:
            return [""]
        if self.kind == VECTOR:
            return [str(i) for i in range(self.width)]
        return [str(level) for level in self.levels]


@dataclass(frozen=True)
class FeatureEncoder:
    """Feature columns and how to turn an Arrow table of them into a float32 matrix."""

    features: tuple[FeatureSpec, ...] = field(default_factory=tuple)

    @classmethod
    def plan(
        cls,
        schema: pa.Schema,
        target: str | None,
        features: Sequence[str] | None = None,
    ) -> FeatureEncoder:
        """Choose and type-check the feature columns (``None``: every column but the target).

        Categorical levels and variable vector lengths are still unknown: fill
        them with :meth:`with_levels` / :meth:`with_dims` after a pass over the data.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> FeatureEncoder.plan(pa.schema([("a", pa.int64()), ("y", pa.string())]), "y").names
            ['a']
        """
        names = list(schema.names)
        if features is None:
            chosen = [n for n in names if n != target]
            if not chosen:
                raise InputError(
                    f"the frame has no column besides the target {target!r} to learn from; "
                    "add feature columns (e.g. deep features) first"
                )
        else:
            if isinstance(features, str):
                features = [features]
            chosen = list(features)
            if not chosen:
                raise InputError("features is empty; name at least one column, or pass None for all")
            check_columns(chosen, names)
            if target is not None and target in chosen:
                raise InputError(f"the target {target!r} cannot also be a feature; remove it from features")
            dupes = sorted({n for n in chosen if chosen.count(n) > 1})
            if dupes:
                raise InputError(f"features names {dupes} more than once; name each column once")
        return cls(tuple(_spec_for(schema.field(n)) for n in chosen))

    @property
    def names(self) -> list[str]:
        """The input columns, in matrix order."""
        return [f.name for f in self.features]

    @property
    def num_dims(self) -> int:
        """Columns of the encoded matrix."""
        return sum(f.width for f in self.features)

    def categorical(self) -> list[str]:
        """Columns that are one-hot encoded."""
        return [f.name for f in self.features if f.kind == CATEGORICAL]

    def unsized(self) -> list[str]:
        """Vector columns whose length must be read from the data."""
        return [f.name for f in self.features if f.kind == VECTOR and f.dim is None]

    def with_levels(self, levels: Mapping[str, Iterable]) -> FeatureEncoder:
        """Fix the one-hot levels of the categorical columns (sorted, for a stable layout)."""
        return FeatureEncoder(tuple(
            replace(f, levels=tuple(sorted(set(levels.get(f.name, ())))))
            if f.kind == CATEGORICAL else f
            for f in self.features
        ))

    def with_dims(self, lengths: Mapping[str, Iterable[int]]) -> FeatureEncoder:
        """Fix the length of list columns from the lengths seen in the data.

        Raises InputError when one column holds vectors of different lengths.
        """
        out = []
        for f in self.features:
            if f.kind == VECTOR and f.dim is None:
                seen = sorted(set(lengths.get(f.name, ())))
                if len(seen) > 1:
                    raise InputError(
                        f"column {f.name!r} holds vectors of different lengths "
                        f"({', '.join(map(str, seen[:5]))}); every row needs the same length "
                        "(e.g. deep features from one model)"
                    )
                f = replace(f, dim=seen[0] if seen else 0)
            out.append(f)
        return FeatureEncoder(tuple(out))

    def observe(self, table: pa.Table) -> dict[str, Any]:
        """What one block says about levels and vector lengths (merge with :func:`merge_observations`)."""
        out: dict[str, Any] = {"levels": {}, "lengths": {}}
        for f in self.features:
            column = table.column(f.name)
            if f.kind == CATEGORICAL:
                values = pc.unique(_as_strings(column)).drop_null()
                out["levels"][f.name] = values.to_pylist()
            elif f.kind == VECTOR and f.dim is None:
                lengths = pc.unique(pc.list_value_length(column)).drop_null()
                out["lengths"][f.name] = lengths.to_pylist()
        return out

    def encode(self, table: pa.Table) -> np.ndarray:
        """The ``(rows, num_dims)`` float32 matrix of a table, refusing nulls, NaN and infinities.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> t = pa.table({"a": [1, 2]})
            >>> FeatureEncoder.plan(t.schema, None).encode(t).shape
            (2, 1)
        """
        check_columns(self.names, table.column_names)
        n = table.num_rows
        out = np.empty((n, self.num_dims), dtype=np.float32)
        start = 0
        for f in self.features:
            column = table.column(f.name)
            stop = start + f.width
            if f.kind == CATEGORICAL:
                out[:, start:stop] = _one_hot(column, f.name, f.levels)
            elif f.kind == VECTOR:
                out[:, start:stop] = _vectors(column, f)
            else:
                out[:, start] = _numbers(column, f.name)
            bad = ~np.isfinite(out[:, start:stop]).all(axis=1)
            if bad.any():
                first = int(np.flatnonzero(bad)[0])
                raise InputError(
                    f"column {f.name!r} has {int(bad.sum())} row(s) with NaN or infinite values "
                    f"(first at row {first} of its block); drop or fill them before using the column"
                )
            start = stop
        return out

    def encode_rows(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(float32 matrix of every row, mask of rows whose features are all present).

        Unlike :meth:`encode`, a row with a missing feature (an image that
        failed to decode) keeps its place: its matrix row is zeros and its
        mask entry False. NaN and infinite values in present rows are refused.
        One float32 vector column without nulls is viewed without a copy (the
        matrix is then read-only), so blocks in Ray's object store are used
        where they lie.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> t = pa.table({"a": [1.0, None, 3.0]})
            >>> X, present = FeatureEncoder.plan(t.schema, None).encode_rows(t)
            >>> X[:, 0].tolist(), present.tolist()
            ([1.0, 0.0, 3.0], [True, False, True])
        """
        check_columns(self.names, table.column_names)
        present = np.ones(table.num_rows, dtype=bool)
        for f in self.features:
            column = table.column(f.name)
            if column.null_count:
                present &= column.is_valid().to_numpy(zero_copy_only=False)
        view = self._vector_view(table) if present.all() else None
        if view is not None:
            _check_finite(view, self.names[0])
            return view, present
        out = np.zeros((table.num_rows, self.num_dims), dtype=np.float32)
        if present.any():
            out[present] = self.encode(table.filter(pa.array(present)))
        return out, present

    def _vector_view(self, table: pa.Table) -> np.ndarray | None:
        """The one float32 vector column of a block as an (n, d) view, or None when it needs a copy."""
        if len(self.features) != 1 or self.features[0].kind != VECTOR:
            return None
        column = table.column(self.features[0].name)
        if column.num_chunks != 1 or column.null_count:
            return None
        chunk = column.chunk(0)
        if not pa.types.is_fixed_size_list(chunk.type) or chunk.type.value_type != pa.float32():
            return None
        if chunk.type.list_size != self.num_dims:
            return None
        values = chunk.flatten()  # honours the slice offset, no copy
        return values.to_numpy(zero_copy_only=True).reshape(len(chunk), self.num_dims)

    def check_schema(self, schema: pa.Schema) -> None:
        """Refuse a frame whose feature columns are missing, of another type, or of another provenance.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> s = pa.schema([("a", pa.float64())])
            >>> FeatureEncoder.plan(s, None).check_schema(pa.schema([("a", pa.string())]))
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: column 'a' is categories (strings) but the model was trained on numbers; pass a frame with the same feature columns
        """
        check_columns(self.names, schema.names)
        for f in self.features:
            now = _spec_for(schema.field(f.name))
            if now.kind != f.kind or (
                f.kind == VECTOR and now.dim is not None and now.dim != f.dim
            ):
                raise InputError(
                    f"column {f.name!r} is {_describe(now)} but the model was trained on "
                    f"{_describe(f)}; pass a frame with the same feature columns"
                )
            check_provenance(f.name, f.provenance, now.provenance)

    def to_json(self) -> list[dict]:
        """A JSON-able description (for saving a model)."""
        return [
            {"name": f.name, "kind": f.kind, "dim": f.dim, "levels": list(f.levels),
             "provenance": f.provenance}
            for f in self.features
        ]

    @classmethod
    def from_json(cls, data: list[dict]) -> FeatureEncoder:
        """The encoder :meth:`to_json` described; a description it could not have written is refused.

        Raises InputError naming the feature and what is wrong with it.

        Example:
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> FeatureEncoder.from_json([{"name": "x", "kind": "numeric", "dim": 1, "levels": []}]).num_dims
            1
            >>> FeatureEncoder.from_json([{"name": "v", "kind": "vector", "dim": -2, "levels": []}])
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: feature 0 ('v'): a vector feature needs a length (dim) of 1 or more, got -2
        """
        if not isinstance(data, list):
            raise InputError(f"features must be a list of feature descriptions, got {type(data).__name__}")
        specs = [_spec_from_json(i, d) for i, d in enumerate(data)]
        names = [s.name for s in specs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"features name {dupes} more than once")
        return cls(tuple(specs))


    @classmethod
    def from_saved(cls, saved: Any, name: str = "features") -> FeatureEncoder:
        """The encoder a saved model's ``name`` field describes, refused through ``saved`` (naming file and field).

        Example:
            >>> import numpy as np, tempfile
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> from framelab.toolkits.model_io import read_saved, save_model
            >>> path = tempfile.mkdtemp() + "/m"
            >>> save_model(path, "example", {"features": [{"name": "x", "kind": "numeric", "dim": 1, "levels": []}]}, {})
            >>> FeatureEncoder.from_saved(read_saved(path)).num_dims
            1
        """
        try:
            encoder = cls.from_json(saved.field(name, list))
        except InputError as err:
            saved.refuse(name, f"is not a list of features this model could have saved: {err}")
        if encoder.num_dims == 0:
            saved.refuse(name, "encodes to zero columns")
        return encoder

def merge_observations(observations: Iterable[dict[str, Any]]) -> tuple[dict, dict]:
    """Union of :meth:`FeatureEncoder.observe` results: (levels, lengths) per column."""
    levels: dict[str, set] = {}
    lengths: dict[str, set] = {}
    for obs in observations:
        for name, values in obs["levels"].items():
            levels.setdefault(name, set()).update(values)
        for name, values in obs["lengths"].items():
            lengths.setdefault(name, set()).update(values)
    return levels, lengths


def check_frame(frame: Frame, name: str = "frame") -> Any:
    """Refuse anything but a framelab Frame, saying how to make one.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.features import check_frame
        >>> check_frame(Frame({"x": [1]})).num_rows()
        1
    """
    from framelab.frames import Frame

    if not isinstance(frame, Frame):
        raise InputError(
            f"{name} must be a framelab Frame, got {type(frame).__name__}; "
            "wrap tables and DataFrames with Frame(data)"
        )
    return frame


def check_target(schema: pa.Schema, target: str) -> None:
    """Refuse a missing target, or one whose type cannot hold class labels.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.features import check_target
        >>> check_target(pa.schema([("label", pa.string())]), "label")     # labels: fine
        >>> check_target(pa.schema([("price", pa.float64())]), "price")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: target column 'price' has type double (floats suggest a regression target); a classifier needs class labels as strings or integers: cast the column first
    """
    if not isinstance(target, str):
        raise InputError(f"target must be a column name (a str), got {type(target).__name__}")
    if target not in schema.names:
        raise ColumnNotFoundError([target], schema.names)
    dtype = schema.field(target).type
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if not (_is_string(dtype) or pa.types.is_integer(dtype) or pa.types.is_boolean(dtype)):
        hint = " (floats suggest a regression target)" if pa.types.is_floating(dtype) else ""
        raise InputError(
            f"target column {target!r} has type {dtype}{hint}; a classifier needs class labels "
            "as strings or integers: cast the column first"
        )


def target_values(table: pa.Table, target: str) -> np.ndarray:
    """The target column of a block as a numpy array, refusing missing labels."""
    column = table.column(target)
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if column.null_count:
        raise InputError(
            f"target column {target!r} has {column.null_count} missing label(s); "
            "drop those rows first (frame.dropna)"
        )
    return np.asarray(column.to_numpy(zero_copy_only=False))


def check_tags_column(schema: pa.Schema, column: str) -> None:
    """Refuse a missing tags column, or one that does not hold lists of strings.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.features import check_tags_column
        >>> check_tags_column(pa.schema([("tags", pa.list_(pa.string()))]), "tags")
    """
    if not isinstance(column, str):
        raise InputError(f"tags_column must be a column name (a str), got {type(column).__name__}")
    if column not in schema.names:
        raise ColumnNotFoundError([column], schema.names)
    dtype = schema.field(column).type
    is_list = pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype)
    value = dtype.value_type if is_list else None
    if value is not None and pa.types.is_dictionary(value):
        value = value.value_type
    if value is None or not (_is_string(value) or pa.types.is_null(value)):
        hint = (
            "; a column of single labels is a classifier's target (framelab.toolkits.classifier), "
            "or wrap each label in a list"
            if _is_string(dtype) else ""
        )
        raise InputError(
            f"tags column {column!r} has type {dtype}, but tags must be lists of strings "
            f"(e.g. [\"dog\", \"animal\"], or [] for an image with no tags){hint}"
        )


def tag_lists(table: pa.Table, column: str) -> tuple[np.ndarray, np.ndarray]:
    """(row of each tag, the tag) for a block's tags column, refusing missing lists and empty tags.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.features import tag_lists
        >>> rows, tags = tag_lists(pa.table({"t": [["cat", "animal"], [], ["dog"]]}), "t")
        >>> rows.tolist(), tags.tolist()
        ([0, 0, 2], ['cat', 'animal', 'dog'])
    """
    values = table.column(column)
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_list_view(values.type):
        values = values.cast(pa.list_(values.type.value_type))
    if values.null_count:
        raise InputError(
            f"tags column {column!r} has {values.null_count} missing list(s) (null); "
            "use [] for an image with no tags, or drop those rows (frame.dropna)"
        )
    flat = pc.list_flatten(values)
    rows = pc.list_parent_indices(values).to_numpy(zero_copy_only=False).astype(np.int64)
    if flat.null_count:
        raise InputError(
            f"tags column {column!r} has {flat.null_count} missing tag(s) (null) inside its lists; "
            "remove them from the lists"
        )
    strings = _as_strings(flat) if len(flat) else pa.array([], pa.string())
    if len(strings) and pc.any(pc.equal(pc.utf8_length(strings), 0)).as_py():
        raise InputError(f"tags column {column!r} has empty tags (\"\"); remove them from the lists")
    return rows, np.asarray(strings.to_numpy(zero_copy_only=False), dtype=object)


def tag_matrix(table: pa.Table, column: str, vocabulary: Sequence[str]) -> tuple[np.ndarray, set[str]]:
    """A block's tags as a ``(rows, len(vocabulary))`` 0/1 uint8 matrix, and the tags not in the vocabulary.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.features import tag_matrix
        >>> Y, unknown = tag_matrix(pa.table({"t": [["cat"], ["dog", "cat"], ["owl"]]}), "t", ["cat", "dog"])
        >>> Y.tolist(), unknown
        ([[1, 0], [1, 1], [0, 0]], {'owl'})
    """
    rows, tags = tag_lists(table, column)
    index = {t: i for i, t in enumerate(vocabulary)}
    codes = np.fromiter((index.get(t, -1) for t in tags), dtype=np.int64, count=len(tags))
    known = codes >= 0
    out = np.zeros((table.num_rows, len(index)), dtype=np.uint8)
    out[rows[known], codes[known]] = 1
    return out, set(tags[~known].tolist())


def _spec_for(field: pa.Field) -> FeatureSpec:
    dtype = field.type
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_boolean(dtype):
        return FeatureSpec(field.name, NUMERIC)
    if _is_string(dtype):
        return FeatureSpec(field.name, CATEGORICAL, dim=None)
    if is_vector_type(dtype):
        return FeatureSpec(field.name, VECTOR, dtype.list_size, provenance=provenance_of(field))
    if (pa.types.is_list(dtype) or pa.types.is_large_list(dtype)) and (
        pa.types.is_floating(dtype.value_type) or pa.types.is_integer(dtype.value_type)
    ):
        return FeatureSpec(field.name, VECTOR, None, provenance=provenance_of(field))
    what = getattr(dtype, "extension_name", None) or str(dtype)
    hint = (
        "extract deep features from it first (framelab.toolkits.deep_features)"
        if "image" in what else "drop it or pass features=[...] without it"
    )
    raise InputError(
        f"column {field.name!r} has type {what}, which this model cannot use as a feature; {hint}"
    )


def _spec_from_json(index: int, d: Any) -> FeatureSpec:
    """One FeatureSpec of a saved model, each part checked the way :meth:`FeatureEncoder.to_json` writes it."""
    name = d.get("name") if isinstance(d, dict) else None
    label = f"feature {index} ({name!r})" if isinstance(name, str) else f"feature {index}"
    if not isinstance(d, dict) or not isinstance(name, str) or not name:
        raise InputError(f"{label}: needs an object with a non-empty 'name'")
    kind, dim, levels, provenance = d.get("kind"), d.get("dim"), d.get("levels"), d.get("provenance")
    if kind not in (NUMERIC, VECTOR, CATEGORICAL):
        raise InputError(f"{label}: kind must be {NUMERIC!r}, {VECTOR!r} or {CATEGORICAL!r}, got {kind!r}")
    is_count = isinstance(dim, int) and not isinstance(dim, bool)
    if kind == NUMERIC and dim != 1:
        raise InputError(f"{label}: a numeric feature has dim 1, got {dim!r}")
    if kind == VECTOR and not (is_count and dim >= 1):
        raise InputError(f"{label}: a vector feature needs a length (dim) of 1 or more, got {dim!r}")
    if kind == CATEGORICAL and dim is not None:
        raise InputError(f"{label}: a categorical feature has dim null, got {dim!r}")
    if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
        raise InputError(f"{label}: levels must be a list of strings")
    if kind != CATEGORICAL and levels:
        raise InputError(f"{label}: only categorical features have levels")
    if len(set(levels)) != len(levels):
        raise InputError(f"{label}: levels repeat a value")
    if provenance is not None and not isinstance(provenance, dict):
        raise InputError(f"{label}: provenance must be an object or null")
    return FeatureSpec(name, kind, dim, tuple(levels), provenance)
def _check_finite(matrix: np.ndarray, name: str, chunk_rows: int = 8192) -> None:
    # In chunks: a boolean mask of the whole matrix would cost a quarter of its size.
    for start in range(0, matrix.shape[0], chunk_rows):
        part = matrix[start:start + chunk_rows]
        if not np.isfinite(part).all():
            bad = ~np.isfinite(part).all(axis=1)
            raise InputError(
                f"column {name!r} has row(s) with NaN or infinite values (first at row "
                f"{start + int(np.flatnonzero(bad)[0])} of its block); drop or fill them before using the column"
            )


def _describe(f: FeatureSpec) -> str:
    if f.kind == VECTOR:
        return f"vectors of length {f.dim}" if f.dim is not None else "vectors"
    return "numbers" if f.kind == NUMERIC else "categories (strings)"


def _is_string(dtype: pa.DataType) -> bool:
    return pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype)


def _as_strings(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column.cast(pa.string()) if column.type != pa.string() else column


def _one_hot(column: pa.ChunkedArray, name: str, levels: tuple) -> np.ndarray:
    # A missing category is refused like a missing number: encoding it as "no
    # category" would silently score it as the reference level. A level not
    # seen in training is known information and encodes as all zeros.
    if column.null_count:
        raise InputError(
            f"column {name!r} has {column.null_count} missing value(s); "
            f"drop those rows (frame.dropna) or fill them (frame.fillna) first"
        )
    index = pc.index_in(_as_strings(column), value_set=pa.array(list(levels), pa.string()))
    codes = index.to_numpy(zero_copy_only=False)
    out = np.zeros((len(codes), len(levels)), dtype=np.float32)
    if len(levels):
        known = ~np.isnan(codes.astype(np.float64))
        rows = np.flatnonzero(known)
        out[rows, codes[known].astype(np.int64)] = 1.0
    return out


def _vectors(column: pa.ChunkedArray, f: FeatureSpec) -> np.ndarray:
    if column.null_count:
        raise InputError(
            f"column {f.name!r} has {column.null_count} missing vector(s); "
            "drop those rows first (frame.dropna)"
        )
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = []
    for chunk in chunks:
        if pa.types.is_fixed_size_list(chunk.type):
            flat = chunk.flatten()
        else:
            lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
            if len(lengths) and (lengths != f.dim).any():
                other = int(lengths[lengths != f.dim][0])
                raise InputError(
                    f"column {f.name!r} holds vectors of different lengths ({f.dim} and {other}); "
                    "every row needs the same length (e.g. deep features from one model)"
                )
            flat = chunk.flatten()
        parts.append(flat.to_numpy(zero_copy_only=False).reshape(len(chunk), f.dim))
    if not parts:
        return np.zeros((0, f.dim), dtype=np.float32)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def _numbers(column: pa.ChunkedArray, name: str) -> np.ndarray:
    if column.null_count:
        raise InputError(
            f"column {name!r} has {column.null_count} missing value(s); "
            "drop those rows (frame.dropna) or fill them (frame.fillna) first"
        )
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_boolean(column.type):
        column = column.cast(pa.int8())
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64)
