"""Column summaries for the explore page, from mergeable sketches made block by block on the cluster.

Each block of a frame is summarised where it lives (:func:`block_summaries`,
run through ``map_batches``), and only the small partial summaries come to the
driver, which merges them (:func:`merge_summaries`) and shapes them for the
page (:func:`finish_summaries`). No column is ever gathered whole, so a frame
of any size is summarised over all of its rows in bounded driver memory.

The sketches, and the error each states:

* numbers (and image widths/heights, vector norms, list lengths): an
  equi-depth quantile summary of at most :data:`QUANTILE_POINTS` weighted
  points. A block keeps its values at evenly spaced ranks; the driver sorts
  all blocks' points and keeps evenly spaced ranks again. Each step moves a
  rank by at most ``rows / QUANTILE_POINTS``, so a quantile's rank is off by
  at most ``2 / QUANTILE_POINTS`` of the rows (exact when a column has no
  more than that many values). Count, missing, NaN, min, max and mean are exact.
* strings, booleans, list items (tags): per-block counts of the
  :data:`TOP_VALUES` most frequent values, summed. A count is exact unless a
  block had more distinct values than that; then it is a lower bound, off
  by at most the summary's stated ``count_error``.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framelab.frames.display import type_name
from framelab.frames.images.image_type import is_image_type
from framelab.frames.vectors import is_vector_type, vectors_to_numpy

if TYPE_CHECKING:
    from framelab.frames.frame import Frame

QUANTILE_POINTS = 512
TOP_VALUES = 1_000
HISTOGRAM_BINS = 20
SHOWN_VALUES = 20
QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)
_PARTIAL = pa.schema([pa.field("partial", pa.large_string())])


def column_kind(field: pa.Field) -> str:
    """How a column is summarised: image, vector, number, boolean, text, items (lists) or other.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images.summaries import column_kind
        >>> column_kind(pa.field("x", pa.float32())), column_kind(pa.field("tags", pa.list_(pa.string())))
        ('number', 'items')
    """
    t = field.type
    if is_image_type(t):
        return "image"
    if is_vector_type(t):
        return "vector"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t):
        return "text"
    if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _item_field(t.value_type) is not None:
        return "items"
    return "other"


def summarize(frame: Frame) -> list[dict[str, Any]]:
    """Summaries of every column over all rows: partial sketches per block on the cluster, merged here.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.images.summaries import summarize
        >>> s = summarize(Frame({"x": [1.0, 2.0, None], "s": ["a", "a", "b"]}))
        >>> s[0]["missing"], s[0]["max"], s[1]["top"]
        (1, 2.0, [['a', 2], ['b', 1]])
    """
    schema = frame.schema
    # One string a block (its partial summaries as JSON): small, whatever the block's size.
    partials = frame.map_batches(_BlockSummaries(schema), schema=_PARTIAL).to_arrow().column("partial").to_pylist()
    merged = merge_summaries([json.loads(p) for p in partials], schema)
    return finish_summaries(merged)


class _BlockSummaries:
    """The map_batches function: one row holding the block's partial summaries (a class, so Ray pickles it small)."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema

    def __call__(self, table: pa.Table) -> pa.Table:
        return pa.table({"partial": pa.array([json.dumps(block_summaries(table))], pa.large_string())})


def block_summaries(table: pa.Table) -> list[dict[str, Any]]:
    """One block's partial summary of each column (JSON-ready; merged by :func:`merge_summaries`).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images.summaries import block_summaries
        >>> block_summaries(pa.table({"x": [3, None]}))[0]["missing"]
        1
    """
    errors = table.column("error") if "error" in table.column_names else None
    return [_partial(table.schema.field(i), table.column(i), errors) for i in range(table.num_columns)]


