"""framelab.frames: the distributed, lazy, Arrow-typed Frame.

Names are imported on first use, so a Ray worker that unpickles one block
function (a group-by's per-block step, say) loads only the modules it needs.

Example:
    >>> from framelab.frames import Frame, agg
    >>> f = Frame({"label": ["cat", "dog", "cat"], "x": [1.0, 2.0, 3.0]})
    >>> f.groupby("label").agg(n=agg.count(), mean_x=agg.mean("x")).sort("label").to_pydict()
    {'label': ['cat', 'dog'], 'n': [2, 1], 'mean_x': [2.0, 2.0]}
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> (module, attribute); None: the module itself.
_EXPORTS = {
    "ActorStage": ("framelab.frames.logical", "ActorStage"),
    "ColumnExpr": ("framelab.frames.expressions", "ColumnExpr"),
    "ColumnNotFoundError": ("framelab.frames.errors", "ColumnNotFoundError"),
    "ExpressionError": ("framelab.frames.errors", "ExpressionError"),
    "Frame": ("framelab.frames.frame", "Frame"),
    "FramelabError": ("framelab.frames.errors", "FramelabError"),
    "GroupBy": ("framelab.frames.groupby", "GroupBy"),
    "InputError": ("framelab.frames.errors", "InputError"),
    "SchemaMismatchError": ("framelab.frames.errors", "SchemaMismatchError"),
    "StorageError": ("framelab.frames.errors", "StorageError"),
    "agg": ("framelab.frames.aggregates", None),
    "read_images": ("framelab.frames.frame", "read_images"),
    "vector_type": ("framelab.frames.vectors", "vector_type"),
    "vectors_from_numpy": ("framelab.frames.vectors", "vectors_from_numpy"),
    "vectors_to_numpy": ("framelab.frames.vectors", "vectors_to_numpy"),
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module_name, attribute = _EXPORTS[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = sorted(_EXPORTS)
