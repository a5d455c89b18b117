"""``explore``: a self-contained HTML page to page through a frame's images with their other columns.

The page embeds every thumbnail as a data URI and its rows as JSON, so it opens
from disk in any browser with no server and nothing fetched. A small script
shows one page of rows at a time.
"""

from __future__ import annotations

import html
import json
import os
from typing import TYPE_CHECKING

import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.frames.images.display import THUMBNAIL_SIZE, cell_html, image_columns, thumbnail_uri
from framelab.frames.images.image_type import image_bytes
from framelab.frames.images.page import ExplorePage, page_path

if TYPE_CHECKING:
    from framelab.frames.frame import Frame

MAX_ROWS = 5_000
PAGE_SIZE = 48

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>%(title)s</title>
<style>
body { font-family: system-ui, sans-serif; margin: 16px; }
#grid { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ccc; border-radius: 6px; padding: 6px; width: %(card)dpx; font-size: 12px; }
.card img { display: block; margin: 0 auto 4px auto; max-width: %(size)dpx; max-height: %(size)dpx; }
.card .missing { height: %(size)dpx; display: flex; align-items: center; justify-content: center; color: #a00; }
.card div { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.card div.wrap { white-space: normal; }
nav { margin: 10px 0; }
</style></head>
<body>
<h3>%(title)s</h3>
<p>%(summary)s</p>
<nav><button id="prev">&larr; prev</button> <span id="page"></span> <button id="next">next &rarr;</button></nav>
<div id="grid"></div>
<script id="framelab-data" type="application/json">%(data)s</script>
<script>
const DATA = JSON.parse(document.getElementById("framelab-data").textContent);
const PAGE = %(page_size)d;
let page = 0;
function render() {
  const grid = document.getElementById("grid");
  grid.innerHTML = "";
  const pages = Math.max(1, Math.ceil(DATA.rows.length / PAGE));
  page = Math.min(Math.max(page, 0), pages - 1);
  document.getElementById("page").textContent = "page " + (page + 1) + " of " + pages;
  for (const row of DATA.rows.slice(page * PAGE, (page + 1) * PAGE)) {
    const card = document.createElement("div");
    card.className = "card";
    for (const name of DATA.images) {
      if (row.thumbs[name]) {
        const img = document.createElement("img");
        img.src = row.thumbs[name];
        img.alt = name;
        img.onload = report;
        card.appendChild(img);
      } else {
        const miss = document.createElement("div");
        miss.className = "missing";
        miss.textContent = "no image";
        card.appendChild(miss);
      }
    }
    for (const [name, value] of Object.entries(row.cells)) {
      const line = document.createElement("div");
      line.innerHTML = "<b>" + name + "</b>: " + value;
      line.title = name;
      if (DATA.wrap.includes(name)) line.className = "wrap";
      card.appendChild(line);
    }
    grid.appendChild(card);
  }
}
// Record how many thumbnails decoded, so a headless browser (and a test) can check the page.
function report() {
  const imgs = Array.from(document.querySelectorAll("#grid img"));
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter((i) => i.complete && i.naturalWidth > 0).length;
}
window.addEventListener("load", report);
document.getElementById("prev").onclick = () => { page -= 1; render(); };
document.getElementById("next").onclick = () => { page += 1; render(); };
render();
</script>
</body></html>
"""


def explore(
    frame: Frame,
    path: str | os.PathLike | None = None,
    *,
    max_rows: int = MAX_ROWS,
    page_size: int = PAGE_SIZE,
    thumbnail_size: int = THUMBNAIL_SIZE * 2,
) -> ExplorePage:
    """Write a self-contained HTML page of the frame's images (paged) and return its path.

    With no ``path``, the page goes to ``FRAMELAB_EXPLORE_DIR`` (else the
    temporary folder); the returned :class:`~framelab.frames.images.page.ExplorePage`
    reads as the path and shows the page inline in a notebook.

    Only the first ``max_rows`` rows are put on the page; thumbnails are made
    while streaming the frame, so the driver holds thumbnails, not images.

    Example:
        >>> from framelab.frames.images.explore import explore
        >>> from framelab.toolkits.datasets import caltech101
        >>> page = explore(caltech101(classes=["ewer"], per_class=6), page_size=3)
        >>> page.endswith(".html"), "6 rows; image columns: image" in open(page).read()
        (True, True)
    """
    images = image_columns(frame.schema)
    if not images:
        raise InputError(
            f"explore() shows image columns, but this frame has none (columns: {frame.columns}); "
            "read images with Frame.read_images(...)"
        )
    if max_rows <= 0 or page_size <= 0:
        raise InputError(f"max_rows and page_size must be positive, got {max_rows}, {page_size}")
    # List and struct cells (an image's tags) wrap over several lines instead of being cut at one.
    wrap = [f.name for f in frame.schema if f.name not in images and _is_nested(f.type)]
    rows: list[dict] = []
    for batch in frame.head(max_rows).iter_batches(batch_size=256, format="arrow"):
        thumbs = {n: [thumbnail_uri(d, thumbnail_size) for d in image_bytes(batch.column(n))] for n in images}
        others = {n: batch.column(n).to_pylist() for n in batch.column_names if n not in images}
        for i in range(batch.num_rows):
            rows.append(
                {
                    "thumbs": {n: thumbs[n][i] for n in images},
                    "cells": {html.escape(n): cell_html(v[i], 240 if n in wrap else _line_chars(n, thumbnail_size)) for n, v in others.items()},
                }
            )
    path = page_path(path)
    data = json.dumps({"images": images, "wrap": [html.escape(n) for n in wrap], "rows": rows}).replace("</", "<\\/")
    page = _PAGE % {
        "title": "framelab explore",
        "summary": html.escape(f"{len(rows)} rows; image columns: {', '.join(images)}"),
        "data": data,
        "page_size": page_size,
        "size": thumbnail_size,
        "card": thumbnail_size + 12,
    }
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path


def _line_chars(name: str, thumbnail_size: int) -> int:
    # About 7 px a character at the card's font: a longer value would be cut again by the card's
    # CSS ellipsis, at its end, where a path keeps its file name.
    return max(12, (thumbnail_size + 12) // 7 - len(name) - 2)


def _is_nested(dtype: pa.DataType) -> bool:
    return pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_struct(dtype)