def _partial(field: pa.Field, column: pa.ChunkedArray, errors: pa.ChunkedArray | None) -> dict[str, Any]:
    kind = column_kind(field)
    out: dict[str, Any] = {"name": field.name, "kind": kind, "rows": len(column), "missing": column.null_count,
                           "errors": 0}
    if kind == "number":
        values = column.drop_null().to_numpy().astype(np.float64)
        out["numbers"] = {"value": _numbers(values)}
        out["errors"] = out["numbers"]["value"]["nan"]
    elif kind == "boolean":
        out["counts"] = _counts(pc.cast(column.drop_null(), pa.string()))
    elif kind == "text":
        out["counts"] = _counts(column.drop_null())
    elif kind == "items":
        item = _item_field(field.type.value_type)
        flat = pc.list_flatten(column)
        if item is not None and pa.types.is_struct(flat.type):
            flat = pc.struct_field(flat, item)
        out["counts"] = _counts(flat.drop_null() if isinstance(flat, pa.ChunkedArray) else pa.chunked_array([flat]).drop_null())
        out["numbers"] = {"length": _numbers(pc.list_value_length(column).drop_null().to_numpy().astype(np.float64))}
    elif kind == "image":
        storage = pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
        present = storage.filter(pc.is_valid(storage))
        out["numbers"] = {
            "width": _numbers(pc.struct_field(present, "width").drop_null().to_numpy().astype(np.float64)),
            "height": _numbers(pc.struct_field(present, "height").drop_null().to_numpy().astype(np.float64)),
        }
        out["counts"] = _counts(pc.struct_field(present, "format").drop_null())
        if errors is not None:  # read_images keeps a failed file's row: a null image and the reason beside it
            failed = pc.sum(pc.and_(pc.is_null(storage), pc.is_valid(errors))).as_py() or 0
            out["errors"], out["missing"] = failed, out["missing"] - failed
    elif kind == "vector":
        out["dimension"] = field.type.list_size
        matrix = vectors_to_numpy(column.drop_null()).astype(np.float64)
        norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix)) if matrix.size else np.zeros(0)
        out["numbers"] = {"norm": _numbers(norms)}
        out["errors"] = out["numbers"]["norm"]["nan"]
    return out


def _item_field(dtype: pa.DataType) -> str | None:
    """The field a list's items are counted by: the items themselves, or a struct's first string field (a tag)."""
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return ""
    if pa.types.is_struct(dtype):
        for f in dtype:
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
                return f.name
    return None


def _numbers(values: np.ndarray) -> dict[str, Any]:
    nan = np.isnan(values)
    values = np.sort(values[~nan])
    n = len(values)
    out = {"count": n, "nan": int(nan.sum()), "sum": float(values.sum()) if n else 0.0,
           "min": float(values[0]) if n else None, "max": float(values[-1]) if n else None}
    out["points"], out["weights"] = _compress(values, np.ones(n))
    return out


def _compress(values: np.ndarray, weights: np.ndarray) -> tuple[list[float], list[float]]:
    """Sorted weighted values cut to QUANTILE_POINTS at evenly spaced ranks (kept whole when already that few)."""
    if len(values) <= QUANTILE_POINTS:
        return values.tolist(), weights.tolist()
    cumulative = np.cumsum(weights)
    total = cumulative[-1]
    ranks = (np.arange(QUANTILE_POINTS) + 0.5) * total / QUANTILE_POINTS
    picked = values[np.minimum(np.searchsorted(cumulative, ranks), len(values) - 1)]
    return picked.tolist(), [float(total / QUANTILE_POINTS)] * QUANTILE_POINTS


def _counts(values: pa.ChunkedArray | pa.Array) -> dict[str, Any]:
    if isinstance(values.type, pa.DictionaryType):
        values = values.cast(values.type.value_type)
    counted = pc.value_counts(values)
    names = counted.field("values").to_pylist()
    numbers = counted.field("counts").to_pylist()
    order = sorted(range(len(names)), key=lambda i: -numbers[i])
    kept = order[:TOP_VALUES]
    # The largest count left out bounds how far any merged count can fall short.
    error = numbers[order[TOP_VALUES]] if len(order) > TOP_VALUES else 0
    return {"top": {str(names[i]): numbers[i] for i in kept}, "error": error, "distinct": len(names),
            "complete": len(order) <= TOP_VALUES}


def merge_summaries(partials: list[list[dict[str, Any]]], schema: pa.Schema) -> list[dict[str, Any]]:
    """Merge the blocks' partial summaries column by column (sums, and sketches cut back to their size).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images.summaries import block_summaries, merge_summaries
        >>> a, b = pa.table({"x": [1, 2]}), pa.table({"x": [None, 5]})
        >>> merge_summaries([block_summaries(a), block_summaries(b)], a.schema)[0]["rows"]
        4
    """
    merged = []
    for i, field in enumerate(schema):
        parts = [p[i] for p in partials]
        out: dict[str, Any] = {"name": field.name, "kind": column_kind(field), "type": _type_name(field.type),
                               "rows": sum(p["rows"] for p in parts), "missing": sum(p["missing"] for p in parts),
                               "errors": sum(p["errors"] for p in parts)}
        if parts and "numbers" in parts[0]:
            out["numbers"] = {k: _merge_numbers([p["numbers"][k] for p in parts]) for k in parts[0]["numbers"]}
        if parts and "counts" in parts[0]:
            out["counts"] = _merge_counts([p["counts"] for p in parts])
        if "dimension" in (parts[0] if parts else {}):
            out["dimension"] = parts[0]["dimension"]
        merged.append(out)
    return merged


