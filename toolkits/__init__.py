"""framelab.toolkits: models that run on frames.

Each toolkit is a subpackage with a ``create(frame, ...)`` that returns a
model (``predict``, ``evaluate``, ``save``); :func:`load_model` brings any
saved model back. Submodules are imported on first use so that
``import framelab.toolkits`` stays cheap.

Model classes are named as Turi Create names them: a model that predicts
labels for what it is (``LogisticClassifier``, ``ImageClassifier``,
``ImageTagger``), one that indexes or groups rows for its toolkit, with
``Model`` (``NearestNeighborsModel``, ``ImageSimilarityModel``,
``KMeansModel``); tests/toolkits/test_model_names.py keeps new kinds to it.

Example:
    >>> import tempfile
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier, load_model
    >>> model = classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["lo", "hi"] * 10}), "y", verbose=False)
    >>> path = tempfile.mkdtemp() + "/model"
    >>> model.save(path)                     # or "s3://bucket/models/x", with storage_options=
    >>> load_model(path).predict(Frame({"x": [0.9, 0.1]})).to_pylist()
    ['hi', 'lo']
"""

from __future__ import annotations

from typing import Any


def load_model(url: str, storage_options: dict | None = None, *, allow_external: bool = False) -> Any:
    """Load any framelab model from a folder written by ``model.save(url)`` (path or fsspec URL).

    Every part of the folder is checked first (fields, sizes, sha256, array
    shapes); anything wrong is an InputError naming the file and the field.
    The model reads nothing outside its folder unless ``allow_external=True``.

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import classifier, load_model
        >>> path = tempfile.mkdtemp() + "/model"
        >>> classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False).save(path)
        >>> load_model(path)  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        Class : LogisticClassifier
        ...
    """
    from framelab.toolkits.model_io import load_model as _load

    return _load(url, storage_options, allow_external=allow_external)


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
