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

import contextlib
import dataclasses
import os
import posixpath
import shutil
import stat
import uuid
from collections.abc import Callable, Iterator, Mapping
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



@dataclasses.dataclass(frozen=True)
class FolderVersion:
    """One save's new version of a folder of data files and the one pointer file that lists them.

    Saved frames (``_framelab_manifest.json``) and saved models
    (``model.json``) are both such folders; :func:`publish_folder` commits
    either the same way (see :mod:`framelab.frames.commits` for why it is safe
    beside other writers). Each save says only what is its own:

    - ``pointer``: the pointer file's name; the commit is its atomic replace.
    - ``files``: each new data file's name in the folder, and its bytes or the
      path of a staged file to move in.
    - ``lists``: every file the new pointer lists (an append's kept files too).
    - ``pointer_bytes``: the pointer's bytes, given the earlier versions' files
      still present that it must carry until they are removed (None when the
      folder had no earlier version).
    - ``listed``: ``(files the pointer lists now, earlier files it carries)``
      as read from the folder, or None when it cannot be read.
    - ``write``: how a whole file is written (the caller's, so a test can stop
      a save at any file).
    """

    pointer: str
    files: Mapping[str, bytes | str]
    lists: frozenset[str]
    pointer_bytes: Callable[[list[str] | None], bytes]
    listed: Callable[[Any, str], tuple[list[str], list[str]] | None]
    write: Callable[[Any, str, bytes], None] = write_atomically


def publish_folder(fs: fsspec.AbstractFileSystem, root: str, version: FolderVersion, *,
                   staging: str | None = None) -> list[str]:
    """Publish a folder version atomically: a reader sees the old version whole or the new one whole.

    A new local folder is written under a staging name beside ``root`` (or in
    the caller's ``staging`` folder, which holds the staged files) and renamed
    into place. An existing folder, or any folder on an object store, gets the
    new files beside the old ones, then the pointer (the commit); a save that
    fails before its commit removes what it added. Returns the files the
    replaced version listed or carried: garbage for :func:`collect_replaced`.

    Example:
        >>> import fsspec, json, os, tempfile
        >>> from framelab.frames.storage import FolderVersion, publish_folder
        >>> def listed(fs, root):
        ...     try:
        ...         return json.loads(fs.cat_file(root + "/pointer.json"))["files"], []
        ...     except OSError:
        ...         return None
        >>> version = FolderVersion("pointer.json", {"a.bin": b"1"}, frozenset({"a.bin"}),
        ...                         lambda carried: json.dumps({"files": ["a.bin"]}).encode(), listed)
        >>> root = tempfile.mkdtemp() + "/saved"
        >>> publish_folder(fsspec.filesystem("file"), root, version), sorted(os.listdir(root))
        ([], ['a.bin', 'pointer.json'])
    """
    if protocol(fs) == "file" and not fs.exists(root):
        return _publish_new_folder(fs, root, version, staging)
    return _publish_in_place(fs, root, version)


def collect_replaced(fs: fsspec.AbstractFileSystem, root: str, version: FolderVersion, garbage: list[str],
                     remove: Callable[[Any, str, tuple[set[str], list[str]]], None]) -> None:
    """After a commit: hand ``remove`` the files the pointer lists now and the provable garbage.

    ``garbage`` is what committed versions listed (:func:`publish_folder`'s
    answer, and whatever else the caller knows of); this save's own files join
    it when a later commit replaced them already. Nothing is removed when the
    pointer cannot be read now.

    Example:
        >>> import fsspec
        >>> from framelab.frames.storage import FolderVersion, collect_replaced
        >>> version = FolderVersion("p", {}, frozenset({"new"}), lambda c: b"", lambda fs, root: (["new"], []))
        >>> collect_replaced(fsspec.filesystem("memory"), "/f", version, ["old"], lambda fs, root, listing: print(listing))
        ({'new'}, ['old'])
    """
    current = version.listed(fs, root)
    if current is None:
        return
    listed = set(current[0])
    if not version.lists <= listed:
        garbage = [*garbage, *sorted(version.lists)]
    remove(fs, root, (listed, garbage))


