"""Where a frame's rows come from: the plan's leaf nodes for data files and saved frames.

A reader's work at call time is only what makes its errors early: the files
are listed and their schemas checked (a file that does not fit is named at
the read, not mid-job); nothing is read. The planner later decides which
columns and row groups to read, and where.

Example:
    >>> import tempfile
    >>> from framelab.frames import Frame
    >>> from framelab.frames.sources import file_scan
    >>> d = tempfile.mkdtemp()
    >>> Frame({"x": [1, 2], "y": ["a", "b"]}).save(d)
    >>> file_scan("parquet", d, None, columns=["y"]).schema().names
    ['y']
"""

from __future__ import annotations

from framelab.frames import blockwise, io, logical, saved, storage
from framelab.frames.errors import check_columns

# Times a read starts again on the new version of a saved frame replaced while it read: each try is one
# manifest read and the parts' reads, so only a writer replacing the frame faster than that, every time, wins.
READ_RETRIES = 5


def file_scan(kind: str, url: str | list[str], storage_options: dict | None, columns: list[str] | None = None,
              union_schemas: bool = False) -> logical.Node:
    """The leaf for files of ``kind`` (parquet, csv, json) at ``url``; a folder :func:`saved_frame` wrote reads as that.

    Example:
        >>> import pathlib, tempfile
        >>> from framelab.frames.sources import file_scan
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
        >>> _ = p.write_text("x,y\\n1,a\\n")
        >>> file_scan("csv", str(p), None).describe()
        'ReadCsv(1 file(s), 0.0 MB)'
    """
    first = url if isinstance(url, str) else str(next(iter(url), ""))
    with storage.translated_errors(first, storage.filesystem(first, storage_options)[0], f"read {kind} from"):
        if kind == "parquet" and isinstance(url, str) and not storage.is_glob(url):
            fs, folder = storage.filesystem(url, storage_options)
            if saved.read_manifest(fs, folder) is not None:  # a saved frame: exactly the parts it lists
                node = saved_frame(url, storage_options=storage_options)
                if columns is None:
                    return node
                check_columns(columns, node.schema().names)
                return logical.Project(node, list(columns))
        listing = storage.expand_paths(url, io.SUFFIXES[kind], storage_options)
        node = logical.FileScan(kind, listing.fs, listing.files, listing.total_bytes, columns,
                                listing.partitions, union_schemas)
        node.schema()  # every file's schema is checked now, so a file that does not fit is named at the read
    return node


def saved_frame(url: str, *, verify: bool = False, storage_options: dict | None = None) -> logical.Node:
    """The leaf for a frame :func:`framelab.frames.saved.save` wrote: the parts its manifest lists, schema restored.

    Example:
        >>> import tempfile
        >>> import pyarrow as pa
        >>> from framelab.frames import Frame
        >>> from framelab.frames.sources import saved_frame
        >>> d = tempfile.mkdtemp()
        >>> Frame(pa.table({"x": pa.array([1], pa.int8())})).save(d)
        >>> saved_frame(d).schema().field("x").type
        DataType(int8)
    """
    fs, folder = storage.filesystem(url, storage_options)
    with storage.translated_errors(url, fs, "load a frame from"):
        if not fs.exists(folder):
            raise FileNotFoundError(f"no saved frame at {url!r}")
        manifest, files = saved.checked_parts(fs, folder, url, verify=verify)
    if not files:
        return logical.InMemory(manifest.schema.empty_table())
    total = sum(p.bytes for p in manifest.parts)
    scan = logical.FileScan("parquet", fs, files, total, known_schema=manifest.schema)
    leaf = logical.Map(scan, blockwise.RestoreSchema(manifest.schema), "restore_schema", reads=(), writes=())
    leaf.saved_from = (url, storage_options, tuple(files))  # what reread_saved needs to read it again
    return leaf


def reread_saved(node: logical.Node) -> logical.Node | None:
    """The same plan over the current version of the saved frame it reads, or None when that frame was not replaced.

    A frame loaded lazily reads its parts when a result is asked for; if a
    save replaced the frame in between, its parts may be gone. The planner
    then runs the plan again over the new version, whole (up to
    :data:`READ_RETRIES` times) (a plan over
    one saved frame through one-input steps; anything else is not retried).

    Example:
        >>> import tempfile
        >>> from framelab.frames import Frame
        >>> from framelab.frames.sources import reread_saved
        >>> d = tempfile.mkdtemp()
        >>> Frame({"x": [1]}).save(d); loaded = Frame.load(d); Frame({"x": [2]}).save(d)
        >>> Frame._make(reread_saved(loaded._node)).to_pydict()
        {'x': [2]}
    """
    found = getattr(node, "saved_from", None)
    if found is not None:
        url, options, files = found
        fresh = saved_frame(url, storage_options=options)
        same = getattr(fresh, "saved_from", (None, None, ()))[2] == files
        return None if same or not fresh.schema().equals(node.schema()) else fresh
    if len(node.inputs) != 1 or not hasattr(node, "input"):
        return None
    inner = reread_saved(node.inputs[0])
    return None if inner is None else node.with_input(inner)
