"""Reading and writing tables: Parquet, CSV and newline-delimited JSON, plus the saved-schema sidecar.

A read is told which columns and which filter the rest of the plan needs
(:class:`ReadSpec`): Parquet reads then fetch only those columns, and skip the
row groups whose statistics rule the filter out (in the driver with pyarrow,
on the cluster with Ray Data's own pushdown).

Files read together must agree: every file's schema is read first (Parquet
footers; the first block of a CSV or JSON file), and a file whose columns
differ is refused by name unless the read unifies them (``union_schemas``).
``key=value`` folders become columns (hive partitions), ``.gz`` files are
decompressed, and a file that does not parse is named in the error. How
frames are saved is :mod:`framelab.frames.saved`.

Example:
    >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, polars as pl
    >>> from framelab.frames import io, storage
    >>> from framelab.frames.predicates import pushdown
    >>> path = tempfile.mkdtemp() + "/t.parquet"
    >>> pq.write_table(pa.table({"day": list(range(100)), "x": [0.5] * 100}), path, row_group_size=10)
    >>> fs, files, _, _ = storage.expand_paths(path, (".parquet",))
    >>> spec = io.ReadSpec(columns=("day",), pushed=pushdown(pl.col("day") >= 95, io.file_schema("parquet", fs, files[0])))
    >>> io.row_groups(fs, files, spec)                 # (kept, total): one row group of ten is read
    (1, 10)
    >>> io.read_table("parquet", fs, files, spec).num_rows   # rows of that row group; the Frame filters them exactly
    5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import fsspec
import pyarrow as pa

from framelab.frames.blocks import concat
from framelab.frames.errors import InputError
from framelab.frames.predicates import Pushdown
from framelab.frames.storage import arrow_filesystem
from framelab.platform.session import ensure_connected

SUFFIXES = {
    "parquet": (".parquet", ".pq"),
    "csv": (".csv", ".csv.gz"),
    "json": (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz"),
}
# The start of a CSV or JSON file whose schema is inferred at plan time (pyarrow infers from its first block too).
_SCHEMA_BYTES = 1 << 20
# Footers and first blocks are fetched in parallel: on an object store each one is a request's wait.
_SCHEMA_THREADS = 8


@dataclass(frozen=True)
class ReadSpec:
    """What a read must produce: these columns (None: all), and rows the pushed filter may keep."""

    columns: tuple[str, ...] | None = None
    pushed: Pushdown | None = None

    def describe(self) -> str:
        """The spec as explain() shows it.

        Example:
            >>> from framelab.frames.io import ReadSpec
            >>> ReadSpec(columns=("a", "b")).describe()
            'columns=[a, b]'
        """
        parts = []
        if self.columns is not None:
            parts.append(f"columns=[{', '.join(self.columns)}]")
        if self.pushed is not None:
            parts.append(f"filter={self.pushed.text}")
        return " ".join(parts)


def file_schema(kind: str, fs: fsspec.AbstractFileSystem, path: str) -> pa.Schema:
    """One file's schema: a Parquet footer, or what the first block of a CSV or JSON file infers.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import file_schema
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"x": [1]}), path)
        >>> file_schema("parquet", fsspec.filesystem("file"), path).names
        ['x']
    """
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            return pq.read_schema(path, filesystem=arrow_filesystem(fs))
        data = _read_bytes(fs, path, limit=_SCHEMA_BYTES)
        if len(data) == _SCHEMA_BYTES:  # only whole lines of a longer file
            data = data[: data.rfind(b"\n") + 1] or data
        return _parse(kind, path, data).schema
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise InputError(f"cannot read {path} as {kind.upper()}: {err}") from None


class FilesSchema(NamedTuple):
    """The schema of files read together, and whether every file has exactly that schema."""

    schema: pa.Schema
    uniform: bool


def files_schema(
    kind: str,
    fs: fsspec.AbstractFileSystem,
    files: list[str],
    partitions: dict[str, dict[str, str]] | None = None,
    union_schemas: bool = False,
) -> FilesSchema:
    """The schema of files read together, after checking they agree, plus their hive partition columns.

    A file whose columns (for Parquet: names and types) differ from the
    first file's is refused by name, unless ``union_schemas`` asks for every
    column of every file (a column a file lacks is null there). A column of
    only nulls (type ``null``) fits any type, and CSV and JSON column types,
    inferred per file, are widened to fit all files.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import files_schema
        >>> d = tempfile.mkdtemp()
        >>> pq.write_table(pa.table({"x": [1]}), d + "/a.parquet"); pq.write_table(pa.table({"y": [1]}), d + "/b.parquet")
        >>> found = files_schema("parquet", fsspec.filesystem("file"), [d + "/a.parquet", d + "/b.parquet"], union_schemas=True)
        >>> found.schema.names, found.uniform
        (['x', 'y'], False)
    """
    if not files:
        return FilesSchema(pa.schema([]), True)
    if len(files) == 1:
        schemas = [file_schema(kind, fs, files[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(_SCHEMA_THREADS, len(files))) as pool:
            schemas = list(pool.map(lambda f: file_schema(kind, fs, f), files))
    first = schemas[0]
    if not union_schemas:
        for path, schema in zip(files, schemas):
            problem = _difference(kind, first, schema)
            if problem:
                raise InputError(
                    f"{path} does not match {files[0]}: {problem}. Files read together need the same columns; "
                    "move the odd file out, or pass union_schemas=True to read every column of every file "
                    "(a column a file lacks is null there)"
                )
    try:
        schema = pa.unify_schemas(schemas, promote_options="permissive") if len(schemas) > 1 else first
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise InputError(f"the columns of {', '.join(files[:3])}... cannot be unified: {err}") from None
    schema = pa.schema(list(schema), metadata=first.metadata)
    uniform = all(s.equals(first, check_metadata=False) for s in schemas)
    return FilesSchema(_with_partitions(schema, partitions or {}), uniform)


def _difference(kind: str, first: pa.Schema, other: pa.Schema) -> str | None:
    if first.names != other.names:
        return f"it has columns {other.names}, the first file has {first.names}"
    if kind != "parquet":
        return None  # CSV and JSON types are inferred per file and widened to fit them all
    for a, b in zip(first, other):
        if a.type != b.type and not pa.types.is_null(a.type) and not pa.types.is_null(b.type):
            return f"its column {a.name!r} is {b.type}, in the first file {a.type}"
    return None


def _with_partitions(schema: pa.Schema, partitions: dict[str, dict[str, str]]) -> pa.Schema:
    """The schema with a column per partition key: int64 when every value is an integer, else string."""
    keys: list[str] = []
    for values in partitions.values():
        keys.extend(k for k in values if k not in keys)
    fields = list(schema)
    for key in keys:
        if key in schema.names:
            raise InputError(
                f"the partition folders name {key!r}, and the files have a column {key!r} too; "
                "rename the folders or the column"
            )
        values = [v[key] for v in partitions.values() if key in v]
        fields.append(pa.field(key, pa.int64() if all(_is_int(v) for v in values) else pa.string()))
    return pa.schema(fields, metadata=schema.metadata)


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def row_groups(fs: fsspec.AbstractFileSystem, files: list[str], spec: ReadSpec) -> tuple[int, int]:
    """(row groups the read keeps, row groups in the files), from the Parquet footers alone.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import ReadSpec, row_groups
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"x": list(range(10))}), path, row_group_size=5)
        >>> row_groups(fsspec.filesystem("file"), [path], ReadSpec())
        (2, 2)
    """
    kept = total = 0
    for _, groups, count, _ in _plan_parquet(fs, files, spec):
        kept += len(groups)
        total += count
    return kept, total


def read_table(
    kind: str,
    fs: fsspec.AbstractFileSystem,
    files: list[str],
    spec: ReadSpec | None = None,
    *,
    schema: pa.Schema | None = None,
    partitions: dict[str, dict[str, str]] | None = None,
) -> pa.Table:
    """Read files into one table in the driver, only the columns and row groups ``spec`` needs.

    ``schema`` (from :func:`files_schema`) is what every file's rows are
    given: its partition columns, a null for a column a file lacks, its types.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import ReadSpec, read_table
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), path)
        >>> read_table("parquet", fsspec.filesystem("file"), [path], ReadSpec(columns=("y",))).to_pydict()
        {'y': ['a', 'b']}
    """
    spec = spec or ReadSpec()
    partitions = partitions or {}
    target = None
    if schema is not None:
        target = schema if spec.columns is None else pa.schema([schema.field(c) for c in spec.columns], metadata=schema.metadata)
    tables = []
    if kind == "parquet":
        for path, groups, count, footer in _plan_parquet(fs, files, spec):
            tables.append(_conform(_read_parquet(fs, footer, path, groups, count, spec), path, partitions, target))
    else:
        for path in files:
            table = _parse(kind, path, _read_bytes(fs, path))
            tables.append(_conform(table, path, partitions, target or _file_columns(table, spec)))
    if not tables:
        empty = target or (file_schema("parquet", fs, files[0]) if files and kind == "parquet" else pa.schema([]))
        return empty.empty_table() if spec.columns is None or target is not None else empty.empty_table().select(list(spec.columns))
    table = concat(tables)
    if spec.pushed is not None and table.num_rows:
        table = table.filter(spec.pushed.to_pyarrow())
    return table


def read_dataset(
    kind: str,
    fs: fsspec.AbstractFileSystem,
    files: list[str],
    spec: ReadSpec | None = None,
    *,
    schema: pa.Schema | None = None,
    partitions: dict[str, dict[str, str]] | None = None,
    uniform: bool = True,
) -> Any:
    """Read files as a lazy Ray Dataset; Ray Data pushes ``spec``'s columns and filter into its Parquet reads.

    Parquet files of one schema without partition columns (``uniform``) are
    read by Ray Data itself (split by row group); anything else is read file by file on
    the cluster by :func:`read_table`, so every file's checks and errors are
    the driver's own.

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import ReadSpec, read_dataset
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"x": [1, 2], "y": ["a", "b"]}), path)
        >>> read_dataset("parquet", fsspec.filesystem("file"), [path], ReadSpec(columns=("x",))).count()
        2
    """
    import ray.data

    ensure_connected()
    spec = spec or ReadSpec()
    if kind == "parquet" and not partitions and uniform:
        dataset = ray.data.read_parquet(files, filesystem=arrow_filesystem(fs))
        if spec.columns is not None:
            dataset = dataset.select_columns(list(spec.columns))
        if spec.pushed is not None:
            dataset = dataset.filter(expr=spec.pushed.to_ray())
        return dataset
    listed = ray.data.from_items([{"path": f} for f in files], override_num_blocks=max(1, min(len(files), 200)))
    # The reader's InputError naming a file, not Ray Data's UserCodeException (which loses it on the way back).
    listed.context.raise_original_map_exception = True
    reader = _ReadEach(kind, fs, spec, schema, partitions or {})
    return listed.map_batches(reader, batch_format="pyarrow", batch_size=1)


class _ReadEach:
    """A block of file paths -> their rows (the cluster side of :func:`read_table`)."""

    def __init__(self, kind: str, fs: fsspec.AbstractFileSystem, spec: ReadSpec, schema: pa.Schema | None,
                 partitions: dict[str, dict[str, str]]):
        self.kind, self.fs, self.spec, self.schema, self.partitions = kind, fs, spec, schema, partitions

    def __call__(self, batch: pa.Table) -> pa.Table:
        files = batch.column("path").to_pylist()
        return read_table(self.kind, self.fs, files, self.spec, schema=self.schema,
                          partitions={f: self.partitions[f] for f in files if f in self.partitions})


def _compression(path: str) -> str | None:
    return "gzip" if path.lower().endswith(".gz") else None


def _read_bytes(fs: fsspec.AbstractFileSystem, path: str, limit: int | None = None) -> bytes:
    """A file's bytes, decompressed when its name ends in ``.gz`` (at most ``limit`` of them)."""
    with arrow_filesystem(fs).open_input_stream(path, compression=_compression(path)) as stream:
        return stream.read() if limit is None else stream.read(limit)


