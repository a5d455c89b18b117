"""Reading image files into a frame: folders, file lists, globs and fsspec URLs, in parallel.

The driver never lists a folder and never holds the files' bytes. It builds a
three-stage Ray Data pipeline: list each root (one task per root), walk its
sub-folders (one task per sub-folder, so a bucket of class folders lists in
parallel), then read and check the files in blocks of :data:`FILES_PER_BLOCK`
paths. Every stage streams, so reading starts while listing is still going
and memory stays bounded by Ray Data's backpressure, not by the corpus size.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from framelab.frames import storage
from framelab.frames.errors import InputError
from framelab.frames.images.decode import DEFAULT_MAX_PIXELS, ImageDecodeError, probe_image
from framelab.frames.images.image_type import image_array, image_type
from framelab.frames.logical import DatasetScan
from framelab.frames.sampling import row_key_field
from framelab.frames.validation import check_choice
from framelab.platform import failures
from framelab.platform.resources import FEEDER_CPUS
from framelab.platform.session import ensure_connected

if TYPE_CHECKING:
    import fsspec

    from framelab.frames.logical import DatasetScan

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


@dataclass(frozen=True)
class ReadOptions:
    """How :func:`read_images` reads: every option, checked once, here.

    Args:
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
        >>> from framelab.frames.images import ReadOptions
        >>> ReadOptions(label_from="folder", extensions=("JPG",)).extensions
        ('.jpg',)
        >>> ReadOptions(on_error="ignore")
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: on_error must be one of 'null', 'drop', 'raise', got 'ignore'
    """

    recursive: bool = True
    label_from: str | None = None
    extensions: tuple[str, ...] = DEFAULT_EXTENSIONS
    include_paths: bool = True
    on_error: str = "null"
    storage_options: dict | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    verify: bool | str = True

    def __post_init__(self) -> None:
        check_choice("on_error", self.on_error, ON_ERROR)
        check_choice("label_from", self.label_from, LABEL_FROM)
        if isinstance(self.extensions, str) or not all(isinstance(e, str) for e in self.extensions):
            raise InputError(f"extensions must be a tuple of file endings like ('.jpg', '.png'), got {self.extensions!r}")
        if self.verify not in (True, False, "full"):
            raise InputError(f"verify must be True, False or 'full', got {self.verify!r}")
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels <= 0:
            raise InputError(f"max_pixels must be a positive int, got {self.max_pixels!r}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in self.extensions)
        object.__setattr__(self, "extensions", exts)

    @classmethod
    def of(cls, options: ReadOptions | None = None, **overrides: Any) -> ReadOptions:
        """``options`` (the defaults when None) with ``overrides``; unknown names are refused by name.

        Example:
            >>> from framelab.frames.images import ReadOptions
            >>> ReadOptions.of(label_from="folder").label_from
            'folder'
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InputError(f"read_images has no option {', '.join(map(repr, unknown))}; its options are {sorted(known)}")
        return replace(options or cls(), **overrides)

    def schema(self, key_folders: list[str] | None = None) -> pa.Schema:
        """The columns a read with these options gives, known before anything is read.

        ``key_folders`` (see :func:`key_folders`) marks ``path`` as the row key.

        Example:
            >>> from framelab.frames.images import ReadOptions
            >>> ReadOptions(label_from="folder").schema().names
            ['image', 'path', 'label', 'error']
        """
        fields_ = [pa.field("image", image_type())]
        if self.include_paths:
            fields_.append(_path_field(key_folders))
        if self.label_from == "folder":
            fields_.append(pa.field("label", pa.string()))
        if self.on_error == "null":
            fields_.append(pa.field("error", pa.string()))
        return pa.schema(fields_)


def image_scan(paths: str | Sequence[str], options: ReadOptions) -> DatasetScan:
    """The plan's source node for a read: paths checked now, the Ray Data pipeline built on first use.

    Example:
        >>> import tempfile
        >>> from framelab.frames.images.read import ReadOptions, image_scan
        >>> image_scan(tempfile.mkdtemp(), ReadOptions()).describe()   # nothing is read yet
        'read_images(lazy)'
    """
    roots = _check_paths(paths)
    fs, _ = storage.filesystem(roots[0], options.storage_options)
    with storage.translated_errors(roots[0], fs, "list images in"):
        schema = options.schema(key_folders(fs, roots, options.extensions))
    return DatasetScan(factory=lambda: read_images_dataset(roots, options), schema=schema, label="read_images")


