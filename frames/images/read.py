"""Reading image files into a frame: folders, file lists, globs and fsspec URLs, in parallel.

The driver never lists a folder and never holds the files' bytes. It builds a
three-stage Ray Data pipeline: list each root (one task per root), walk its
sub-folders (one task per sub-folder, so a bucket of class folders lists in
parallel), then read and check the files in blocks of :data:`FILES_PER_BLOCK`
paths. Every stage streams, so reading starts while listing is still going
and memory stays bounded by Ray Data's backpressure, not by the corpus size.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.frames.images.decode import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    probe_image,
    warn_failures,
)
from framelab.frames.images.image_type import image_array, image_type

if TYPE_CHECKING:
    import fsspec

    from framelab.frames.frame import Frame

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp")
ON_ERROR = ("null", "drop", "raise")
LABEL_FROM = (None, "folder")
# Paths per read task: enough to amortise a task's overhead, few enough that
# two cores share the work of a thousand images evenly.
FILES_PER_BLOCK = 64
_LIST_CPUS = 0.1
_LIST_THREADS = 8
_PATHS_SCHEMA = pa.schema([("path", pa.string()), ("kind", pa.string())])


class ImageReadError(InputError):
    """A file that could not be read as an image under ``on_error="raise"``."""


def read_images(
    paths: str | Sequence[str],
    *,
    recursive: bool = True,
    label_from: str | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    include_paths: bool = True,
    on_error: str = "null",
    storage_options: dict | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verify: bool | str = True,
) -> Frame:
    """Read image files into a frame with an ``image`` column (plus ``path``, ``label``, ``error``).

    Args:
        paths: a folder, a file, a glob (``"photos/*/*.jpg"``), or a list of
            them; local paths or fsspec URLs (``s3://``, ``gs://``, ``file://``).
        recursive: walk sub-folders of each folder.
        label_from: ``"folder"`` adds a ``label`` column holding each file's
            parent folder name.
        extensions: file endings read from folders and globs (case-insensitive);
            files named explicitly are always read.
        include_paths: add a ``path`` column.
        on_error: what to do with a file that cannot be read or decoded:
            ``"null"`` keeps the row with a null image and the reason in an
            ``error`` column; ``"drop"`` removes the row; ``"raise"`` stops
            with an error naming the file. Each read task that meets bad files
            logs a warning with their count.
        storage_options: passed to fsspec (e.g. ``{"key": ..., "secret": ...,
            "client_kwargs": {"endpoint_url": ...}}`` for S3). Pass them here:
            Ray workers do not see environment variables set after Ray started.
        max_pixels: images whose header claims more pixels are refused
            (decompression bombs) before any pixel memory is allocated.
        verify: how much of each file to check while reading, so a bad file
            gets its row's ``error`` here rather than failing a later step.
            ``True`` catches truncated and unreadable files: JPEGs by their
            end-of-image marker, other formats by decoding them. ``"full"``
            also decodes every JPEG (at 1/8 scale; about 12% slower end to end
            on the Caltech benchmark) to catch damage inside a complete file.
            ``False`` reads headers only.

    Example:
        >>> from framelab.frames.images.read import read_images
        >>> frame = read_images("../shared/data/caltech101_subset/ewer", label_from="folder")  # doctest: +SKIP
        >>> frame.columns  # doctest: +SKIP
        ['image', 'path', 'label', 'error']
    """
    from framelab.frames.frame import Frame

    schema = _output_schema(include_paths=include_paths, label_from=label_from, on_error=on_error)
    return Frame.from_ray(
        read_images_dataset(
            paths,
            recursive=recursive,
            label_from=label_from,
            extensions=extensions,
            include_paths=include_paths,
            on_error=on_error,
            storage_options=storage_options,
            max_pixels=max_pixels,
            verify=verify,
        ),
        schema=schema,
    )


def _output_schema(*, include_paths: bool, label_from: str | None, on_error: str) -> pa.Schema:
    """The columns :func:`read_block` produces for these options."""
    fields = [pa.field("image", image_type())]
    if include_paths:
        fields.append(pa.field("path", pa.string()))
    if label_from == "folder":
        fields.append(pa.field("label", pa.string()))
    if on_error == "null":
        fields.append(pa.field("error", pa.string()))
    return pa.schema(fields)


def read_images_dataset(
    paths: str | Sequence[str],
    *,
    recursive: bool = True,
    label_from: str | None = None,
    extensions: Sequence[str] = DEFAULT_EXTENSIONS,
    include_paths: bool = True,
    on_error: str = "null",
    storage_options: dict | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verify: bool | str = True,
) -> Any:
    """The lazy ``ray.data.Dataset`` behind :func:`read_images` (same arguments).

    Example:
        >>> from framelab.frames.images.read import read_images_dataset
        >>> ds = read_images_dataset("../shared/data/caltech101_subset/ewer")  # doctest: +SKIP
    """
    import ray.data

    from framelab.platform.session import ensure_connected

    roots = _check_arguments(paths, label_from, extensions, on_error, max_pixels, verify)
    ensure_connected()
    fs = _filesystem(roots[0], storage_options)
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    # Entries named like image files are read as files without asking the
    # store; anything else (folders, globs) is listed by a worker.
    rows = [
        {"path": _strip(fs, r), "kind": "file" if _keep(r, exts) and not _is_glob(r) else "root"}
        for r in roots
    ]
    protocol = _protocol(fs)
    blocks = max(1, min(len(rows), len(rows) // FILES_PER_BLOCK + 1))
    listed = ray.data.from_items(rows, override_num_blocks=blocks)
    # Two Ray Data defaults left one of 2 cores idle for most of a read (0.63 -> 0.9
    # of a PIL loop without them). Set on this dataset's own context, so only
    # pipelines built on this read see them. Per-operator CPU reservations stay
    # with the listing and repartition stages until their outputs are consumed;
    # and the repartition below, a task holding a CPU, pauses until the readers
    # have taken all but 2 of its blocks (path blocks are a few KB: let it run ahead).
    ctx = listed.context
    ctx.op_resource_reservation_enabled = False
    if hasattr(ctx, "_max_num_blocks_in_streaming_gen_buffer"):
        ctx._max_num_blocks_in_streaming_gen_buffer = 64
    if any(r["kind"] == "root" for r in rows):
        # A listing task asks for little CPU: it waits on the store, and a
        # distinct CPU request keeps Ray Data from fusing it with the readers
        # (fused, the whole read would run as one task).
        listed = listed.map_batches(
            _ListFiles(fs, exts, recursive), batch_format="pyarrow", batch_size=1, num_cpus=_LIST_CPUS
        )
    reader = _ReadFiles(
        fs,
        protocol=protocol,
        label_from=label_from,
        include_paths=include_paths,
        on_error=on_error,
        max_pixels=max_pixels,
        verify=verify,
    )
    return listed.repartition(target_num_rows_per_block=FILES_PER_BLOCK).map_batches(
        reader, batch_format="pyarrow", batch_size=None
    )


def _check_arguments(
    paths: Any, label_from: Any, extensions: Any, on_error: Any, max_pixels: Any, verify: Any
) -> list[str]:
    """Validate read_images' arguments in one place; returns the roots as strings."""
    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        roots = [str(paths)]
    elif isinstance(paths, Sequence) or hasattr(paths, "__iter__"):
        roots = [str(p) for p in paths]
    else:
        raise InputError(f"paths must be a path, URL, glob or a list of them; got {type(paths).__name__}")
    if not roots:
        raise InputError("read_images needs at least one path; got an empty list")
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if label_from not in LABEL_FROM:
        raise InputError(f"label_from must be None or 'folder', got {label_from!r}")
    if isinstance(extensions, str) or not all(isinstance(e, str) for e in extensions):
        raise InputError(f"extensions must be a tuple of file endings like ('.jpg', '.png'), got {extensions!r}")
    if verify not in (True, False, "full"):
        raise InputError(f"verify must be True, False or 'full', got {verify!r}")
    if not isinstance(max_pixels, int) or max_pixels <= 0:
        raise InputError(f"max_pixels must be a positive int, got {max_pixels!r}")
    protocols = {_url_protocol(r) for r in roots}
    if len(protocols) > 1:
        raise InputError(f"all paths must be on one filesystem; got {sorted(protocols)}")
    if len(roots) == 1 and _url_protocol(roots[0]) == "file":
        import os

        local = roots[0][len("file://"):] if roots[0].startswith("file://") else roots[0]
        if not _is_glob(local) and not os.path.exists(local):
            raise FileNotFoundError(f"no such file or folder: {roots[0]!r}")
    return roots


def _url_protocol(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else "file"


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _filesystem(url: str, storage_options: dict | None) -> fsspec.AbstractFileSystem:
    import fsspec

    fs, _ = fsspec.core.url_to_fs(url, **(storage_options or {}))
    return fs


def _strip(fs: fsspec.AbstractFileSystem, url: str) -> str:
    return fs._strip_protocol(url)


def _protocol(fs: fsspec.AbstractFileSystem) -> str:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return "file" if protocol in ("file", "local") else protocol


def _keep(path: str, exts: tuple[str, ...]) -> bool:
    name = posixpath.basename(path)
    return not name.startswith((".", "_")) and name.lower().endswith(exts)


def _paths_table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {"path": [p for p, _ in rows], "kind": [k for _, k in rows]}, schema=_PATHS_SCHEMA
    )


class _ListFiles:
    """Stage 1: a root (folder, file or glob) -> its files, in blocks, as they are found.

    Sub-folders are walked by a small thread pool: listing an object store is
    waiting on requests, so a task keeps several in flight instead of one.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, exts: tuple[str, ...], recursive: bool):
        self.fs, self.exts, self.recursive = fs, exts, recursive

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        files: list[tuple[str, str]] = []
        for root, kind in zip(batch.column("path").to_pylist(), batch.column("kind").to_pylist()):
            if kind == "root":
                yield from self._list(root)
            else:
                files.append((root, kind))
        if files:
            yield _paths_table(files)

    def _list(self, root: str) -> Iterator[pa.Table]:
        fs = self.fs
        if _is_glob(root):
            found = sorted(fs.glob(root, detail=True).items())
            files = [(p, "file") for p, info in found if info.get("type") == "file"]
            if not files:
                raise FileNotFoundError(f"no files match {root!r}")
            yield from _chunks(files)
            return
        try:
            info = fs.info(root)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file or folder: {root!r}") from None
        if info.get("type") != "directory":
            yield _paths_table([(root, "file")])
            return
        files, folders = [], []
        for entry in sorted(fs.ls(root, detail=True), key=lambda e: e["name"]):
            name = entry["name"]
            if entry.get("type") == "directory":
                if self.recursive and not posixpath.basename(name.rstrip("/")).startswith((".", "_")):
                    folders.append(name)
            elif _keep(name, self.exts):
                files.append((name, "file"))
        yield from _chunks(files)
        if not folders:
            return
        from concurrent.futures import ThreadPoolExecutor

        def walk(folder: str) -> list[tuple[str, str]]:
            return [(p, "file") for p in sorted(fs.find(folder)) if _keep(p, self.exts)]

        with ThreadPoolExecutor(max_workers=min(_LIST_THREADS, len(folders))) as pool:
            for found in pool.map(walk, folders):
                yield from _chunks(found)


def _chunks(rows: list[tuple[str, str]]) -> Iterator[pa.Table]:
    for i in range(0, len(rows), FILES_PER_BLOCK):
        yield _paths_table(rows[i : i + FILES_PER_BLOCK])


class _ReadFiles:
    """Stage 3: a block of paths -> image rows, one row per path whatever happens to the file."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        *,
        protocol: str,
        label_from: str | None,
        include_paths: bool,
        on_error: str,
        max_pixels: int,
        verify: bool | str,
    ):
        self.fs = fs
        self.protocol = protocol
        self.label_from = label_from
        self.include_paths = include_paths
        self.on_error = on_error
        self.max_pixels = max_pixels
        self.verify = verify

    def __call__(self, batch: pa.Table) -> pa.Table:
        return read_block(
            self.fs,
            batch.column("path").to_pylist(),
            protocol=self.protocol,
            label_from=self.label_from,
            include_paths=self.include_paths,
            on_error=self.on_error,
            max_pixels=self.max_pixels,
            verify=self.verify,
        )


