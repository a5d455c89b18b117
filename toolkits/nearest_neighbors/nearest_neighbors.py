"""Nearest neighbours: :func:`create` shards a frame's vectors, :class:`NearestNeighborsModel` searches them.

The reference vectors stay in the memory of actors spread over the cluster
(:mod:`framelab.platform.sharded`) for as long as the model lives; each query
batch is compared with every shard by matrix products and the shards' lists
are merged (:mod:`.batches`). Brute force is exact: the neighbours and
distances are scikit-learn's brute-force ones, ties aside.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import nearest_neighbors
    >>> points = Frame({"x": [0.0, 1.0, 5.0], "y": [0.0, 0.0, 0.0], "name": ["a", "b", "c"]})
    >>> model = nearest_neighbors.create(points, label="name", verbose=False)
    >>> found = model.query(Frame({"x": [0.9], "y": [0.0]}), k=2).to_pydict()
    >>> found["reference_label"], [round(d, 4) for d in found["distance"]], found["rank"]
    (['b', 'a'], [0.1, 0.9], [1, 2])

Vectors are held as float32 (as deep features are): distances are exact for
the float32 values, so float64 inputs agree with scikit-learn to about 1e-7.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames.errors import ColumnNotFoundError, InputError
from framelab.frames.validation import SEED, integer, number
from framelab.frames.vectors import vectors_from_numpy
from framelab.platform import failures
from framelab.platform.client import on_cluster
from framelab.platform.resources import threads_for
from framelab.toolkits.features import FeatureEncoder, check_frame
from framelab.toolkits.model import Model, Section
from framelab.toolkits.model_io import METADATA_FILE, table_from_array, table_to_array
from framelab.toolkits.nearest_neighbors import ann as ann_index
from framelab.toolkits.nearest_neighbors import components, search
from framelab.toolkits.nearest_neighbors.batches import BatchRunner, batch_rows
from framelab.toolkits.nearest_neighbors.distances import DISTANCES, check_distance
from framelab.toolkits.vector_shards import open_vector_shards, present_positions, rows_at

if TYPE_CHECKING:
    from framelab.frames import Frame
    from framelab.toolkits.model_io import SavedModel

METHODS = ("auto", "brute_force", "ann")
# create(method="ann") measures recall@RECALL_K on this many reference rows against brute force.
RECALL_QUERIES = 200
RECALL_K = 10
# Results up to this size come back as a frame in the driver; larger ones stay in the object store.
LOCAL_RESULT_BYTES = 64 << 20
# connected_components(min_radius=...): a row's local scale is its distance to its LOCAL_NEIGHBOR-th
# nearest other row, and a pair is joined within LOCAL_RATIO times the larger scale of its two rows.
# Ten neighbours: a photo with up to nine copies still has a scale set by other photos.
LOCAL_NEIGHBOR = 10
LOCAL_RATIO = 0.3
_VECTOR_COLUMN = "__vectors__"


@on_cluster
def create(
    frame: Frame,
    features: Sequence[str] | None = None,
    label: str | None = None,
    distance: str = "auto",
    method: str = "auto",
    seed: int | None = None,
    verbose: bool = True,
) -> NearestNeighborsModel:
    """Index the rows of ``frame`` for nearest-neighbour queries.

    Parameters:
        frame: the reference rows (a Frame, possibly spread over the cluster).
        features: numeric or vector columns (deep features); None uses every
            column but ``label``.
        label: a column naming each row in results; None names rows by
            their position in ``frame``.
        distance: "euclidean" ("auto"), "squared_euclidean", "cosine",
            "dot_product" (``-a.b``: the largest inner product first) or
            "manhattan" (see :mod:`framelab.toolkits.nearest_neighbors.distances`).
        method: "brute_force" ("auto"): exact, every query compared with every
            row; "ann": an HNSW graph per shard (faiss), approximate, with the
            recall measured on a sample of rows and reported.
        seed: seeds the rows the recall of ``method="ann"`` is measured on.
        verbose: print what was built.

    Rows whose features are missing (images that failed to decode) keep their
    row id but are never a neighbour; one warning counts them. NaN or infinite
    values, vectors of different lengths and an empty frame are refused.

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import nearest_neighbors
        >>> frame = Frame({"v": np.eye(3, dtype="float32")})
        >>> nearest_neighbors.create(frame, verbose=False).num_rows
        3
    """
    started = time.perf_counter()
    distance = check_distance(distance)
    method = _check_method(method)
    SEED.check(seed, "seed")  # None stays None: the recall is then measured on the same rows every time
    vectors = open_vector_shards(frame, features, label, toolkit="nearest_neighbors", resident=True)
    try:
        if vectors.num_present == 0:
            raise InputError(
                f"none of the {vectors.num_rows} rows has features ({', '.join(vectors.encoder.names)} "
                "are all missing); check the frame's error column"
            )
        vectors.report_absent("nearest_neighbors", "kept with no neighbours")
        training: dict[str, Any] = {
            "num_examples": vectors.num_rows,
            "num_with_features": vectors.num_present,
            "num_shards": vectors.shards.num_shards,
            "num_nodes": len(set(vectors.shards.nodes)),
            "seed": seed,
        }
        model = NearestNeighborsModel(
            encoder=vectors.encoder, label=label, label_type=vectors.label_type,
            distance=distance, method=method, training=training, vectors=vectors,
        )
        if method == "ann":
            model._build_index()
            model.training["recall"] = model._measure_recall(seed)
    except BaseException:
        vectors.close()
        raise
    model.training["build_time_s"] = time.perf_counter() - started
    if verbose:
        print(model)
    return model


class NearestNeighborsModel(Model):
    """Reference vectors held in cluster memory, searched exactly (or through per-shard HNSW graphs).

    Example:
        >>> model.query(queries, k=5)  # doctest: +SKIP
    """

    kind = "nearest_neighbors"

    def __init__(
        self,
        *,
        encoder: FeatureEncoder,
        label: str | None,
        label_type: pa.DataType,
        distance: str,
        method: str,
        training: dict[str, Any],
        vectors: Any = None,
        saved: dict[str, np.ndarray] | None = None,
    ):
        self.encoder = encoder
        self.label = label
        self.label_type = label_type
        self.distance = distance
        self.method = method
        self.training = dict(training)
        self._vectors = vectors
        self._saved = saved

    # ------------------------------------------------------------ properties
    @property
    def features(self) -> list[str]:
        """The input columns the model measures distances on."""
        return self.encoder.names

    @property
    def num_rows(self) -> int:
        """Reference rows, with or without features."""
        return int(self.training["num_examples"])

    @property
    def num_with_features(self) -> int:
        """Reference rows that can be neighbours (their features are present)."""
        return int(self.training["num_with_features"])

    # --------------------------------------------------------------- queries
    def query(self, frame: Frame, k: int | None = 5, radius: float | None = None, label: str | None = None) -> Any:
        """The ``k`` nearest reference rows of each row of ``frame`` (within ``radius`` when given).

        Returns a Frame of ``query_label`` (``frame[label]``, else the row's
        position), ``reference_label`` (the model's label, else the reference
        row's position), ``distance`` and ``rank`` (1 = nearest), grouped by
        query in batch order, each query's rows by rank; ties in distance go
        to the smaller row id. ``k=None`` with a ``radius`` returns every
        row within it. A ``k`` larger than the reference rows is cut to
        their number, with a warning (Turi Create's behaviour). A query row with missing features (an image that
        could not be decoded) keeps one row with null ``reference_label``,
        ``distance`` and ``rank`` (one warning counts them); an empty frame
        gives an empty result.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import nearest_neighbors
            >>> model = nearest_neighbors.create(Frame({"x": [0.0, 1.0, 3.0]}), verbose=False)
            >>> model.query(Frame({"x": [1.2]}), k=1).to_pydict()["reference_label"]
            [1]
        """
        import ray

        frame = check_frame(frame, "frame")
        k, radius = self._check_search(k, radius, exclude_self=False)
        self.encoder.check_schema(frame.schema)
        if label is not None and label not in frame.schema.names:
            raise ColumnNotFoundError([label], frame.schema.names)
        query_type = frame.schema.field(label).type if label is not None else pa.int64()
        vectors = self._shards()
        columns = list(dict.fromkeys(self.features + ([label] if label else [])))
        size = batch_rows(k, self.encoder.num_dims, vectors.shards.num_shards)
        seen = {"rows": 0, "absent": 0}

        def batches():
            for table in frame.select(*columns).iter_batches(batch_size=size, format="arrow"):
                X, present = self.encoder.encode_rows(table)
                n = table.num_rows
                labels = (table.column(label).combine_chunks() if label is not None
                          else pa.array(np.arange(seen["rows"], seen["rows"] + n, dtype=np.int64)))
                seen["rows"] += n
                seen["absent"] += int((~present).sum())
                yield ray.put(search.make_batch(X, present, np.full(n, -1, dtype=np.int64), labels, null_rows=True))

        runner = BatchRunner(vectors.shards, self.distance, k, radius, False, self.label_type,
                             method=self._search_method())
        refs = runner.run(batches())
        if seen["absent"]:
            failures.report("nearest_neighbors query", seen["absent"], seen["rows"],
                            action="given one row of nulls (their features are missing)")
        return self._frame(refs, _result_schema(query_type, self.label_type))

    def similarity_graph(self, k: int | None = 5, radius: float | None = None,
                         include_self_edges: bool = False) -> Any:
        """Every reference row's ``k`` nearest reference rows: the edges of the k-NN graph, as a Frame.

        Columns as :meth:`query` (``query_label`` names the row the edge
        leaves). Without ``include_self_edges`` a row is never its own
        neighbour, as scikit-learn's ``kneighbors()`` without arguments.
        Query batches are cut from the shards themselves; the driver holds
        only object refs, and a large graph stays in the object store.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import nearest_neighbors
            >>> model = nearest_neighbors.create(Frame({"x": [0.0, 1.0, 3.0]}), verbose=False)
            >>> model.similarity_graph(k=1).to_pydict()["reference_label"]
            [1, 0, 1]
        """
        k, radius = self._check_search(k, radius, exclude_self=not include_self_edges)
        if not isinstance(include_self_edges, bool):
            raise InputError(f"include_self_edges must be True or False; got {include_self_edges!r}")
        vectors = self._shards()
        runner = BatchRunner(vectors.shards, self.distance, k, radius, not include_self_edges,
                             self.label_type, method=self._search_method())
        refs = runner.run(self._graph_batches(vectors, batch_rows(k, vectors.dim, vectors.shards.num_shards)))
        return self._frame(refs, _result_schema(self.label_type, self.label_type))

    def connected_components(self, radius: float, k: int | None = None, min_radius: float | None = None) -> Any:
        """Groups of rows joined by chains of neighbours closer than ``radius``: the graph's components.

        Returns a Frame with one row per reference row: ``row_id`` (its
        position), the label column when the model has one, ``group_id``
        (the smallest row id of its group) and ``group_size``; rows with
        missing features get null groups. ``k`` caps the neighbours each row
        is joined to (None: all within ``radius``; with ``method="ann"`` it is
        10 unless given). Edges are reduced to forests on the shards, batch
        by batch, and forests merged in a tree: no process holds the graph.

        With ``min_radius``, the radius adapts to how crowded each place is:
        a pair is joined when its distance is at most
        ``max(min_radius, min(radius, LOCAL_RATIO * s))``, ``s`` being the
        larger of its two rows' distances to their ``LOCAL_NEIGHBOR``-th
        nearest other row. Where many rows are alike (product shots, bursts
        of photos) the radius shrinks to ``min_radius``; where a row has few
        close neighbours, pairs up to ``radius`` join. One more search pass
        over the reference rows finds each row's scale.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import nearest_neighbors
            >>> model = nearest_neighbors.create(Frame({"x": [0.0, 0.1, 5.0]}), verbose=False)
            >>> model.connected_components(radius=0.5).to_pydict()["group_id"]
            [0, 0, 2]
        """
        if radius is None:
            raise InputError("connected_components needs a radius: rows closer than it are joined")
        if k is None and self.method == "ann":
            k = RECALL_K
        k, radius = self._check_search(k, radius, exclude_self=True, cap_k=True)
        if min_radius is not None:
            min_radius = number(0, radius, none="a fixed radius").check(min_radius, "min_radius")
        vectors = self._shards()
        finish = _forest_of_batch
        if min_radius is not None and min_radius < radius:
            finish = functools.partial(_forest_of_local_batch, scales=self._local_scales(vectors),
                                       min_radius=min_radius, radius=radius)
        runner = BatchRunner(vectors.shards, self.distance, k, radius, True, self.label_type,
                             method=self._search_method(), finish=finish)
        forests = runner.run(self._graph_batches(vectors, batch_rows(k, vectors.dim, vectors.shards.num_shards)))
        shards = vectors.shards
        turn = 0
        while len(forests) > 1:
            merged = []
            for i in range(0, len(forests), 8):
                turn = (turn + 1) % shards.num_shards
                merged.append(shards.submit(_merge_forests, *forests[i:i + 8], shard=turn)[0])
            forests = merged
        forest = forests[0] if forests else components.FOREST_SCHEMA.empty_table()
        refs = shards.submit(_shard_groups, forest, self.label)
        schema = pa.schema([("row_id", pa.int64())]
                           + ([(self.label, self.label_type)] if self.label else [])
                           + [("group_id", pa.int64()), ("group_size", pa.int64())])
        return self._frame(refs, schema, sort_by="row_id")

    # -------------------------------------------------------------- internals
    def _local_scales(self, vectors: Any) -> Any:
        """An object ref of each row's distance to its ``LOCAL_NEIGHBOR``-th nearest other row (by row id).

        Rows without features, and every row of a model with a single row, get infinity (no local limit).
        """
        import ray

        others = self.num_with_features - 1
        scales = np.full(self.num_rows, np.inf)
        if others >= 1:
            k = min(LOCAL_NEIGHBOR, others)
            runner = BatchRunner(vectors.shards, self.distance, k, None, True, self.label_type,
                                 method=self._search_method(), finish=_farthest_of_batch)
            refs = runner.run(self._graph_batches(vectors, batch_rows(k, vectors.dim, vectors.shards.num_shards)))
            for table in vectors.shards.get(refs):
                scales[table.column("row").to_numpy()] = table.column("scale").to_numpy()
        return ray.put(scales)

    def _check_search(self, k: Any, radius: Any, *, exclude_self: bool,
                      cap_k: bool = False) -> tuple[int | None, float | None]:
        if radius is not None:
            radius = number(0, none="every distance").check(radius, "radius")
        if k is None:
            if radius is None:
                raise InputError("give k, radius or both: k=None returns every row within the radius")
            if self.method == "ann":
                raise InputError("method='ann' needs a k (it finds k candidates per query); give k")
            return None, radius
        k = integer(1, none="with a radius").check(k, "k")
        available = self.num_with_features - (1 if exclude_self else 0)
        if k > available:
            # Turi Create's behaviour, not a refusal: every row there is is the answer a user who asked
            # for more wanted; the warning says the result is shorter than asked.
            if not cap_k:
                import warnings

                what = "other reference rows" if exclude_self else "reference rows"
                warnings.warn(f"k={k} is larger than the {available} {what} with features; each query gets "
                              f"{available} neighbour(s) (ask for at most {available} to silence this)",
                              UserWarning, stacklevel=3)
            return max(available, 1), radius
        return int(k), radius

    def _search_method(self) -> str:
        return "ann" if self.method == "ann" else "brute_force"

    def _graph_batches(self, vectors: Any, size: int):
        for shard, segments in enumerate(vectors.segments_per_shard):
            for index, rows in enumerate(segments):
                for start in range(0, rows, size):
                    yield vectors.shards.submit(search.shard_batch, index, start, min(rows, start + size),
                                                shard=shard)[0]

    def _frame(self, refs: list, schema: pa.Schema, sort_by: str | None = None) -> Any:
        """A Frame of result tables: gathered in the driver when small, else left in the object store."""
        import ray

        from framelab.frames import Frame

        if not refs:
            return Frame(schema.empty_table())
        sizes = ray.experimental.get_object_locations(refs)
        total = sum(int((sizes.get(r) or {}).get("object_size") or 0) for r in refs)
        if total <= LOCAL_RESULT_BYTES:
            tables = self._vectors.shards.get(refs)
            table = pa.concat_tables([t.cast(schema) for t in tables])
            if sort_by is not None:
                table = table.sort_by(sort_by)
            return Frame(table)
        return Frame.from_ray(ray.data.from_arrow_refs(refs), schema=schema)

    def _shards(self) -> Any:
        """The shards holding the reference vectors (built from the saved arrays on first use)."""
        if self._vectors is None:
            from framelab.frames import Frame

            saved = self._saved
            present = saved["present"].astype(bool)
            columns = {_VECTOR_COLUMN: vectors_from_numpy(saved["vectors"], mask=~present)}
            if self.label is not None:
                columns[self.label] = table_from_array(saved["labels"]).column("labels")
            self._vectors = open_vector_shards(Frame(pa.table(columns)), [_VECTOR_COLUMN], self.label,
                                               toolkit="nearest_neighbors", resident=True)
            if self.method == "ann":
                self._build_index()
        return self._vectors

    def _build_index(self) -> None:
        vectors = self._vectors
        threads = None if vectors.shards.in_process else threads_for(1.0)
        built = vectors.shards.map(ann_index.shard_build_index, self.distance, threads, {})
        self.training["ann_build_time_s"] = max(b["seconds"] for b in built)
        self.training["ann_index"] = (f"faiss IndexHNSWFlat M={ann_index.HNSW_M}, "
                                      f"efConstruction={ann_index.EF_CONSTRUCTION}, efSearch={ann_index.EF_SEARCH}")

    def _measure_recall(self, seed: int | None) -> float:
        """recall@k of the HNSW search against brute force, on a seeded sample of reference rows."""
        vectors = self._vectors
        k = min(RECALL_K, vectors.num_present - 1)
        if k < 1:
            return 1.0
        share = [max(1, round(RECALL_QUERIES * rows / max(vectors.num_rows, 1))) for rows in vectors.rows_per_shard]
        seed = 0 if seed is None else int(seed)
        batches = [vectors.shards.submit(_sample_batch, n, seed + i, shard=i)[0] for i, n in enumerate(share)]
        found = {}
        for method in ("brute_force", "ann"):
            runner = BatchRunner(vectors.shards, self.distance, k, None, True, pa.int64(), method=method,
                                 finish=_id_pairs)
            tables = vectors.shards.get(runner.run(batches))
            found[method] = {(q, r) for t in tables for q, r in zip(t.column("query").to_pylist(),
                                                                     t.column("reference").to_pylist())}
        exact = found["brute_force"]
        return len(exact & found["ann"]) / max(len(exact), 1)

    # ---------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        vectors = self._shards()
        parts = vectors.shards.map(_shard_export)
        ids = np.concatenate([p["ids"] for p in parts])
        order = np.argsort(ids, kind="stable")
        X = np.concatenate([p["X"] for p in parts])[order]
        present = np.concatenate([p["present"] for p in parts])[order]
        arrays = {"vectors": X, "present": present.astype(np.uint8)}
        if self.label is not None:
            labels = pa.concat_arrays([p["labels"] for p in parts]).take(pa.array(order))
            arrays["labels"] = table_to_array(pa.table({"labels": labels}))
        metadata = {
            "features": self.encoder.to_json(),
            "label": self.label,
            "distance": self.distance,
            "method": self.method,
            "training": self.training,
        }
        return metadata, arrays

    @classmethod
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse saved fields of the wrong type, and reference vectors, flags or labels that do not fit them."""
        encoder = FeatureEncoder.from_saved(saved)
        label = saved.field("label", (str, type(None)), required=False)
        distance = saved.field("distance", str)
        if distance not in DISTANCES:
            saved.refuse("distance", f"is {distance!r}, not one of {', '.join(DISTANCES)}")
        method = saved.field("method", str)
        if method not in METHODS[1:]:
            saved.refuse("method", f"is {method!r}, not one of {', '.join(METHODS[1:])}")
        training = saved.nested("training")
        n = training.field("num_examples", int)
        present_rows = training.field("num_with_features", int)
        if not 0 < present_rows <= n:
            training.refuse("num_with_features", f"is {present_rows}, but must be between 1 and num_examples ({n})")
        d = encoder.num_dims
        saved.array("vectors", (n, d), meaning=f" ({n} reference row(s) x {d} unpacked feature(s))")
        present = saved.array("present", (n,), meaning=f" (a flag per reference row, {n})", integer=True)
        if not np.isin(present, (0, 1)).all():
            saved.refuse_array("present", "holds values other than 0 and 1")
        if int(present.sum()) != present_rows:
            saved.refuse_array("present", f"flags {int(present.sum())} row(s) with features, but "
                                          f"{METADATA_FILE} records {present_rows}")
        if label is not None:
            saved.array("labels", (None,), meaning=" (an Arrow table's bytes)", integer=True)
            try:
                labels = table_from_array(saved.arrays["labels"])
            except (pa.ArrowInvalid, ValueError) as err:
                saved.refuse_array("labels", f"is not an Arrow table of the {label!r} labels ({err})")
            if labels.column_names != ["labels"] or labels.num_rows != n:
                saved.refuse_array("labels", f"holds {labels.num_rows} row(s) in columns {labels.column_names}, "
                                             f"but {METADATA_FILE} describes {n} in ['labels']")

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, np.ndarray]) -> NearestNeighborsModel:
        label_type = (table_from_array(arrays["labels"]).schema.field("labels").type
                      if "labels" in arrays else pa.int64())
        return cls(
            encoder=FeatureEncoder.from_json(metadata["features"]),
            label=metadata.get("label"),
            label_type=label_type,
            distance=metadata["distance"],
            method=metadata["method"],
            training=metadata.get("training", {}),
            saved=arrays,
        )

    # -------------------------------------------------------------- display
    def _summary_sections(self) -> list[Section]:
        t = self.training
        method = "brute force (exact)" if self.method != "ann" else "ann (per-shard HNSW)"
        where = (f"{t.get('num_shards')} on {t.get('num_nodes')} node(s)"
                 if self._vectors is not None else "not loaded yet (built on first query)")
        rows = [
            ("Number of reference examples", t.get("num_examples")),
            ("Examples with features", t.get("num_with_features")),
            ("Number of feature columns", len(self.features)),
            ("Number of unpacked features", self.encoder.num_dims),
            ("Features", ", ".join(self.features)),
            ("Label", self.label),
            ("Distance", self.distance),
            ("Method", method),
        ]
        training = [("Shards", where), ("Build time (s)", t.get("build_time_s"))]
        if self.method == "ann":
            training += [("Index", t.get("ann_index")), ("Index build time (s)", t.get("ann_build_time_s")),
                         (f"Measured recall@{RECALL_K}", t.get("recall"))]
        return [("Schema", rows), ("Training", training)]


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return "brute_force" if method == "auto" else method


