"""How a Frame is made: from tables already in memory, and by reading files or a saved frame.

:class:`Readers` holds the Frame's constructors (``from_*``, ``read_*``,
``load``) and :class:`~framelab.frames.frame.Frame` inherits them, so frame.py
keeps the operations and the results. Each constructor builds one leaf of the
plan (an in-memory table, a Ray Dataset, a file scan from :mod:`sources`) and
reads nothing yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from framelab.frames import logical, sources
from framelab.frames.errors import InputError

if TYPE_CHECKING:
    from framelab.frames.frame import Frame


class Readers:
    """The Frame's constructors; use them as ``Frame.read_parquet(...)`` and so on.

    Example:
        >>> from framelab.frames import Frame
        >>> Frame.from_polars(pl.DataFrame({"x": [1, 2]})).num_rows()
        2
    """

    __slots__ = ()

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Frame:
        """A Frame over a pyarrow Table (kept in the driver until it needs the cluster).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame.from_arrow(pa.table({"x": [1, 2]})).dtypes
            {'x': DataType(int64)}
        """
        return cls(table)

    @classmethod
    def from_polars(cls, df: pl.DataFrame) -> Frame:
        """A Frame from a polars DataFrame (polars' large and view types become plain Arrow types).

        Example:
            >>> from framelab.frames import Frame
            >>> Frame.from_polars(pl.DataFrame({"s": ["a"]})).dtypes
            {'s': DataType(string)}
        """
        return cls(df)

    @classmethod
    def from_pandas(cls, df: Any) -> Frame:
        """A Frame from a pandas DataFrame (the index is dropped).

        Example:
            >>> from framelab.frames import Frame
            >>> import pandas as pd
            >>> Frame.from_pandas(pd.DataFrame({"x": [1, 2]}, index=[10, 20])).to_pydict()
            {'x': [1, 2]}
        """
        return cls(df)

    @classmethod
    def from_ray(cls, dataset: Any, schema: pa.Schema | None = None) -> Frame:
        """A Frame over a Ray Dataset, lazily; pass its Arrow ``schema`` if known (else Ray Data runs a block to learn it).

        Example:
            >>> from framelab.frames import Frame
            >>> import ray.data
            >>> Frame.from_ray(ray.data.range(3)).to_pydict()
            {'id': [0, 1, 2]}
        """
        if schema is not None and not isinstance(schema, pa.Schema):
            raise InputError(f"schema must be a pyarrow.Schema, got {type(schema).__name__}")
        return cls._make(logical.DatasetScan(dataset, schema=schema))

    @classmethod
    def read_parquet(cls, url: str | list[str], *, columns: list[str] | None = None, union_schemas: bool = False,
                     storage_options: dict | None = None) -> Frame:
        """Read Parquet from a file, folder, glob or list, local or any fsspec URL (only what the plan needs).

        Files whose columns differ are refused by name unless ``union_schemas`` (then null where missing);
        ``key=value`` folders become columns; a folder :meth:`save` wrote gives exactly the frame it saved.

        Example:
            >>> from framelab.frames import Frame
            >>> import tempfile
            >>> d = tempfile.mkdtemp()
            >>> Frame({"x": [1, 2], "y": ["a", "b"]}).save(d)
            >>> Frame.read_parquet(d, columns=["y"]).to_pydict()
            {'y': ['a', 'b']}
        """
        return cls._make(sources.file_scan("parquet", url, storage_options, columns, union_schemas))

    @classmethod
    def read_csv(cls, url: str | list[str], *, union_schemas: bool = False,
                 storage_options: dict | None = None) -> Frame:
        """Read CSV files (a header row; ``.csv``, ``.csv.gz``) from a file, folder, glob or list.

        Other headers are refused by name unless ``union_schemas``; a bad row is named by file and line.

        Example:
            >>> from framelab.frames import Frame
            >>> import pathlib, tempfile
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.csv"
            >>> _ = p.write_text("x,y\\n1,a\\n")
            >>> Frame.read_csv(str(p)).to_pydict()
            {'x': [1], 'y': ['a']}
        """
        return cls._make(sources.file_scan("csv", url, storage_options, union_schemas=union_schemas))

    @classmethod
    def read_json(cls, url: str | list[str], *, union_schemas: bool = False,
                  storage_options: dict | None = None) -> Frame:
        """Read newline-delimited JSON files (``.json``, ``.jsonl``, ``.ndjson``, each also ``.gz``) from a file, folder, glob or list.

        Example:
            >>> from framelab.frames import Frame
            >>> import pathlib, tempfile
            >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
            >>> _ = p.write_text('{"x": 1}\\n{"x": 2}\\n')
            >>> Frame.read_json(str(p)).to_pydict()
            {'x': [1, 2]}
        """
        return cls._make(sources.file_scan("json", url, storage_options, union_schemas=union_schemas))

    @classmethod
    def read_images(cls, paths: str | Sequence[str], **options: Any) -> Frame:
        """Read image files (folders, files, globs, fsspec URLs) into an ``image`` column; options: :class:`~framelab.frames.images.ReadOptions`.

        Example:
            >>> import tempfile
            >>> from framelab.frames import Frame
            >>> Frame.read_images(tempfile.mkdtemp(), label_from="folder").columns   # known before any file is read
            ['image', 'path', 'label', 'error']
        """
        # Here, not at the top: the image reader brings PIL, loaded only once images are read.
        from framelab.frames.images.read import ReadOptions, image_scan

        return cls._make(image_scan(paths, ReadOptions.of(**options)))

    @classmethod
    def load(cls, url: str, *, verify: bool = False, storage_options: dict | None = None) -> Frame:
        """Load a frame written by :meth:`save`: exactly the parts its manifest lists, schema and metadata intact.

        A missing manifest or part, or a part of another size, is refused naming the file;
        ``verify=True`` also checks every part's sha256 (reading them all once).

        Example:
            >>> from framelab.frames import Frame
            >>> import tempfile
            >>> d = tempfile.mkdtemp()
            >>> Frame(pa.table({"x": pa.array([1], pa.int8())})).save(d)
            >>> Frame.load(d).dtypes
            {'x': DataType(int8)}
        """
        return cls._make(sources.saved_frame(url, verify=verify, storage_options=storage_options))


__all__ = ["Readers"]
