"""The saved-frame format: a folder of Parquet parts and the manifest that says which parts are the frame.

Layout::

    my_frame/
      _framelab_manifest.json             written last: the format, the Arrow schema, each
                                          part's file name, rows, bytes and sha256, and the
                                          files of earlier versions not yet removed ("replaced")
      part-<save id>-00000.parquet        the rows, in order

A save writes its parts into a temporary folder beside the target (named
``_<name>.<save id>.framelab-tmp``: readers skip ``_`` names), each part's
sha256 computed by the task that wrote it. It then publishes: on a local disk
a new folder is renamed into place whole; otherwise the parts move into the
folder under names no earlier save used, and one atomic write of the manifest
(a rename on a local disk, a single PUT on an object store, which has no
rename) is the commit. Before it the folder is the old frame, after it the
new one; the old frame's parts are removed after that. Two saves to one
folder at once (a retried job beside the original) leave it as one of the
two, whole: a save removes only files that a committed version listed and the
current manifest does not, never another save's parts in flight (the design,
and why not a lock: :mod:`framelab.frames.commits`). A save that fails,
even at its commit (a full disk), removes the parts it moved in and leaves
the old frame as it was; parts of a save killed outright are never listed,
so never read, and a later save removes them once a day old.

Loading reads exactly the parts the manifest lists, after checking that each
is there with the size it had; a folder without a manifest, or with a part
lost or changed, is refused naming the file and the fix. A part that vanished
because a save replaced the frame meanwhile is not a loss: the load (and a
lazy read of a loaded frame) starts again on the new version, whole.

Example:
    >>> import os, tempfile, pyarrow as pa
    >>> from framelab.frames import saved
    >>> folder = tempfile.mkdtemp() + "/f"
    >>> saved.save(pa.table({"x": [1, 2]}), pa.schema([("x", pa.int64())]), folder)
    >>> saved.save(pa.table({"x": [3]}), pa.schema([("x", pa.int64())]), folder)   # replaces: never mixes
    >>> manifest = saved.read_manifest(*saved.storage.filesystem(folder))
    >>> manifest.num_rows, len(os.listdir(folder))
    (1, 2)
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import posixpath
import re
import uuid
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa

from framelab.frames import commits, storage
from framelab.frames.blocks import concat
from framelab.frames.errors import InputError, SchemaMismatchError
from framelab.frames.storage import write_atomically
from framelab.frames.validation import check_choice
from framelab.platform.remote_errors import get, surfaced_errors

MANIFEST_FILE = "_framelab_manifest.json"
FORMAT = "framelab.frame"
FORMAT_VERSION = 1
MODES = ("overwrite", "error", "append")
# Times a load reads the manifest again when a part it lists vanished (a save replaced the frame meanwhile).
_LIST_RETRIES = 5
# The schema file of frames saved before manifests (framelab 0.x): removed when such a folder is replaced.
_LEGACY_SCHEMA_FILE = "_framelab_schema.arrow"
# The parts save() names: part-<save id>-<index>.parquet.
_PART_NAME = re.compile(r"^part-[0-9a-f]{12}-\d{5}\.parquet$")


@dataclass(frozen=True)
class Part:
    """One Parquet file of a saved frame, as the manifest lists it."""

    file: str
    rows: int
    bytes: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What a saved frame is: its schema and its parts, in row order."""

    schema: pa.Schema
    parts: tuple[Part, ...]
    # Files of earlier committed versions not yet removed: whoever replaces this version removes them too.
    replaced: tuple[str, ...] = ()

    @property
    def num_rows(self) -> int:
        """Rows of the saved frame, from the manifest alone.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.frames.saved import Manifest, Part
            >>> Manifest(pa.schema([]), (Part("a", 2, 10, ""), Part("b", 3, 10, ""))).num_rows
            5
        """
        return sum(p.rows for p in self.parts)

    def to_json(self) -> bytes:
        """The manifest file's contents.

        Example:
            >>> import json, pyarrow as pa
            >>> from framelab.frames.saved import Manifest
            >>> json.loads(Manifest(pa.schema([("x", pa.int8())]), ()).to_json())["format"]
            'framelab.frame'
        """
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "framelab_version": _framelab_version(),
            "num_rows": self.num_rows,
            "columns": [f"{f.name}: {f.type}" for f in self.schema],  # for a person reading the file
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode("ascii"),
            "parts": [{"file": p.file, "rows": p.rows, "bytes": p.bytes, "sha256": p.sha256} for p in self.parts],
            "replaced": list(self.replaced),
        }
        return json.dumps(document, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Manifest:
        """Parse a manifest file; anything missing or malformed is an :class:`InputError` naming ``where``.

        Example:
            >>> import pyarrow as pa
            >>> from framelab.frames.saved import Manifest
            >>> Manifest.from_json(Manifest(pa.schema([]), ()).to_json(), "f/_framelab_manifest.json").parts
            ()
        """
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT:
                raise ValueError(f"its format is {document.get('format')!r}, not {FORMAT!r}")
            if document.get("format_version") != FORMAT_VERSION:
                raise ValueError(f"format_version {document.get('format_version')!r} is not one this framelab reads "
                                 f"({FORMAT_VERSION})")
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(document["schema"])))
            parts = tuple(
                Part(str(p["file"]), int(p["rows"]), int(p["bytes"]), str(p["sha256"])) for p in document["parts"]
            )
            replaced = tuple(str(name) for name in document.get("replaced", ()) if _PART_NAME.match(str(name)))
        except (ValueError, KeyError, TypeError, AttributeError, pa.ArrowInvalid) as err:
            problem = f"field {err} is missing" if isinstance(err, KeyError) else str(err)
            raise InputError(f"{where} is not a framelab frame manifest ({problem}); save the frame again") from None
        for part in parts:
            if "/" in part.file or part.file.startswith(".") or part.file in ("", ".."):
                raise InputError(f"{where} lists {part.file!r}, which is not a file of its own folder; save the frame again")
        return cls(schema, parts, replaced)