def _result_schema(query_type: pa.DataType, reference_type: pa.DataType) -> pa.Schema:
    return pa.schema([("query_label", query_type), ("reference_label", reference_type),
                      ("distance", pa.float64()), ("rank", pa.int64())])


# ------------------------------------------------------------- on the shards
def _forest_of_batch(state: dict, batch: dict, k: int | None, label_type: pa.DataType, *lists: pa.Table) -> pa.Table:
    table = search.merge_lists(*lists, k=k)
    q = batch["ids"][table.column("query").to_numpy()]
    return components.forest_of(q, table.column("reference").to_numpy())


def _forest_of_local_batch(state: dict, batch: dict, k: int | None, label_type: pa.DataType, *lists: pa.Table,
                           scales: Any, min_radius: float, radius: float) -> pa.Table:
    """:func:`_forest_of_batch` over the pairs within each pair's local radius (see ``min_radius``)."""
    import ray

    table = search.merge_lists(*lists, k=k)
    q = batch["ids"][table.column("query").to_numpy()]
    r = table.column("reference").to_numpy()
    scale = ray.get(scales)
    limit = np.maximum(min_radius, np.minimum(radius, LOCAL_RATIO * np.maximum(scale[q], scale[r])))
    keep = table.column("distance").to_numpy() <= limit
    return components.forest_of(q[keep], r[keep])


