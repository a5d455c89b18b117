"""Models' explore pages: what each model adds to its frame's page, handed to frames' page builder as plain data.

frames/ knows no model: a classifier here passes its confusion matrix and each
row's prediction, k-means its cluster sizes, image similarity each shown
image's neighbours and its near-duplicate groups, the tagger its tags column,
all through :class:`framelab.frames.images.explore.Views`. The models'
``explore`` methods call these functions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.images.explore import MAX_ROWS, Views, explore
from framelab.frames.validation import check_positive_int
from framelab.toolkits.image_features import with_features

ROW = "row_id"


def classifier_page(model: Any, frame: Frame, path: str | None = None, **options: Any) -> str:
    """A classifier's evaluation on ``frame`` as a page: the confusion matrix, each cell opening its images.

    Features are extracted once and shared by the evaluation and the
    predictions; the grid lists misclassified rows first, least sure first
    among the right ones. ``options`` go to :func:`~framelab.frames.images.explore.explore`.

    Example:
        >>> from framelab.toolkits import datasets, image_classifier
        >>> from framelab.toolkits.model_pages import classifier_page
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6)
        >>> model = image_classifier.create(photos, "label", seed=0, verbose=False)  # doctest: +SKIP
        >>> classifier_page(model, photos)  # doctest: +SKIP
        '/tmp/framelab-explore-....html'
    """
    target = model.target
    if target not in frame.schema.names:
        raise InputError(f"explore() shows an evaluation, so the frame needs the target column {target!r}; "
                         f"it has {frame.columns}")
    featured = model._features(frame).add_row_number(ROW).materialize()
    evaluation = model.evaluate(featured, metric="confusion_matrix")  # the features are reused, not extracted again
    predicted = model.classify(featured).to_arrow()
    truth = featured.select(target).to_arrow().column(0)
    predictions = Frame(pa.table({
        ROW: pa.array(np.arange(len(truth), dtype=np.int64)),
        "predicted": predicted.column("class"),
        "probability": predicted.column("probability"),
        "correct": pa.array([t == p for t, p in zip(truth.to_pylist(), predicted.column("class").to_pylist())]),
    }))
    page = featured.join(predictions, on=ROW).sort(ROW)
    classes = list(model.classes)
    index = {c: i for i, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    cells = evaluation["confusion_matrix"].to_pydict()
    for t, p, n in zip(cells["target_label"], cells["predicted_label"], cells["count"]):
        counts[index[t], index[p]] = n
    views = Views(
        confusion={"truth": target, "predicted": "predicted", "classes": classes, "counts": counts.tolist()},
        sort=[["correct", False], ["probability", False]],
        colour=target,
        title=f"framelab explore: {type(model).__name__} evaluated on {int(counts.sum()):,} rows",
    )
    return explore(page, path, views=views, **options)


def kmeans_page(model: Any, frame: Frame, path: str | None = None, per_cluster: int = 12, **options: Any) -> str:
    """Each cluster as a section of its ``per_cluster`` rows nearest the centre, with its size over all rows.

    Example:
        >>> import numpy as np
        >>> from framelab.toolkits import datasets, kmeans
        >>> from framelab.toolkits.model_pages import kmeans_page
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=4)
        >>> model = kmeans.create(photos, 2, seed=0, verbose=False)  # doctest: +SKIP
        >>> kmeans_page(model, photos, per_cluster=2)  # doctest: +SKIP
        '/tmp/framelab-explore-....html'
    """
    assigned = model.cluster_id.select("row_id", "cluster_id", "distance").to_polars()
    shown = (assigned.drop_nulls("cluster_id").sort(["cluster_id", "distance"])
             .group_by("cluster_id", maintain_order=True).head(per_cluster)
             .select("row_id", "cluster_id", "distance"))
    rows = frame.add_row_number("row_id").filter(pl.col("row_id").is_in(shown["row_id"].to_list()))
    page = rows.join(Frame(shown), on="row_id").sort(["cluster_id", "distance"])
    info = model.cluster_info.select("cluster_id", "size").to_pydict()
    views = Views(
        group="cluster_id",
        group_sizes={"cluster_id": {str(c): int(n) for c, n in zip(info["cluster_id"], info["size"])}},
        sort=[["distance", False]],
        colour="cluster_id",
        title=f"framelab explore: {model.num_clusters} k-means clusters, nearest the centre first",
    )
    return explore(page, path, views=views, max_rows=max(len(shown), 1), **options)


def similarity_page(model: Any, frame: Frame, path: str | None = None, k: int = 5, max_rows: int = MAX_ROWS,
                    seed: int = 0, **options: Any) -> str:
    """The reference images with each one's ``k`` nearest neighbours (click an image) and near-duplicate groups.

    ``frame`` is the frame the model was built on (its rows are the model's
    reference rows, in order). The page holds up to ``max_rows`` images (a
    seeded sample when there are more) and the neighbours of each.

    Example:
        >>> from framelab.toolkits import datasets, image_similarity
        >>> from framelab.toolkits.model_pages import similarity_page
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=4)
        >>> model = image_similarity.create(photos, verbose=False)  # doctest: +SKIP
        >>> similarity_page(model, photos, k=2)  # doctest: +SKIP
        '/tmp/framelab-explore-....html'
    """
    k = check_positive_int(k, "k")
    key = model.neighbors.label if model.neighbors.label in frame.schema.names else ROW
    n = model.num_rows
    chosen = np.arange(n) if n <= max_rows else np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
    graph = model.similarity_graph(k=k).to_polars()
    groups = model.near_duplicates().to_polars().select(ROW, "group_id", "group_size")
    featured = with_features(frame, model.extractor, model.image_column, model.feature_column).add_row_number(ROW)
    keys = featured.select(ROW, key).to_polars() if key != ROW else pl.DataFrame({ROW: np.arange(n)})
    wanted = set(keys[key].gather(chosen).to_list())
    edges = graph.filter(pl.col("query_label").is_in(list(wanted))).sort(["query_label", "rank"])
    neighbours: dict[str, list] = {}
    for q, r, d in edges.select("query_label", "reference_label", "distance").iter_rows():
        neighbours.setdefault(str(q), []).append([r, d])
    shown = wanted | set(edges["reference_label"].to_list())
    rows = featured.filter(pl.col(key).is_in(list(shown))).join(Frame(groups), on=ROW).sort(ROW)
    views = Views(
        neighbours={"key": key, "of": neighbours},
        duplicates="group_id",
        title=f"framelab explore: image similarity over {n:,} images ({model.neighbors.distance} distance)",
    )
    return explore(rows, path, views=views, max_rows=max(len(shown), 1), seed=seed, **options)


def tagger_page(model: Any, frame: Frame, path: str | None = None, k: int | None = 10,
                threshold: float | None = None, **options: Any) -> str:
    """The images with their tags: tag facets with counts over all rows, and a filter by tag and minimum score.

    Example:
        >>> from framelab.toolkits import image_tagger
        >>> from framelab.toolkits.model_pages import tagger_page
        >>> tagger_page(image_tagger.create(), photos)  # doctest: +SKIP
    """
    tagged = model.tag(frame, k=k, threshold=threshold)
    views = Views(title="framelab explore: image tags")
    return explore(tagged, path, views=views, **options)