def _parse(kind: str, path: str, data: bytes) -> pa.Table:
    """Parse CSV or JSON bytes; an error names the file, and for CSV the line."""
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson

    bad: list[Any] = []

    def invalid_row(row: Any) -> str:
        bad.append(row)
        return "error"

    try:
        if kind == "csv":
            return pcsv.read_csv(pa.BufferReader(data), parse_options=pcsv.ParseOptions(invalid_row_handler=invalid_row))
        return pjson.read_json(pa.BufferReader(data))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        where = ""
        if bad and bad[0].text is not None:
            lines = data.decode("utf-8", "replace").splitlines()
            if bad[0].text in lines:
                where = f" at line {lines.index(bad[0].text) + 1}"
        raise InputError(f"cannot parse {path} as {kind.upper()}{where}: {err}") from None


def _file_columns(table: pa.Table, spec: ReadSpec) -> pa.Schema | None:
    return None if spec.columns is None else pa.schema([table.schema.field(c) for c in spec.columns if c in table.column_names])


def _conform(table: pa.Table, path: str, partitions: dict[str, dict[str, str]], target: pa.Schema | None) -> pa.Table:
    """One file's rows with its partition values added, shaped as ``target`` (a null for a column it lacks)."""
    values = partitions.get(path, {})
    if target is None:
        return table
    if not len(target):
        return table.select([])  # a count: the rows, no columns
    columns = []
    for field in target:
        if field.name in values:
            raw = values[field.name]
            columns.append(pa.array([int(raw) if pa.types.is_integer(field.type) else raw] * table.num_rows, field.type))
        elif field.name in table.column_names:
            column = table.column(field.name)
            if column.type != field.type:
                try:
                    column = column.cast(field.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as err:
                    raise InputError(f"column {field.name!r} of {path} cannot be read as {field.type}: {err}") from None
            columns.append(column)
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=target)