def read_images_dataset(paths: str | Sequence[str], options: ReadOptions | None = None) -> Any:
    """The lazy ``ray.data.Dataset`` behind :meth:`Frame.read_images <framelab.frames.frame.Frame.read_images>`.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> from framelab.frames.images.read import read_images_dataset
        >>> folder = tempfile.mkdtemp()
        >>> Image.new("RGB", (8, 6)).save(f"{folder}/one.png")
        >>> read_images_dataset(folder).count()
        1
    """
    import ray.data

    options = options or ReadOptions()
    roots = _check_paths(paths)
    ensure_connected()
    fs, _ = storage.filesystem(roots[0], options.storage_options)
    # Entries named like image files are read as files without asking the
    # store; anything else (folders, globs) is listed by a worker.
    rows = [
        {"path": storage.filesystem(r, options.storage_options)[1],
         "kind": "file" if _keep(r, options.extensions) and not storage.is_glob(r) else "root"}
        for r in roots
    ]
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
    # A task's own error, not Ray Data's UserCodeException around it (whose cause does not survive the
    # trip to the driver), so remote_errors can raise on_error="raise"'s ImageReadError as itself.
    ctx.raise_original_map_exception = True
    if hasattr(ctx, "_max_num_blocks_in_streaming_gen_buffer"):
        ctx._max_num_blocks_in_streaming_gen_buffer = 64
    if any(r["kind"] == "root" for r in rows):
        # A listing task asks for little CPU: it waits on the store, and a
        # distinct CPU request keeps Ray Data from fusing it with the readers
        # (fused, the whole read would run as one task).
        listed = listed.map_batches(
            _ListFiles(fs, options), batch_format="pyarrow", batch_size=1, num_cpus=_LIST_CPUS
        )
    reader = _ReadFiles(fs, options, storage.protocol(fs), key_folders(fs, roots, options.extensions))
    split = listed.repartition(target_num_rows_per_block=FILES_PER_BLOCK)
    # Reading runs beside model pools that leave a sliver of CPU on each node (a node of 1 CPU keeps
    # a quarter): a step asking for a whole CPU waited there forever. So the read's steps ask for a
    # feeder's share (a reader mostly waits on files and checks headers; images decode later).
    _ask_for(split, FEEDER_CPUS["cpu"])
    return split.map_batches(reader, batch_format="pyarrow", batch_size=None, num_cpus=FEEDER_CPUS["cpu"])


def _ask_for(dataset: Any, num_cpus: float) -> None:
    """Set the CPUs of a dataset's last step where Ray Data takes no argument for it (repartition)."""
    op = getattr(getattr(dataset, "_logical_plan", None), "dag", None)
    args = getattr(op, "ray_remote_args", None)
    if isinstance(args, dict):
        args["num_cpus"] = num_cpus


def _check_paths(paths: Any) -> list[str]:
    """The roots as strings: one filesystem, and a single local root that exists."""
    import os

    if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
        roots = [str(paths)]
    elif isinstance(paths, Sequence) or hasattr(paths, "__iter__"):
        roots = [str(p) for p in paths]
    else:
        raise InputError(f"paths must be a path, URL, glob or a list of them; got {type(paths).__name__}")
    if not roots:
        raise InputError("read_images needs at least one path; got an empty list")
    protocols = {storage.url_protocol(r) for r in roots}
    if len(protocols) > 1:
        raise InputError(f"all paths must be on one filesystem; got {sorted(protocols)}")
    if len(roots) == 1 and storage.url_protocol(roots[0]) == "file":
        local = roots[0][len("file://"):] if roots[0].startswith("file://") else roots[0]
        if not storage.is_glob(local) and not os.path.exists(local):
            raise FileNotFoundError(f"no such file or folder: {roots[0]!r}")
    return roots


