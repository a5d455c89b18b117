"""k-means clustering: :func:`create` clusters a frame's vectors (or its images), :class:`KMeansModel` is the result.

The rows are loaded once into shards (:mod:`framelab.toolkits.vector_shards`)
and stay there for every iteration: an iteration is one pass of matrix
products over the shards, whose per-cluster sums the driver adds up into
the new centres; no Ray Data job runs between iterations.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import kmeans
    >>> points = Frame({"x": [0.0, 0.2, 0.1, 9.0, 9.2, 9.1]})
    >>> model = kmeans.create(points, num_clusters=2, seed=0, verbose=False)
    >>> sorted(model.cluster_info.to_pydict()["size"])
    [3, 3]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.expressions import ColumnExpr
from framelab.frames.validation import (
    SEED,
    check_arguments,
    check_seed,
    integer,
    one_of,
)
from framelab.frames.vectors import vectors_from_numpy
from framelab.platform import failures
from framelab.platform.client import on_cluster
from framelab.toolkits.deep_features import DeepFeatureExtractor, find_image_column
from framelab.toolkits.features import NUMERIC, FeatureEncoder, check_frame
from framelab.toolkits.image_features import image_column_or_none, with_features
from framelab.toolkits.kmeans import initialization as init
from framelab.toolkits.kmeans import lloyd
from framelab.toolkits.model import Model, Section
from framelab.toolkits.model_io import METADATA_FILE, table_from_array, table_to_array
from framelab.toolkits.model_pages import kmeans_page
from framelab.toolkits.saved_extractor import ExtractorPart, check_features_made_by
from framelab.toolkits.vector_shards import open_vector_shards

if TYPE_CHECKING:
    from framelab.toolkits.model_io import SavedModel

OUTPUT_TYPES = ("cluster_id", "distance")
_PATH = "path"  # the column read_images names each image by
_OUTPUT = "__kmeans_prediction__"
# cluster_id frames up to this size are kept in the driver; larger ones stay in the object store.
LOCAL_RESULT_BYTES = 64 << 20


@on_cluster
def create(
    frame: Frame,
    num_clusters: int,
    features: Sequence[str] | None = None,
    label: str | None = None,
    initial_centers: Any = None,
    max_iterations: int = 10,
    batch_size: int | None = None,
    seed: int | None = None,
    verbose: bool = True,
    *,
    image_column: str | None = None,
    model: str = "mobilenet_v2",
    feature_column: str = "deep_features",
    **extractor_options: Any,
) -> KMeansModel:
    """Cluster the rows of ``frame`` into ``num_clusters`` groups.

    Parameters:
        frame: the rows (a Frame, possibly spread over the cluster).
        num_clusters: k, at most the number of rows with features.
        features: numeric or vector columns; None uses every column but
            ``label`` or, when the frame has an image column, the deep
            features of its images (``model``; a matching
            ``feature_column`` is reused, as in image_classifier).
        label: a column naming rows in :attr:`KMeansModel.cluster_id`
            (else rows are named by position, ``row_id``).
        initial_centers: a Frame with the feature columns, or a
            ``(num_clusters, dims)`` array; None draws them: k-means++ when the
            rows fit in this process, k-means|| when they are spread over
            shards (both seeded).
        max_iterations: Lloyd iterations (passes over every row) with
            ``batch_size=None``; mini-batch steps otherwise. Lloyd stops earlier
            when no row changes cluster. 0 assigns every row to the initial
            centres and moves none (Turi's way to label rows by given centres).
        batch_size: None for exact Lloyd iterations over all rows; an integer
            for mini-batch k-means on that many rows a step (Sculley 2010,
            per-centre learning rates as scikit-learn's MiniBatchKMeans).
        seed: seeds initialisation and mini-batch draws (None: one is drawn and recorded).
        verbose: print a line per iteration.
        image_column, model, feature_column: for frames of images.
        extractor_options: for frames of images, the rest of
            :class:`framelab.toolkits.deep_features.DeepFeatureExtractor`'s
            options (``weights``, ``layer``, ``device``, ...); weights from a
            path or URL are copied into the model's folder when it is saved.

    Rows whose features are missing (images that failed to decode) get no
    cluster (null ``cluster_id``) and keep their rows; one warning counts them.

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import kmeans
        >>> frame = Frame({"v": np.array([[0, 0], [0, 1], [9, 9], [9, 8]], dtype="float32")})
        >>> model = kmeans.create(frame, 2, seed=1, verbose=False)
        >>> model.cluster_id.to_pydict()["cluster_id"] in ([0, 0, 1, 1], [1, 1, 0, 0])
        True
    """
    started = time.perf_counter()
    frame = check_frame(frame, "frame")
    check_arguments({"num_clusters": num_clusters, "max_iterations": max_iterations, "batch_size": batch_size,
                     "seed": seed}, _CREATE_ARGUMENTS)
    seed = check_seed(seed)
    source = frame
    extractor = None
    if features is None and _image_column(frame.schema, image_column) is not None:
        extractor = DeepFeatureExtractor(model, **extractor_options)
        image_column = _image_column(frame.schema, image_column)
        frame = with_features(frame, extractor, image_column, feature_column)
        features = [feature_column]
    elif extractor_options:
        raise InputError(
            f"{', '.join(sorted(extractor_options))} configure deep features, but this k-means clusters the "
            "frame's columns, not images; pass a frame with an image column (and features=None)"
        )
    vectors = open_vector_shards(frame, features, label, toolkit="kmeans")
    try:
        shards = vectors.shards
        encoder = vectors.encoder
        if num_clusters > vectors.num_present:
            raise InputError(
                f"num_clusters={num_clusters} is larger than the {vectors.num_present} rows with features; "
                f"ask for at most {vectors.num_present} clusters"
            )
        vectors.report_absent("kmeans", "kept with no cluster")
        rng = np.random.default_rng(seed)
        if initial_centers is not None:
            centers = _initial_centers(initial_centers, encoder, num_clusters)
            how, candidates = "given", None
        elif shards.in_process:
            centers, how, candidates = init.kmeans_plus_plus(shards, num_clusters, rng), "k-means++", None
        else:
            centers, candidates = init.kmeans_parallel(shards, num_clusters, rng, seed)
            how = "k-means||"
        init_s = time.perf_counter() - started
        if verbose:
            _print_header(vectors, num_clusters, how, batch_size)
        if batch_size is None:
            centers, final, progress, converged = _lloyd(shards, centers, max_iterations, verbose)
        else:
            centers, final, progress = _minibatch(shards, centers, max_iterations, batch_size, seed, verbose)
            converged = False
        refs = shards.submit(lloyd.shard_cluster_table, label)
        cluster_id = _gather(shards, refs)
        training = {
            "num_examples": vectors.num_rows,
            "num_with_features": vectors.num_present,
            "initialization": how,
            "initialization_candidates": candidates,
            "initialization_time_s": init_s,
            "iterations": len(progress),
            "max_iterations": int(max_iterations),
            "batch_size": batch_size,
            "converged": converged,
            "inertia": final.inertia,
            "seed": int(seed),
            "num_shards": shards.num_shards,
            "num_nodes": len(set(shards.nodes)),
            "training_time_s": time.perf_counter() - started,
            "progress": progress,
        }
    finally:
        vectors.close()
    if verbose:
        _print_footer(training)
    return KMeansModel(
        encoder=encoder, label=label, centers=centers, sizes=final.counts,
        sum_squared_distances=final.extras["per_cluster"], cluster_id=cluster_id, training=training,
        extractor=extractor, image_column=image_column, feature_column=feature_column if extractor else None,
        source=source,
    )


class KMeansModel(ExtractorPart, Model):
    """Centres of k clusters and each training row's cluster.

    Example:
        >>> model.cluster_info  # doctest: +SKIP
    """

    kind = "kmeans"
    _extractor_optional = True  # k-means on plain numeric columns has no extractor

    def __init__(
        self,
        *,
        encoder: FeatureEncoder,
        label: str | None,
        centers: np.ndarray,
        sizes: np.ndarray,
        sum_squared_distances: np.ndarray,
        cluster_id: Any,
        training: dict[str, Any],
        extractor: Any = None,
        image_column: str | None = None,
        feature_column: str | None = None,
        source: Any = None,
    ):
        self.encoder = encoder
        self.label = label
        self.centers = np.asarray(centers, dtype=np.float64)
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.sum_squared_distances = np.asarray(sum_squared_distances, dtype=np.float64)
        self._cluster_id = cluster_id
        self.training = dict(training)
        self.extractor = extractor
        self.image_column = image_column
        self.feature_column = feature_column
        self._source = source  # the training frame, for explore(); not saved

    @property
    def num_clusters(self) -> int:
        """k."""
        return len(self.centers)

    @property
    def features(self) -> list[str]:
        """The input columns clustered on."""
        return self.encoder.names

    @property
    def inertia(self) -> float:
        """Sum of squared distances of the rows to their centres (scikit-learn's ``inertia_``)."""
        return float(self.sum_squared_distances.sum())

    @property
    def cluster_id(self) -> Any:
        """Each training row's cluster: a Frame of ``row_id`` (or the label column), ``cluster_id``, ``distance``.

        ``distance`` is the Euclidean distance to the centre; rows without
        features have nulls. Rows come in row order.

        Example:
            >>> model.cluster_id.head()  # doctest: +SKIP
        """
        return self._cluster_id

    @property
    def cluster_info(self) -> Any:
        """One row per cluster: the centre (in the feature columns), ``cluster_id``, ``size``, ``sum_squared_distance``.

        Example:
            >>> model.cluster_info.to_pydict()["size"]  # doctest: +SKIP
        """
        columns: dict[str, Any] = {}
        start = 0
        for f in self.encoder.features:
            part = self.centers[:, start:start + f.width]
            columns[f.name] = pa.array(part[:, 0]) if f.kind == NUMERIC else vectors_from_numpy(part)
            start += f.width
        columns["cluster_id"] = pa.array(np.arange(self.num_clusters, dtype=np.int64))
        columns["size"] = pa.array(self.sizes)
        columns["sum_squared_distance"] = pa.array(self.sum_squared_distances)
        return Frame(pa.table(columns))

    def predict(self, frame: Frame, output_type: str = "cluster_id") -> pa.ChunkedArray:
        """The nearest centre of each row of ``frame`` (``output_type="distance"``: the distance to it).

        Rows without features (or images that fail to decode) predict null.
        Frames of images get their deep features extracted on the way.

        Example:
            >>> from framelab.frames import Frame
            >>> from framelab.toolkits import kmeans
            >>> model = kmeans.create(Frame({"x": [0.0, 0.1, 9.0, 9.1]}), 2, seed=0, verbose=False)
            >>> a, b = model.predict(Frame({"x": [0.05, 9.05]})).to_pylist()
            >>> a != b
            True
        """
        one_of(*OUTPUT_TYPES).check(output_type, "output_type")
        with failures.job():  # one count for the whole prediction, deep-features decoding included
            frame = self._features_of(frame)
            self.encoder.check_schema(frame.schema)
            # Rows without features are named by their path in the warning, when the frame has one.
            key = _PATH if _PATH in frame.schema.names and _PATH not in self.features else None
            nearest = NearestCenter(self.encoder, self.centers, output_type, key)
            # A column expression with a known type: no sample row runs (and is counted) to find the schema.
            return frame.with_column(_OUTPUT, nearest).select(_OUTPUT).to_arrow().column(0)

    def explore(self, frame: Frame = None, path: str | None = None, per_cluster: int = 12, **options: Any) -> str:
        """An HTML page of each cluster as a section (its size over all rows), nearest the centre first; returns its path.

        ``frame``: the frame of images the model was built on (by default the
        one given to :func:`create`, when this model was made in this session).
        ``options`` go to :func:`framelab.frames.images.explore.explore`.

        Example:
            >>> from framelab.toolkits import datasets, kmeans
            >>> model = kmeans.create(datasets.caltech101(), 20)  # doctest: +SKIP
            >>> model.explore()  # doctest: +SKIP
            /tmp/framelab-explore-....html
        """
        frame = self._source if frame is None else check_frame(frame, "frame")
        if frame is None:
            raise InputError("explore() needs the frame of images the model was built on: model.explore(frame)")
        return kmeans_page(self, frame, path, per_cluster=integer(1).check(per_cluster, "per_cluster"), **options)

    def _features_of(self, frame: Frame) -> Any:
        frame = check_frame(frame, "frame")
        if self.extractor is None:
            return frame
        return with_features(frame, self.extractor, self.image_column, self.feature_column)

    # ---------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        metadata = {
            "features": self.encoder.to_json(),
            "label": self.label,
            "num_clusters": self.num_clusters,
            "training": self.training,
            **self._extractor_state(),
        }
        arrays = {
            "centers": self.centers,
            "sizes": self.sizes,
            "sum_squared_distances": self.sum_squared_distances,
            "cluster_id": table_to_array(self.cluster_id.to_arrow()),
        }
        return metadata, arrays

    @classmethod
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse saved fields of the wrong type, and centres, sizes or assignments that do not fit them."""
        encoder = FeatureEncoder.from_saved(saved)
        label = saved.field("label", (str, type(None)), required=False)
        saved.field("training", dict, required=False)
        centers = saved.arrays.get("centers")
        # Models saved before num_clusters was recorded: the centres' rows say it, checked against the rest.
        k = saved.field("num_clusters", int, required=False,
                        default=centers.shape[0] if centers is not None and centers.ndim else 0)
        if k < 1:
            saved.refuse("num_clusters", f"is {k}, but a k-means model has at least one cluster")
        d = encoder.num_dims
        saved.array("centers", (k, d), meaning=f" ({k} cluster(s) x {d} unpacked feature(s))")
        saved.array("sizes", (k,), meaning=f" (a size per cluster, {k})", integer=True)
        saved.array("sum_squared_distances", (k,), meaning=f" (a sum per cluster, {k})")
        saved.array("cluster_id", (None,), meaning=" (an Arrow table's bytes)", integer=True)
        try:
            assigned = table_from_array(saved.arrays["cluster_id"])
        except (pa.ArrowInvalid, ValueError) as err:
            saved.refuse_array("cluster_id", f"is not an Arrow table of cluster assignments ({err})")
        expected = list(dict.fromkeys(["row_id", *([label] if label is not None else []), "cluster_id", "distance"]))
        if assigned.column_names != expected:
            saved.refuse_array("cluster_id", f"has columns {assigned.column_names}, but {METADATA_FILE} "
                                             f"describes {expected} (label {label!r})")
        ids = assigned.column("cluster_id").drop_null().to_numpy()
        if len(ids) and (ids.min() < 0 or ids.max() >= k):
            bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
            saved.refuse_array("cluster_id", f"assigns a row to cluster {bad}, but {METADATA_FILE} "
                                             f"describes {k} cluster(s)")
        config = cls._check_saved_extractor(saved)
        if config is not None:  # the centres must be in the extractor's feature space
            check_features_made_by(saved, "features", saved.metadata["features"], saved.metadata["feature_column"],
                                   config)

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, np.ndarray],
                    files: dict[str, bytes] | None = None) -> KMeansModel:
        return cls(
            encoder=FeatureEncoder.from_json(metadata["features"]),
            label=metadata.get("label"),
            centers=arrays["centers"],
            sizes=arrays["sizes"],
            sum_squared_distances=arrays["sum_squared_distances"],
            cluster_id=Frame(table_from_array(arrays["cluster_id"])),
            training=metadata.get("training", {}),
            **cls._extractor_from_saved(metadata, files),
        )

    # -------------------------------------------------------------- display
    def _summary_sections(self) -> list[Section]:
        t = self.training
        schema = [
            ("Number of clusters", self.num_clusters),
            ("Number of examples", t.get("num_examples")),
            ("Examples with features", t.get("num_with_features")),
            ("Number of feature columns", len(self.features)),
            ("Number of unpacked features", self.encoder.num_dims),
            ("Features", ", ".join(self.features)),
            ("Label", self.label),
        ]
        training = [
            ("Method", "mini-batch" if t.get("batch_size") else "Lloyd (exact)"),
            ("Batch size", t.get("batch_size")),
            ("Initialisation", t.get("initialization")),
            ("Iterations", t.get("iterations")),
            ("Converged", t.get("converged")),
            ("Inertia", t.get("inertia")),
            ("Training time (s)", t.get("training_time_s")),
            ("Seed", t.get("seed")),
            ("Shards", f"{t.get('num_shards')} on {t.get('num_nodes')} node(s)"),
        ]
        return [("Schema", schema), *([self._extractor_section()] if self.extractor is not None else []),
                ("Training", training)]


# ------------------------------------------------------------------ helpers
def _lloyd(shards: Any, centers: np.ndarray, max_iterations: int, verbose: bool):
    progress: list[dict] = []
    started = time.perf_counter()
    converged = False
    stats = _pass(shards, centers, exact=False)
    for iteration in range(1, max_iterations + 1):
        new = _update(shards, centers, stats)
        stats = _pass(shards, new, exact=False)
        centers = new
        row = {"iteration": iteration, "elapsed_s": time.perf_counter() - started,
               "inertia": stats.inertia, "changed": stats.changed}
        progress.append(row)
        if verbose:
            _print_row(row)
        if stats.changed == 0:
            converged = True
            break
    return centers, _pass(shards, centers), progress, converged


def _minibatch(shards: Any, centers: np.ndarray, steps: int, batch_size: int, seed: int, verbose: bool):
    progress: list[dict] = []
    started = time.perf_counter()
    weight = np.zeros(len(centers))
    total = sum(shards.map(lambda state: len(lloyd.present_positions(state))))
    share = shards.map(lambda state: len(lloyd.present_positions(state)))
    for step in range(1, steps + 1):
        refs = [shards.submit(lloyd.shard_minibatch, centers, max(1, round(batch_size * n / total)),
                              (seed, step, i), shard=i)
                [0] for i, n in enumerate(share) if n]
        batch = lloyd.PassStats.total(shards.get(refs))
        seen = batch.counts > 0
        new_weight = weight + batch.counts
        centers = centers.copy()
        centers[seen] = (centers[seen] * weight[seen, None] + batch.sums[seen]) / new_weight[seen, None]
        weight = new_weight
        row = {"iteration": step, "elapsed_s": time.perf_counter() - started,
               "inertia": batch.inertia, "changed": int(batch.counts.sum())}
        progress.append(row)
        if verbose:
            _print_row(row)
    return centers, _pass(shards, centers), progress


def _pass(shards: Any, centers: np.ndarray, exact: bool = True) -> lloyd.PassStats:
    """One assignment pass; the stats also carry each cluster's sum of squared distances."""
    parts = shards.map(lloyd.shard_assign, centers, exact)
    stats = lloyd.PassStats.total(parts)
    stats.extras["per_cluster"] = sum(p.extras["per_cluster"] for p in parts)
    return stats


def _update(shards: Any, centers: np.ndarray, stats: lloyd.PassStats) -> np.ndarray:
    """New centres from a pass's sums; an empty cluster moves to the row farthest from its centre."""
    new = centers.copy()
    full = stats.counts > 0
    new[full] = stats.sums[full] / stats.counts[full, None]
    empty = np.flatnonzero(~full)
    if len(empty):
        found = shards.map(lloyd.shard_farthest, len(empty))
        d2 = np.concatenate([f[0] for f in found])
        X = np.concatenate([f[1] for f in found])
        order = np.argsort(-d2, kind="stable")[:len(empty)]
        new[empty[:len(order)]] = X[order]
    return new


def _gather(shards: Any, refs: list) -> Any:
    import ray

    sizes = ray.experimental.get_object_locations(refs)
    total = sum(int((sizes.get(r) or {}).get("object_size") or 0) for r in refs)
    if total <= LOCAL_RESULT_BYTES:
        return Frame(pa.concat_tables(shards.get(refs)).sort_by(lloyd.ROW_POSITION).drop_columns(lloyd.ROW_POSITION))
    return Frame.from_ray(ray.data.from_arrow_refs(refs)).drop(lloyd.ROW_POSITION)


def _initial_centers(value: Any, encoder: FeatureEncoder, k: int) -> np.ndarray:
    if isinstance(value, Frame):
        encoder.check_schema(value.schema)
        table = value.select(*encoder.names).to_arrow()
        centers = encoder.encode(table).astype(np.float64)
    else:
        try:
            centers = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise InputError("initial_centers must be a Frame of the feature columns or a 2-D array") from None
    if centers.ndim != 2 or centers.shape != (k, encoder.num_dims):
        raise InputError(
            f"initial_centers must have {k} rows of {encoder.num_dims} values (num_clusters x features); "
            f"got shape {centers.shape}"
        )
    if not np.isfinite(centers).all():
        raise InputError("initial_centers has NaN or infinite values")
    return centers


def _image_column(schema: pa.Schema, image_column: str | None) -> str | None:
    if image_column is not None:
        return find_image_column(schema, image_column)
    return image_column_or_none(schema)


# What create() accepts, declared once and checked by the one helper every toolkit uses.
_CREATE_ARGUMENTS = {
    "num_clusters": integer(1),
    "max_iterations": integer(0, meaning="0: assign rows to the initial centres"),
    "batch_size": integer(1, meaning="mini-batch", none="Lloyd"),
    "seed": SEED,
}


def _print_header(vectors: Any, k: int, how: str, batch_size: int | None) -> None:
    method = f"mini-batch of {batch_size}" if batch_size else "Lloyd"
    print(f"k-means: {vectors.num_present} rows x {vectors.dim} features, {k} clusters, {method}, "
          f"initialised by {how}, {vectors.shards!r}")
    print("+-----------+--------------+------------------+-------------+")
    print("| Iteration | Elapsed Time | Inertia          | Rows moved  |")
    print("+-----------+--------------+------------------+-------------+")


def _print_row(row: dict) -> None:
    print(f"| {row['iteration']:>9} | {row['elapsed_s']:>11.2f}s | {row['inertia']:>16.6g} | "
          f"{row['changed']:>11} |")


def _print_footer(training: dict) -> None:
    print("+-----------+--------------+------------------+-------------+")
    state = "converged (no row changed cluster)" if training["converged"] else "stopped"
    print(f"k-means {state} after {training['iterations']} iteration(s); inertia {training['inertia']:.6g}")


@dataclass(frozen=True, eq=False)
class NearestCenter(ColumnExpr):
    """The column :meth:`KMeansModel.predict` computes: each row's nearest centre (or distance to it), block by block.

    Rows without features get a null, counted with
    :func:`framelab.platform.failures.report` (named by ``key`` when given).

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.features import FeatureEncoder
        >>> from framelab.toolkits.kmeans.kmeans import NearestCenter
        >>> frame = Frame({"x": [0.1, 8.0]})
        >>> encoder = FeatureEncoder.from_json([{"name": "x", "kind": "numeric", "dim": 1, "levels": []}])
        >>> expr = NearestCenter(encoder, np.array([[0.0], [9.0]]), "cluster_id", None)
        >>> frame.with_column("c", expr)["c"].to_pylist()
        [0, 1]
    """

    encoder: FeatureEncoder
    centers: np.ndarray
    output_type_name: str
    key: str | None

    def input_columns(self) -> list[str]:
        """The feature columns (and the key column naming rows in the warning).

        Example:
            >>> import numpy as np
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> from framelab.toolkits.kmeans.kmeans import NearestCenter
            >>> encoder = FeatureEncoder.from_json([{"name": "x", "kind": "numeric", "dim": 1, "levels": []}])
            >>> NearestCenter(encoder, np.zeros((1, 1)), "distance", "path").input_columns()
            ['x', 'path']
        """
        return list(dict.fromkeys(self.encoder.names + ([self.key] if self.key else [])))

    def output_type(self, schema: pa.Schema) -> pa.DataType:
        """int64 cluster ids, or float64 distances.

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> from framelab.toolkits.kmeans.kmeans import NearestCenter
            >>> encoder = FeatureEncoder.from_json([{"name": "x", "kind": "numeric", "dim": 1, "levels": []}])
            >>> NearestCenter(encoder, np.zeros((1, 1)), "distance", None).output_type(pa.schema([]))
            DataType(double)
        """
        return pa.int64() if self.output_type_name == "cluster_id" else pa.float64()

    def evaluate(self, table: pa.Table) -> pa.Array:
        """The block's nearest centres (null for rows without features, counted once per job).

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.toolkits.features import FeatureEncoder
            >>> from framelab.toolkits.kmeans.kmeans import NearestCenter
            >>> encoder = FeatureEncoder.from_json([{"name": "x", "kind": "numeric", "dim": 1, "levels": []}])
            >>> NearestCenter(encoder, np.array([[0.0], [9.0]]), "distance", None).evaluate(pa.table({"x": [8.0]})).to_pylist()
            [1.0]
        """
        X, present = self.encoder.encode_rows(table.select(self.encoder.names))
        labels, d2 = lloyd._assign(np.ascontiguousarray(X[present]), *lloyd._center_terms(self.centers))
        cluster = np.zeros(len(present), dtype=np.int64)
        distance = np.zeros(len(present))
        cluster[present] = labels
        distance[present] = np.sqrt(d2)
        if not present.all():
            missing = np.flatnonzero(~present)
            names = table.column(self.key).to_pylist() if self.key else None
            features = ", ".join(self.encoder.names)
            examples = [f"{names[i] if names else f'row {i} of its block'}: no {features}" for i in missing[:3]]
            failures.report("kmeans: predict", len(missing), len(present), examples,
                            action="predicted null (their features are missing: an image that could "
                                   "not be decoded?)")
        value = cluster if self.output_type_name == "cluster_id" else distance
        return pa.array(value, mask=~present)
