"""Searching a tagged frame: polars expressions on its tags column, evaluated block by block.

``tags`` stands for the column ``tag()`` adds (``col(name)`` for another
name). Its methods return ordinary polars expressions, so they go anywhere a
Frame takes one and combine with ``&``, ``|`` and ``~`` and with other columns.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits.image_tagger import tags
    >>> frame = Frame({"name": ["rex", "tom", "ann"], "tags": [
    ...     [{"tag": "dog", "score": 0.9}, {"tag": "animal", "score": 0.95}],
    ...     [{"tag": "cat", "score": 0.25}, {"tag": "animal", "score": 0.3}],
    ...     []]})
    >>> frame.filter(tags.has("dog"))["name"].to_pylist()
    ['rex']
    >>> frame.filter(tags.any_of(["cat", "dog"], min_score=0.3))["name"].to_pylist()
    ['rex']
    >>> frame.filter(tags.has("animal") & ~tags.has("dog"))["name"].to_pylist()
    ['tom']
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from framelab.frames.errors import InputError
from framelab.frames.validation import number, text

DEFAULT_COLUMN = "tags"


class TagColumn:
    """Expressions on a column of tags (lists of ``{"tag", "score"}`` structs, as ``tag()`` makes).

    Example:
        >>> from framelab.toolkits.image_tagger import col
        >>> col("labels").has("cat").meta.root_names()
        ['labels']
    """

    def __init__(self, name: str = DEFAULT_COLUMN):
        self.name = text(meaning="a tags column name").check(name, "name")

    def __repr__(self) -> str:
        return f"TagColumn({self.name!r})"

    def has(self, tag: str, min_score: float | None = None) -> pl.Expr:
        """True where the row has ``tag`` (scoring at least ``min_score``, if given); null where no tags.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.image_tagger import tags
            >>> f = Frame({"tags": [[{"tag": "dog", "score": 0.4}], [], None]})
            >>> f.with_column("dog", tags.has("dog"))["dog"].to_pylist()
            [True, False, None]
            >>> f.with_column("dog", tags.has("dog", min_score=0.5))["dog"].to_pylist()
            [False, False, None]
        """
        return self._matches([_check_tag(tag)], min_score)

    def any_of(self, tags: Sequence[str], min_score: float | None = None) -> pl.Expr:
        """True where the row has at least one of ``tags`` (scoring at least ``min_score``, if given).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.image_tagger import tags
            >>> f = Frame({"tags": [[{"tag": "cat", "score": 0.4}], [{"tag": "owl", "score": 0.9}]]})
            >>> f.filter(tags.any_of(["cat", "dog"])).num_rows()
            1
        """
        return self._matches(_check_tags(tags, "any_of"), min_score)

    def all_of(self, tags: Sequence[str], min_score: float | None = None) -> pl.Expr:
        """True where the row has every one of ``tags`` (each scoring at least ``min_score``, if given).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.image_tagger import tags
            >>> f = Frame({"tags": [[{"tag": "cat", "score": 0.4}, {"tag": "animal", "score": 0.5}]]})
            >>> f.filter(tags.all_of(["cat", "animal"])).num_rows(), f.filter(tags.all_of(["cat", "dog"])).num_rows()
            (1, 0)
        """
        exprs = [self._matches([t], min_score) for t in dict.fromkeys(_check_tags(tags, "all_of"))]
        return pl.all_horizontal(exprs) if len(exprs) > 1 else exprs[0]

    def score(self, tag: str) -> pl.Expr:
        """The row's score for ``tag``, null where the row does not have it: sort or threshold by it.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.image_tagger import tags
            >>> f = Frame({"tags": [[{"tag": "dog", "score": 0.5}], [{"tag": "cat", "score": 0.9}]]})
            >>> f.with_column("dog", tags.score("dog"))["dog"].to_pylist()
            [0.5, None]
        """
        tag = _check_tag(tag)
        element = pl.element()
        hit = pl.when(element.struct.field("tag") == tag).then(element.struct.field("score"))
        return pl.col(self.name).list.eval(hit).list.max()

    def names(self) -> pl.Expr:
        """The row's tags as a list of strings, best first (scores dropped).

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits.image_tagger import tags
            >>> f = Frame({"tags": [[{"tag": "animal", "score": 0.9}, {"tag": "dog", "score": 0.8}]]})
            >>> f.with_column("names", tags.names())["names"].to_pylist()
            [['animal', 'dog']]
        """
        return pl.col(self.name).list.eval(pl.element().struct.field("tag"))

    def _matches(self, wanted: list[str], min_score: float | None) -> pl.Expr:
        element = pl.element()
        condition = element.struct.field("tag").is_in(wanted) if len(wanted) > 1 else (
            element.struct.field("tag") == wanted[0]
        )
        if min_score is not None:
            condition = condition & (element.struct.field("score") >= _check_score(min_score))
        return pl.col(self.name).list.eval(condition).list.any()


def col(name: str = DEFAULT_COLUMN) -> TagColumn:
    """Search expressions on the tags column called ``name``.

    Example:
        >>> from framelab.toolkits.image_tagger import col
        >>> col("my_tags").name
        'my_tags'
    """
    return TagColumn(name)


tags = TagColumn(DEFAULT_COLUMN)


def _check_tag(tag: object) -> str:
    return text().check(tag, "tag")


def _check_tags(tags: object, method: str) -> list[str]:
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        raise InputError(f"{method} needs a list of tags, e.g. {method}(['cat', 'dog']); got {tags!r}")
    if not tags:
        raise InputError(f"{method} needs at least one tag")
    return [_check_tag(t) for t in tags]


def _check_score(value: object) -> float:
    return number(0, 1).check(value, "min_score")
