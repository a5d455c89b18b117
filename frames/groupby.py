"""GroupBy: a frame grouped by key columns, waiting for its aggregates.

``frame.groupby(keys)`` returns one; ``.agg(...)`` checks the aggregates
and adds a single aggregate node to the frame's plan. Where it runs (both
phases in the driver, or pyarrow per block on the cluster and polars once
in the driver) is the planner's choice.

Example:
    >>> from framelab.frames import Frame, agg
    >>> visits = Frame({"page": ["home", "docs", "home"], "ms": [120, 340, 80]})
    >>> visits.groupby("page").agg(n=agg.count(), slowest=agg.max("ms")).sort("page").to_pydict()
    {'page': ['docs', 'home'], 'n': [1, 2], 'slowest': [340, 120]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from framelab.frames import aggregates
from framelab.frames.errors import InputError
from framelab.frames.logical import Aggregate

if TYPE_CHECKING:
    from framelab.frames.frame import Frame


class GroupBy:
    """A frame grouped by key columns; finish with :meth:`agg`.

    Example:
        >>> from framelab.frames import Frame
        >>> Frame({"k": [1, 2]}).groupby("k")
        GroupBy(by=['k'])
    """

    def __init__(self, frame: Frame, keys: list[str]):
        self._frame = frame
        self._keys = keys

    def agg(self, *aggs: aggregates.Aggregator, **named: aggregates.Aggregator) -> Frame:
        """Aggregate each group: ``agg(n=agg.count(), mean_x=agg.mean("x"))``; unnamed ones get default names.

        Example:
            >>> from framelab.frames import Frame, agg
            >>> Frame({"k": [1, 1], "x": [2.0, 4.0]}).groupby("k").agg(agg.mean("x"), n=agg.count()).to_pydict()
            {'k': [1], 'x_mean': [3.0], 'n': [2]}
        """
        spec = {a.default_name(): a for a in aggs}
        spec.update(named)
        if not spec:
            raise InputError("agg() needs at least one aggregate, e.g. agg(n=agg.count())")
        schema = self._frame.schema
        for name, a in spec.items():
            if not isinstance(a, aggregates.Aggregator):
                raise InputError(f"{name}= must be an aggregate such as agg.sum('x'), got {type(a).__name__}")
            spec[name] = a.checked(schema)
        return self._frame._make(Aggregate(self._frame._node, self._keys, spec))

    def __repr__(self) -> str:
        return f"GroupBy(by={self._keys})"