def _read_parquet(fs: fsspec.AbstractFileSystem, footer: Any, path: str, groups: list[int], count: int,
                  spec: ReadSpec) -> pa.Table:
    """The row groups and columns ``spec`` needs of one Parquet file (opened by the plan, which read its footer)."""
    import pyarrow.parquet as pq

    names = footer.schema_arrow.names
    columns = None if spec.columns is None else [c for c in spec.columns if c in names]
    try:
        if len(groups) == count:
            # pyarrow's dataset reader: it pre-buffers and reads columns in parallel (about twice ParquetFile.read's speed).
            return pq.read_table(path, filesystem=arrow_filesystem(fs), columns=columns)
        return footer.read_row_groups(groups, columns=columns)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise InputError(f"cannot read {path} as PARQUET: {err}") from None


def parquet_rows(fs: fsspec.AbstractFileSystem, files: list[str]) -> int:
    """Rows in Parquet files, from their footers (nothing else is read).

    Example:
        >>> import tempfile, pyarrow as pa, pyarrow.parquet as pq, fsspec
        >>> from framelab.frames.io import parquet_rows
        >>> path = tempfile.mkdtemp() + "/t.parquet"
        >>> pq.write_table(pa.table({"x": [1, 2, 3]}), path)
        >>> parquet_rows(fsspec.filesystem("file"), [path])
        3
    """
    import pyarrow.parquet as pq

    arrow_fs = arrow_filesystem(fs)
    return sum(pq.ParquetFile(f, filesystem=arrow_fs).metadata.num_rows for f in files)