def key_folders(fs: fsspec.AbstractFileSystem, roots: list[str], exts: tuple[str, ...]) -> list[str]:
    """The folders each row's key is taken relative to: the roots that are not single image files.

    A glob's folder is the part before its first wildcard; a file named on its
    own is keyed by its file name. The same images read from another folder or
    bucket then get the same keys, so a seeded ``random_split`` splits them the
    same way.

    Example:
        >>> import fsspec
        >>> from framelab.frames.images.read import key_folders
        >>> key_folders(fsspec.filesystem("file"), ["/data/photos", "/data/more/*/*.jpg", "/x/a.jpg"], (".jpg",))
        ['/data/more', '/data/photos']
    """
    protocol = storage.protocol(fs)
    folders = []
    for root in roots:
        if _keep(root, exts) and not storage.is_glob(root):
            continue
        path = storage.filesystem(root)[1] if protocol == "file" else fs._strip_protocol(root)
        if storage.is_glob(path):
            path = path[: min(path.find(ch) for ch in "*?[" if ch in path)].rsplit("/", 1)[0]
        folders.append(_display_path(path.rstrip("/") or "/", protocol))
    return sorted(set(folders))


def _path_field(folders: list[str] | None) -> pa.Field:
    field = pa.field("path", pa.string())
    return field if folders is None else row_key_field(field, folders)


def _keep(path: str, exts: tuple[str, ...]) -> bool:
    return not storage.is_hidden(path) and storage.has_suffix(path, exts)


def _paths_table(rows: list[tuple[str, str]]) -> pa.Table:
    return pa.table(
        {"path": [p for p, _ in rows], "kind": [k for _, k in rows]}, schema=_PATHS_SCHEMA
    )


