"""Reading and writing frames: local paths and fsspec URLs, files, folders and globs."""

from __future__ import annotations

import posixpath
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs

SCHEMA_FILE = "_framelab_schema.arrow"


def filesystem(url: str, storage_options: dict | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """The fsspec filesystem and bare path for a URL (``s3://``, ``gs://``, ``file://`` or a path).

    Example:
        >>> from framelab.frames.io import filesystem
        >>> fs, path = filesystem("/tmp")
        >>> path
        '/tmp'
    """
    fs, path = fsspec.core.url_to_fs(str(url), **(storage_options or {}))
    return fs, path


def arrow_filesystem(fs: fsspec.AbstractFileSystem) -> pafs.FileSystem:
    """Wrap an fsspec filesystem for pyarrow and Ray Data (local disk stays native)."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    if protocol in ("file", "local"):
        return pafs.LocalFileSystem()
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def expand_paths(
    url: str | list[str], suffixes: tuple[str, ...], storage_options: dict | None = None
) -> tuple[fsspec.AbstractFileSystem, list[str], int]:
    """Files named by a path, folder, glob or list, with their total size in bytes.

    Raises FileNotFoundError naming the path when nothing is there.
    """
    urls = [url] if isinstance(url, (str, bytes)) or hasattr(url, "__fspath__") else list(url)
    if not urls:
        raise FileNotFoundError("no paths were given")
    fs, _ = filesystem(str(urls[0]), storage_options)
    files: list[str] = []
    total = 0
    for one in urls:
        _, path = filesystem(str(one), storage_options)
        if any(ch in path for ch in "*?["):
            matches = sorted(fs.glob(path, detail=True).items())
            if not matches:
                raise FileNotFoundError(f"no files match {one!r}")
            infos = [(p, i) for p, i in matches if i.get("type") == "file"]
        elif fs.isdir(path):
            found = fs.find(path, detail=True)
            infos = sorted(
                (p, i) for p, i in found.items()
                if p.endswith(suffixes) and not posixpath.basename(p).startswith(("_", "."))
            )
            if not infos:
                raise FileNotFoundError(f"no {'/'.join(suffixes)} files in folder {one!r}")
        elif fs.exists(path):
            infos = [(path, fs.info(path))]
        else:
            raise FileNotFoundError(f"no such file or folder: {one!r}")
        for p, info in infos:
            files.append(p)
            total += int(info.get("size") or 0)
    return fs, files, total


def read_table(kind: str, fs: fsspec.AbstractFileSystem, files: list[str], options: dict) -> pa.Table:
    """Read files into one driver-side table."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    from framelab.frames.plan import concat

    arrow_fs = arrow_filesystem(fs)
    if kind == "parquet":
        tables = [pq.read_table(f, filesystem=arrow_fs, columns=options.get("columns")) for f in files]
    else:
        tables = []
        for f in files:
            with arrow_fs.open_input_stream(f) as stream:
                data = pa.py_buffer(stream.read())
            reader = pcsv.read_csv if kind == "csv" else pjson.read_json
            tables.append(reader(pa.BufferReader(data)))
    return concat(tables)


def read_dataset(kind: str, fs: fsspec.AbstractFileSystem, files: list[str], options: dict) -> Any:
    """Read files as a lazy Ray Dataset."""
    import ray.data

    from framelab.platform.session import ensure_connected

    ensure_connected()
    arrow_fs = arrow_filesystem(fs)
    if kind == "parquet":
        return ray.data.read_parquet(files, filesystem=arrow_fs, columns=options.get("columns"))
    if kind == "csv":
        return ray.data.read_csv(files, filesystem=arrow_fs)
    return ray.data.read_json(files, filesystem=arrow_fs)


def write_schema(fs: fsspec.AbstractFileSystem, folder: str, schema: pa.Schema) -> None:
    """Keep the exact Arrow schema (field metadata, extension types) beside the Parquet files."""
    with fs.open(posixpath.join(folder, SCHEMA_FILE), "wb") as f:
        f.write(schema.serialize().to_pybytes())


def read_schema(fs: fsspec.AbstractFileSystem, folder: str) -> pa.Schema | None:
    """The schema saved by :func:`write_schema`, or None for plain Parquet."""
    path = posixpath.join(folder, SCHEMA_FILE)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return pa.ipc.read_schema(pa.py_buffer(f.read()))