def _plan_parquet(fs: fsspec.AbstractFileSystem, files: list[str], spec: ReadSpec) -> list[tuple[str, list[int], int, Any]]:
    """(file, row groups to read, row groups in the file, the opened file) for each file, pruned by the pushed filter."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    arrow_fs = arrow_filesystem(fs)
    plan = []
    expression = spec.pushed.to_pyarrow() if spec.pushed is not None else None
    parquet = pads.ParquetFileFormat()
    for path in files:
        try:
            footer = pq.ParquetFile(path, filesystem=arrow_fs)
        except (pa.ArrowInvalid, OSError) as err:
            if isinstance(err, FileNotFoundError):
                raise
            raise InputError(f"cannot read {path} as PARQUET: {err}") from None
        count = footer.metadata.num_row_groups
        groups = list(range(count))
        # A column the file lacks (a partition column, or one a union adds) reads as null there:
        # pruning on it would drop row groups the partition value keeps.
        in_file = expression is not None and set(spec.pushed.columns) <= set(footer.schema_arrow.names)
        if in_file and count:
            try:
                fragment = parquet.make_fragment(path, filesystem=arrow_fs)
                groups = [piece.row_groups[0].id for piece in fragment.split_by_row_group(filter=expression)]
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                groups = list(range(count))  # statistics pyarrow cannot use: read them all
        plan.append((path, groups, count, footer))
    return plan