def _publish_new_folder(fs: fsspec.AbstractFileSystem, root: str, version: FolderVersion,
                        staging: str | None) -> list[str]:
    """Write the whole folder under a staging name, then rename it into place (a new local folder)."""
    parent, name = os.path.split(os.path.abspath(root))
    os.makedirs(parent, exist_ok=True)
    own = staging is None
    if staging is None:
        staging = os.path.join(parent, f".{name}.{uuid.uuid4().hex}.tmp")
        os.mkdir(staging)
    try:
        for file, data in version.files.items():
            target = os.path.join(staging, file)
            if isinstance(data, str):
                os.replace(data, target)
            else:
                version.write(fs, target, data)
        version.write(fs, os.path.join(staging, version.pointer), version.pointer_bytes(None))
        sync_folder(staging)
        try:
            os.rename(staging, root)
        except OSError:
            if not os.path.isdir(root):
                raise
            # Another save made the folder first: publish into it the in-place way.
            staged = {file: os.path.join(staging, file) for file in version.files}
            return _publish_in_place(fs, root, dataclasses.replace(version, files=staged))
        sync_folder(parent)
        return []
    finally:
        if own:
            shutil.rmtree(staging, ignore_errors=True)


def _publish_in_place(fs: fsspec.AbstractFileSystem, root: str, version: FolderVersion) -> list[str]:
    """Add the new files beside the old ones, then replace the pointer: the commit."""
    fs.makedirs(root, exist_ok=True)
    local = protocol(fs) == "file"
    landed: list[str] = []
    committed: list[bytes] = []  # the pointer's bytes, once the commit is under way
    try:
        for file, data in version.files.items():
            target = _join(root, file)
            if not isinstance(data, str):
                version.write(fs, target, data)
            elif local:
                os.replace(data, target)
            else:
                fs.mv(data, target)  # an object store copies on the server; no bytes pass through here
            landed.append(file)
        previous = version.listed(fs, root)
        earlier = list(dict.fromkeys([*previous[0], *previous[1]])) if previous is not None else []
        carried = None
        if earlier:  # carried in the new pointer until removed, so a save stopped before its clean-up loses nothing
            present = {posixpath.basename(p.rstrip("/")) for p in fs.ls(root, detail=False)}
            carried = [f for f in earlier if f in present and f not in version.lists]
        committed.append(version.pointer_bytes(carried))
        version.write(fs, _join(root, version.pointer), committed[0])
    except BaseException:
        _undo(fs, root, version, landed, committed)
        raise
    if local:
        sync_folder(root)
    return earlier


def _undo(fs: fsspec.AbstractFileSystem, root: str, version: FolderVersion, landed: list[str],
          committed: list[bytes]) -> None:
    """A failed save removes the files it added, unless its pointer was stored after all (an object store may
    store a PUT whose reply was lost) or the current pointer lists them (the same content as what is there)."""
    if not landed:
        return
    with suppress(Exception):
        if committed and fs.cat_file(_join(root, version.pointer)) == committed[0]:
            return
    current = version.listed(fs, root)
    for file in landed:
        if current is None or file not in current[0]:
            with suppress(Exception):
                fs.rm_file(_join(root, file))


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if folder else name


# botocore's error codes (and HTTP statuses) that mean the credentials were refused or lack a permission.
_DENIED_CODES = ("AccessDenied", "Forbidden", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                 "InvalidToken", "ExpiredToken", "AllAccessDisabled", "AccountProblem")
# errno values of a full or read-only local disk.
_DISK_ERRNOS = (28, 122, 30)  # ENOSPC, EDQUOT, EROFS


