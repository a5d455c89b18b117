"""The one model-save format: a folder holding ``model.json`` and the files it lists.

Layout (format version 2)::

    my_model/
      model.json                          the format, framelab version, kind, metadata, and a
                                          manifest: each other file's name, size and sha256
      arrays.<sha256[:8]><save id>.safetensors   the model's numpy arrays (no pickle)
      weights.<sha256[:8]><save id>.pth          files a model keeps beside them (custom network weights)

Saving is atomic. Data files are named by their content and the save (8 hex
digits of each), so a save never overwrites a file that the current
``model.json`` lists, nor one another save is writing: the folder keeps
loading as the old model until one atomic write of ``model.json`` (a rename
on a local disk, a single PUT on an object store, which has no rename)
switches it to the new one; the old files are removed after that, and only
files that a committed version listed (:mod:`framelab.frames.commits`: two
saves at once leave one of the two models, whole). A new
folder on a local disk is written beside the target under a temporary name
and renamed into place, so it is complete or absent.

Loading checks everything before any model code runs: every field
``model.json`` must have, each listed file's size and sha256, that the arrays
parse as safetensors (a pickle is named and refused, never run), hold numbers,
and are finite; then the model's own :meth:`~framelab.toolkits.model.Model._check_saved`
checks its fields and each array's shape against them. Every failure is an
:class:`~framelab.frames.errors.InputError` naming the file and the field.

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

import hashlib
import importlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn

import numpy as np

from framelab.frames import commits
from framelab.frames.errors import FramelabError, InputError
from framelab.frames.storage import (
    FolderVersion,
    collect_replaced,
    filesystem,
    publish_folder,
    translated_errors,
    write_atomically,
)
from framelab.platform.client import on_cluster

FORMAT = "framelab.model"
FORMAT_VERSION = 2
METADATA_FILE = "model.json"
# Format version 1 (framelab before atomic saves) kept its arrays under this fixed name, unchecked.
LEGACY_ARRAYS_FILE = "arrays.safetensors"
ARRAYS_NAME = "arrays.safetensors"  # logical name; stored as arrays.<sha256[:8]><save id>.safetensors

# Which class loads each kind: listed here (not read from the file) so that
# loading never imports a module a file names.
MODEL_CLASSES = {
    "logistic_classifier": "framelab.toolkits.classifier.logistic_classifier:LogisticClassifier",
    "image_classifier": "framelab.toolkits.image_classifier.image_classifier:ImageClassifier",
    "nearest_neighbors": "framelab.toolkits.nearest_neighbors.nearest_neighbors:NearestNeighborsModel",
    "image_similarity": "framelab.toolkits.image_similarity.image_similarity:ImageSimilarityModel",
    "kmeans": "framelab.toolkits.kmeans.kmeans:KMeansModel",
    "image_tagger": "framelab.toolkits.image_tagger.image_tagger:ImageTagger",
}

# A file a model keeps: a plain name, never a path (no "/", no "..", no leading dot).
_LOGICAL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*(\.[A-Za-z0-9]+)+$")
# What save_model writes: <stem>.<8 hex of the sha256 and 8 of the save id>.<suffixes>.
_STORED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\.[0-9a-f]{16}(\.[A-Za-z0-9]+)+$")
# A local write in progress: .<name>.<32 hex>.tmp
_TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_RETRIES = 3  # re-reads when a listed file vanished because the model was being saved again
_TYPE_NAMES = {
    str: "a string", int: "an integer", float: "a number", bool: "true or false",
    list: "a list", dict: "an object", type(None): "null",
}


def framelab_version() -> str:
    """The installed framelab version (recorded in every saved model).

    Example:
        >>> from framelab.toolkits.model_io import framelab_version
        >>> framelab_version()[0].isdigit()
        True
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("framelab")
    except PackageNotFoundError:
        return "unknown"