def _farthest_of_batch(state: dict, batch: dict, k: int | None, label_type: pa.DataType,
                       *lists: pa.Table) -> pa.Table:
    """Each query row's distance to the farthest of its ``k`` nearest other rows."""
    table = search.merge_lists(*lists, k=k)
    q = table.column("query").to_numpy()
    d = table.column("distance").to_numpy()
    last = np.r_[q[1:] != q[:-1], True] if len(q) else np.zeros(0, bool)  # lists are sorted by query, distance
    return pa.table({"row": pa.array(batch["ids"][q[last]]), "scale": pa.array(d[last])})


def _id_pairs(state: dict, batch: dict, k: int | None, label_type: pa.DataType, *lists: pa.Table) -> pa.Table:
    table = search.merge_lists(*lists, k=k)
    q = batch["ids"][table.column("query").to_numpy()]
    return pa.table({"query": pa.array(q), "reference": table.column("reference")})


def _merge_forests(state: dict, *forests: pa.Table) -> pa.Table:
    return components.merge_forests(*forests)


def _shard_groups(state: dict, forest: pa.Table, label: str | None) -> pa.Table:
    ids = np.concatenate([s.ids for s in state["segments"]]) if state["segments"] else np.zeros(0, np.int64)
    present = (np.concatenate([s.present for s in state["segments"]]) if state["segments"]
               else np.zeros(0, bool))
    group, size = components.groups_of_rows(ids, present, forest)
    columns: dict[str, Any] = {"row_id": pa.array(ids)}
    if label is not None:
        columns[label] = state["labels"].combine_chunks()
    columns["group_id"] = group
    columns["group_size"] = size
    return pa.table(columns)


def _sample_batch(state: dict, n: int, seed: int) -> dict:
    positions = present_positions(state)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(positions, size=min(n, len(positions)), replace=False))
    ids, X = rows_at(state, chosen)
    return search.make_batch(X, np.ones(len(ids), dtype=bool), ids, pa.array(ids))


def _shard_export(state: dict) -> dict:
    segments = state["segments"]
    out = {
        "ids": np.concatenate([s.ids for s in segments]) if segments else np.zeros(0, np.int64),
        "X": np.concatenate([s.X for s in segments]) if segments else np.zeros((0, state["dim"]), np.float32),
        "present": np.concatenate([s.present for s in segments]) if segments else np.zeros(0, bool),
    }
    if state.get("labels") is not None:
        out["labels"] = state["labels"].combine_chunks()
    return out
