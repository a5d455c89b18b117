"""The errors framelab raises: each says what was wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable


class FramelabError(Exception):
    """Base class of framelab's own errors."""


class ColumnNotFoundError(FramelabError, KeyError):
    """A column name that the frame does not have."""

    def __init__(self, missing: Iterable[str], existing: Iterable[str]):
        self.missing = list(missing)
        self.existing = list(existing)
        super().__init__(
            f"no column named {', '.join(map(repr, self.missing))}; "
            f"the frame has: {', '.join(map(repr, self.existing)) or '(no columns)'}"
        )

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class SchemaMismatchError(FramelabError, TypeError):
    """Two frames or columns whose types do not fit together."""


class ExpressionError(FramelabError, ValueError):
    """An expression a Frame cannot evaluate block by block."""


class InputError(FramelabError, ValueError):
    """Bad input to a toolkit or reader (wrong type, empty, NaN, ...)."""


def check_columns(names: Iterable[str], existing: Iterable[str]) -> None:
    """Raise :class:`ColumnNotFoundError` for names not in ``existing``.

    Example:
        >>> from framelab.frames.errors import check_columns
        >>> check_columns(["a"], ["a", "b"])
    """
    existing = list(existing)
    missing = [n for n in names if n not in existing]
    if missing:
        raise ColumnNotFoundError(missing, existing)
