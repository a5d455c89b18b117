"""Image similarity: deep features of the images + nearest neighbours, and near-duplicate groups.

:func:`create` extracts deep features (or reuses a column of matching
provenance, as image_classifier does) and indexes them with
:func:`framelab.toolkits.nearest_neighbors.create` (cosine distance by
default); :class:`ImageSimilarityModel` keeps the extractor, so
:meth:`~ImageSimilarityModel.query` takes a frame of new raw images.

Near-duplicates (:meth:`~ImageSimilarityModel.near_duplicates`) are the
connected components of the graph joining images closer than a threshold that
adapts to the neighbourhood (see
:meth:`~framelab.toolkits.nearest_neighbors.NearestNeighborsModel.connected_components`):
cosine distance up to :data:`NEAR_DUPLICATE_THRESHOLD` (0.085 on mobilenet_v2
features) for an image with few close neighbours, shrinking to
:data:`NEAR_DUPLICATE_MIN_THRESHOLD` (0.065) where many images are alike.
Crops and flips of a photo lie as far from it (0.05 to 0.12) as different
photos of one object do (two product shots of one motorbike model: 0.067), so a
fixed threshold either misses crops or joins such photos; measured on where
each image sits among its ten nearest neighbours, the threshold does neither as
often. Both were measured on two corpora of different kinds: the bundled
Caltech-101 subset (small object photos, many on white) plus copies of 30 of
its photos, and the eight coral test photos (natural photos: animals, food, a
portrait) plus copies of each. What the default catches there, Caltech / coral:
JPEG quality-30 re-encodes 100% / 100%, copies cropped by 5% on each side
97% / 100%, horizontal flips 80% / 62%; it joins no photos of two classes and
no two coral photos, and 34 of the 1,200 Caltech photos to another one (the
same menorah, piano, ketch, brain or trilobite photo re-framed, and bursts of
one scene). A fixed ``threshold=0.065`` catches 60% / 62% of the crops and
joins 27; ``threshold=0.085`` catches every crop and joins 67.

Example:
    >>> from framelab.toolkits import datasets, image_similarity
    >>> model = image_similarity.create(datasets.caltech101())  # doctest: +SKIP
    >>> model.query(datasets.caltech101().head(2), k=3)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framelab.frames.errors import InputError
from framelab.platform import failures
from framelab.platform.client import on_cluster
from framelab.toolkits.deep_features import DeepFeatureExtractor
from framelab.toolkits.features import check_frame
from framelab.toolkits.image_features import image_column_or_none, with_features
from framelab.toolkits.model import Section
from framelab.toolkits.model_pages import similarity_page
from framelab.toolkits.nearest_neighbors import NearestNeighborsModel
from framelab.toolkits.nearest_neighbors import create as create_neighbors
from framelab.toolkits.saved_extractor import ExtractorModel

if TYPE_CHECKING:
    from framelab.frames import Frame

# Cosine distances under which two images are near-duplicates: up to the first where an image has few close
# neighbours, the second where many images are alike (see the module docstring).
NEAR_DUPLICATE_THRESHOLD = 0.085
NEAR_DUPLICATE_MIN_THRESHOLD = 0.065


@on_cluster
def create(
    frame: Frame,
    image_column: str | None = None,
    model: str = "mobilenet_v2",
    label: str | None = None,
    feature_column: str = "deep_features",
    distance: str = "cosine",
    method: str = "auto",
    seed: int | None = None,
    verbose: bool = True,
    batch_size: int | str = "auto",
    device: str = "auto",
    **extractor_options: Any,
) -> ImageSimilarityModel:
    """Index a frame of images for similarity queries: deep features of ``model``, then nearest neighbours.

    ``image_column=None`` uses the frame's only image column; a
    ``feature_column`` made by the same extractor (checked through its
    provenance metadata) is reused instead of extracting again.
    ``label`` names images in results (e.g. ``"path"``); ``distance`` and
    ``method`` are those of :func:`framelab.toolkits.nearest_neighbors.create`.
    Images that failed to decode keep their row ids but are never
    neighbours; one warning counts them.

    Example:
        >>> from framelab.toolkits import datasets, image_similarity
        >>> model = image_similarity.create(datasets.caltech101(), label="path")  # doctest: +SKIP
    """
    frame = check_frame(frame)
    extractor = DeepFeatureExtractor(model, batch_size=batch_size, device=device, **extractor_options)
    featured = with_features(frame, extractor, image_column, feature_column)
    neighbors = create_neighbors(featured, features=[feature_column], label=label, distance=distance,
                                 method=method, seed=seed, verbose=False)
    used = image_column or image_column_or_none(frame.schema)
    result = ImageSimilarityModel(extractor, neighbors, image_column=used, feature_column=feature_column)
    if verbose:
        print(result)
    return result


class ImageSimilarityModel(ExtractorModel):
    """A deep-features extractor and a nearest-neighbours index over the reference images.

    Example:
        >>> model.similarity_graph(k=5)  # doctest: +SKIP
    """

    kind = "image_similarity"

    _inner = "neighbors"
    _inner_class = NearestNeighborsModel

    def __init__(self, extractor: Any, neighbors: NearestNeighborsModel, *, image_column: str | None,
                 feature_column: str):
        self.extractor = extractor
        self.neighbors = neighbors
        self.image_column = image_column
        self.feature_column = feature_column

    @property
    def num_rows(self) -> int:
        """Reference images, decoded or not."""
        return self.neighbors.num_rows

    def query(self, frame: Frame, k: int | None = 5, radius: float | None = None, label: str | None = None) -> Any:
        """The ``k`` most similar reference images of each image of ``frame`` (raw images or matching features).

        Returns the Frame of :meth:`NearestNeighborsModel.query`
        (``query_label``, ``reference_label``, ``distance``, ``rank``); an
        image that could not be decoded keeps one row of nulls, and one
        warning counts them.

        Example:
            >>> model.query(new_photos, k=5)  # doctest: +SKIP
        """
        frame = check_frame(frame)
        with failures.job():  # images that fail to decode, and the queries they leave empty, counted once
            featured = with_features(frame, self.extractor, self.image_column, self.feature_column)
            return self.neighbors.query(featured, k=k, radius=radius, label=label)

    def similarity_graph(self, k: int | None = 5, radius: float | None = None,
                         include_self_edges: bool = False) -> Any:
        """Each reference image's ``k`` most similar reference images, as a Frame of edges.

        Example:
            >>> model.similarity_graph(k=10)  # doctest: +SKIP
        """
        return self.neighbors.similarity_graph(k=k, radius=radius, include_self_edges=include_self_edges)

    def near_duplicates(self, threshold: float | None = None, k: int | None = None) -> Any:
        """Groups of reference images joined by chains of near-duplicate pairs.

        ``threshold=None`` (the default) joins pairs closer than a cosine
        distance that adapts to each pair's neighbourhood, between
        :data:`NEAR_DUPLICATE_MIN_THRESHOLD` and :data:`NEAR_DUPLICATE_THRESHOLD`
        (see the module docstring for what it catches); a number is a fixed
        threshold in the model's distance. Returns a Frame with one row per
        reference image: ``row_id``, the label column if the model has one,
        ``group_id`` (the smallest row id of the group) and ``group_size``
        (1: no near-duplicate). Computed on the cluster (see
        :meth:`NearestNeighborsModel.connected_components`).

        Example:
            >>> groups = model.near_duplicates()  # doctest: +SKIP
            >>> groups.filter(pl.col("group_size") > 1)  # doctest: +SKIP
        """
        if threshold is not None:
            return self.neighbors.connected_components(radius=threshold, k=k)
        if self.neighbors.distance != "cosine":
            raise InputError(
                f"the default threshold is a cosine distance; this model uses {self.neighbors.distance!r}: "
                "pass a threshold in its units"
            )
        return self.neighbors.connected_components(radius=NEAR_DUPLICATE_THRESHOLD, k=k,
                                                   min_radius=NEAR_DUPLICATE_MIN_THRESHOLD)

    def explore(self, frame: Frame, path: str | None = None, k: int = 5, **options: Any) -> str:
        """A page of the reference images: click one for its ``k`` nearest neighbours; near-duplicate groups side by side.

        ``frame`` is the frame the model was built on (the reference rows, in
        order). ``options`` go to :func:`framelab.toolkits.model_pages.similarity_page`.

        Example:
            >>> model.explore(photos, k=8)  # doctest: +SKIP
            '/tmp/framelab-explore-....html'
        """
        return similarity_page(self, check_frame(frame), path, k=k, **options)

    # ---------------------------------------------------------- persistence
    def _summary_sections(self) -> list[Section]:
        return [self._extractor_section(), *self.neighbors._summary_sections()]
