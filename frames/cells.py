"""How one cell's value reads as text, shared by a frame's text view, its notebook view and explore().

Example:
    >>> from framelab.frames.cells import records_text
    >>> records_text({"tag": "macaw", "score": 0.998})
    'macaw 1.00'
"""

from __future__ import annotations


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