def storage_failure(err: BaseException) -> str | None:
    """The likely cause of a storage error, in words, or None when it is not a fault of the store or its access.

    A missing file is not translated here (readers name it themselves).

    Example:
        >>> from framelab.frames.storage import storage_failure
        >>> storage_failure(PermissionError("Forbidden"))[:33]
        'the store refused the credentials'
        >>> storage_failure(FileNotFoundError("x")) is None
        True
    """
    from framelab.frames.errors import StorageError

    if isinstance(err, StorageError) or isinstance(err, FileNotFoundError):
        return None
    names = {type(e).__name__ for e in _chain(err)}
    text = " ".join(str(e) for e in _chain(err))
    if names & {"NoCredentialsError", "PartialCredentialsError"}:
        return "no credentials were found: pass key and secret in storage_options, or set AWS_ACCESS_KEY_ID and " \
               "AWS_SECRET_ACCESS_KEY"
    if "NoSuchBucket" in text:
        return "the bucket does not exist on this endpoint: check the bucket name and endpoint_url"
    if isinstance(err, PermissionError) or any(code in text for code in _DENIED_CODES):
        return ("the store refused the credentials or they lack permission: check the key and secret "
                "(storage_options or the AWS_* environment variables) and the bucket's policy")
    if isinstance(err, (ConnectionError, TimeoutError)) or names & {
        "EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ServerDisconnectedError",
        "ConnectionClosedError", "ReadTimeoutError",
    }:
        return "the endpoint cannot be reached: check endpoint_url, the network, and that the server is running"
    if isinstance(err, OSError) and err.errno in _DISK_ERRNOS:
        return f"the disk is full or read-only ({os.strerror(err.errno)}): free space or choose another place"
    return None


def describe_failure(url: str, fs: fsspec.AbstractFileSystem | None, action: str, err: BaseException) -> str | None:
    """The message framelab gives for a storage fault meeting ``action`` on ``url`` (None: not a storage fault).

    Example:
        >>> from framelab.frames.storage import describe_failure
        >>> print(describe_failure("s3://photos/cats", None, "read", PermissionError("Forbidden")))  # doctest: +ELLIPSIS
        cannot read s3://photos/cats (bucket 'photos', key 'cats', endpoint: the AWS default): the store refused ...
    """
    cause = storage_failure(err)
    if cause is None:
        return None
    kind = url_protocol(str(url))
    if kind == "file":
        where = ""
        if isinstance(err, PermissionError):
            cause = "permission denied on the local disk: check the folder's owner and permissions"
    else:
        bucket, _, key = str(url).split("://", 1)[1].partition("/")
        where = f" (bucket {bucket!r}, key {key!r}, endpoint: {_endpoint(fs)})"
    original = f"{type(err).__name__}: {str(err).strip()}"[:300]
    return f"cannot {action} {url}{where}: {cause} [{original}]"


@contextlib.contextmanager
def translated_errors(url: str, fs: fsspec.AbstractFileSystem | None, action: str) -> Iterator[None]:
    """Run a block whose storage faults are raised as one :class:`~framelab.frames.errors.StorageError`
    naming the URL (bucket and key), the endpoint and the likely cause, with the store's error chained.

    The one place storage errors are translated: every reader and writer of
    frames, images and models wraps its work (in the driver, and in a Ray task,
    where the error is surfaced to the caller as itself).

    Example:
        >>> from framelab.frames.storage import translated_errors
        >>> with translated_errors("s3://b/f", None, "load a frame from"):
        ...     raise PermissionError("Forbidden")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.StorageError: cannot load a frame from s3://b/f (bucket 'b', key 'f', endpoint: ...
    """
    from framelab.frames.errors import StorageError

    try:
        yield
    except Exception as err:  # noqa: BLE001 - only storage faults are translated; everything else is re-raised
        message = describe_failure(url, fs, action, _innermost_storage_error(err))
        if message is None:
            raise
        raise StorageError(message) from err


def _innermost_storage_error(err: BaseException) -> BaseException:
    """The store's own error inside wrappers (Ray's, or an error raised while handling it)."""
    for e in _chain(err):
        if storage_failure(e) is not None and not type(e).__module__.startswith("ray"):
            return e
    return err


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in seen and len(seen) < 20:
        seen.append(current)
        inner = getattr(current, "cause", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return seen


def _endpoint(fs: fsspec.AbstractFileSystem | None) -> str:
    """The endpoint URL a filesystem talks to, or the default its protocol implies."""
    found = None
    if fs is not None:
        found = getattr(fs, "endpoint_url", None) or (getattr(fs, "client_kwargs", None) or {}).get("endpoint_url")
        found = found or (getattr(fs, "storage_options", None) or {}).get("endpoint_url")
        found = found or ((getattr(fs, "storage_options", None) or {}).get("client_kwargs") or {}).get("endpoint_url")
    return str(found) if found else "the AWS default"
