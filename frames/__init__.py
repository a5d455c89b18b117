"""framelab.frames: the distributed, lazy, Arrow-typed Frame.

Example:
    >>> import polars as pl
    >>> from framelab.frames import Frame, agg
    >>> f = Frame({"label": ["cat", "dog", "cat"], "x": [1.0, 2.0, 3.0]})
    >>> f.groupby("label").agg(n=agg.count()).sort("label").to_pydict()
    {'label': ['cat', 'dog'], 'n': [2, 1]}
"""

from framelab.frames import aggregates as agg
from framelab.frames.errors import (
    ColumnNotFoundError,
    ExpressionError,
    FramelabError,
    InputError,
    SchemaMismatchError,
)
from framelab.frames.expressions import ColumnExpr
from framelab.frames.frame import Frame, GroupBy
from framelab.frames.vectors import vector_type, vectors_from_numpy, vectors_to_numpy

__all__ = [
    "ColumnExpr",
    "ColumnNotFoundError",
    "ExpressionError",
    "Frame",
    "FramelabError",
    "GroupBy",
    "InputError",
    "SchemaMismatchError",
    "agg",
    "vector_type",
    "vectors_from_numpy",
    "vectors_to_numpy",
]