def read_block(
    fs: fsspec.AbstractFileSystem,
    paths: list[str],
    *,
    protocol: str = "file",
    label_from: str | None = None,
    include_paths: bool = True,
    on_error: str = "null",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    verify: bool | str = True,
) -> pa.Table:
    """Read and check one block of image files (the work of one read task).

    Example:
        >>> import fsspec
        >>> from framelab.frames.images.read import read_block
        >>> read_block(fsspec.filesystem("file"), ["/nope.jpg"], on_error="null").column("error")[0]
        <pyarrow.StringScalar: 'file not found: /nope.jpg (it was listed but is gone, or never existed)'>
    """
    contents = fs.cat(paths, on_error="return") if paths else {}
    if len(paths) == 1 and not isinstance(contents, dict):
        contents = {paths[0]: contents}
    cols: list[list] = [[], [], [], [], []]
    errors: list[str | None] = []
    for path in paths:
        data = contents.get(path, FileNotFoundError(path))
        row: tuple = (None, None, None, None, None)
        error = None
        if isinstance(data, BaseException):
            error = _read_failure(path, data)
        else:
            try:
                row = (data, *probe_image(data, max_pixels=max_pixels, verify=verify))
            except ImageDecodeError as exc:
                error = str(exc)
        if error is not None and on_error == "raise":
            raise ImageReadError(f"cannot read {_display_path(path, protocol)} as an image: {error}")
        for col, value in zip(cols, row):
            col.append(value)
        errors.append(error)
    columns: dict[str, pa.Array] = {"image": image_array(*cols)}
    if include_paths:
        columns["path"] = pa.array([_display_path(p, protocol) for p in paths], type=pa.string())
    if label_from == "folder":
        columns["label"] = pa.array(
            [posixpath.basename(posixpath.dirname(p)) for p in paths], type=pa.string()
        )
    columns["error"] = pa.array(errors, type=pa.string())
    table = pa.table(columns)
    failed = sum(e is not None for e in errors)
    if failed:
        first = next(i for i, e in enumerate(errors) if e is not None)
        action = "dropped" if on_error == "drop" else "kept with a null image and the reason in 'error'"
        message = (
            f"read_images: {failed} of {len(paths)} file(s) in this block could not be read "
            f"({action}); first: {_display_path(paths[first], protocol)}: {errors[first]}"
        )
        warn_failures(message)
    if on_error == "drop":
        import pyarrow.compute as pc

        table = table.filter(pc.is_null(table.column("error"))).drop_columns(["error"])
    elif on_error == "raise":
        table = table.drop_columns(["error"])
    return table


def _read_failure(path: str, exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"file not found: {path} (it was listed but is gone, or never existed)"
    if isinstance(exc, IsADirectoryError):
        return f"is a folder, not a file: {path}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {path}"
    text = str(exc).strip()
    return f"cannot read the file: {type(exc).__name__}{': ' + text if text else ''}"


def _display_path(path: str, protocol: str) -> str:
    return path if protocol == "file" else f"{protocol}://{path}"
