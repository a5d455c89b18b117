"""The out-of-the-box vocabulary: ImageNet's 1,000 classes and the broader WordNet tags above them.

The hierarchy ships as ``data/imagenet_tags.json`` (built once from WordNet 3.0 by
``data/build_imagenet_tags.py``; WordNet is not needed at run time). A broader
tag covers the classes below it, and its score is the sum of their
probabilities, so "bird" scores what all the birds score together.

Example:
    >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
    >>> h = imagenet_hierarchy()
    >>> len(h.classes), "bird" in h.names, h.names[88]
    (1000, True, 'macaw')
    >>> [name for name in h.broader_tags_of("macaw")]
    ['animal', 'bird', 'parrot']
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framelab.frames.errors import InputError

DATA_FILE = Path(__file__).resolve().parent / "data" / "imagenet_tags.json"
_FORMAT = "framelab.imagenet_tags"


@dataclass(frozen=True)
class TagHierarchy:
    """Classes (the network's outputs) and tags; tag ``i < num_classes`` is class ``i`` itself.

    ``cover_indptr``/``cover_indices`` list, for each broader tag (tag
    ``num_classes + j``), the classes it covers (CSR layout).
    """

    classes: tuple[str, ...]  # WordNet ids, in the network's output order
    names: tuple[str, ...]  # every tag's name: the classes', then the broader tags'
    wnids: tuple[str, ...]
    cover_indptr: np.ndarray
    cover_indices: np.ndarray

    @property
    def num_classes(self) -> int:
        """How many network outputs the hierarchy rolls up.

        Example:
            >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
            >>> imagenet_hierarchy().num_classes
            1000
        """
        return len(self.classes)

    def covered(self, tag: int) -> np.ndarray:
        """The class indices a tag covers (a class covers itself).

        Example:
            >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
            >>> h = imagenet_hierarchy()
            >>> len(h.covered(h.names.index("dog")))
            118
        """
        if tag < self.num_classes:
            return np.array([tag])
        j = tag - self.num_classes
        return self.cover_indices[self.cover_indptr[j]:self.cover_indptr[j + 1]]

    def broader_tags_of(self, name: str) -> list[str]:
        """The broader tags above a class, by name (sorted).

        Example:
            >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
            >>> imagenet_hierarchy().broader_tags_of("airliner")
            ['aircraft', 'airplane', 'craft', 'vehicle']
        """
        index = self.index(name)
        return sorted(
            self.names[t] for t in range(self.num_classes, len(self.names)) if index in self.covered(t)
        )

    def index(self, name: str) -> int:
        """A tag's position, or an error that suggests close names.

        Example:
            >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
            >>> imagenet_hierarchy().index("macaw")
            88
        """
        try:
            return self._positions[name]
        except KeyError:
            raise InputError(f"{name!r} is not an ImageNet tag{close_names_hint(name, self.names)}") from None

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@functools.lru_cache(maxsize=1)
def imagenet_hierarchy() -> TagHierarchy:
    """The bundled ImageNet tag hierarchy (read once per process).

    Example:
        >>> from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
        >>> imagenet_hierarchy().names[:3]
        ('tench', 'goldfish', 'great white shark')
    """
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    if data.get("format") != _FORMAT:
        raise InputError(f"{DATA_FILE} is not a framelab tag hierarchy")
    classes = data["classes"]
    tags = data["tags"]
    lengths = [len(t["classes"]) for t in tags]
    return TagHierarchy(
        classes=tuple(c["wnid"] for c in classes),
        names=tuple([c["name"] for c in classes] + [t["name"] for t in tags]),
        wnids=tuple([c["wnid"] for c in classes] + [t["wnid"] for t in tags]),
        cover_indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        cover_indices=np.array([c for t in tags for c in t["classes"]], dtype=np.int64),
    )


def close_names_hint(name: str, names: tuple[str, ...] | list[str]) -> str:
    """"; did you mean ..." with the closest names, or a pointer to the vocabulary.

    Example:
        >>> from framelab.toolkits.image_tagger.hierarchy import close_names_hint
        >>> close_names_hint("dgo", ["dog", "cat"])
        "; did you mean 'dog'?"
    """
    import difflib

    close = difflib.get_close_matches(str(name), list(names), n=3, cutoff=0.6)
    if close:
        return f"; did you mean {', '.join(map(repr, close))}?"
    return f" (the vocabulary has {len(names)} tags: see model.vocabulary)"
