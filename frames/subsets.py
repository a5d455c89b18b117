"""Picking and ordering rows at random, and splitting off the rows with missing values.

:class:`Subsets` holds the Frame's ``shuffle``, ``dropna_split`` and the exact
count of ``sample(exact=True)``; :class:`~framelab.frames.frame.Frame` inherits
them. Every draw is a row's seeded hash (:mod:`framelab.frames.sampling`), so a
seed gives the same rows on any machine and on both paths, in the driver and on
the cluster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import polars as pl

from framelab.frames import blockwise, validation
from framelab.frames.errors import check_columns

if TYPE_CHECKING:
    from framelab.frames.frame import Frame


class Subsets:
    """Random order, exact-size samples and the two sides of ``dropna``; use them as ``frame.shuffle(seed=0)``.

    Example:
        >>> from framelab.frames import Frame
        >>> sorted(Frame({"x": [1, 2, 3]}).shuffle(seed=0).to_pydict()["x"])
        [1, 2, 3]
    """

    __slots__ = ()

    def shuffle(self: Frame, seed: int | None = None, *, key: str | None = None) -> Frame:
        """The rows in a random order, fixed by ``seed`` (the draw of :meth:`random_split`, sorted; on the cluster, Ray Data's sort).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": list(range(6))}).shuffle(seed=3).to_pydict()
            {'x': [4, 2, 3, 5, 0, 1]}
        """
        seed = validation.check_seed(seed)
        drawn, draw = _with_draws(self, seed, key)
        return drawn.sort(draw).drop(draw)

    def dropna_split(self: Frame, columns: str | Sequence[str] | None = None,
                     how: str = "any") -> tuple[Frame, Frame]:
        """Both sides of :meth:`dropna`: the rows it keeps, and the rows it drops (Turi Create's ``dropna_split``).

        Example:
            >>> from framelab.frames import Frame
            >>> kept, dropped = Frame({"x": [1.0, None, 3.0], "y": ["a", "b", None]}).dropna_split("x")
            >>> kept.to_pydict(), dropped.to_pydict()
            ({'x': [1.0, 3.0], 'y': ['a', None]}, {'x': [None], 'y': ['b']})
        """
        names = self.columns if columns is None else validation.column_list([columns])
        check_columns(names, self.columns)
        validation.check_choice("dropna_split how", how, ("any", "all"))
        dropped = self._map(blockwise.DropMissing(names, how, keep_missing=True), "dropna_split(dropped)",
                            reads=tuple(names), keeps_rows=False)
        return self.dropna(names, how), dropped

    def _exact_sample(self: Frame, fraction: float, seed: int, key: str | None) -> Frame:
        """The ``round(fraction * rows)`` rows with the smallest draws, in their order (two passes: draws, then a cut)."""
        # The draws are kept (materialised) so the cut and the rows it picks see the same draws.
        drawn, draw = _with_draws(self, seed, key)
        drawn = drawn.materialize()
        n = round(fraction * drawn.num_rows())
        if n == 0:
            return drawn.filter(pl.lit(False)).drop(draw)
        cut = drawn.select(draw).sort(draw).head(n).to_arrow().column(0)[-1].as_py()
        return drawn.filter(pl.col(draw) <= cut).drop(draw)


def _with_draws(frame: Frame, seed: int, key: str | None) -> tuple[Frame, str]:
    """The frame with a column of seeded draws in [0, 1), and that column's name (one no column has)."""
    if key is not None:
        check_columns([key], frame.columns)
    draw = "__draw"
    while draw in frame.columns:
        draw = "_" + draw
    # Not row-wise: a row's draw counts the equal rows before it in its block, so no filter may move above it.
    return frame._map(blockwise.RowDraws(draw, seed, key), "draws", writes=(draw,), rowwise=False), draw

