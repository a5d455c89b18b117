"""framelab.toolkits: models that run on frames.

Each toolkit is a subpackage with a ``create(frame, ...)`` that returns a
model (``predict``, ``evaluate``, ``save``); :func:`load_model` brings any
saved model back. Submodules are imported on first use so that
``import framelab.toolkits`` stays cheap.

Example:
    >>> from framelab.toolkits import load_model
    >>> model = load_model("s3://bucket/models/flowers")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any


def load_model(url: str, storage_options: dict | None = None) -> Any:
    """Load any framelab model from a folder written by ``model.save(url)`` (path or fsspec URL).

    Example:
        >>> from framelab.toolkits import load_model
        >>> model = load_model("/tmp/my_model")  # doctest: +SKIP
    """
    from framelab.toolkits.model_io import load_model as _load

    return _load(url, storage_options)


def __getattr__(name: str) -> Any:
    # `framelab.toolkits.classifier` etc. without importing every toolkit up front.
    import importlib

    if name.startswith("_"):
        raise AttributeError(name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as err:
        if err.name == f"{__name__}.{name}":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
        raise


__all__ = ["load_model"]
