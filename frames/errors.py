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
    """Bad input to a toolkit or reader (wrong type, empty, NaN, ...).

    Its message is kept apart from ``args``: Ray Data appends its retry advice
    to the ``args`` of an error raised in a task, and the user should read
    what framelab said, as framelab said it, whichever process raised it.

    Example:
        >>> import pickle
        >>> from framelab.frames.errors import InputError
        >>> err = InputError("no rows: pass a frame with rows"); err.args = (err.args[0] + " (retried 1/1)",)
        >>> str(pickle.loads(pickle.dumps(err)))
        'no rows: pass a frame with rows'
    """

    def __init__(self, message: str = "", *args: object):
        super().__init__(message, *args)
        self.message = message

    def __str__(self) -> str:
        return str(self.message)

    def __reduce__(self) -> tuple:
        return (type(self), (self.message,))


def check_columns(names: Iterable[str], existing: Iterable[str]) -> None:
    """Raise :class:`ColumnNotFoundError` for names not in ``existing``.

    Example:
        >>> from framelab.frames.errors import check_columns
        >>> check_columns(["a"], ["a", "b"])          # present: nothing to say
        >>> check_columns(["c"], ["a", "b"])
        Traceback (most recent call last):
        ...
        framelab.frames.errors.ColumnNotFoundError: no column named 'c'; the frame has: 'a', 'b'
    """
    existing = list(existing)
    missing = [n for n in names if n not in existing]
    if missing:
        raise ColumnNotFoundError(missing, existing)


class StorageError(InputError, OSError):
    """The store refused or could not be reached: the message names the URL, bucket, endpoint and likely cause.

    An ``InputError`` (the fix is in the caller's URL, credentials or
    endpoint) and an ``OSError``; made by
    :func:`framelab.frames.storage.translated_errors`, with the store's own
    error chained where the process that met it raises it.

    Example:
        >>> from framelab.frames.errors import StorageError
        >>> isinstance(StorageError("cannot read s3://b/k"), (ValueError, OSError))
        True
    """