# ------------------------------------------------------------------- saving
def save_model(
    url: str,
    kind: str,
    metadata: dict[str, Any],
    arrays: dict[str, np.ndarray],
    files: Mapping[str, bytes] | None = None,
    storage_options: dict | None = None,
) -> None:
    """Write a model folder at ``url`` (a path or fsspec URL), atomically replacing any model there.

    ``metadata`` must be JSON-able; ``arrays`` are numpy arrays of numbers;
    ``files`` are other files the model needs (plain names such as
    ``"weights.pth"``), kept in the folder and listed with their sha256.

    Example:
        >>> import numpy as np, os, tempfile
        >>> from framelab.toolkits.model_io import save_model
        >>> path = tempfile.mkdtemp() + "/m"
        >>> save_model(path, "example", {}, {"w": np.ones(3)}, files={"notes.txt": b"hello"})
        >>> sorted(name.split(".")[0] for name in os.listdir(path))
        ['arrays', 'model', 'notes']
    """
    from safetensors.numpy import save

    files = dict(files or {})
    for name in files:
        if name == ARRAYS_NAME or name == METADATA_FILE or not _LOGICAL_NAME.match(str(name)):
            raise ValueError(f"a model file needs a plain name like 'weights.pth', got {name!r}")
    payload: dict[str, bytes] = {}
    save_id = uuid.uuid4().hex[:8]  # in every name: a save never writes a file another save may be removing
    arrays_blob = save({k: np.ascontiguousarray(v) for k, v in arrays.items()})
    arrays_entry = _store(ARRAYS_NAME, arrays_blob, payload, save_id)
    file_entries = {name: _store(name, bytes(data), payload, save_id) for name, data in sorted(files.items())}
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "framelab_version": framelab_version(),
        "kind": kind,
        "metadata": metadata,
        "arrays": arrays_entry,
        "files": file_entries,
    }
    try:  # checked before anything is written
        json.dumps(document, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InputError(f"cannot save the model: its metadata is not plain JSON ({err})") from None
    fs, root = _filesystem(url, storage_options)

    def pointer_bytes(carried: list[str] | None) -> bytes:
        listing = document if carried is None else {**document, "replaced": sorted(carried)}
        return json.dumps(listing, indent=1, allow_nan=False).encode()

    version = FolderVersion(
        METADATA_FILE, files=payload, lists=frozenset(payload), pointer_bytes=pointer_bytes, listed=_listed_now,
        write=write_atomically,  # looked up here, so a test can stop a save at any file
    )
    with translated_errors(str(url), fs, "save a model to"):
        if fs.isfile(root):
            raise InputError(f"cannot save a model at {url!r}: it is a file; pass a folder path")
        earlier = publish_folder(fs, root, version)
        collect_replaced(fs, root, version, earlier, _remove_stale)


def _store(name: str, data: bytes, payload: dict[str, bytes], save_id: str) -> dict[str, Any]:
    """Add ``data`` to the payload under a name of its content and this save; its manifest entry."""
    digest = hashlib.sha256(data).hexdigest()
    stem, dot, suffix = name.partition(".")
    stored = f"{stem}.{digest[:8]}{save_id}{dot}{suffix}"
    payload[stored] = data
    return {"file": stored, "bytes": len(data), "sha256": digest}


def _listed_now(fs, root: str) -> tuple[list[str], list[str]] | None:
    """(the files model.json lists now, the earlier versions' files it carries), or None when it cannot be read."""
    try:
        document = json.loads(fs.cat_file(_join(root, METADATA_FILE)))
        if document.get("format_version") == 1:
            return [LEGACY_ARRAYS_FILE], []
        listed = {document["arrays"]["file"]} | {e["file"] for e in (document.get("files") or {}).values()}
        replaced = [str(n) for n in document.get("replaced", []) if _STORED_NAME.match(str(n))]
        return sorted(str(n) for n in listed), replaced
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _remove_stale(fs, root: str, listing: tuple[set[str], list[str]]) -> None:
    """Remove earlier versions' data files the current model.json does not list, and leftovers of crashed saves
    (only names save_model writes) once they are old enough to be nobody's save in flight."""
    current, garbage = listing
    local = _is_local(fs)

    def is_ours(name: str) -> bool:
        return bool(_STORED_NAME.match(name) or name == LEGACY_ARRAYS_FILE or (local and _TEMPORARY_NAME.match(name)))

    commits.collect(fs, root, current, garbage, is_ours)


# ------------------------------------------------------------------ loading
@dataclass
class SavedModel:
    """A model folder as read and checked by :func:`read_saved`, before any model class sees it.

    A model's :meth:`~framelab.toolkits.model.Model._check_saved` reads its
    fields through :meth:`field` and its arrays through :meth:`array`, which
    raise an :class:`InputError` naming the file and the field when the value
    is missing or of the wrong type or shape. :meth:`nested` gives the view of
    a sub-object (the classifier inside an image classifier).

    Example:
        >>> import numpy as np, tempfile
        >>> from framelab.toolkits.model_io import read_saved, save_model
        >>> path = tempfile.mkdtemp() + "/m"
        >>> save_model(path, "example", {"classes": ["a", "b"]}, {"w": np.ones((4, 2))})
        >>> saved = read_saved(path)
        >>> saved.field("classes", list), saved.array("w", (4, 2)).shape
        (['a', 'b'], (4, 2))
        >>> saved.array("w", (4, 3))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: .../arrays...safetensors: array 'w' has shape (4, 2), but model.json describes (4, 3)
    """

    url: str
    kind: str
    metadata: dict[str, Any]
    arrays: dict[str, np.ndarray]
    files: dict[str, bytes] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION
    arrays_file: str = LEGACY_ARRAYS_FILE
    allow_external: bool = False
    prefix: str = "metadata."  # where ``metadata`` sits in model.json, for messages

    def field(self, name: str, types: type | tuple[type, ...], *, required: bool = True, default: Any = None) -> Any:
        """The metadata value ``name``, refused unless it is one of ``types`` (``bool`` is not an int).

        Example:
            >>> from framelab.toolkits.model_io import SavedModel
            >>> saved = SavedModel("m", "example", {"classes": ["a", "b"], "version": "1"}, {})
            >>> saved.field("classes", list), saved.field("note", str, required=False, default="")
            (['a', 'b'], '')
            >>> saved.field("version", int)
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: m/model.json: field 'metadata.version' must be an integer, got a string ("1") (the folder was changed after framelab saved it, or comes from elsewhere: save the model again)
        """
        if name not in self.metadata:
            if required:
                self.refuse(name, "is missing")
            return default
        value = self.metadata[name]
        types = types if isinstance(types, tuple) else (types,)
        if not _is_a(value, types):
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            self.refuse(name, f"must be {expected}, got {_describe_value(value)}")
        return value

    def array(
        self, name: str, shape: tuple[int | None, ...], *, meaning: str = "", positive: bool = False,
        integer: bool = False,
    ) -> np.ndarray:
        """The float array ``name``, refused unless its shape is ``shape`` (and every value > 0 if ``positive``).

        ``meaning`` says what the dimensions are, for the message; a ``None``
        in ``shape`` is a length the metadata does not fix (an Arrow table's
        bytes). ``integer=True`` asks for integers (counts, indices) instead of floats.

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.model_io import SavedModel
            >>> saved = SavedModel("m", "example", {}, {"scale": np.array([1.0, 0.0])})
            >>> saved.array("scale", (2,), meaning=" (features)", positive=True)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: m/arrays.safetensors: array 'scale' has 1 value(s) <= 0 ...
        """
        where = f"{self.url}/{self.arrays_file}: array {name!r}"
        value = self.arrays.get(name)
        if value is None:
            raise InputError(f"{where} is missing ({_damaged_hint()})")
        wanted, what = (np.integer, "integers") if integer else (np.floating, "floats")
        if not np.issubdtype(value.dtype, wanted):
            raise InputError(f"{where} has dtype {value.dtype}, not {what} ({_damaged_hint()})")
        if len(value.shape) != len(shape) or any(s is not None and v != s for v, s in zip(value.shape, shape)):
            raise InputError(
                f"{where} has shape {value.shape}, but {METADATA_FILE} describes {tuple(shape)}{meaning}"
            )
        if positive and not (value > 0).all():
            raise InputError(
                f"{where} has {int((value <= 0).sum())} value(s) <= 0 where only positive values make sense "
                f"(a zero scale would divide by zero) ({_damaged_hint()})"
            )
        return value

    def refuse_array(self, name: str, problem: str) -> NoReturn:
        """Raise the InputError for array ``name`` whose values do not fit the metadata: the file, the array, the problem.

        Example:
            >>> from framelab.toolkits.model_io import SavedModel
            >>> SavedModel("m", "example", {}, {}).refuse_array("sizes", "holds a negative count")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: m/arrays.safetensors: array 'sizes' holds a negative count ...
        """
        raise InputError(f"{self.url}/{self.arrays_file}: array {name!r} {problem} ({_damaged_hint()})")

    def nested(self, name: str) -> SavedModel:
        """The view of the object in field ``name`` (its messages name ``<prefix><name>.<field>``).

        Example:
            >>> from framelab.toolkits.model_io import SavedModel
            >>> saved = SavedModel("m", "example", {"classifier": {"target": 3}}, {})
            >>> saved.nested("classifier").field("target", str)  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: m/model.json: field 'metadata.classifier.target' must be a string, got an integer (3) ...
        """
        inner = self.field(name, dict)
        return replace(self, metadata=inner, prefix=f"{self.prefix}{name}.")

    def refuse(self, name: str, problem: str) -> NoReturn:
        """Raise the InputError for field ``name``: the file, the field's path, the problem.

        Example:
            >>> from framelab.toolkits.model_io import SavedModel
            >>> SavedModel("m", "example", {}, {}).refuse("classes", "must hold two or more labels")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            framelab.frames.errors.InputError: m/model.json: field 'metadata.classes' must hold two or more labels ...
        """
        raise InputError(
            f"{self.url}/{METADATA_FILE}: field {self.prefix + name!r} {problem} ({_damaged_hint()})"
        )


def read_saved(url: str, storage_options: dict | None = None, *, allow_external: bool = False) -> SavedModel:
    """Read a model folder and check what every model shares: its fields, files, checksums and arrays.

    ``allow_external`` is recorded for the model's own checks: without it a
    model may not refer to anything outside its folder.

    Example:
        >>> import numpy as np, tempfile
        >>> from framelab.toolkits.model_io import read_saved, save_model
        >>> path = tempfile.mkdtemp() + "/m"
        >>> save_model(path, "example", {}, {"w": np.ones(2)})
        >>> saved = read_saved(path)
        >>> saved.kind, saved.format_version, sorted(saved.arrays)
        ('example', 2, ['w'])
    """
    fs, root = _filesystem(url, storage_options)
    with translated_errors(str(url), fs, "load a model from"):
        return _read_saved(fs, root, str(url).rstrip("/"), allow_external)


def _read_saved(fs, root: str, base: str, allow_external: bool) -> SavedModel:
    for attempt in range(_RETRIES):
        raw = _read_metadata_bytes(fs, root, base)
        document = _parse_document(base, raw)
        try:
            return _read_listed(fs, root, base, document, allow_external)
        except FileNotFoundError as missing:
            # Saved again while we read? Then model.json changed: read the new model.
            if attempt + 1 < _RETRIES and _read_metadata_bytes(fs, root, base) != raw:
                continue
            name = str(missing.args[0]) if missing.args else "a file"
            raise InputError(
                f"{base}/{METADATA_FILE} lists {name}, but the folder has no such file: the folder "
                "was changed after the save; save the model again"
            ) from None
    raise AssertionError("unreachable")


def read_model(
    url: str, storage_options: dict | None = None
) -> tuple[str, dict[str, Any], dict[str, np.ndarray]]:
    """(kind, metadata, arrays) of a saved model folder, checking its format.

    Example:
        >>> import numpy as np, tempfile
        >>> from framelab.toolkits.model_io import read_model, save_model
        >>> path = tempfile.mkdtemp() + "/m"
        >>> save_model(path, "example", {"classes": ["a", "b"]}, {"w": np.eye(2)})
        >>> read_model(path)[1]["classes"]
        ['a', 'b']
    """
    saved = read_saved(url, storage_options)
    return saved.kind, saved.metadata, saved.arrays


@on_cluster
def load_model(url: str, storage_options: dict | None = None, *, allow_external: bool = False) -> Any:
    """Load any framelab model saved with ``model.save(url)``, after checking every part of it.

    A loaded model reads nothing outside its folder: a ``model.json`` that
    names another path or URL is refused unless ``allow_external=True``.

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import classifier
        >>> from framelab.toolkits.model_io import load_model
        >>> model = classifier.create(Frame({"x": [0.0, 1.0] * 10, "y": ["a", "b"] * 10}), "y", verbose=False)
        >>> path = tempfile.mkdtemp() + "/model"
        >>> model.save(path)
        >>> load_model(path).classes
        ['a', 'b']
    """
    saved = read_saved(url, storage_options, allow_external=allow_external)
    target = MODEL_CLASSES.get(saved.kind)
    if target is None:
        raise InputError(
            f"{saved.url}/{METADATA_FILE}: field 'kind' is {saved.kind!r}, a model this framelab cannot "
            f"load (known kinds: {', '.join(sorted(MODEL_CLASSES))}); upgrade framelab"
        )
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    cls._check_saved(saved)
    extra = {"files": saved.files} if saved.files else {}
    try:
        return cls._from_saved(saved.metadata, saved.arrays, **extra)
    except FramelabError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        # A model whose _check_saved missed something still fails with the file's name.
        raise InputError(
            f"{saved.url}/{METADATA_FILE} does not describe a {saved.kind} model this framelab can "
            f"rebuild ({type(err).__name__}: {err}) ({_damaged_hint()})"
        ) from err


def _read_metadata_bytes(fs, root: str, base: str) -> bytes:
    try:
        return fs.cat_file(_join(root, METADATA_FILE))
    except (FileNotFoundError, IsADirectoryError):
        raise InputError(
            f"{base!r} is not a saved framelab model (no {METADATA_FILE} there); "
            "pass the folder that model.save(url) wrote"
        ) from None


def _parse_document(base: str, raw: bytes) -> dict[str, Any]:
    where = f"{base}/{METADATA_FILE}"

    def refuse_constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not JSON (framelab writes no NaN or infinity)")

    try:
        document = json.loads(raw.decode("utf-8"), parse_constant=refuse_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise InputError(f"{where} is not valid JSON ({err}); it is damaged or not a framelab model") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise InputError(
            f"{where} does not describe a framelab model (field 'format' is {found!r}, "
            f"not {FORMAT!r}); pass the folder that model.save(url) wrote"
        )
    top = SavedModel(url=base, kind="", metadata=document, arrays={}, prefix="")
    version = top.field("format_version", int)
    if version < 1:
        top.refuse("format_version", f"must be 1 or more, got {version}")
    if version > FORMAT_VERSION:
        raise InputError(
            f"{base!r} was saved by framelab {document.get('framelab_version')} in format "
            f"version {version}; this framelab ({framelab_version()}) reads up to version "
            f"{FORMAT_VERSION}: upgrade framelab"
        )
    top.field("framelab_version", str, required=False)
    kind = top.field("kind", str)
    if not kind:
        top.refuse("kind", "is empty")
    top.field("metadata", dict)
    if version >= 2:
        _check_entry(top, "arrays", document.get("arrays"))
        for name, entry in top.field("files", dict, required=False, default={}).items():
            if not _LOGICAL_NAME.match(name) or name in (ARRAYS_NAME, METADATA_FILE):
                top.refuse("files", f"names {name!r}, which is not a plain file name")
            _check_entry(top, f"files.{name}", entry)
    return document


def _check_entry(top: SavedModel, name: str, entry: Any) -> None:
    if not isinstance(entry, dict):
        top.refuse(name, f"must be an object with file, bytes and sha256, got {_describe_value(entry)}")
    stored = entry.get("file")
    if not isinstance(stored, str) or not _STORED_NAME.match(stored):
        # A name with a "/" or ".." would read outside the folder: refused, whatever the caller allows.
        top.refuse(f"{name}.file", f"must name a file inside the model folder, got {_describe_value(stored)}")
    size = entry.get("bytes")
    if not _is_a(size, (int,)) or size < 0:
        top.refuse(f"{name}.bytes", f"must be a byte count, got {_describe_value(size)}")
    digest = entry.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest):
        top.refuse(f"{name}.sha256", f"must be 64 lowercase hex digits, got {_describe_value(digest)}")


def _read_listed(fs, root: str, base: str, document: dict, allow_external: bool) -> SavedModel:
    version = document["format_version"]
    if version >= 2:
        arrays_file = document["arrays"]["file"]
        blob = _read_checked(fs, root, base, document["arrays"])
        files = {
            name: _read_checked(fs, root, base, entry)
            for name, entry in (document.get("files") or {}).items()
        }
    else:
        arrays_file = LEGACY_ARRAYS_FILE
        blob = _read_file(fs, root, LEGACY_ARRAYS_FILE)
        files = {}
    arrays = _parse_arrays(f"{base}/{arrays_file}", blob)
    metadata = dict(document["metadata"])
    metadata.setdefault("framelab_version", document.get("framelab_version"))
    return SavedModel(
        url=base, kind=document["kind"], metadata=metadata, arrays=arrays, files=files,
        format_version=version, arrays_file=arrays_file, allow_external=allow_external,
    )


def _read_file(fs, root: str, name: str) -> bytes:
    try:
        return fs.cat_file(_join(root, name))
    except (FileNotFoundError, IsADirectoryError):
        raise FileNotFoundError(name) from None


def _read_checked(fs, root: str, base: str, entry: dict) -> bytes:
    name = entry["file"]
    data = _read_file(fs, root, name)
    where = f"{base}/{name}"
    if len(data) != entry["bytes"]:
        state = "is truncated: it has" if len(data) < entry["bytes"] else "has"
        raise InputError(
            f"{where} {state} {len(data)} bytes, but {METADATA_FILE} records {entry['bytes']} "
            f"({_damaged_hint()})"
        )
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise InputError(
            f"{where} does not match the sha256 that {METADATA_FILE} records: it was changed or "
            f"damaged after the save ({_damaged_hint()})"
        )
    return data


def _parse_arrays(where: str, blob: bytes) -> dict[str, np.ndarray]:
    from safetensors.numpy import load

    if blob[:1] == b"\x80" or blob[:4] == b"PK\x03\x04":
        raise InputError(
            f"{where} is a pickle (or a torch.save archive), not safetensors: framelab never "
            "unpickles a model file; load only folders that model.save(url) wrote"
        )
    try:
        arrays = load(bytes(blob))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise InputError(f"{where} is not a valid safetensors file ({err}): it is truncated or damaged") from None
    for name, value in arrays.items():
        if value.dtype.kind not in "biuf":
            raise InputError(f"{where}: array {name!r} has dtype {value.dtype}, not numbers ({_damaged_hint()})")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            bad = int((~np.isfinite(value)).sum())
            raise InputError(f"{where}: array {name!r} holds {bad} NaN or infinite value(s) ({_damaged_hint()})")
    return arrays


# ------------------------------------------------------------------ helpers
def _damaged_hint() -> str:
    return "the folder was changed after framelab saved it, or comes from elsewhere: save the model again"


def _is_a(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _describe_value(value: Any) -> str:
    kind = _TYPE_NAMES.get(type(value), type(value).__name__)
    text = json.dumps(value) if isinstance(value, (str, int, float, bool, type(None))) else ""
    return f"{kind} ({text[:60]})" if text and value is not None else kind


def _is_local(fs) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocol or "local" in protocol


def table_to_array(table: Any) -> np.ndarray:
    """An Arrow table as the bytes of an Arrow IPC stream, to save beside a model's numeric arrays.

    For columns safetensors cannot hold (strings, labels of any type); nothing is pickled.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.model_io import table_from_array, table_to_array
        >>> table_from_array(table_to_array(pa.table({"name": ["a", "b"]}))).to_pydict()
        {'name': ['a', 'b']}
    """
    import io

    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return np.frombuffer(sink.getvalue(), dtype=np.uint8)


def table_from_array(data: np.ndarray) -> Any:
    """The Arrow table :func:`table_to_array` saved.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.model_io import table_from_array, table_to_array
        >>> table_from_array(table_to_array(pa.table({"x": [1]}))).num_rows
        1
    """
    import pyarrow as pa

    with pa.ipc.open_stream(pa.py_buffer(np.ascontiguousarray(data, dtype=np.uint8).tobytes())) as reader:
        return reader.read_all()


def _filesystem(url: str, storage_options: dict | None):
    fs, root = filesystem(url, storage_options)
    return fs, root.rstrip("/")


def _join(root: str, name: str) -> str:
    return f"{root}/{name}" if root else name
