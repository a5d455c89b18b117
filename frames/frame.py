"""The Frame: an immutable, lazy, Arrow-typed table spread over Ray Data blocks."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from framelab.frames import aggregates, io, joins, sampling
from framelab.frames.errors import (
    ExpressionError,
    FramelabError,
    InputError,
    SchemaMismatchError,
    check_columns,
)
from framelab.frames.expressions import (
    ColumnExpr,
    check_blockwise,
    evaluate,
    normalize_type,
    row_function,
    storage_table,
)
from framelab.frames.plan import (
    LOCAL_BYTES,
    BlockOp,
    DatasetSource,
    TableSource,
    apply_ops,
    concat,
    fetch_blocks,
    to_dataset,
)
from framelab.frames.vectors import is_vector_type, vectors_from_numpy, vectors_to_numpy

Expr = pl.Expr | ColumnExpr | Callable[[dict], Any]
BATCH_FORMATS = ("arrow", "polars", "pandas", "numpy")


@contextlib.contextmanager
def _surface_errors() -> Iterator[None]:
    """Re-raise framelab's own errors from inside Ray tasks without Ray's wrapping."""
    try:
        yield
    except FramelabError:
        raise
    except Exception as exc:
        cause: BaseException | None = exc
        seen = 0
        while cause is not None and seen < 20:
            if isinstance(cause, FramelabError):
                raise cause.with_traceback(None) from None
            inner = getattr(cause, "cause", None)
            cause = inner if isinstance(inner, BaseException) else cause.__cause__
            seen += 1
        raise


def _to_table(data: Any) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pl.DataFrame):
        return _normalize_table(data.to_arrow())
    if type(data).__name__ == "DataFrame" and hasattr(data, "to_numpy"):  # pandas
        return _normalize_table(pa.Table.from_pandas(data, preserve_index=False).replace_schema_metadata(None))
    if isinstance(data, Mapping):
        columns = {}
        for name, values in data.items():
            if isinstance(values, np.ndarray) and values.ndim == 2:
                columns[str(name)] = vectors_from_numpy(values)
            else:
                columns[str(name)] = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            sizes = {k: len(v) for k, v in columns.items()}
            raise InputError(f"columns must all have the same length, got {sizes}")
        return pa.table(columns)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        if data and not isinstance(data[0], Mapping):
            raise InputError("a list of rows must hold dicts, e.g. [{'x': 1}, {'x': 2}]")
        return pa.Table.from_pylist(list(data))
    raise InputError(
        f"cannot build a Frame from {type(data).__name__}; pass a dict of columns, a list of row "
        "dicts, a pyarrow Table, a polars or pandas DataFrame, or use Frame.read_parquet(...)"
    )


def _set_column(table: pa.Table, name: str, column: pa.Array | pa.ChunkedArray) -> pa.Table:
    field = pa.field(name, column.type)
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), field, column)
    return table.append_column(field, column)


class Frame:
    """An immutable, lazy table of typed columns, spread over a Ray cluster when it is big.

    Build one from a dict of columns, a list of row dicts, a pyarrow Table, or a
    polars or pandas DataFrame; or read one with :meth:`read_parquet`,
    :meth:`read_csv`, :meth:`read_json`, :meth:`load`. Every method returns a
    new Frame; nothing runs until a result is asked for.

    Example:
        >>> import polars as pl
        >>> from framelab.frames import Frame
        >>> f = Frame({"x": [1, 2, 3], "label": ["a", "b", "a"]})
        >>> f.filter(pl.col("label") == "a").with_column("y", pl.col("x") * 10).to_pydict()
        {'x': [1, 3], 'label': ['a', 'a'], 'y': [10, 30]}
    """

    __slots__ = ("_source", "_ops", "_cache")

    def __init__(self, data: Any = None):
        table = pa.table({}) if data is None else _to_table(data)
        self._source: TableSource | DatasetSource = TableSource(table)
        self._ops: tuple[BlockOp, ...] = ()
        self._cache: dict[str, Any] = {}

    # ----------------------------------------------------------------- building
    @classmethod
    def _make(cls, source: TableSource | DatasetSource, ops: tuple[BlockOp, ...] = ()) -> Frame:
        frame = cls.__new__(cls)
        frame._source = source
        frame._ops = ops
        frame._cache = {}
        return frame

    def _then(self, op: BlockOp) -> Frame:
        return Frame._make(self._source, self._ops + (op,))

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Frame:
        """A Frame over a pyarrow Table (kept in the driver until it needs the cluster).

        Example:
            >>> import pyarrow as pa
            >>> from framelab.frames import Frame
            >>> Frame.from_arrow(pa.table({"x": [1]})).num_rows()
            1
        """
        return cls(table)

    @classmethod
    def from_polars(cls, df: pl.DataFrame) -> Frame:
        """A Frame from a polars DataFrame.

        Example:
            >>> import polars as pl
            >>> from framelab.frames import Frame
            >>> Frame.from_polars(pl.DataFrame({"x": [1, 2]})).columns
            ['x']
        """
        return cls(df)

    @classmethod
    def from_pandas(cls, df: Any) -> Frame:
        """A Frame from a pandas DataFrame (the index is dropped).

        Example:
            >>> import pandas as pd
            >>> from framelab.frames import Frame
            >>> Frame.from_pandas(pd.DataFrame({"x": [1, 2]})).num_rows()
            2
        """
        return cls(df)

    @classmethod
    def from_ray(cls, dataset: Any, schema: pa.Schema | None = None) -> Frame:
        """A Frame over a Ray Dataset, lazily (nothing is executed).

        Pass ``schema`` when you know the dataset's Arrow schema: then
        ``frame.schema`` and operations that need it never run the pipeline
        (without it, Ray Data executes the first block to find out).

        Example:
            >>> import ray.data
            >>> from framelab.frames import Frame
            >>> Frame.from_ray(ray.data.range(3)).num_rows()
            3
        """
        if schema is not None and not isinstance(schema, pa.Schema):
            raise InputError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        return cls._make(DatasetSource(dataset, schema=schema))

    @classmethod
    def _read(cls, kind: str, url: Any, storage_options: dict | None, **options: Any) -> Frame:
        suffixes = {"parquet": (".parquet", ".pq"), "csv": (".csv",), "json": (".json", ".jsonl", ".ndjson")}[kind]
        fs, files, total = io.expand_paths(url, suffixes, storage_options)
        if total <= LOCAL_BYTES:
            return cls._make(TableSource(thunk=lambda: io.read_table(kind, fs, files, options)))
        return cls._make(DatasetSource(io.read_dataset(kind, fs, files, options)))

    @classmethod
    def read_parquet(
        cls, url: str | list[str], *, columns: list[str] | None = None, storage_options: dict | None = None
    ) -> Frame:
        """Read Parquet from a file, folder, glob or list, on local disk or any fsspec URL.

        Example:
            >>> import tempfile
            >>> from framelab.frames import Frame
            >>> d = tempfile.mkdtemp()
            >>> Frame({"x": [1, 2]}).save(d)
            >>> Frame.read_parquet(d).num_rows()
            2
        """
        return cls._read("parquet", url, storage_options, columns=columns)

    @classmethod
    def read_csv(cls, url: str | list[str], *, storage_options: dict | None = None) -> Frame:
        """Read CSV files (with a header row) from a file, folder, glob or list.

        Example:
            >>> import pathlib, tempfile
            >>> from framelab.frames import Frame
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
            >>> _ = p.write_text("x,y\\n1,a\\n")
            >>> Frame.read_csv(str(p)).to_pydict()
            {'x': [1], 'y': ['a']}
        """
        return cls._read("csv", url, storage_options)

    @classmethod
    def read_json(cls, url: str | list[str], *, storage_options: dict | None = None) -> Frame:
        """Read newline-delimited JSON files from a file, folder, glob or list.

        Example:
            >>> import pathlib, tempfile
            >>> from framelab.frames import Frame
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
            >>> _ = p.write_text('{"x": 1}\\n{"x": 2}\\n')
            >>> Frame.read_json(str(p)).num_rows()
            2
        """
        return cls._read("json", url, storage_options)

    @classmethod
    def read_images(cls, paths: str | Sequence[str], **options: Any) -> Frame:
        """Read image files (folders, files, globs, fsspec URLs) into a frame with an ``image`` column.

        Options are those of :func:`framelab.frames.images.read_images`
        (``recursive``, ``label_from="folder"``, ``extensions``, ``include_paths``,
        ``on_error="null"|"drop"|"raise"``, ``storage_options``, ``max_pixels``).

        Example:
            >>> from framelab.frames import Frame
            >>> photos = Frame.read_images("photos/", label_from="folder")  # doctest: +SKIP
        """
        from framelab.frames.images.read import read_images

        return read_images(paths, **options)

    def explore(self, path: str | None = None, **options: Any) -> str:
        """Write a self-contained, paged HTML page of the frame (image thumbnails included); return its path.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame.read_images("photos/").explore().endswith(".html")  # doctest: +SKIP
            True
        """
        from framelab.frames.images.explore import explore

        return explore(self, path, **options)

    @classmethod
    def load(cls, url: str, *, storage_options: dict | None = None) -> Frame:
        """Load a frame written by :meth:`save`, with its schema and column metadata intact.

        Example:
            >>> import tempfile
            >>> from framelab.frames import Frame
            >>> d = tempfile.mkdtemp()
            >>> Frame({"x": [1.5]}).save(d)
            >>> Frame.load(d).to_pydict()
            {'x': [1.5]}
        """
        fs, folder = io.filesystem(url, storage_options)
        if not fs.exists(folder):
            raise FileNotFoundError(f"no saved frame at {url!r}")
        frame = cls.read_parquet(url, storage_options=storage_options)
        schema = io.read_schema(fs, folder)
        if schema is None:
            return frame
        return frame._then(BlockOp(lambda t: _restore_schema(t, schema), "restore_schema"))

    def save(self, url: str, *, storage_options: dict | None = None) -> None:
        """Write the frame as a folder of Parquet files (local path or fsspec URL).

        Example:
            >>> import tempfile
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).save(tempfile.mkdtemp())
        """
        import pyarrow.parquet as pq

        fs, folder = io.filesystem(url, storage_options)
        fs.makedirs(folder, exist_ok=True)
        schema = self.schema
        with _surface_errors():
            table = self._local_result()
            if table is not None:
                pq.write_table(table, f"{folder.rstrip('/')}/part-00000.parquet", filesystem=io.arrow_filesystem(fs))
            else:
                self.to_ray().write_parquet(folder, filesystem=io.arrow_filesystem(fs))
        io.write_schema(fs, folder, schema)

    # --------------------------------------------------------------- execution
    def _local_input(self) -> pa.Table | None:
        if isinstance(self._source, TableSource):
            return self._source.table()
        return self._source.local_table()

    def _local_result(self) -> pa.Table | None:
        """The whole result computed in the driver, or None when it belongs on the cluster."""
        if "table" in self._cache:
            return self._cache["table"]
        if not all(op.local for op in self._ops):
            return None
        table = self._local_input()
        if table is None:
            return None
        with _surface_errors():
            result = apply_ops(table, self._ops)
        self._cache["table"] = result
        return result

    def to_ray(self) -> Any:
        """The frame as a lazy Ray Dataset with every operation applied.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2]}).to_ray().count()
            2
        """
        return to_dataset(self._source, self._ops)

    def materialize(self) -> Frame:
        """Compute the frame once and keep the result (in the driver when small, else in Ray's object store).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2]}).materialize().num_rows()
            2
        """
        table = self._local_result()
        if table is not None:
            return Frame._make(TableSource(table))
        distributed = isinstance(self._source, DatasetSource) and self._source.distributed
        with _surface_errors():
            return Frame._make(DatasetSource(self.to_ray().materialize(), distributed=distributed))

    def repartition(self, num_blocks: int) -> Frame:
        """Spread the frame over ``num_blocks`` blocks on the cluster (forces distributed execution).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": list(range(10))}).repartition(2).num_rows()
            10
        """
        if not isinstance(num_blocks, int) or num_blocks < 1:
            raise InputError(f"repartition(num_blocks) needs a positive integer, got {num_blocks!r}")
        table = self._local_result()
        if table is not None and table.num_rows == 0:
            return self  # nothing to spread, and an empty Ray dataset forgets its schema
        return Frame._make(DatasetSource(self.to_ray().repartition(num_blocks), distributed=True))

    # ----------------------------------------------------------------- inspect
    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema (types and field metadata) of the frame.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).schema.field("x").type
            DataType(int64)
        """
        if "schema" not in self._cache:
            self._cache["schema"] = self._compute_schema()
        return self._cache["schema"]

    def _compute_schema(self) -> pa.Schema:
        if "table" in self._cache:
            return self._cache["table"].schema
        if any(op.schema_from_data for op in self._ops):
            return self.head(1).to_arrow().schema
        if isinstance(self._source, TableSource):
            base = self._source.table().schema
        elif self._source.schema is not None:
            base = self._source.schema
        else:
            ray_schema = self._source.dataset.schema()
            base = getattr(ray_schema, "base_schema", ray_schema)
            if ray_schema is None:
                base = pa.schema([])
            elif not isinstance(base, pa.Schema):
                base = pa.schema([(n, t) for n, t in zip(ray_schema.names, ray_schema.types)])
        with _surface_errors():
            return apply_ops(base.empty_table(), self._ops).schema

    @property
    def columns(self) -> list[str]:
        """Column names, in order.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"a": [1], "b": [2]}).columns
            ['a', 'b']
        """
        return list(self.schema.names)

    @property
    def dtypes(self) -> dict[str, pa.DataType]:
        """Column name to Arrow type.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"a": [1.0]}).dtypes
            {'a': DataType(double)}
        """
        return {f.name: f.type for f in self.schema}

    def num_rows(self) -> int:
        """Number of rows (runs the plan on the cluster when the count is not known cheaply).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2, 3]}).num_rows()
            3
        """
        if "num_rows" not in self._cache:
            table = self._local_result()
            if table is not None:
                self._cache["num_rows"] = table.num_rows
            elif isinstance(self._source, DatasetSource) and all(op.preserves_rows for op in self._ops):
                with _surface_errors():
                    self._cache["num_rows"] = self._source.dataset.count()
            else:
                with _surface_errors():
                    self._cache["num_rows"] = self.to_ray().count()
        return self._cache["num_rows"]

    def __len__(self) -> int:
        return self.num_rows()

    def head(self, n: int = 10) -> Frame:
        """The first ``n`` rows, as a small frame in the driver.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2, 3]}).head(2).to_pydict()
            {'x': [1, 2]}
        """
        table = self._local_input() if all(op.local for op in self._ops) else None
        if table is not None:
            # Run the ops on a growing prefix only: enough rows after filters, never the whole frame.
            take = max(n, 1)
            while True:
                out = apply_ops(table.slice(0, take), self._ops) if self._ops else table.slice(0, take)
                if out.num_rows >= n or take >= table.num_rows:
                    return Frame(out.slice(0, n))
                take *= 4
        with _surface_errors():
            refs = self.to_ray().limit(n).to_arrow_refs()
            return Frame(fetch_blocks(refs, self.schema) if refs else self.schema.empty_table())

    def tail(self, n: int = 10) -> Frame:
        """The last ``n`` rows, as a small frame in the driver.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2, 3]}).tail(2).to_pydict()
            {'x': [2, 3]}
        """
        table = self.to_arrow()
        return Frame(table.slice(max(table.num_rows - n, 0)))

    def __repr__(self) -> str:
        from framelab.frames.display import frame_text

        return frame_text(self)

    def _repr_html_(self) -> str:
        from framelab.frames.display import frame_html

        return frame_html(self)

    def __getitem__(self, key: str | list[str]) -> Any:
        """``frame["x"]`` gives the column as a pyarrow ChunkedArray; ``frame[["x", "y"]]`` selects."""
        if isinstance(key, list):
            return self.select(*key)
        check_columns([key], self.columns)
        return self.select(key).to_arrow().column(0)

    # ---------------------------------------------------------------- columns
    def select(self, *columns: str | Sequence[str]) -> Frame:
        """Keep only the named columns, in that order.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"a": [1], "b": [2]}).select("b").columns
            ['b']
        """
        names = _flatten_names(columns)
        check_columns(names, self.columns)
        return self._then(BlockOp(lambda t: t.select(names), "select"))

    def drop(self, *columns: str | Sequence[str]) -> Frame:
        """Remove the named columns.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"a": [1], "b": [2]}).drop("a").columns
            ['b']
        """
        names = _flatten_names(columns)
        check_columns(names, self.columns)
        return self._then(BlockOp(lambda t: t.drop_columns(names), "drop"))

    def rename(self, mapping: Mapping[str, str]) -> Frame:
        """Rename columns with ``{old: new}`` (field metadata is kept).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"a": [1]}).rename({"a": "b"}).columns
            ['b']
        """
        mapping = dict(mapping)
        check_columns(mapping, self.columns)
        new_names = [mapping.get(n, n) for n in self.columns]
        if len(set(new_names)) != len(new_names):
            raise InputError(f"rename would give duplicate column names: {new_names}")

        def rename(t: pa.Table) -> pa.Table:
            schema = pa.schema([f.with_name(mapping.get(f.name, f.name)) for f in t.schema], metadata=t.schema.metadata)
            return pa.Table.from_arrays(t.columns, schema=schema)

        return self._then(BlockOp(rename, "rename"))

    def with_column(self, name: str, expr: Expr | Any, *, dtype: Any = None) -> Frame:
        """Add or replace a column from a polars expression, a column expression or a row function.

        ``expr`` may be a polars expression (``pl.col("x") * 2``), a framelab
        column expression (such as an image operation), a Python function of
        one row (a dict) with an optional ``dtype``, or a constant.

        Example:
            >>> import polars as pl
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2]}).with_column("y", pl.col("x") + 1).to_pydict()
            {'x': [1, 2], 'y': [2, 3]}
        """
        if not isinstance(name, str) or not name:
            raise InputError(f"with_column needs a non-empty column name, got {name!r}")
        compute, from_data = self._column_fn(expr, dtype, "with_column")
        return self._then(
            BlockOp(lambda t: _set_column(t, name, compute(t)), f"with_column({name})", schema_from_data=from_data)
        )

    def _column_fn(self, expr: Any, dtype: Any, method: str) -> tuple[Callable[[pa.Table], Any], bool]:
        if isinstance(expr, (pl.Expr, ColumnExpr)):
            if isinstance(expr, pl.Expr):
                check_blockwise(expr, method)
            from framelab.frames.expressions import expr_columns

            check_columns(expr_columns(expr), self.columns)
            return (lambda t: evaluate(t, expr)), False
        if callable(expr):
            arrow_type = _arrow_type(dtype)
            return row_function(expr, arrow_type), arrow_type is None
        return (lambda t: evaluate(t, pl.lit(expr))), False

    def apply(self, fn: Callable[[dict], Any], dtype: Any = None, *, output_column: str = "value") -> Frame:
        """Run ``fn`` on every row (a dict) and return a one-column frame of its results.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2]}).apply(lambda r: r["x"] * 2, int).to_pydict()
            {'value': [2, 4]}
        """
        if not callable(fn):
            raise InputError(f"apply needs a function of one row, got {type(fn).__name__}")
        return self.with_column(output_column, fn, dtype=dtype).select(output_column)

    def map_batches(
        self,
        fn: Callable[[Any], Any],
        *,
        batch_size: int | None = None,
        format: str = "arrow",
        preserves_rows: bool = False,
    ) -> Frame:
        """Run ``fn`` on batches of rows in the given format; it returns a batch in the same format.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2]}).map_batches(lambda df: df * 2, format="polars").to_pydict()
            {'x': [2, 4]}
        """
        _check_format(format)

        def run(t: pa.Table) -> pa.Table:
            if batch_size is None or t.num_rows <= batch_size:
                return _from_batch(fn(_to_batch(t, format)))
            return concat([_from_batch(fn(_to_batch(t.slice(i, batch_size), format))) for i in range(0, t.num_rows, batch_size)])

        return self._then(BlockOp(run, "map_batches", preserves_rows=preserves_rows, schema_from_data=True))

    # ------------------------------------------------------------------- rows
    def filter(self, predicate: Expr) -> Frame:
        """Keep the rows where ``predicate`` is true (null counts as false).

        Example:
            >>> import polars as pl
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 2, 3]}).filter(pl.col("x") > 1).to_pydict()
            {'x': [2, 3]}
        """
        compute, _ = self._column_fn(predicate, pa.bool_(), "filter")

        def run(t: pa.Table) -> pa.Table:
            mask = compute(t)
            if not pa.types.is_boolean(mask.type):
                raise ExpressionError(f"filter needs a boolean expression, got one of type {mask.type}")
            return t.filter(mask, null_selection_behavior="drop")

        return self._then(BlockOp(run, "filter", preserves_rows=False))

    def dropna(self, columns: str | Sequence[str] | None = None, how: str = "any") -> Frame:
        """Drop rows with missing values (null, or NaN in float columns).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1.0, None, float("nan")]}).dropna().to_pydict()
            {'x': [1.0]}
        """
        names = self.columns if columns is None else _flatten_names([columns])
        check_columns(names, self.columns)
        if how not in ("any", "all"):
            raise InputError(f"dropna(how={how!r}): use 'any' or 'all'")

        def run(t: pa.Table) -> pa.Table:
            if not names or t.num_rows == 0:
                return t
            missing = [_is_missing(t.column(n)) for n in names]
            combine = pc.or_ if how == "any" else pc.and_
            flags = missing[0]
            for m in missing[1:]:
                flags = combine(flags, m)
            return t.filter(pc.invert(flags))

        return self._then(BlockOp(run, "dropna", preserves_rows=False))

    def fillna(self, column: str, value: Any) -> Frame:
        """Replace missing values (null, and NaN in float columns) of one column with ``value``.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1.0, None]}).fillna("x", 0.0).to_pydict()
            {'x': [1.0, 0.0]}
        """
        check_columns([column], self.columns)

        def run(t: pa.Table) -> pa.Table:
            col = t.column(column)
            scalar = pa.scalar(value, type=col.type)
            filled = pc.if_else(_is_missing(col), scalar, col)
            return _set_column(t, column, filled.cast(col.type))

        return self._then(BlockOp(run, f"fillna({column})"))

    def random_split(self, fraction: float, seed: int | None = None) -> tuple[Frame, Frame]:
        """Split rows into two frames, about ``fraction`` of them in the first; each row lands in exactly one.

        The split is a function of each row and the seed, so the same seed gives
        the same split however the data is spread over blocks.

        Example:
            >>> from framelab.frames import Frame
            >>> train, test = Frame({"x": list(range(100))}).random_split(0.8, seed=0)
            >>> train.num_rows() + test.num_rows()
            100
        """
        fraction = sampling.check_fraction(fraction, "random_split")
        seed = _seed(seed)

        def part(first: bool) -> BlockOp:
            def run(t: pa.Table) -> pa.Table:
                u = sampling.row_uniforms(t, seed)
                return t.filter(pa.array(u < fraction if first else u >= fraction))

            return BlockOp(run, "random_split", preserves_rows=False)

        return self._then(part(True)), self._then(part(False))

    def sample(self, fraction: float, seed: int | None = None) -> Frame:
        """A random sample of about ``fraction`` of the rows.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": list(range(1000))}).sample(0.1, seed=1).num_rows() < 200
            True
        """
        return self.random_split(sampling.check_fraction(fraction, "sample"), seed)[0]

    def add_row_number(self, column_name: str = "id", start: int = 0) -> Frame:
        """Add a column numbering the rows in order, from ``start``.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": ["a", "b"]}).add_row_number().to_pydict()
            {'id': [0, 1], 'x': ['a', 'b']}
        """
        if column_name in self.columns:
            raise InputError(f"column {column_name!r} already exists; pick another column_name")

        table = self._local_result()
        if table is not None:
            return Frame._make(TableSource(_number_block_fn(table, start, column_name)))
        import ray

        with _surface_errors():
            refs = self.to_ray().to_arrow_refs()
        counts = ray.get([_num_rows.remote(r) for r in refs])
        offsets = np.concatenate([[start], start + np.cumsum(counts)[:-1]]).astype(int) if counts else []
        numbered = [_number_block.remote(r, int(o), column_name) for r, o in zip(refs, offsets)]
        import ray.data

        return Frame.from_ray(ray.data.from_arrow_refs(numbered))

    def sort(self, by: str | Sequence[str], descending: bool | Sequence[bool] = False) -> Frame:
        """Sort rows by one or more columns.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [3, 1, 2]}).sort("x").to_pydict()
            {'x': [1, 2, 3]}
        """
        keys = _flatten_names([by])
        check_columns(keys, self.columns)
        desc = [descending] * len(keys) if isinstance(descending, bool) else list(descending)
        if self._is_local():
            order = [(k, "descending" if d else "ascending") for k, d in zip(keys, desc)]
            return self._local_then(lambda t: t.sort_by(order))
        return Frame.from_ray(self.to_ray().sort(keys, descending=desc))

    def unique(self) -> Frame:
        """Distinct rows (the first of each set of equal rows is kept on a single machine).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1, 1, 2]}).unique().to_pydict()
            {'x': [1, 2]}
        """
        def distinct(t: pa.Table) -> pa.Table:
            if t.num_rows == 0:
                return t
            try:
                df = pl.from_arrow(t)
            except Exception as exc:
                raise InputError(f"unique() cannot compare the columns of this frame ({exc}); select comparable columns first") from exc
            idx = df.with_row_index("__i").unique(subset=t.column_names, keep="first", maintain_order=True)["__i"]
            return t.take(idx.to_arrow())

        if self._is_local():
            return self._local_then(distinct)
        partial = self._then(BlockOp(distinct, "unique", preserves_rows=False))
        return Frame._make(TableSource(thunk=lambda: distinct(partial._gather())))

    def union(self, *others: Frame) -> Frame:
        """Rows of this frame followed by the rows of ``others`` (same columns and types).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).union(Frame({"x": [2]})).to_pydict()
            {'x': [1, 2]}
        """
        for other in others:
            if not isinstance(other, Frame):
                raise InputError(f"union takes Frames, got {type(other).__name__}")
            a = [(f.name, f.type) for f in self.schema]
            b = [(f.name, f.type) for f in other.schema]
            if a != b:
                raise SchemaMismatchError(f"union needs the same columns and types: {a} vs {b}")
        frames = (self, *others)
        if all(f._is_local() for f in frames):
            return Frame._make(TableSource(thunk=lambda: concat([f.to_arrow() for f in frames])))
        dataset = self.to_ray()
        return Frame.from_ray(dataset.union(*[o.to_ray() for o in others]))

    def join(self, other: Frame, on: str | Sequence[str], how: str = "inner") -> Frame:
        """Join with another frame on key columns: ``how`` is inner, left, right or outer.

        Other columns that exist on both sides get the suffix ``_right``.

        Example:
            >>> from framelab.frames import Frame
            >>> a = Frame({"k": [1, 2], "x": ["a", "b"]})
            >>> a.join(Frame({"k": [2], "y": [0.5]}), on="k").to_pydict()
            {'k': [2], 'x': ['b'], 'y': [0.5]}
        """
        keys = _flatten_names([on])
        joins.check_how(how)
        check_columns(keys, self.columns)
        check_columns(keys, other.columns)
        for k in keys:
            lt, rt = self.schema.field(k).type, other.schema.field(k).type
            if lt != rt:
                raise SchemaMismatchError(f"join key {k!r} is {lt} on the left but {rt} on the right; cast one side")
        if self._is_local() and other._is_local():
            return Frame._make(TableSource(thunk=lambda: joins.join_tables(self.to_arrow(), other.to_arrow(), keys, how)))
        if other._is_local():
            import ray

            right = other.to_arrow()
            per_block = {"inner": "inner", "left": "left", "right": "inner", "outer": "left"}[how]
            matched = self._then(
                BlockOp(_BroadcastJoin(ray.put(right), keys, per_block), "join", preserves_rows=False, local=False)
            )
            if how in ("inner", "left"):
                return matched
            # Right rows that match no block are added once, from the driver (Ray's shuffle join is not needed).
            seen = self.select(*keys).unique().to_arrow()
            index = (
                pl.from_arrow(right.select(keys)).with_row_index("__r")
                .join(pl.from_arrow(seen), on=keys, how="anti")["__r"].to_arrow()
            )
            extra = joins.join_tables(self.schema.empty_table(), right.take(index), keys, "right")
            return matched.union(Frame(extra))
        left, right = self.to_ray(), other.to_ray()
        from framelab.platform.resources import cluster_cpus

        ray_how = {"inner": "inner", "left": "left_outer", "right": "right_outer", "outer": "full_outer"}[how]
        return Frame.from_ray(left.join(right, ray_how, num_partitions=max(2, int(cluster_cpus())), on=tuple(keys), right_suffix="_right"))

    def groupby(self, keys: str | Sequence[str]) -> GroupBy:
        """Group rows by key columns; finish with ``.agg(...)``.

        Example:
            >>> from framelab.frames import Frame, agg
            >>> f = Frame({"k": ["a", "b", "a"], "x": [1, 2, 3]})
            >>> f.groupby("k").agg(total=agg.sum("x")).sort("k").to_pydict()
            {'k': ['a', 'b'], 'total': [4, 2]}
        """
        names = _flatten_names([keys])
        check_columns(names, self.columns)
        return GroupBy(self, names)

    # ------------------------------------------------------------------- leave
    def _is_local(self) -> bool:
        if "table" in self._cache:
            return True
        if not all(op.local for op in self._ops):
            return False
        if isinstance(self._source, TableSource):
            return True
        return self._source.local_table() is not None

    def _local_then(self, fn: Callable[[pa.Table], pa.Table]) -> Frame:
        return Frame._make(TableSource(thunk=lambda: fn(self.to_arrow())))

    def _gather(self) -> pa.Table:
        with _surface_errors():
            return fetch_blocks(self.to_ray().to_arrow_refs(), None)

    def to_arrow(self) -> pa.Table:
        """The whole frame as one pyarrow Table in the driver.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).to_arrow().num_rows
            1
        """
        table = self._local_result()
        if table is not None:
            return table
        table = self._gather()
        if table.num_columns == 0 and self.schema.names:
            table = self.schema.empty_table()
        self._cache["table"] = table
        return table

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).to_polars().shape
            (1, 1)
        """
        return _to_batch(self.to_arrow(), "polars")

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).to_pandas().shape
            (1, 1)
        """
        return self.to_arrow().to_pandas()

    def to_pydict(self) -> dict[str, list]:
        """The whole frame as a dict of Python lists.

        Example:
            >>> from framelab.frames import Frame
            >>> Frame({"x": [1]}).to_pydict()
            {'x': [1]}
        """
        return self.to_arrow().to_pydict()

    def to_numpy(self, column: str) -> np.ndarray:
        """One column as numpy: a 2-D ``(rows, dim)`` array for a vector column, 1-D otherwise.

        Example:
            >>> import numpy as np
            >>> from framelab.frames import Frame
            >>> Frame({"v": np.ones((2, 3), dtype="float32")}).to_numpy("v").shape
            (2, 3)
        """
        check_columns([column], self.columns)
        values = self.select(column).to_arrow().column(0)
        if is_vector_type(values.type):
            return vectors_to_numpy(values)
        return values.to_numpy()

    def iter_batches(self, batch_size: int = 1024, format: str = "arrow") -> Iterator[Any]:
        """Stream the frame in batches of ``batch_size`` rows (arrow, polars, pandas or numpy).

        Example:
            >>> from framelab.frames import Frame
            >>> [len(b) for b in Frame({"x": list(range(5))}).iter_batches(2)]
            [2, 2, 1]
        """
        _check_format(format)
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        table = self._local_result()
        if table is not None:
            for i in range(0, table.num_rows, batch_size):
                yield _to_batch(table.slice(i, batch_size), format)
            return
        with _surface_errors():
            for batch in self.to_ray().iter_batches(batch_size=batch_size, batch_format="pyarrow"):
                yield _to_batch(batch, format)

    def to_torch(self, batch_size: int = 256, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Stream batches as dicts of torch tensors (vector columns become 2-D tensors).

        Example:
            >>> import numpy as np
            >>> from framelab.frames import Frame
            >>> batch = next(iter(Frame({"v": np.zeros((4, 2), dtype="float32"), "y": [0, 1, 0, 1]}).to_torch(2)))
            >>> tuple(batch["v"].shape), tuple(batch["y"].shape)
            ((2, 2), (2,))
        """
        import torch

        frame = self if columns is None else self.select(*columns)
        for batch in frame.iter_batches(batch_size, "arrow"):
            out = {}
            for name, column in zip(batch.column_names, batch.columns):
                if is_vector_type(column.type):
                    out[name] = torch.from_numpy(np.array(vectors_to_numpy(column)))
                elif pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_boolean(column.type):
                    out[name] = torch.from_numpy(np.array(column.to_numpy()))
                else:
                    out[name] = column.to_pylist()
            yield out


class GroupBy:
    """A frame grouped by key columns, waiting for ``agg``."""

    def __init__(self, frame: Frame, keys: list[str]):
        self._frame = frame
        self._keys = keys

    def agg(self, *aggs: aggregates.Aggregator, **named: aggregates.Aggregator) -> Frame:
        """Aggregate each group: ``agg(n=agg.count(), mean_x=agg.mean("x"))``.

        Example:
            >>> from framelab.frames import Frame, agg
            >>> Frame({"k": [1, 1], "x": [2.0, 4.0]}).groupby("k").agg(agg.mean("x")).to_pydict()
            {'k': [1], 'x_mean': [3.0]}
        """
        spec = {a.default_name(): a for a in aggs}
        spec.update(named)
        if not spec:
            raise InputError("agg() needs at least one aggregate, e.g. agg(n=agg.count())")
        for name, a in spec.items():
            if not isinstance(a, aggregates.Aggregator):
                raise InputError(f"{name}= must be an aggregate such as agg.sum('x'), got {type(a).__name__}")
            check_columns(a.columns(), self._frame.columns)
        keys = self._keys
        partial_exprs = aggregates.partial_exprs(spec)
        final_exprs = aggregates.final_exprs(spec)

        def partial(t: pa.Table) -> pa.Table:
            needed = list(dict.fromkeys(keys + [c for a in spec.values() for c in a.columns()]))
            df = pl.from_arrow(t.select(needed))
            return df.group_by(keys, maintain_order=True).agg(partial_exprs).to_arrow()

        def final(partials: pa.Table) -> pa.Table:
            df = pl.from_arrow(partials)
            result = df.group_by(keys, maintain_order=True).agg(final_exprs).to_arrow()
            return _normalize_table(result)

        frame = self._frame
        if frame._is_local():
            return Frame._make(TableSource(thunk=lambda: final(partial(frame.to_arrow()))))
        partials = frame._then(BlockOp(partial, "groupby_partial", preserves_rows=False))
        return Frame._make(TableSource(thunk=lambda: final(partials._gather())))


class _BroadcastJoin:
    """Join each block against a small table that every worker fetches once."""

    def __init__(self, right_ref: Any, keys: list[str], how: str):
        self.right_ref = right_ref
        self.keys = keys
        self.how = how

    def __call__(self, t: pa.Table) -> pa.Table:
        import ray

        return joins.join_tables(t, ray.get(self.right_ref), self.keys, self.how)


def _remote(fn: Callable) -> Any:
    import ray

    return ray.remote(num_cpus=0.5)(fn)


def _num_rows_fn(block: pa.Table) -> int:
    return block.num_rows


def _number_block_fn(block: pa.Table, offset: int, name: str) -> pa.Table:
    ids = pa.array(np.arange(offset, offset + block.num_rows, dtype=np.int64))
    schema = pa.schema([pa.field(name, pa.int64()), *block.schema], metadata=block.schema.metadata)
    return pa.Table.from_arrays([ids, *block.columns], schema=schema)


class _LazyRemote:
    def __init__(self, fn: Callable):
        self.fn = fn
        self._remote = None

    def remote(self, *args: Any) -> Any:
        if self._remote is None:
            self._remote = _remote(self.fn)
        return self._remote.remote(*args)


_num_rows = _LazyRemote(_num_rows_fn)
_number_block = _LazyRemote(_number_block_fn)


def _flatten_names(columns: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for c in columns:
        if isinstance(c, str):
            names.append(c)
        elif isinstance(c, Sequence):
            names.extend(_flatten_names(c))
        else:
            raise InputError(f"column names must be strings, got {c!r}")
    return names


def _restore_schema(table: pa.Table, schema: pa.Schema) -> pa.Table:
    if table.schema.names != schema.names:
        return table
    columns = [c if c.type == f.type else c.cast(f.type) for c, f in zip(table.columns, schema)]
    return pa.Table.from_arrays(columns, schema=schema)


def _normalize_table(table: pa.Table) -> pa.Table:
    return pa.Table.from_arrays(
        [c.cast(normalize_type(c.type)) for c in table.columns], names=table.column_names
    )


def _is_missing(column: pa.ChunkedArray) -> pa.ChunkedArray:
    missing = pc.is_null(column)
    if pa.types.is_floating(column.type):
        missing = pc.or_(missing, pc.fill_null(pc.is_nan(column), False))
    return missing


def _arrow_type(dtype: Any) -> pa.DataType | None:
    if dtype is None or isinstance(dtype, pa.DataType):
        return dtype
    mapping = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_(), bytes: pa.binary()}
    if dtype in mapping:
        return mapping[dtype]
    try:
        return pa.from_numpy_dtype(np.dtype(dtype))
    except TypeError as exc:
        raise InputError(f"unknown dtype {dtype!r}; use int, float, str, bool, bytes or a pyarrow type") from exc


def _seed(seed: int | None) -> int:
    if seed is None:
        return int.from_bytes(os.urandom(4), "little")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_format(format: str) -> None:
    if format not in BATCH_FORMATS:
        raise InputError(f"format={format!r} is not one of {BATCH_FORMATS}")


def _to_batch(table: pa.Table, format: str) -> Any:
    if format == "arrow":
        return table
    if format == "polars":
        plain = storage_table(table)
        return pl.from_arrow(plain) if plain.num_columns else pl.DataFrame()
    if format == "pandas":
        return table.to_pandas()
    out = {}
    for name, column in zip(table.column_names, table.columns):
        out[name] = vectors_to_numpy(column) if is_vector_type(column.type) else column.to_numpy()
    return out


def _from_batch(batch: Any) -> pa.Table:
    if isinstance(batch, pa.Table):
        return batch
    if isinstance(batch, pl.DataFrame):
        return _normalize_table(batch.to_arrow())
    try:
        return _to_table(batch)
    except InputError as exc:
        raise InputError(f"map_batches: the function must return a batch (table, DataFrame or dict of arrays): {exc}") from exc


__all__ = ["Frame", "GroupBy"]