def _merge_numbers(parts: list[dict[str, Any]]) -> dict[str, Any]:
    present = [p for p in parts if p["count"]]
    values = np.array([v for p in present for v in p["points"]], dtype=np.float64)
    weights = np.array([w for p in present for w in p["weights"]], dtype=np.float64)
    order = np.argsort(values, kind="stable")
    points, kept = _compress(values[order], weights[order])
    return {"count": sum(p["count"] for p in parts), "nan": sum(p["nan"] for p in parts),
            "sum": sum(p["sum"] for p in parts), "min": min((p["min"] for p in present), default=None),
            "max": max((p["max"] for p in present), default=None), "points": points, "weights": kept,
            "exact": len(values) == sum(p["count"] for p in parts) and len(points) == len(values)}


def _merge_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: Counter = Counter()
    for p in parts:
        total.update(p["top"])
    complete = all(p["complete"] for p in parts)
    return {"top": total, "error": sum(p["error"] for p in parts), "complete": complete,
            "distinct": len(total) if complete else None}


def finish_summaries(merged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the page shows of each merged summary: quantiles, a histogram, the most frequent values.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images.summaries import block_summaries, finish_summaries, merge_summaries
        >>> t = pa.table({"x": [1.0, 2.0, 3.0, 4.0]})
        >>> finish_summaries(merge_summaries([block_summaries(t)], t.schema))[0]["quantiles"]["0.5"]
        2.0
    """
    out = []
    for m in merged:
        s = {k: m[k] for k in ("name", "kind", "type", "rows", "missing", "errors")}
        if "dimension" in m:
            s["dimension"] = m["dimension"]
        for key, numbers in m.get("numbers", {}).items():
            shown = _shown_numbers(numbers)
            if key == "value":
                s.update(shown)
            else:
                s[key] = shown
        if "counts" in m:
            counts = m["counts"]
            top = sorted(counts["top"].items(), key=lambda kv: (-kv[1], kv[0]))
            s["top"] = [[k, v] for k, v in top[:SHOWN_VALUES]]
            s["facets"] = [[k, v] for k, v in top[:200]]
            s["other"] = sum(v for _, v in top[SHOWN_VALUES:])
            s["distinct"] = counts["distinct"]
            s["count_error"] = counts["error"]
        out.append(s)
    return out


def _shown_numbers(numbers: dict[str, Any]) -> dict[str, Any]:
    values = np.asarray(numbers["points"], dtype=np.float64)
    weights = np.asarray(numbers["weights"], dtype=np.float64)
    n = numbers["count"]
    out: dict[str, Any] = {"count": n, "nan": numbers["nan"], "min": numbers["min"], "max": numbers["max"],
                           "mean": numbers["sum"] / n if n else None, "exact": bool(numbers["exact"]),
                           "rank_error": 0.0 if numbers["exact"] else 2.0 / QUANTILE_POINTS}
    out["quantiles"] = {str(q): sketch_quantile(values, weights, q) for q in QUANTILES}
    out["quantiles"]["0.0"], out["quantiles"]["1.0"] = numbers["min"], numbers["max"]
    out["histogram"] = _histogram(values, weights, numbers["min"], numbers["max"], n)
    return out


def sketch_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    """The ``q`` quantile of sorted weighted points: the first point whose cumulative weight reaches ``q`` of the total.

    With unit weights this is polars' ``quantile(q, "lower")`` up to one rank.

    Example:
        >>> import numpy as np
        >>> from framelab.frames.images.summaries import sketch_quantile
        >>> sketch_quantile(np.array([1.0, 2.0, 3.0]), np.ones(3), 0.5)
        2.0
    """
    if len(values) == 0:
        return None
    cumulative = np.cumsum(weights)
    i = int(np.searchsorted(cumulative, q * cumulative[-1], side="left"))
    return float(values[min(max(i, 0), len(values) - 1)])


def _histogram(values: np.ndarray, weights: np.ndarray, low: float | None, high: float | None, n: int) -> dict:
    if not n or low is None:
        return {"edges": [], "counts": []}
    if low == high:
        return {"edges": [low, high], "counts": [n]}
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(values, bins=edges, weights=weights)
    # Sketch weights are fractional; the counts are estimates, shown rounded to whole rows.
    return {"edges": edges.tolist(), "counts": [int(round(c)) for c in counts]}


def _type_name(dtype: pa.DataType) -> str:
    return type_name(dtype)


def json_safe(value: Any) -> Any:
    """Replace NaN and infinities (which JSON cannot hold) by None, all the way down.

    Example:
        >>> from framelab.frames.images.summaries import json_safe
        >>> json_safe({"a": [1.0, float("nan")]})
        {'a': [1.0, None]}
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
