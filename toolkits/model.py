"""The base every framelab model shares: save, load, summary, repr.

A model is a plain object whose fitted state is JSON metadata plus numpy
arrays. A subclass names its ``kind`` (the key :func:`framelab.toolkits.load_model`
looks up in :data:`framelab.toolkits.model_io.MODEL_CLASSES`), says what its
state is (:meth:`Model._state`), how to rebuild itself from it
(:meth:`Model._from_saved`), what a saved state must look like
(:meth:`Model._check_saved`) and what its summary shows
(:meth:`Model._summary_sections`); saving, loading and display are here, once.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> from framelab.toolkits.model import Model
    >>> model = classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False)
    >>> isinstance(model, Model), model.kind
    (True, 'logistic_classifier')
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from framelab.platform.client import on_cluster
from framelab.toolkits.model_io import save_model

if TYPE_CHECKING:
    from framelab.toolkits.model_io import SavedModel

# A summary section: a title, then (name, value) rows.
Section = tuple[str, list[tuple[str, Any]]]
# Public methods that only format what the model already holds: no need to go to the cluster.
_RUN_HERE = frozenset({"summary"})


class Model:
    """What every framelab model has: ``save``, ``summary``, a readable ``repr``, and a ``kind``.

    Subclasses set ``kind`` and implement ``_state``, ``_from_saved``,
    ``_check_saved`` and ``_summary_sections`` (and ``_files`` when they keep
    files beside their arrays).
    """

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # In a Ray Client session a model's calls (predict, query, evaluate, save...) run inside the
        # cluster, where its actors and shards live; elsewhere the mark changes nothing (platform/client.py).
        for name, attr in list(vars(cls).items()):
            if not name.startswith("_") and name not in _RUN_HERE and inspect.isfunction(attr):
                setattr(cls, name, on_cluster(attr))

    # ------------------------------------------------------------ state
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """(JSON-able metadata, numpy arrays) that :meth:`_from_saved` rebuilds the model from."""
        raise NotImplementedError

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> Model:
        """The model :meth:`_state` described (``files=`` is passed too when :meth:`_files` kept some)."""
        raise NotImplementedError

    def _files(self) -> dict[str, bytes]:
        """Files the model keeps in its folder beside its arrays (e.g. custom network weights): none here."""
        return {}

    @classmethod
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse a saved state this class could not rebuild itself from, before :meth:`_from_saved` runs.

        :func:`~framelab.toolkits.model_io.load_model` has already checked what
        every model shares (the format, the files' sizes and sha256, arrays
        that parse, hold numbers and are finite). A model checks here what only
        it knows, through ``saved.field(name, type)`` and
        ``saved.array(name, shape)``, which name the file and the field when
        they refuse: each metadata field it reads, and each array's shape
        against that metadata. A model without checks of its own keeps this default.
        """

    @on_cluster
    def save(self, url: str, storage_options: dict | None = None) -> None:
        """Save to a folder (a path or fsspec URL); :func:`framelab.toolkits.load_model` brings it back.

        The save is atomic: a model already there keeps loading until the new
        one is complete, and the folder holds every file the model needs.

        Example:
            >>> import tempfile
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier, load_model
            >>> model = classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False)
            >>> path = tempfile.mkdtemp() + "/model"
            >>> model.save(path)
            >>> load_model(path).classes
            ['a', 'b']
        """
        metadata, arrays = self._state()
        save_model(url, self.kind, metadata, arrays, files=self._files(), storage_options=storage_options)

    # ---------------------------------------------------------- display
    def _summary_sections(self) -> list[Section]:
        """The sections :meth:`summary` prints, each a title and (name, value) rows."""
        return []

    def summary(self) -> None:
        """Print what the model is and how it was trained.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import classifier
            >>> model = classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False)
            >>> model.summary()  # doctest: +ELLIPSIS +NORMALIZE_WHITESPACE
            Class : LogisticClassifier
            ...
            Number of classes : 2
            ...
        """
        print(format_summary(type(self).__name__, self._summary_sections()))

    def __repr__(self) -> str:
        return format_summary(type(self).__name__, self._summary_sections())


def format_summary(name: str, sections: list[Section]) -> str:
    """Turi Create's model summary layout: the class, then titled sections of aligned rows.

    Example:
        >>> from framelab.toolkits.model import format_summary
        >>> print(format_summary("Demo", [("Schema", [("Rows", 3)])]))
        Class : Demo
        <BLANKLINE>
        Schema
        ------
        Rows  : 3
    """
    rows = [key for _, section in sections for key, _ in section]
    width = max([len("Class"), *map(len, rows)])
    lines = [f"{'Class':<{width}} : {name}"]
    for title, section in sections:
        lines += ["", title, "-" * len(title)]
        lines += [f"{key:<{width}} : {format_value(value)}" for key, value in section]
    return "\n".join(lines)


def format_value(value: Any) -> str:
    """Floats to 4 decimals, None as n/a, everything else as it prints.

    Example:
        >>> from framelab.toolkits.model import format_value
        >>> format_value(0.123456), format_value(None), format_value(3)
        ('0.1235', 'n/a', '3')
    """
    if value is None:
        return "n/a"
    if isinstance(value, (float, np.floating)):
        return f"{value:.4f}"
    return str(value)
