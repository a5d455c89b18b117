"""How a Frame shows itself: plain text in a terminal, HTML in a notebook."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pyarrow as pa

from framelab.frames.cells import records_text, shorten, shortened_html
from framelab.frames.vectors import is_vector_type

if TYPE_CHECKING:
    from framelab.frames.frame import Frame

PREVIEW_ROWS = 10


class PlainText(str):
    """A string that shows as itself at a prompt (real line breaks, no quotes); ``print`` shows the same.

    What :meth:`Frame.explain` returns, so typing ``frame.explain()`` shows the plan.

    Example:
        >>> from framelab.frames.display import PlainText
        >>> PlainText("Map  @cluster"), str(PlainText("x")) == "x"
        (Map  @cluster, True)
    """

    def __repr__(self) -> str:
        return str(self)


def type_name(dtype: pa.DataType) -> str:
    """A short readable name for a column type ("image", "vector[float32, 1280]", ...)."""
    if isinstance(dtype, pa.ExtensionType):
        return str(getattr(dtype, "display_name", dtype.extension_name)).replace("framelab.", "")
    if is_vector_type(dtype):
        return f"vector[{dtype.value_type}, {dtype.list_size}]"
    return str(dtype)


def _text(value: object) -> str:
    if isinstance(value, dict) and "bytes" in value:
        return f"<image {value.get('width')}x{value.get('height')}>"
    records = records_text(value)
    if records is not None:
        text = records
    elif isinstance(value, (bytes, bytearray)):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, list) and len(value) > 4:
        text = "[" + ", ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in value[:3]) + f", ... ({len(value)})]"
    elif isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return text


def _cell(value: object, width: int = 24) -> str:
    return shorten(_text(value), width)


def frame_text(frame: Frame) -> str:
    """The plain-text view: schema, then the first rows."""
    schema = frame.schema
    lines = ["Frame"]
    lines.append("schema:")
    for f in schema:
        lines.append(f"  {f.name}: {type_name(f.type)}")
    preview = frame.head(PREVIEW_ROWS).to_arrow()
    if not schema.names:
        return "\n".join(lines + ["(no columns)"])
    rows = [[_cell(v) for v in row.values()] for row in preview.to_pylist()]
    header = list(schema.names)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    lines.append("-+-".join("-" * w for w in widths))
    for r in rows:
        lines.append(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    if preview.num_rows == PREVIEW_ROWS:
        lines.append(f"[first {PREVIEW_ROWS} rows shown]")
    elif preview.num_rows == 0:
        lines.append("(no rows)")
    return "\n".join(lines)


def frame_html(frame: Frame) -> str:
    """The notebook view: a table of the first rows (image columns render as thumbnails)."""
    try:
        from framelab.frames.images.display import frame_html as image_html
    except ImportError:
        image_html = None
    if image_html is not None and any(isinstance(f.type, pa.ExtensionType) for f in frame.schema):
        return image_html(frame)
    schema = frame.schema
    preview = frame.head(PREVIEW_ROWS).to_arrow()
    head = "".join(
        f"<th>{html.escape(f.name)}<br><small>{html.escape(type_name(f.type))}</small></th>" for f in schema
    )
    body = "".join(
        "<tr>" + "".join(f"<td>{shortened_html(_text(v), 60)}</td>" for v in row.values()) + "</tr>"
        for row in preview.to_pylist()
    )
    return f"<table class='framelab-frame'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
