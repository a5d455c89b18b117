"""How one cell's value reads as text, shared by a frame's text view, its notebook view and explore().

Example:
    >>> from framelab.frames.cells import records_text, shorten
    >>> records_text({"tag": "macaw", "score": 0.998})
    'macaw 1.00'
    >>> shorten("/home/ana/photos/hymenoptera/train/ants/0013035.jpg", 24)
    '…/train/ants/0013035.jpg'
"""

from __future__ import annotations

import html


def records_text(value: object) -> str | None:
    """A record, or a list of records, as their values ("macaw 1.00, bird 1.00"); None for anything else.

    Example:
        >>> from framelab.frames.cells import records_text
        >>> records_text([{"tag": "bird", "score": 0.998}, {"tag": "macaw", "score": 0.91}])
        'bird 1.00, macaw 0.91'
    """
    def one(record: dict) -> str:
        return " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in record.values())

    if isinstance(value, dict):
        return one(value)
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return ", ".join(one(v) for v in value)
    return None


def _is_path(text: str) -> bool:
    # Paths and URLs: what tells them apart (the file name) is at their end.
    return ("/" in text or "\\" in text) and "\n" not in text


def shorten(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with "…"; a path or URL keeps its end (the file name), anything else its start.

    Example:
        >>> from framelab.frames.cells import shorten
        >>> shorten("s3://bucket/corpus/2024/cats/IMG_0042.jpg", 20), shorten("a long sentence of words", 10)
        ('…/cats/IMG_0042.jpg', 'a long se…')
    """
    if len(text) <= width:
        return text
    if not _is_path(text):
        return text[: width - 1] + "…"
    tail = text[len(text) - (width - 1):]
    # Start at a separator when one is near, so the end reads as whole folder names.
    cut = max(tail.find("/"), tail.find("\\"))
    return "…" + (tail[cut:] if 0 < cut < len(tail) // 2 else tail)


def shortened_html(text: str, width: int) -> str:
    """``text`` shortened (see :func:`shorten`) and escaped; when cut, the whole value shows on hover.

    Example:
        >>> from framelab.frames.cells import shortened_html
        >>> shortened_html("/data/photos/ants/0013035.jpg", 16)
        '<span title="/data/photos/ants/0013035.jpg">…/0013035.jpg</span>'
        >>> shortened_html("a<b", 16)
        'a&lt;b'
    """
    short = shorten(text, width)
    if short == text:
        return html.escape(text)
    return f'<span title="{html.escape(text, quote=True)}">{html.escape(short)}</span>'
