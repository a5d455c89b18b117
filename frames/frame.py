"""The Frame: an immutable, lazy, Arrow-typed table; its methods add nodes to a plan, its results run it.

Every method that returns a Frame adds one logical node (:mod:`framelab.frames.logical`)
and runs nothing. Methods that return data (``to_arrow``, ``num_rows``,
``head``, ``save``, ...) hand the plan to the planner
(:mod:`framelab.frames.planner`), which decides for the whole plan what runs in
the driver and what on the cluster; :meth:`Frame.explain` shows its decision.

Examples assume ``from framelab.frames import Frame``, ``import polars as pl``,
``import pyarrow as pa`` and ``import numpy as np``, as polars' own assume ``pl``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from framelab.frames import blockwise, conversion, logical, planner, saved, validation
from framelab.frames.display import PlainText, frame_html, frame_text
from framelab.frames.errors import InputError, check_columns
from framelab.frames.expressions import ColumnExpr
from framelab.frames.groupby import GroupBy
from framelab.frames.readers import Readers
from framelab.frames.subsets import Subsets
from framelab.frames.vectors import is_vector_type, vectors_to_numpy
from framelab.platform.client import on_cluster

if TYPE_CHECKING:  # the image reader brings PIL: imported only when images are read
    from framelab.frames.images.read import ReadOptions

Expr = pl.Expr | ColumnExpr | Callable[[dict], Any]


class Frame(Readers, Subsets):
    """An immutable, lazy table of typed columns, spread over a Ray cluster when it is big.

    Build one from a dict of columns, a list of row dicts, a pyarrow Table, or a
    polars or pandas DataFrame; or read one with :meth:`read_parquet`,
    :meth:`read_csv`, :meth:`read_json`, :meth:`read_images`, :meth:`load`.
    Every method returns a new Frame; nothing runs until a result is asked for.

    Example:
        >>> f = Frame({"x": [1, 2, 3], "label": ["a", "b", "a"]})
        >>> f.filter(pl.col("label") == "a").with_column("y", pl.col("x") * 10).to_pydict()
        {'x': [1, 3], 'label': ['a', 'a'], 'y': [10, 30]}
    """

    __slots__ = ("_node", "_cache")

    def __init__(self, data: Any = None):
        table = pa.table({}) if data is None else conversion.to_table(data)
        self._node: logical.Node = logical.InMemory(table)
        self._cache: dict[str, Any] = {}

    @classmethod
    def _make(cls, node: logical.Node) -> Frame:
        frame = cls.__new__(cls)
        frame._node = node
        frame._cache = {}
        return frame

    def explore(self, path: str | None = None, **options: Any) -> str:
        """Write a self-contained, paged HTML page of the frame (image thumbnails included); return its path.

        With no ``path`` the page goes to the folder ``FRAMELAB_EXPLORE_DIR`` names (else the temporary
        folder). The path returned reads as itself in a REPL and shows the page inline in a notebook.

        Example:
            >>> import tempfile
            >>> from PIL import Image
            >>> folder = tempfile.mkdtemp()
            >>> Image.new("RGB", (8, 6)).save(f"{folder}/one.png")
            >>> Frame.read_images(folder).explore().endswith(".html")
            True
        """
        from framelab.frames.images.explore import explore

        return explore(self, path, **options)

    @on_cluster
    def save(self, url: str, *, mode: str = "overwrite", storage_options: dict | None = None) -> None:
        """Write the frame as a folder of Parquet files and a manifest (local path or fsspec URL), atomically.

        ``mode``: "overwrite" replaces a frame there once the new one is complete; "error" refuses a
        folder that is not empty; "append" adds rows (same columns and types). See :mod:`~framelab.frames.saved`.

        Example:
            >>> import tempfile
            >>> d = tempfile.mkdtemp()
            >>> Frame({"x": [1, 2]}).save(d)
            >>> Frame({"x": [3]}).save(d, mode="append")
            >>> Frame.load(d).to_pydict()
            {'x': [1, 2, 3]}
        """
        saved.save(planner.result(self._node), self.schema, url, mode=mode, storage_options=storage_options)

    def explain(self) -> str:
        """The plan the planner chose: each step, where it runs (@driver or @cluster), and how.

        Returns the plan as a string that shows as the plan itself at a prompt (``frame.explain()``);
        in a script, ``print`` it.

        Example:
            >>> from framelab.frames import agg
            >>> f = Frame({"k": [1, 2, 1]}).repartition(2).filter(pl.col("k") > 0)
            >>> print(f.groupby("k").agg(n=agg.count()).explain())
            Aggregate  @driver  by ['k']: partials gathered, combined once in the driver (polars)
              PartialAggregate  @cluster  pyarrow group_by on each block (no polars on the workers)
                Map  @cluster  filter([(col("k")) > (dyn int: 0)])
                  Repartition  @cluster  2 blocks, pinned to the cluster
                    InMemory  @driver  3 rows, 0.0 MB
        """
        return PlainText(planner.explain(self._node))

    def _is_local(self) -> bool:
        return "table" in self._cache or planner.placement(self._node) == planner.DRIVER

    def to_ray(self) -> Any:
        """The frame as a Ray Dataset with every operation applied (lazy where Ray Data allows).

        Example:
            >>> Frame({"x": [1, 2]}).to_ray().count()
            2
        """
        return planner.dataset(self._node)

    def materialize(self) -> Frame:
        """Compute the frame once and keep the result (in the driver when small, else in Ray's object store).

        Example:
            >>> done = Frame({"x": [1, 2, 3]}).filter(pl.col("x") > 1).materialize()
            >>> done.explain()
            InMemory  @driver  2 rows, 0.0 MB
        """
        return Frame._make(planner.materialized(self._node))

    def repartition(self, num_blocks: int) -> Frame:
        """Spread the frame over ``num_blocks`` blocks on the cluster (forces distributed execution).

        Example:
            >>> Frame({"x": list(range(10))}).repartition(2).to_ray().num_blocks()
            2
        """
        if isinstance(num_blocks, bool) or not isinstance(num_blocks, int) or num_blocks < 1:
            raise InputError(f"repartition(num_blocks) needs a positive integer, got {num_blocks!r}")
        return self._make(logical.Repartition(self._node, num_blocks))

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema (types and field metadata) of the frame; nothing runs to find it.

        Example:
            >>> Frame({"x": [1]}).with_column("y", 0.5).schema.field("y").type
            DataType(double)
        """
        if "schema" not in self._cache:
            table = self._cache.get("table")
            self._cache["schema"] = table.schema if table is not None else planner.schema(self._node)
        return self._cache["schema"]

    @property
    def columns(self) -> list[str]:
        """Column names, in order.

        Example:
            >>> Frame({"a": [1], "b": [2]}).rename({"a": "z"}).columns
            ['z', 'b']
        """
        return list(self.schema.names)

    @property
    def dtypes(self) -> dict[str, pa.DataType]:
        """Column name to Arrow type.

        Example:
            >>> Frame({"a": [1.0], "s": ["x"]}).dtypes
            {'a': DataType(double), 's': DataType(string)}
        """
        return {f.name: f.type for f in self.schema}

    def num_rows(self) -> int:
        """Number of rows; the count reads only the columns it needs (a Parquet folder: its footers).

        Example:
            >>> Frame({"x": [1, 2, 3]}).filter(pl.col("x") >= 2).num_rows()
            2
        """
        if "num_rows" not in self._cache:
            table = self._cache.get("table")
            self._cache["num_rows"] = table.num_rows if table is not None else planner.count(self._node)
        return self._cache["num_rows"]

    def __len__(self) -> int:
        return self.num_rows()

    def head(self, n: int = 10) -> Frame:
        """The first ``n`` rows, as a small frame in the driver (only as much runs as they need).

        Example:
            >>> Frame({"x": list(range(10**6))}).head(3).to_pydict()
            {'x': [0, 1, 2]}
        """
        return Frame(planner.head(self._node, n, None if self._node.schema_from_data() else self.schema))

    def tail(self, n: int = 10) -> Frame:
        """The last ``n`` rows, as a small frame in the driver.

        Example:
            >>> Frame({"x": [1, 2, 3]}).tail(2).to_pydict()
            {'x': [2, 3]}
        """
        table = self.to_arrow()
        return Frame(table.slice(max(table.num_rows - n, 0)))

    def __repr__(self) -> str:
        return frame_text(self)

    def _repr_html_(self) -> str:
        return frame_html(self)

    def __getitem__(self, key: str | list[str]) -> Any:
        """``frame["x"]``: the column as a pyarrow ChunkedArray; ``frame[["x", "y"]]``: a selection.

        Example:
            >>> Frame({"x": [1, 2], "y": [3, 4]})["x"].to_pylist()
            [1, 2]
        """
        if isinstance(key, list):
            return self.select(*key)
        check_columns([key], self.columns)
        return self.select(key).to_arrow().column(0)

    def _map(self, fn: Callable[[pa.Table], pa.Table], label: str, **how: Any) -> Frame:
        return self._make(logical.Map(self._node, fn, label, **how))

    def select(self, *columns: str | Sequence[str]) -> Frame:
        """Keep only the named columns, in that order.

        Example:
            >>> Frame({"a": [1], "b": [2], "c": [3]}).select("c", "a").to_pydict()
            {'c': [3], 'a': [1]}
        """
        names = validation.check_distinct_columns(validation.column_list(columns), "select")
        check_columns(names, self.columns)
        return self._make(logical.Project(self._node, names))

    def drop(self, *columns: str | Sequence[str]) -> Frame:
        """Remove the named columns.

        Example:
            >>> Frame({"a": [1], "b": [2]}).drop("a").to_pydict()
            {'b': [2]}
        """
        names = validation.column_list(columns)
        check_columns(names, self.columns)
        return self._make(logical.Project(self._node, [c for c in self.columns if c not in names]))

    def rename(self, mapping: Mapping[str, str]) -> Frame:
        """Rename columns with ``{old: new}`` (field metadata is kept).

        Example:
            >>> Frame({"a": [1], "b": [2]}).rename({"a": "z"}).to_pydict()
            {'z': [1], 'b': [2]}
        """
        mapping = dict(mapping)
        check_columns(mapping, self.columns)
        new_names = [mapping.get(n, n) for n in self.columns]
        if len(set(new_names)) != len(new_names):
            raise InputError(f"rename would give duplicate column names: {new_names}")
        return self._make(logical.Rename(self._node, mapping))

    def with_column(self, name: str, expr: Expr | Any, *, dtype: Any = None) -> Frame:
        """Add or replace a column: a polars expression, a column expression (images), a row function (+``dtype``) or a constant.

        Example:
            >>> f = Frame({"x": [1, 2]})
            >>> f.with_column("y", pl.col("x") + 1).with_column("s", lambda r: f"#{r['x']}", dtype=str).to_pydict()
            {'x': [1, 2], 'y': [2, 3], 's': ['#1', '#2']}
        """
        if not isinstance(name, str) or not name:
            raise InputError(f"with_column needs a non-empty column name, got {name!r}")
        compute, reads, from_data = blockwise.column_function(expr, dtype, "with_column", self.columns)
        return self._map(blockwise.SetColumn(name, compute), f"with_column({name})", reads=reads, writes=(name,),
                         schema_from_data=from_data)

    def apply(self, fn: Callable[[dict], Any], dtype: Any = None, *, output_column: str = "value") -> Frame:
        """Run ``fn`` on every row (a dict) and return a one-column frame of its results.

        Example:
            >>> Frame({"w": [2, 3], "h": [4, 5]}).apply(lambda r: r["w"] * r["h"], int, output_column="area").to_pydict()
            {'area': [8, 15]}
        """
        if not callable(fn):
            raise InputError(f"apply needs a function of one row, got {type(fn).__name__}")
        return self.with_column(output_column, fn, dtype=dtype).select(output_column)

    def map_batches(self, fn: Callable[[Any], Any], *, batch_size: int | None = None, format: str = "arrow",
                    preserves_rows: bool = False, schema: pa.Schema | None = None,
                    label: str = "map_batches") -> Frame:
        """Run ``fn`` on batches of rows in the given format; it returns a batch in the same format.

        Without ``schema``, ``fn`` runs on the first row to find it: give it when that run costs or has effects.
        ``batch_size=None`` gives ``fn`` whole blocks. ``label`` names the step in :meth:`explain`.

        Example:
            >>> Frame({"x": [1, 2]}).map_batches(lambda df: df * 2, format="polars").to_pydict()
            {'x': [2, 4]}
            >>> print(Frame({"x": [1]}).map_batches(lambda t: t, schema=pa.schema([("x", pa.int64())]), label="same").explain())
            Map  @driver  same
              InMemory  @driver  1 rows, 0.0 MB
        """
        if not isinstance(label, str) or not label:
            raise InputError(f"map_batches needs a non-empty label (the step's name in explain()), got {label!r}")
        step = blockwise.MapBatches(fn, batch_size, format)
        return self._map(step, label, rowwise=False, keeps_rows=preserves_rows,
                         schema_from_data=schema is None, schema=schema)

    def map_actors(self, stage: logical.ActorStage) -> Frame:
        """Run every block through a worker held by long-lived actors, kept warm per ``stage.key`` (see :class:`ActorStage`).

        Example:
            >>> import pyarrow as pa, pyarrow.compute as pc
            >>> from framelab.frames import ActorStage, Frame
            >>> upper = ActorStage("upper", lambda: (lambda t: t.set_column(0, "s", pc.utf8_upper(t["s"]))), lambda s: s)
            >>> Frame({"s": ["a", "b"]}).map_actors(upper).to_pydict()
            {'s': ['A', 'B']}
        """
        if not isinstance(stage, logical.ActorStage):
            raise InputError(f"map_actors needs an ActorStage, got {type(stage).__name__}")
        return self._make(logical.ActorMap(self._node, stage))

    def filter(self, predicate: Expr) -> Frame:
        """Keep the rows where ``predicate`` is true (null counts as false).

        Example:
            >>> Frame({"x": [1, 2, None]}).filter(pl.col("x") > 1).to_pydict()
            {'x': [2]}
        """
        compute, reads, _ = blockwise.column_function(predicate, pa.bool_(), "filter", self.columns)
        expr = predicate if isinstance(predicate, pl.Expr) else None
        label = f"filter({predicate})" if expr is not None else "filter"
        return self._make(logical.Filter(self._node, blockwise.FilterRows(compute), label, reads=reads, predicate=expr))

    def dropna(self, columns: str | Sequence[str] | None = None, how: str = "any") -> Frame:
        """Drop rows with missing values (null, or NaN in float columns) in ``columns`` (all by default).

        Example:
            >>> Frame({"x": [1.0, None, float("nan")], "y": [1, 2, None]}).dropna("x").to_pydict()
            {'x': [1.0], 'y': [1]}
        """
        names = self.columns if columns is None else validation.column_list([columns])
        check_columns(names, self.columns)
        if how not in ("any", "all"):
            raise InputError(f"dropna(how={how!r}): use 'any' or 'all'")
        return self._map(blockwise.DropMissing(names, how), "dropna", reads=tuple(names), keeps_rows=False)

    def fillna(self, column: str, value: Any) -> Frame:
        """Replace missing values (null, and NaN in float columns) of one column with ``value``.

        Example:
            >>> Frame({"x": [1.0, None, float("nan")]}).fillna("x", 0.0).to_pydict()
            {'x': [1.0, 0.0, 0.0]}
        """
        check_columns([column], self.columns)
        return self._map(blockwise.FillMissing(column, value), f"fillna({column})", reads=(column,), writes=(column,))

    def random_split(self, fraction: float, seed: int | None = None, *, key: str | None = None) -> tuple[Frame, Frame]:
        """Split rows into two frames, about ``fraction`` in the first, each row in one; a seed fixes it anywhere.

        A row's side is a seeded hash of its ``key`` column (equal keys stay together), else of the key a
        reader recorded (``read_images``: the relative path), else of its content (:mod:`~framelab.frames.sampling`).

        Example:
            >>> train, test = Frame({"x": list(range(10))}).random_split(0.5, seed=0)
            >>> sorted(train.to_pydict()["x"]), sorted(test.to_pydict()["x"])
            ([0, 1, 2, 6, 8, 9], [3, 4, 5, 7])
        """
        fraction = validation.check_fraction(fraction, "random_split")
        seed = validation.check_seed(seed)
        if key is not None:
            check_columns([key], self.columns)
        first, second = (blockwise.SplitPart(fraction, seed, part, key) for part in (True, False))
        how = {"rowwise": False, "keeps_rows": False}
        return self._map(first, f"random_split(first {fraction:g})", **how), self._map(second, f"random_split(rest {1 - fraction:g})", **how)

    def sample(self, fraction: float, seed: int | None = None, *, key: str | None = None, exact: bool = False) -> Frame:
        """A random sample of about ``fraction`` of the rows (drawn as :meth:`random_split` draws).

        ``exact=True`` gives exactly ``round(fraction * rows)`` rows (rows sharing a ``key`` come
        together, so with ``key`` it may give a few more): the rows with the smallest draws, at the
        cost of a second pass.

        Example:
            >>> Frame({"x": list(range(1000))}).sample(0.1, seed=1).num_rows()
            100
            >>> Frame({"x": list(range(1000))}).sample(0.123, seed=1, exact=True).num_rows()
            123
        """
        fraction = validation.check_fraction(fraction, "sample")
        if exact:
            return self._exact_sample(fraction, validation.check_seed(seed), key)
        return self.random_split(fraction, seed, key=key)[0]

    def add_row_number(self, column_name: str = "id", start: int = 0) -> Frame:
        """Add a first column numbering the rows in order, from ``start``.

        Example:
            >>> Frame({"x": ["a", "b"]}).add_row_number(start=1).to_pydict()
            {'id': [1, 2], 'x': ['a', 'b']}
        """
        if column_name in self.columns:
            raise InputError(f"column {column_name!r} already exists; pick another column_name")
        return self._make(logical.NumberRows(self._node, column_name, start))

    def sort(self, by: str | Sequence[str], descending: bool | Sequence[bool] = False) -> Frame:
        """Sort rows by one or more columns.

        Example:
            >>> Frame({"x": [3, 1, 2], "y": ["c", "a", "b"]}).sort("x", descending=True).to_pydict()
            {'x': [3, 2, 1], 'y': ['c', 'b', 'a']}
        """
        keys = validation.column_list([by])
        check_columns(keys, self.columns)
        desc = [descending] * len(keys) if isinstance(descending, bool) else list(descending)
        return self._make(logical.Sort(self._node, keys, desc))

    def unique(self, subset: str | Sequence[str] | None = None) -> Frame:
        """Distinct rows, or rows distinct in the ``subset`` columns: the first of each set of equal rows is kept.

        Example:
            >>> Frame({"x": [1, 1, 2], "y": ["a", "a", "b"]}).unique().to_pydict()
            {'x': [1, 2], 'y': ['a', 'b']}
            >>> Frame({"x": [1, 1, 2], "y": ["a", "b", "c"]}).unique(subset="x").to_pydict()
            {'x': [1, 2], 'y': ['a', 'c']}
        """
        names = None if subset is None else validation.column_list([subset])
        if names is not None:
            check_columns(names, self.columns)
        return self._make(logical.Unique(self._node, names))

    def union(self, *others: Frame, how: str = "vertical") -> Frame:
        """Rows of this frame followed by the rows of ``others``, columns matched by name (polars' ``how``).

        ``how="vertical"``: the same columns and types, in any order; ``"diagonal"``: every
        column of any frame, nulls where a frame lacks one. A frame without columns (``Frame()``) adds nothing.

        Example:
            >>> Frame({"x": [1], "y": ["a"]}).union(Frame({"y": ["b"], "x": [2]}), Frame()).to_pydict()
            {'x': [1, 2], 'y': ['a', 'b']}
            >>> Frame({"x": [1]}).union(Frame({"y": ["b"]}), how="diagonal").to_pydict()
            {'x': [1, None], 'y': [None, 'b']}
        """
        if not all(isinstance(o, Frame) for o in others):
            raise InputError(f"union takes Frames, got {[type(o).__name__ for o in others]}")
        validation.check_choice("union how", how, ("vertical", "diagonal"))
        frames = [f for f in (self, *others) if f.columns] or [self]
        schema = validation.union_schema([f.schema for f in frames], how)
        aligned = [f if f.schema.names == schema.names else f._map(blockwise.NullColumns(schema), "align columns",
                                                                   schema=schema) for f in frames]
        return self._make(logical.Union([f._node for f in aligned]))

    def join(self, other: Frame, on: str | Sequence[str] | Mapping[str, str] | None = None, how: str = "inner") -> Frame:
        """Join on key columns (``how``: inner, left, right, outer); clashing right columns get ``_right``.

        ``on``: key columns both frames have; ``{"left_key": "right_key"}`` for keys named
        differently (the result keeps the left names); None: every column the two share.
        A cluster frame joined to a small driver-side one broadcasts it (no shuffle); :meth:`explain` shows it.

        Example:
            >>> a = Frame({"k": [1, 2], "x": ["a", "b"]})
            >>> a.join(Frame({"k": [2, 3], "x": [0.5, 0.7]}), on="k", how="left").to_pydict()
            {'k': [1, 2], 'x': ['a', 'b'], 'x_right': [None, 0.5]}
            >>> a.join(Frame({"id": [2], "y": [True]}), on={"k": "id"}).to_pydict()
            {'k': [2], 'x': ['b'], 'y': [True]}
        """
        if not isinstance(other, Frame):
            raise InputError(f"join takes a Frame, got {type(other).__name__}")
        validation.check_choice("join how", how, validation.JOIN_KINDS)
        if isinstance(on, Mapping):
            check_columns(list(on.values()), other.columns)
            other = other.rename({right: left for left, right in on.items() if right != left})
            on = list(on)
        elif on is None:
            on = [c for c in self.columns if c in other.columns]
            if not on:
                raise InputError(f"join(on=None) joins on the columns both frames have, but {self.columns} and "
                                 f"{other.columns} share none; name the keys with on={{'left_key': 'right_key'}}")
        keys = validation.check_join_keys(self.schema, other.schema, validation.column_list([on]))
        return self._make(logical.Join(self._node, other._node, keys, how))

    def groupby(self, keys: str | Sequence[str]) -> Any:
        """Group rows by key columns; finish with ``.agg(...)`` (see :class:`GroupBy`).

        Example:
            >>> from framelab.frames import agg
            >>> f = Frame({"k": ["a", "b", "a"], "x": [1, 2, 3]})
            >>> f.groupby("k").agg(total=agg.sum("x")).sort("k").to_pydict()
            {'k': ['a', 'b'], 'total': [4, 2]}
        """
        names = validation.column_list([keys])
        check_columns(names, self.columns)
        return GroupBy(self, names)

    def to_arrow(self) -> pa.Table:
        """The whole frame as one pyarrow Table in the driver.

        Example:
            >>> Frame({"x": [1]}).to_arrow().schema
            x: int64
        """
        if "table" not in self._cache:
            self._cache["table"] = planner.table(self._node, self.schema)
        return self._cache["table"]

    def to_polars(self) -> pl.DataFrame:
        """The whole frame as a polars DataFrame.

        Example:
            >>> Frame({"x": [1, 2]}).to_polars().shape
            (2, 1)
        """
        return conversion.to_batch(self.to_arrow(), "polars")

    def to_pandas(self) -> Any:
        """The whole frame as a pandas DataFrame.

        Example:
            >>> Frame({"x": [1, 2]}).to_pandas()["x"].tolist()
            [1, 2]
        """
        return self.to_arrow().to_pandas()

    def to_pydict(self) -> dict[str, list]:
        """The whole frame as a dict of Python lists.

        Example:
            >>> Frame({"x": [1], "s": ["a"]}).to_pydict()
            {'x': [1], 's': ['a']}
        """
        return self.to_arrow().to_pydict()

    def to_numpy(self, column: str | Sequence[str] | None = None) -> np.ndarray:
        """One column as numpy (a 2-D ``(rows, dim)`` array for a vector column, 1-D otherwise), or numeric columns as one 2-D array.

        A list of columns (None: every column) gives a ``(rows, columns)`` array of their common type (nulls: NaN).

        Example:
            >>> Frame({"v": np.ones((2, 3), dtype="float32")}).to_numpy("v").shape
            (2, 3)
            >>> Frame({"a": [1, 2], "b": [0.5, None]}).to_numpy()
            array([[1. , 0.5],
                   [2. , nan]])
        """
        if not isinstance(column, str):
            return conversion.columns_to_numpy(self, self.columns if column is None else validation.column_list([column]))
        check_columns([column], self.columns)
        values = self.select(column).to_arrow().column(0)
        if is_vector_type(values.type):
            return vectors_to_numpy(values)
        return values.to_numpy()

    def iter_batches(self, batch_size: int = 1024, format: str = "arrow") -> Iterator[Any]:
        """Stream the frame in batches of ``batch_size`` rows (arrow, polars, pandas or numpy).

        Example:
            >>> [len(b["x"]) for b in Frame({"x": list(range(5))}).iter_batches(2, format="numpy")]
            [2, 2, 1]
        """
        conversion.check_format(format)
        batch_size = validation.check_positive_int(batch_size, "batch_size")
        table = self._cache.get("table")  # a result already in the driver is sliced, not computed again
        for batch in planner.iter_batches(self._node if table is None else table, batch_size):
            yield conversion.to_batch(batch, format)

    def to_torch(self, batch_size: int = 256, columns: Sequence[str] | None = None) -> Iterator[dict[str, Any]]:
        """Stream batches as dicts of torch tensors (vector columns become 2-D tensors).

        Example:
            >>> batch = next(iter(Frame({"v": np.zeros((4, 2), dtype="float32"), "y": [0, 1, 0, 1]}).to_torch(2)))
            >>> tuple(batch["v"].shape), tuple(batch["y"].shape)
            ((2, 2), (2,))
        """
        frame = self if columns is None else self.select(*columns)
        for batch in frame.iter_batches(batch_size, "arrow"):
            yield conversion.to_torch_batch(batch)


def read_images(paths: str | Sequence[str], options: ReadOptions | None = None, **overrides: Any) -> Frame:
    """Read image files into a frame with an ``image`` column (plus ``path``, ``label``, ``error``).

    ``paths`` is a folder, a file, a glob (``"photos/*/*.jpg"``), or a list
    of them; local paths or fsspec URLs (``s3://``, ``gs://``, ``file://``).
    The options are :class:`ReadOptions`' fields, given as ``options=`` or as
    keywords. Nothing is read until a result is asked for; the columns are
    known at once.

    Example:
        >>> import pathlib, tempfile
        >>> from PIL import Image
        >>> folder = pathlib.Path(tempfile.mkdtemp()) / "ewer"
        >>> folder.mkdir()
        >>> _ = [Image.new("RGB", (8, 6)).save(folder / f"{n}.jpg") for n in range(3)]
        >>> from framelab.frames import read_images
        >>> frame = read_images(str(folder), label_from="folder")
        >>> frame.columns
        ['image', 'path', 'label', 'error']
        >>> frame.head(2).to_pydict()["label"]
        ['ewer', 'ewer']
    """
    return Frame.read_images(paths, options=options, **overrides)


__all__ = ["Frame", "read_images"]
