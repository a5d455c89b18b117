"""The one model-save format: a folder with ``model.json`` and ``arrays.safetensors``.

``model.json`` records the format version, the framelab version that wrote
it, the model's kind and its JSON metadata; ``arrays.safetensors`` holds its
tensors. Nothing is unpickled on load, so a model from an untrusted place can
be loaded safely, and the folder can live on any fsspec filesystem (local
path, ``s3://``, ``gs://``, ...).

Example:
    >>> import numpy as np, tempfile
    >>> from framelab.toolkits.model_io import read_model, save_model
    >>> path = tempfile.mkdtemp() + "/m"
    >>> save_model(path, "example", {"a": 1}, {"w": np.zeros(2)})
    >>> kind, meta, arrays = read_model(path)
    >>> kind, meta["a"], arrays["w"].tolist()
    ('example', 1, [0.0, 0.0])
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import numpy as np

from framelab.frames.errors import InputError

FORMAT = "framelab.model"
FORMAT_VERSION = 1
METADATA_FILE = "model.json"
ARRAYS_FILE = "arrays.safetensors"

# Which class loads each kind: listed here (not read from the file) so that
# loading never imports a module a file names.
MODEL_CLASSES = {
    "logistic_classifier": "framelab.toolkits.classifier.logistic_classifier:LogisticClassifier",
    "image_classifier": "framelab.toolkits.image_classifier.image_classifier:ImageClassifier",
}


def framelab_version() -> str:
    """The installed framelab version (recorded in every saved model)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("framelab")
    except PackageNotFoundError:
        return "unknown"


def save_model(
    url: str,
    kind: str,
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    storage_options: dict | None = None,
) -> None:
    """Write a model folder at ``url`` (a path or fsspec URL), replacing its two files.

    ``metadata`` must be JSON-able; ``arrays`` are numpy arrays of numbers.

    Example:
        >>> import numpy as np, tempfile
        >>> from framelab.toolkits.model_io import save_model
        >>> save_model(tempfile.mkdtemp() + "/m", "example", {}, {"w": np.ones(3)})
    """
    from safetensors.numpy import save

    fs, root = _filesystem(url, storage_options)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framelab_version": framelab_version(),
        "kind": kind,
        "metadata": metadata,
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    fs.makedirs(root, exist_ok=True)
    with fs.open(_join(root, ARRAYS_FILE), "wb") as f:
        f.write(blob)
    # model.json last: a folder with it is a complete model.
    with fs.open(_join(root, METADATA_FILE), "wb") as f:
        f.write(text.encode())


def read_model(
    url: str, storage_options: dict | None = None
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(kind, metadata, arrays) of a saved model folder, checking its format."""
    from safetensors.numpy import load

    fs, root = _filesystem(url, storage_options)
    meta_path = _join(root, METADATA_FILE)
    if not fs.exists(meta_path):
        raise InputError(
            f"{url!r} is not a saved framelab model (no {METADATA_FILE} there); "
            "pass the folder that model.save(url) wrote"
        )
    with fs.open(meta_path, "rb") as f:
        try:
            document = json.loads(f.read())
        except ValueError as err:
            raise InputError(f"{url!r}: {METADATA_FILE} is not valid JSON ({err})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise InputError(f"{url!r}: {METADATA_FILE} does not describe a framelab model")
    if document.get("format_version", 0) > FORMAT_VERSION:
        raise InputError(
            f"{url!r} was saved by framelab {document.get('framelab_version')} in format "
            f"version {document['format_version']}; this framelab ({framelab_version()}) reads "
            f"up to version {FORMAT_VERSION}: upgrade framelab"
        )
    with fs.open(_join(root, ARRAYS_FILE), "rb") as f:
        arrays = load(f.read())
    metadata = dict(document.get("metadata") or {})
    metadata.setdefault("framelab_version", document.get("framelab_version"))
    return document["kind"], metadata, arrays


def load_model(url: str, storage_options: dict | None = None) -> Any:
    """Load any framelab model saved with ``model.save(url)``.

    Example:
        >>> from framelab.toolkits import load_model
        >>> model = load_model("/tmp/my_model")  # doctest: +SKIP
    """
    kind, metadata, arrays = read_model(url, storage_options)
    target = MODEL_CLASSES.get(kind)
    if target is None:
        raise InputError(
            f"{url!r} holds a model of kind {kind!r}, which this framelab cannot load "
            f"(known kinds: {', '.join(sorted(MODEL_CLASSES))}); upgrade framelab"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls._from_saved(metadata, arrays)


def _filesystem(url: str, storage_options: dict | None):
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return fs, root.rstrip("/")


def _join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name
