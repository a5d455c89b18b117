"""``explore``: one self-contained HTML page that answers questions about a frame of images.

The page holds the frame's column summaries (over all rows, from sketches made
block by block on the cluster: :mod:`framelab.frames.images.summaries`), the
rows of a sample with their thumbnails as data URIs, and what a model adds
(:class:`Views`: a confusion matrix, cluster sizes, precomputed neighbours,
near-duplicate groups). A small script of our own (``explore.html`` beside
this module, no library) filters, sorts, groups and searches the rows, draws
the embedding map on a canvas and opens a model's drill-downs. Nothing is
fetched, so the page opens from disk, wherever it was built.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.frames.images.display import THUMBNAIL_SIZE, cell_html, image_columns, thumbnail_uri
from framelab.frames.images.image_type import image_bytes
from framelab.frames.images.page import ExplorePage, page_path
from framelab.frames.images.summaries import column_kind, json_safe, summarize
from framelab.frames.vectors import vectors_to_numpy

if TYPE_CHECKING:
    from framelab.frames.frame import Frame

MAX_ROWS = 2_000
PAGE_SIZE = 48
_TEMPLATE = Path(__file__).with_name("explore.html")
_MAP_COLUMN = "__map"


@dataclass
class Views:
    """What a model adds to a frame's page; every field is plain data, so toolkits fill it in without frames knowing them.

    ``confusion``: ``{"truth": column, "predicted": column, "classes": [...],
    "counts": [[...], ...]}`` (counts over every evaluated row, truth by row);
    ``group_sizes``: per column, each group's size over all rows (a cluster's
    size), shown beside the rows the page holds; ``neighbours``:
    ``{"key": column, "of": {key: [[key, distance], ...]}}``, the nearest rows
    of each row in the page; ``duplicates``: the column of near-duplicate group
    ids; ``sort`` (``[[column, descending], ...]``) and ``group``: how the grid
    opens; ``colour``: the column the map colours points by.

    Example:
        >>> from framelab.frames.images.explore import Views
        >>> Views(group="cluster_id").group
        'cluster_id'
    """

    confusion: dict[str, Any] | None = None
    group_sizes: dict[str, dict[str, int]] = field(default_factory=dict)
    neighbours: dict[str, Any] | None = None
    duplicates: str | None = None
    sort: list[list[Any]] = field(default_factory=list)
    group: str | None = None
    colour: str | None = None
    title: str = "framelab explore"


def explore(
    frame: Frame,
    path: str | os.PathLike | None = None,
    *,
    max_rows: int = MAX_ROWS,
    page_size: int = PAGE_SIZE,
    thumbnail_size: int = THUMBNAIL_SIZE * 2,
    embedding: str | None = "auto",
    views: Views | None = None,
    seed: int = 0,
) -> ExplorePage:
    """Write a self-contained HTML explorer of the frame and return its path.

    With no ``path``, the page goes to ``FRAMELAB_EXPLORE_DIR`` (else the
    temporary folder); the returned :class:`~framelab.frames.images.page.ExplorePage`
    reads as the path and shows the page inline in a notebook.

    Every column is summarised over all rows (on the cluster, see
    :mod:`~framelab.frames.images.summaries`); the grid holds up to
    ``max_rows`` rows (a uniform sample, ``seed``, when the frame has more,
    and the page says so), filtered, sorted, grouped and searched in the
    page. ``embedding``: a vector column drawn as a 2-D map (its first two
    principal components over the rows in the page); "auto" picks the only
    vector column, None draws no map. ``views``: what a model adds (see
    :class:`Views`).

    Example:
        >>> import pathlib, tempfile
        >>> from PIL import Image
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "ewer"
        >>> folder.mkdir()
        >>> _ = [Image.new("RGB", (8, 6)).save(folder / f"{n}.jpg") for n in range(6)]
        >>> from framelab.frames import Frame
        >>> from framelab.frames.images.explore import explore
        >>> page = explore(Frame.read_images(str(folder.parent), label_from="folder"), page_size=3)
        >>> page.endswith(".html"), "6 of 6 rows" in open(page).read()
        (True, True)
    """
    views = views or Views()
    schema = frame.schema
    images = image_columns(schema)
    if not images:
        raise InputError(
            f"explore() shows image columns, but this frame has none (columns: {frame.columns}); "
            "read images with Frame.read_images(...)"
        )
    if max_rows <= 0 or page_size <= 0:
        raise InputError(f"max_rows and page_size must be positive, got {max_rows}, {page_size}")
    embedding = _embedding_column(schema, embedding)
    summaries = summarize(frame)
    total = summaries[0]["rows"] if summaries else 0
    shown = frame
    if total > max_rows:
        # A Bernoulli sample a little over max_rows, cut to it: one streaming pass, nothing materialised.
        shown = frame.sample(min(1.0, 1.2 * max_rows / total), seed=seed).head(max_rows)
    rows, vectors = _rows(shown, images, thumbnail_size, embedding)
    data = {
        "title": views.title,
        "total": total,
        "images": images,
        "columns": [{"name": f.name, "kind": column_kind(f)} for f in schema],
        "summaries": summaries,
        "rows": rows,
        "page_size": page_size,
        "thumb": thumbnail_size,
        "views": {k: v for k, v in asdict(views).items() if k != "title"},
        "map": _map(vectors, embedding),
    }
    if len(rows) < total:
        note = (f"{len(rows):,} of {total:,} rows in the grid: a uniform random sample (seed {seed}); "
                "the column summaries cover all rows")
    else:
        note = f"{len(rows):,} of {total:,} rows; the column summaries cover all rows"
    return _write(path, data, views.title, note)


def _embedding_column(schema: pa.Schema, embedding: str | None) -> str | None:
    vectors = [f.name for f in schema if column_kind(f) == "vector"]
    if embedding == "auto":
        return vectors[0] if len(vectors) == 1 else None
    if embedding is not None and embedding not in vectors:
        raise InputError(f"embedding must name a vector column; got {embedding!r} (vector columns: {vectors})")
    return embedding


def _rows(frame: Frame, images: list[str], size: int, embedding: str | None) -> tuple[list[dict], np.ndarray | None]:
    """Each row's thumbnails, its values (what the page filters and sorts on) and its cells (what it shows)."""
    schema = frame.schema
    kinds = {f.name: column_kind(f) for f in schema}
    rows: list[dict] = []
    vectors: list[np.ndarray] = []
    for batch in frame.iter_batches(batch_size=256, format="arrow"):
        thumbs = {n: [thumbnail_uri(d, size) for d in image_bytes(batch.column(n))] for n in images}
        others = {n: batch.column(n).to_pylist() for n in batch.column_names
                  if n not in images and kinds.get(n) != "vector"}
        if embedding is not None:
            vectors.append(vectors_to_numpy(batch.column(embedding), fill=np.nan).astype(np.float32))
        for i in range(batch.num_rows):
            rows.append({
                "id": len(rows),
                "thumbs": {n: thumbs[n][i] for n in images},
                "v": {n: _value(v[i], kinds[n]) for n, v in others.items()},
                "cells": {n: cell_html(v[i], 240 if kinds[n] in ("items", "other") else 60) for n, v in others.items()},
            })
    return rows, (np.concatenate(vectors) if vectors else None)