def read_manifest(fs: fsspec.AbstractFileSystem, folder: str) -> Manifest | None:
    """The manifest of the frame saved in ``folder``, or None when there is none.

    Example:
        >>> import tempfile
        >>> from framelab.frames import saved, storage
        >>> saved.read_manifest(*storage.filesystem(tempfile.mkdtemp())) is None
        True
    """
    path = _join(folder, MANIFEST_FILE)
    try:
        data = fs.cat_file(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return Manifest.from_json(data, path)


def checked_parts(fs: fsspec.AbstractFileSystem, folder: str, url: str, *, verify: bool = False) -> tuple[Manifest, list[str]]:
    """The manifest of a saved frame and the paths of its parts, after checking each part is there, whole.

    Each part must exist with the size the manifest gives; ``verify`` also
    checks every part's sha256 (reading all of them). Anything else is an
    :class:`InputError` naming the file and the fix.

    Example:
        >>> import tempfile, pyarrow as pa
        >>> from framelab.frames import saved, storage
        >>> folder = tempfile.mkdtemp() + "/f"
        >>> saved.save(pa.table({"x": [1]}), pa.schema([("x", pa.int64())]), folder)
        >>> manifest, files = saved.checked_parts(*storage.filesystem(folder), folder, verify=True)
        >>> [f.rsplit("-", 1)[-1] for f in files]
        ['00000.parquet']
    """
    for attempt in range(_LIST_RETRIES + 1):
        try:
            return _checked_parts(fs, folder, url, verify)
        except _PartGone:
            # Replaced while we looked? Then the manifest changed: read the new frame, whole.
            if attempt < _LIST_RETRIES:
                fs.invalidate_cache(folder)
                continue
            raise
    raise AssertionError("unreachable")


class _PartGone(InputError):
    """A part the manifest lists is missing."""


def _checked_parts(fs: fsspec.AbstractFileSystem, folder: str, url: str, verify: bool) -> tuple[Manifest, list[str]]:
    manifest = read_manifest(fs, folder)
    if manifest is None:
        raise InputError(
            f"{url!r} has no {MANIFEST_FILE}, so it is not a frame that Frame.save wrote (or its save never "
            "finished). Read its Parquet files with Frame.read_parquet(url), and save them again with frame.save(url)"
        )
    sizes = {posixpath.basename(i["name"].rstrip("/")): int(i.get("size") or 0) for i in fs.ls(folder, detail=True)}
    files = []
    for part in manifest.parts:
        path = _join(folder, part.file)
        if part.file not in sizes:
            raise _PartGone(f"{path} is listed in {MANIFEST_FILE} but is missing: the saved frame lost a part "
                             "(rows would be lost); restore the file or save the frame again")
        if sizes[part.file] != part.bytes:
            raise InputError(f"{path} has {sizes[part.file]} bytes, but {MANIFEST_FILE} says {part.bytes}: the part "
                             "was changed after the save; restore it or save the frame again")
        if verify and _sha256(fs, path) != part.sha256:
            raise InputError(f"{path} does not match the sha256 in {MANIFEST_FILE}: the part was changed after the "
                             "save; restore it or save the frame again")
        files.append(path)
    return manifest, files


def save(result: Any, schema: pa.Schema, url: str, *, mode: str = "overwrite", storage_options: dict | None = None) -> None:
    """Save a result (a driver table, or a Ray Dataset written in parallel) as a frame folder at ``url``.

    ``mode``: ``"overwrite"`` replaces a frame there once the new one is
    complete; ``"error"`` refuses a folder that is not empty; ``"append"``
    adds the rows to the frame there (same columns and types). Two saves to
    one folder at once leave it as one of the two, whole (see
    :mod:`framelab.frames.commits`); a save that fails leaves the folder as
    it was, and removes what it wrote.

    Example:
        >>> import tempfile, pyarrow as pa
        >>> from framelab.frames import saved
        >>> folder = tempfile.mkdtemp() + "/f"
        >>> saved.save(pa.table({"x": [1]}), pa.schema([("x", pa.int64())]), folder)
        >>> saved.save(pa.table({"x": [2]}), pa.schema([("x", pa.int64())]), folder, mode="append")
        >>> saved.read_manifest(*saved.storage.filesystem(folder)).num_rows
        2
    """
    check_choice("mode", mode, MODES)
    fs, root = storage.filesystem(url, storage_options)
    root = root.rstrip("/") or root
    with storage.translated_errors(url, fs, "save a frame to"):
        _save(result, schema, url, fs, root, mode)


def _save(result: Any, schema: pa.Schema, url: str, fs: fsspec.AbstractFileSystem, root: str, mode: str) -> None:
    old, leftovers = _existing(fs, root, url, mode)
    if mode == "append" and old is not None:
        _check_same_schema(old.schema, schema, url)
    save_id = uuid.uuid4().hex[:12]
    parent, name = posixpath.split(root)
    staging = _join(parent, f"_{name}.{save_id}.framelab-tmp")
    try:
        written = _write_parts(result, schema, fs, staging)
        kept = list(old.parts) if mode == "append" and old is not None else []
        parts = kept + [Part(f"part-{save_id}-{i:05d}.parquet", rows, size, digest)
                        for i, (_, rows, size, digest) in enumerate(written)]
        manifest = Manifest(old.schema if kept else schema, tuple(parts))
        version = storage.FolderVersion(
            MANIFEST_FILE,
            files={part.file: path for (path, *_), part in zip(written, parts[len(kept):])},
            lists=frozenset(p.file for p in parts),
            pointer_bytes=lambda carried: dataclasses.replace(manifest, replaced=tuple(carried or ())).to_json(),
            listed=_listed,
            write=write_atomically,  # looked up here, so a test can stop a save at any file
        )
        replaced = storage.publish_folder(fs, root, version, staging=staging)
    finally:
        with suppress(OSError, FileNotFoundError):
            if fs.exists(staging):
                fs.rm(staging, recursive=True)
    # What committed versions listed: the one this save replaced (read at its start and again just before its
    # commit), an older framelab's files, and this save's own parts when a later commit replaced them already.
    garbage = [p.file for p in (old.parts if old else ())] + list(old.replaced if old else ()) + list(replaced)
    garbage += [posixpath.basename(p) for p in leftovers]
    storage.collect_replaced(fs, root, version, garbage, _remove_stale)


def _remove_stale(fs: fsspec.AbstractFileSystem, root: str, listing: tuple[set[str], list[str]]) -> None:
    """After the commit: remove what committed versions listed and the current one does not (a reader of the new
    manifest never needs them), and crashed saves' parts once they are old enough to be nobody's save in flight."""
    current, garbage = listing
    commits.collect(fs, root, current, garbage, is_ours=lambda name: bool(_PART_NAME.match(name)))


def _listed(fs: fsspec.AbstractFileSystem, root: str) -> tuple[list[str], list[str]] | None:
    """(the parts the folder's manifest lists now, earlier versions' parts it carries), or None when it cannot be
    read or is not there: then nothing is removed but this save's own."""
    try:
        manifest = read_manifest(fs, root)
    except (OSError, InputError):
        return None
    return ([p.file for p in manifest.parts], list(manifest.replaced)) if manifest is not None else None


def _existing(fs: fsspec.AbstractFileSystem, root: str, url: str, mode: str) -> tuple[Manifest | None, list[str]]:
    """What is at the target now: its manifest, and the files of an older, manifest-less save to remove."""
    if not fs.exists(root):
        return None, []
    if not fs.isdir(root):
        raise InputError(f"cannot save a frame at {url!r}: it is a file; pass a folder path")
    old = read_manifest(fs, root)
    entries = [posixpath.basename(e.rstrip("/")) for e in fs.ls(root, detail=False)]
    visible = [e for e in entries if not storage.is_hidden(e)]
    if mode == "error" and (old is not None or visible):
        raise InputError(f"{url!r} already holds {'a frame' if old is not None else 'files'}; "
                         "pass mode='overwrite' to replace it, mode='append' to add rows, or another path")
    if old is not None or not visible:
        return old, []
    # A folder without a manifest: a frame saved by an older framelab, or plain Parquet files.
    plain = all(storage.has_suffix(e, (".parquet", ".pq")) and fs.isfile(_join(root, e)) for e in visible)
    if not plain:
        raise InputError(
            f"{url!r} is a folder that is not a saved frame (it has no {MANIFEST_FILE} and holds other files); "
            "framelab does not replace it: pass an empty or new folder"
        )
    if mode == "append":
        raise InputError(
            f"{url!r} holds Parquet files but no {MANIFEST_FILE}: append to it only once it is a saved frame; "
            "read it with Frame.read_parquet(url) and save it with frame.save(url) first"
        )
    legacy = [_join(root, e) for e in visible]
    if _LEGACY_SCHEMA_FILE in entries:
        legacy.append(_join(root, _LEGACY_SCHEMA_FILE))
    return None, legacy


def _check_same_schema(old: pa.Schema, new: pa.Schema, url: str) -> None:
    old_cols = [(f.name, f.type) for f in old]
    new_cols = [(f.name, f.type) for f in new]
    if old_cols != new_cols:
        raise SchemaMismatchError(
            f"cannot append to {url!r}: its frame has columns {[f'{n}: {t}' for n, t in old_cols]}, the new rows "
            f"have {[f'{n}: {t}' for n, t in new_cols]}; select and cast the columns to match, or use mode='overwrite'"
        )


def _write_parts(result: Any, schema: pa.Schema, fs: fsspec.AbstractFileSystem, staging: str) -> list[tuple[str, int, int, str]]:
    """Write the rows as Parquet files in ``staging``; (path, rows, bytes, sha256) of each, in row order."""
    fs.makedirs(staging, exist_ok=True)
    writer = _WritePart(fs, staging, schema)
    if isinstance(result, pa.Table):
        entries = writer(result)
    else:
        with surfaced_errors():
            writing = result.map_batches(writer, batch_format="pyarrow", batch_size=None)
            writing.context.raise_original_map_exception = True  # a write's own error, which remote_errors surfaces
            refs = writing.to_arrow_refs()
            entries = concat([get(r) for r in refs]) if refs else _WritePart.SCHEMA.empty_table()
    written = list(zip(*(entries.column(c).to_pylist() for c in entries.column_names)))
    if not written:  # a frame with no rows keeps one empty part: its schema is in a Parquet file as well
        written = list(zip(*(c.to_pylist() for c in writer.write(schema.empty_table()).columns)))
    return written


class _WritePart:
    """A block -> one Parquet file in the staging folder; its (path, rows, bytes, sha256) as one row."""

    SCHEMA = pa.schema([("path", pa.string()), ("rows", pa.int64()), ("bytes", pa.int64()), ("sha256", pa.string())])

    def __init__(self, fs: fsspec.AbstractFileSystem, folder: str, schema: pa.Schema):
        self.fs, self.folder, self.schema = fs, folder, schema

    def __call__(self, block: pa.Table) -> pa.Table:
        if block.num_rows == 0:
            return self.SCHEMA.empty_table()
        return self.write(block)

    def _as_frame_schema(self, block: pa.Table) -> pa.Table:
        """The block in the frame's schema, so every part has the same one (a block of nulls keeps its column's type)."""
        if block.schema.names != self.schema.names or block.schema.equals(self.schema, check_metadata=True):
            return block
        try:
            return block.cast(self.schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            return block  # types only its rows decide: the manifest's schema restores them at load

    def write(self, block: pa.Table) -> pa.Table:
        """Write one block (even an empty one) as a Parquet file; its row of (path, rows, bytes, sha256)."""
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(self._as_frame_schema(block), sink)
        data = sink.getvalue().to_pybytes()
        path = _join(self.folder, f"{uuid.uuid4().hex}.parquet")
        write_atomically(self.fs, path, data)
        return pa.table({"path": [path], "rows": [block.num_rows], "bytes": [len(data)],
                         "sha256": [hashlib.sha256(data).hexdigest()]}, schema=self.SCHEMA)


def _sha256(fs: fsspec.AbstractFileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _framelab_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("framelab")
    except PackageNotFoundError:
        return "unknown"


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name