class _ListFiles:
    """Stage 1: a root (folder, file or glob) -> its files, in blocks, as they are found.

    Sub-folders are walked by a small thread pool: listing an object store is
    waiting on requests, so a task keeps several in flight instead of one.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, options: ReadOptions):
        self.fs, self.exts, self.recursive = fs, options.extensions, options.recursive

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        files: list[tuple[str, str]] = []
        protocol = storage.protocol(self.fs)
        for root, kind in zip(batch.column("path").to_pylist(), batch.column("kind").to_pylist()):
            if kind == "root":
                # Raised here, in the task, as framelab's StorageError: the driver surfaces it as itself.
                with storage.translated_errors(_display_path(root, protocol), self.fs, "list images in"):
                    yield from self._list(root)
            else:
                files.append((root, kind))
        if files:
            yield _paths_table(files)

    def _list(self, root: str) -> Iterator[pa.Table]:
        fs = self.fs
        local = storage.protocol(fs) == "file"
        if storage.is_glob(root):
            found = sorted(fs.glob(root, detail=True).items())
            # A pipe or device the glob matches is listed too: its row gets an error, it is never opened.
            files = [(p, "file") for p, info in found
                     if info.get("type") != "directory" and not (local and os.path.isdir(p))]
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
        if local:
            # Local folders are walked by storage.walk: symbolic links to folders are followed (a loop is
            # read once), and pipes, sockets and devices are listed, so their rows say what they are.
            base = root.rstrip("/")
            files = [(p, "file") for p, _ in storage.walk(fs, root)
                     if _keep(p, self.exts) and (self.recursive or posixpath.dirname(p) == base)]
            yield from _chunks(files)
            return
        files, folders = [], []
        for entry in sorted(fs.ls(root, detail=True), key=lambda e: e["name"]):
            name = entry["name"]
            if entry.get("type") == "directory":
                if self.recursive and not storage.is_hidden(name):
                    folders.append(name)
            elif _keep(name, self.exts):
                files.append((name, "file"))
        yield from _chunks(files)
        if not folders:
            return
        from concurrent.futures import ThreadPoolExecutor

        def walk(folder: str) -> list[tuple[str, str]]:
            return [(p, "file") for p, _ in storage.walk(fs, folder) if _keep(p, self.exts)]

        with ThreadPoolExecutor(max_workers=min(_LIST_THREADS, len(folders))) as pool:
            for found in pool.map(walk, folders):
                yield from _chunks(found)


def _chunks(rows: list[tuple[str, str]]) -> Iterator[pa.Table]:
    for i in range(0, len(rows), FILES_PER_BLOCK):
        yield _paths_table(rows[i : i + FILES_PER_BLOCK])


class _ReadFiles:
    """Stage 3: a block of paths -> image rows, one row per path whatever happens to the file."""

    def __init__(self, fs: fsspec.AbstractFileSystem, options: ReadOptions, protocol: str, folders: list[str]):
        self.fs = fs
        self.options = options
        self.protocol = protocol
        self.folders = folders

    def __call__(self, batch: pa.Table) -> pa.Table:
        table = read_block(self.fs, batch.column("path").to_pylist(), self.options, protocol=self.protocol)
        if "path" not in table.column_names:
            return table
        index = table.column_names.index("path")
        return table.set_column(index, _path_field(self.folders), table.column(index))


def read_block(
    fs: fsspec.AbstractFileSystem, paths: list[str], options: ReadOptions | None = None, *, protocol: str = "file"
) -> pa.Table:
    """Read and check one block of image files (the work of one read task).

    Example:
        >>> import fsspec
        >>> from framelab.frames.images.read import read_block
        >>> read_block(fsspec.filesystem("file"), ["/nope.jpg"]).column("error")[0]
        <pyarrow.StringScalar: 'file not found: /nope.jpg (it was listed but is gone, or never existed)'>
    """
    options = options or ReadOptions()
    # A pipe, socket or device is never opened: reading one could block the task forever.
    refused = {p: problem for p in paths if (problem := storage.regular_file_problem(p))} if protocol == "file" else {}
    wanted = [p for p in paths if p not in refused]
    contents = fs.cat(wanted, on_error="return") if wanted else {}
    if len(wanted) == 1 and not isinstance(contents, dict):
        contents = {wanted[0]: contents}
    contents.update({p: _NotRegularFile(f"the path {problem}") for p, problem in refused.items()})
    cols: list[list] = [[], [], [], [], []]
    errors: list[str | None] = []
    for path in paths:
        data = contents.get(path, FileNotFoundError(path))
        row: tuple = (None, None, None, None, None)
        error = None
        if isinstance(data, BaseException):
            # A store that refuses the credentials says so, naming bucket and endpoint, in each row it refuses.
            error = storage.describe_failure(_display_path(path, protocol), fs, "read", data) or _read_failure(path, data)
        else:
            try:
                row = (data, *probe_image(data, max_pixels=options.max_pixels, verify=options.verify))
            except ImageDecodeError as exc:
                error = str(exc)
        if error is not None and options.on_error == "raise":
            raise ImageReadError(f"cannot read {_display_path(path, protocol)} as an image: {error}")
        for col, value in zip(cols, row):
            col.append(value)
        errors.append(error)
    columns: dict[str, pa.Array] = {"image": image_array(*cols)}
    if options.include_paths:
        columns["path"] = pa.array([_display_path(p, protocol) for p in paths], type=pa.string())
    if options.label_from == "folder":
        columns["label"] = pa.array(
            [posixpath.basename(posixpath.dirname(p)) for p in paths], type=pa.string()
        )
    columns["error"] = pa.array(errors, type=pa.string())
    table = pa.table(columns)
    bad = [i for i, e in enumerate(errors) if e is not None]
    action = "dropped" if options.on_error == "drop" else "kept with a null image and the reason in 'error'"
    examples = [f"{_display_path(paths[i], protocol)}: {errors[i]}" for i in bad[:3]]
    # Every block reports, a clean one too: the warning's total is the job's files, not those of the bad blocks.
    failures.report("read_images", len(bad), len(paths), examples, action=action, unit="file(s)")
    if options.on_error == "drop":
        import pyarrow.compute as pc

        table = table.filter(pc.is_null(table.column("error"))).drop_columns(["error"])
    elif options.on_error == "raise":
        table = table.drop_columns(["error"])
    return table


class _NotRegularFile(OSError):
    """A listed path that is not a regular file (a pipe, socket or device), refused without opening it."""


def _read_failure(path: str, exc: BaseException) -> str:
    if isinstance(exc, _NotRegularFile):
        return str(exc)
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