def _value(value: Any, kind: str) -> Any:
    """A cell as the page filters and sorts it: numbers, strings, and a list's items as [name, score] pairs."""
    if value is None:
        return None
    if kind == "items":
        items = []
        for item in value:
            if isinstance(item, dict):
                name = next((v for v in item.values() if isinstance(v, str)), None)
                score = next((v for v in item.values() if isinstance(v, (int, float)) and not isinstance(v, bool)), None)
                items.append([name, score])
            else:
                items.append([item, None])
        return items
    if kind in ("number", "boolean", "text"):
        return value if not isinstance(value, float) or np.isfinite(value) else None
    return None


def _map(vectors: np.ndarray | None, column: str | None) -> dict[str, Any] | None:
    """The rows' first two principal components (PCA by SVD over the rows in the page; rows without a vector: null)."""
    if vectors is None or len(vectors) < 3:
        return None
    present = ~np.isnan(vectors).any(axis=1)
    xy = np.full((len(vectors), 2), np.nan)
    if present.sum() >= 3:
        X = vectors[present].astype(np.float64)
        X -= X.mean(axis=0)
        # Deterministic signs (largest loading positive), so the same rows draw the same map every time.
        _, s, vt = np.linalg.svd(X, full_matrices=False)
        vt *= np.sign(vt[np.arange(vt.shape[0]), np.abs(vt).argmax(axis=1)])[:, None]
        xy[present] = X @ vt[:2].T
        explained = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-12)
    else:
        explained = 0.0
    return {"column": column, "method": "PCA", "explained": float(explained),
            "xy": [None if np.isnan(p[0]) else [round(float(p[0]), 5), round(float(p[1]), 5)] for p in xy]}


def _write(path: str | os.PathLike | None, data: dict[str, Any], title: str, note: str) -> ExplorePage:
    path = page_path(path)
    # "</" is escaped so no value can close the script element that holds the data.
    payload = json.dumps(json_safe(data), separators=(",", ":")).replace("</", "<\\/")
    page = _TEMPLATE.read_text(encoding="utf-8")
    page = page.replace("__TITLE__", html.escape(title)).replace("__NOTE__", html.escape(note))
    page = page.replace("__DATA__", payload)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path
