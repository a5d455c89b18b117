"""Where data lives: the one way framelab opens a path or URL, and the one rule for which files count.

Every reader and writer (tables, images, models, weights) gets its
filesystem from :func:`filesystem`, so ``s3://``, ``gs://``, ``memory://``,
``file://`` and plain paths behave the same everywhere and
``storage_options`` mean the same thing. Listing a folder (:func:`walk`) skips hidden and
underscore-prefixed files and folders (``.DS_Store``, ``_SUCCESS``, ``_temporary/``)
at every depth, follows symbolic links to folders once (a loop is read once),
and reports anything that is not a regular file (a named pipe, a socket, a
device) without opening it: reading one could block forever.

Example:
    >>> from framelab.frames.storage import filesystem, protocol
    >>> fs, path = filesystem("memory://bucket/data")
    >>> protocol(fs), path
    ('memory', '/bucket/data')
"""

from __future__ import annotations

import os
import posixpath
import stat
import uuid
from collections.abc import Iterator
from contextlib import suppress
from typing import Any, NamedTuple
from urllib.parse import unquote

import fsspec
import pyarrow.fs as pafs

_GLOB_CHARS = "*?["


def filesystem(url: Any, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and bare path for a path or URL (``s3://``, ``gs://``, ``file://``, ...).

    Example:
        >>> from framelab.frames.storage import filesystem
        >>> fs, path = filesystem("/tmp")
        >>> path
        '/tmp'
    """
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return fs, path


def protocol(fs: fsspec.AbstractFileSystem) -> str:
    """The filesystem's protocol, with every name of local disk reported as ``"file"``.

    Example:
        >>> import fsspec
        >>> from framelab.frames.storage import protocol
        >>> protocol(fsspec.filesystem("local"))
        'file'
    """
    name = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "file" if name in ("file", "local") else name


def url_protocol(url: str) -> str:
    """The protocol a URL names without opening it (``"file"`` for a plain path).

    Example:
        >>> from framelab.frames.storage import url_protocol
        >>> url_protocol("s3://bucket/x"), url_protocol("/data/x")
        ('s3', 'file')
    """
    return url.split("://", 1)[0] if "://" in url else "file"


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    """The filesystem for pyarrow and Ray Data (local disk stays native, others go through fsspec).

    Example:
        >>> import fsspec
        >>> from framelab.frames.storage import arrow_filesystem
        >>> arrow_filesystem(fsspec.filesystem("file")).type_name
        'local'
    """
    if protocol(fs) == "file":
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def is_glob(path: str) -> bool:
    """True when the path has glob characters (``*``, ``?``, ``[``).

    Example:
        >>> from framelab.frames.storage import is_glob
        >>> is_glob("photos/*/*.jpg"), is_glob("photos/a.jpg")
        (True, False)
    """
    return any(ch in path for ch in _GLOB_CHARS)


def is_hidden(path: str) -> bool:
    """True for a file or folder a listing skips: its name starts with ``.`` or ``_``.

    Example:
        >>> from framelab.frames.storage import is_hidden
        >>> is_hidden("data/_SUCCESS"), is_hidden("data/.DS_Store"), is_hidden("data/part-0.parquet")
        (True, True, False)
    """
    return posixpath.basename(str(path).rstrip("/")).startswith((".", "_"))


def has_suffix(path: str, suffixes: tuple[str, ...]) -> bool:
    """True when the file name ends with one of ``suffixes``, in any case.

    Example:
        >>> from framelab.frames.storage import has_suffix
        >>> has_suffix("a/IMG.JPG", (".jpg", ".png"))
        True
    """
    return posixpath.basename(path).lower().endswith(tuple(s.lower() for s in suffixes))


class Listing(NamedTuple):
    """What :func:`expand_paths` found: the filesystem, the files, their bytes, and each file's hive partition values."""

    fs: fsspec.AbstractFileSystem
    files: list[str]
    total_bytes: int
    partitions: dict[str, dict[str, str]]


def special_kind(mode: int) -> str:
    """What a file that is not a regular file is, from its ``st_mode``, in words.

    Example:
        >>> import stat
        >>> from framelab.frames.storage import special_kind
        >>> special_kind(stat.S_IFIFO)
        'a named pipe (FIFO)'
    """
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def regular_file_problem(path: str) -> str | None:
    """Why a local path cannot be read as a file without opening it (None when it is a regular file).

    Example:
        >>> import os, tempfile
        >>> from framelab.frames.storage import regular_file_problem
        >>> pipe = os.path.join(tempfile.mkdtemp(), "p.csv"); os.mkfifo(pipe)
        >>> regular_file_problem(pipe)
        'is a named pipe (FIFO), not a regular file; framelab never opens one (reading it could block forever)'
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return "is a broken symbolic link"
        return None  # gone: the reader reports it as missing
    except OSError as err:
        return f"cannot be checked ({err.strerror or err})"
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return f"is {special_kind(mode)}, not a regular file; framelab never opens one (reading it could block forever)"


def walk(fs: fsspec.AbstractFileSystem, root: str) -> Iterator[tuple[str, dict]]:
    """Every entry under a folder, in path order: ``(path, info)`` with ``info["type"]`` ``"file"`` or ``"other"``.

    Hidden and underscore-prefixed names are skipped at every depth below
    ``root``. On local disk a symbolic link to a folder is followed (a folder
    reached twice, as in a link loop, is walked once), and an entry that is
    not a regular file is given as ``"other"`` with the ``"problem"`` in words;
    nothing is opened.

    Example:
        >>> import fsspec
        >>> from framelab.frames.storage import walk
        >>> fsspec.filesystem("memory").pipe({"/w/a.csv": b"x", "/w/_tmp/b.csv": b"y", "/w/k=1/c.csv": b"z"})
        >>> [p for p, _ in walk(fsspec.filesystem("memory"), "/w")]
        ['/w/a.csv', '/w/k=1/c.csv']
    """
    if protocol(fs) == "file":
        found: list[tuple[str, dict]] = []
        _walk_local(root.rstrip("/") or "/", set(), found)
        yield from sorted(found, key=lambda e: e[0])
        return
    base = root.rstrip("/")
    for path, info in sorted(fs.find(root, detail=True).items()):
        relative = path[len(base):].strip("/").split("/")
        if not any(name.startswith((".", "_")) for name in relative):
            yield path, info


def _walk_local(folder: str, seen: set, found: list) -> None:
    try:
        real = os.stat(folder)
    except OSError:
        return
    if (real.st_dev, real.st_ino) in seen:
        return  # a link back to a folder already walked: its files are listed once
    seen.add((real.st_dev, real.st_ino))
    with os.scandir(folder) as entries:
        names = sorted((e.name, e.path) for e in entries)
    for name, path in names:
        if name.startswith((".", "_")):
            continue
        if os.path.isdir(path):  # follows symbolic links
            _walk_local(path, seen, found)
            continue
        problem = regular_file_problem(path)
        if problem is None:
            try:
                found.append((path, {"type": "file", "size": os.stat(path).st_size}))
            except OSError:
                found.append((path, {"type": "file", "size": 0}))
        else:
            found.append((path, {"type": "other", "problem": problem}))


def hive_partitions(root: str, path: str) -> dict[str, str]:
    """The ``key=value`` folders between ``root`` and ``path``, in order (values URL-unquoted).

    Example:
        >>> from framelab.frames.storage import hive_partitions
        >>> hive_partitions("/data", "/data/year=2024/city=New%20York/part-0.parquet")
        {'year': '2024', 'city': 'New York'}
    """
    relative = path[len(root.rstrip("/")):].strip("/").split("/")[:-1]
    values = {}
    for name in relative:
        key, eq, value = name.partition("=")
        if eq and key:
            values[key] = unquote(value)
    return values


def expand_paths(url: Any, suffixes: tuple[str, ...], storage_options: dict | None = None) -> Listing:
    """Files named by a path, folder, glob or list of them (a :class:`Listing`).

    Folders are walked (:func:`walk`) for files with one of ``suffixes`` (any
    case); ``key=value`` folders below a named folder give each file its hive
    partition values. Anything that is not a regular file is refused by name
    (:class:`~framelab.frames.errors.InputError`), never opened. Raises
    FileNotFoundError naming the path when nothing is there.

    Example:
        >>> import fsspec
        >>> from framelab.frames.storage import expand_paths
        >>> fsspec.filesystem("memory").pipe({"/t/a.csv": b"x\\n1\\n", "/t/_skip.csv": b"", "/t/B.CSV": b"x\\n2\\n"})
        >>> listing = expand_paths("memory://t", (".csv",))
        >>> listing.files, listing.total_bytes
        (['/t/B.CSV', '/t/a.csv'], 8)
    """
    from framelab.frames.errors import InputError

    urls = [url] if isinstance(url, (str, bytes)) or hasattr(url, "__fspath__") else list(url)
    if not urls:
        raise FileNotFoundError("no paths were given")
    fs, _ = filesystem(str(urls[0]), storage_options)
    files: list[str] = []
    partitions: dict[str, dict[str, str]] = {}
    total = 0
    for one in urls:
        _, path = filesystem(str(one), storage_options)
        folder = None
        if is_glob(path):
            matches = sorted(fs.glob(path, detail=True).items())
            if not matches:
                raise FileNotFoundError(f"no files match {one!r}")
            local = protocol(fs) == "file"
            infos = [(p, i) for p, i in matches if i.get("type") != "directory" and not (local and os.path.isdir(p))]
        elif fs.isdir(path):
            folder = path
            infos = [(p, i) for p, i in walk(fs, path) if has_suffix(p, suffixes)]
            if not infos:
                raise FileNotFoundError(f"no {'/'.join(suffixes)} files in folder {one!r}")
        elif fs.exists(path) or (protocol(fs) == "file" and os.path.lexists(path)):
            infos = [(path, {"type": "other"} if regular_file_problem(path) else fs.info(path))]
        else:
            raise FileNotFoundError(f"no such file or folder: {one!r}")
        for p, info in infos:
            problem = info.get("problem") or (regular_file_problem(p) if protocol(fs) == "file" else None)
            if info.get("type") != "file" and problem:
                raise InputError(f"{p} {problem}: move it out of the folder, or name the files to read")
            files.append(p)
            total += int(info.get("size") or 0)
            if folder is not None:
                partitions[p] = hive_partitions(folder, p)
    _check_partition_keys(partitions)
    return Listing(fs, files, total, {p: v for p, v in partitions.items() if v})


def _check_partition_keys(partitions: dict[str, dict[str, str]]) -> None:
    """Every file of a partitioned folder sits under the same ``key=value`` folders, or the columns would mix."""
    from framelab.frames.errors import InputError

    keys = {tuple(v) for v in partitions.values()}
    if len(keys) > 1:
        first = next(iter(partitions.items()))
        for path, values in partitions.items():
            if tuple(values) != tuple(first[1]):
                raise InputError(
                    f"{path} is under partition folders {list(values) or '(none)'} but {first[0]} is under "
                    f"{list(first[1]) or '(none)'}: every file of a hive-partitioned folder needs the same "
                    "key=value folders; move the odd file out or read the folders separately"
                )


def write_atomically(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole file so that a reader sees the old one or the new one, never half.

    On local disk: a temporary ``.<name>.<32 hex>.tmp`` beside it, synced, then
    renamed over it. Elsewhere: one PUT (an object store shows an object only
    once it is complete).

    Example:
        >>> import fsspec, os, tempfile
        >>> from framelab.frames.storage import write_atomically
        >>> folder = tempfile.mkdtemp()
        >>> write_atomically(fsspec.filesystem("file"), os.path.join(folder, "a.json"), b"{}")
        >>> os.listdir(folder)
        ['a.json']
    """
    if protocol(fs) != "file":
        fs.pipe_file(path, data)
        return
    folder, name = os.path.split(path)
    temporary = os.path.join(folder, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.remove(temporary)
        raise


def sync_folder(path: str) -> None:
    """Sync a local folder's entries: a rename into it survives a power cut only after this.

    Example:
        >>> import tempfile
        >>> from framelab.frames.storage import sync_folder
        >>> sync_folder(tempfile.mkdtemp())
    """
    with suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
