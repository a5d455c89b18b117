"""Thumbnails: how a frame with image columns shows itself in a notebook.

Thumbnails are small JPEG/PNG data URIs made in the driver from the first rows
only, so showing a frame never decodes more than a screenful of images.
"""

from __future__ import annotations

import base64
import html
import io
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from framelab.frames.cells import records_text, shortened_html
from framelab.frames.images.decode import open_image, to_mode
from framelab.frames.images.image_type import image_bytes, is_image_type

if TYPE_CHECKING:
    from framelab.frames.frame import Frame

THUMBNAIL_SIZE = 96
PREVIEW_ROWS = 10


def thumbnail_uri(data: bytes | None, size: int = THUMBNAIL_SIZE) -> str | None:
    """A ``data:`` URI of a thumbnail fitting ``size x size`` (None when the image cannot be read).

    Example:
        >>> import io
        >>> from PIL import Image
        >>> from framelab.frames.images.display import thumbnail_uri
        >>> buf = io.BytesIO(); Image.new("RGB", (300, 200)).save(buf, "JPEG")
        >>> thumbnail_uri(buf.getvalue()).startswith("data:image/jpeg;base64,")
        True
    """
    if data is None:
        return None
    try:
        img = to_mode(open_image(data))
        img.thumbnail((size, size))
    except Exception:  # noqa: BLE001 - a broken image shows as a blank cell, not a broken page
        return None
    buf = io.BytesIO()
    if img.mode == "RGBA":
        img.save(buf, "PNG")
        kind = "png"
    else:
        img.save(buf, "JPEG", quality=85)
        kind = "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def image_columns(schema: pa.Schema) -> list[str]:
    """Names of the image columns of a schema."""
    return [f.name for f in schema if is_image_type(f.type)]


def cell_html(value: Any, width: int = 40) -> str:
    """One non-image cell as escaped, shortened text; structs read as their values ("macaw 0.99").

    A path keeps its end (the file name); a cut value shows whole on hover.

    Example:
        >>> from framelab.frames.images.display import cell_html
        >>> cell_html([{"tag": "bird", "score": 0.998}, {"tag": "macaw", "score": 0.91}])
        'bird 1.00, macaw 0.91'
        >>> cell_html("/home/ana/photos/hymenoptera/train/ants/0013035.jpg", 24)
        '<span title="/home/ana/photos/hymenoptera/train/ants/0013035.jpg">…/train/ants/0013035.jpg</span>'
    """
    if value is None:
        return '<span style="color:#999">null</span>'
    if isinstance(value, (bytes, bytearray)):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif records_text(value) is not None:
        # A list of records (such as an image's tags) reads best as the records, one after another.
        text = records_text(value)
    elif isinstance(value, list) and len(value) > 4:
        text = f"[{', '.join(map(str, value[:3]))}, ... ({len(value)})]"
    else:
        text = str(value)
    return shortened_html(text, width)


def table_html(table: pa.Table, *, total_rows: int | None = None, size: int = THUMBNAIL_SIZE) -> str:
    """An HTML table of ``table`` with thumbnails in its image columns.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.images.display import table_html
        >>> "<table" in table_html(pa.table({"x": [1]}))
        True
    """
    images = set(image_columns(table.schema))
    thumbs = {name: [thumbnail_uri(d, size) for d in image_bytes(table.column(name))] for name in images}
    columns = {name: (None if name in images else table.column(name).to_pylist()) for name in table.column_names}
    head = "".join(
        f"<th>{html.escape(f.name)}<br><small>{'image' if f.name in images else html.escape(str(f.type))}</small></th>"
        for f in table.schema
    )
    rows = []
    for i in range(table.num_rows):
        cells = []
        for name in table.column_names:
            if name in images:
                uri = thumbs[name][i]
                cells.append(f'<td><img src="{uri}" alt="{html.escape(name)} {i}"></td>' if uri else "<td>null</td>")
            else:
                cells.append(f"<td>{cell_html(columns[name][i])}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    shown = f"{table.num_rows} of {total_rows} rows" if total_rows is not None else f"{table.num_rows} rows"
    return (
        '<div class="framelab-frame"><table border="1" style="border-collapse:collapse">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        f"<small>{shown}</small></div>"
    )


def frame_html(frame: Frame, rows: int = PREVIEW_ROWS) -> str:
    """The notebook view of a frame: its first rows, image columns as thumbnails.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.frames.images.display import frame_html
        >>> frame_html(Frame({"x": [1, 2]})).count("<tr>")
        3
    """
    table = frame.head(rows).to_arrow()
    return table_html(table)
