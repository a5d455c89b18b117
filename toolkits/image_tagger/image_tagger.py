"""The image tagger: :func:`create` makes one (out of the box, or trained on your tags), :class:`ImageTagger` is it.

Example:
    >>> from framelab.toolkits import image_tagger
    >>> tagger = image_tagger.create()
    >>> tagger.vocabulary[88], "bird" in tagger.vocabulary
    ('macaw', True)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.frames.validation import (
    SEED,
    Constraint,
    check_arguments,
    check_seed,
    integer,
    number,
    text,
)
from framelab.frames.vectors import vectors_from_numpy, vectors_to_numpy
from framelab.platform.client import on_cluster
from framelab.toolkits.deep_features import DeepFeatureExtractor, architecture, find_image_column
from framelab.toolkits.evaluation import multilabel_metrics
from framelab.toolkits.features import check_frame, check_tags_column, tag_matrix
from framelab.toolkits.image_features import (
    drop_rows_without_features,
    image_column_or_none,
    with_features,
)
from framelab.toolkits.image_tagger.hierarchy import imagenet_hierarchy
from framelab.toolkits.image_tagger.scoring import OneVsRest, Rollup, TagScores
from framelab.toolkits.image_tagger.search import DEFAULT_COLUMN
from framelab.toolkits.image_tagger.training import fit_tagger
from framelab.toolkits.model import Model, Section
from framelab.toolkits.model_pages import tagger_page
from framelab.toolkits.saved_extractor import ExtractorPart

if TYPE_CHECKING:
    from framelab.toolkits.model_io import SavedModel

PRETRAINED, TRAINED = "pretrained", "trained"
# Out of the box, a tag is given when its score is at least this: below it tags are noise ("ladle 0.03").
DEFAULT_MIN_SCORE = 0.1
DEFAULT_K = 5
_FEATURE_COLUMNS = {PRETRAINED: "imagenet_logits", TRAINED: "deep_features"}
# Held-out precision or recall of a tag with no held-out rows (NaN in memory), as saved.
_NO_HELD_OUT = -1.0


@on_cluster
def create(
    frame: Frame = None,
    tags_column: str | None = None,
    image_column: str | None = None,
    model: Any = "mobilenet_v2",
    vocabulary: str | Sequence[str] | None = None,
    feature_column: str | None = None,
    min_precision: float = 0.9,
    l2_penalty: float = 0.1,
    max_iterations: int = 100,
    validation_set: Any = "auto",
    seed: int | None = None,
    verbose: bool = True,
    batch_size: int | str = "auto",
    device: str = "auto",
    **extractor_options: Any,
) -> ImageTagger:
    """Make an image tagger: out of the box without ``tags_column``, trained on your tags with it.

    **Out of the box** (``create()``): tags come from the network's own
    ImageNet head, rolled up WordNet's hierarchy to broader tags ("macaw" ->
    "parrot", "bird", "animal"; a broader tag scores the sum of its classes'
    probabilities). Nothing is trained; ``frame`` (optional) only names the
    image column. ``vocabulary`` is None or "imagenet" for all 1,330 tags, or
    a list of them to tag with only those.

    **Trained** (``create(frame, "tags")``): one-vs-rest logistic regression
    on ``model``'s deep features, across the cluster, from a column of tag
    lists (``[]`` for an image with no tags). Each tag gets the threshold
    that gives it the most recall at a precision of ``min_precision`` on
    held-out rows (``validation_set``: "auto" holds out 20%, or pass a Frame;
    None uses 0.5 for every tag).
    ``vocabulary`` (a list) keeps only those tags. ``l2_penalty``,
    ``max_iterations`` and ``seed`` are as in
    :func:`framelab.toolkits.classifier.create`: the features are
    standardised and each tag's model is scikit-learn's
    ``LogisticRegression(C=1 / (2 * l2_penalty))``. The default penalty is
    ten times the classifier's: a tag is often learned from few images, and
    on the Caltech subset 0.1 gave the best held-out average precision, where
    L-BFGS also converges to scikit-learn's model (0.01 stops in a flat
    valley, short of it). Images that cannot be decoded are left out, with a
    warning.

    A frame that already has ``feature_column`` from the same extractor
    (checked by its provenance) is not extracted again. ``extractor_options``
    go to :class:`framelab.toolkits.deep_features.DeepFeatureExtractor`.

    Example:
        >>> from framelab.toolkits import image_tagger
        >>> tagger = image_tagger.create(vocabulary=["cat", "dog", "bird"])
        >>> tagger.vocabulary
        ['bird', 'cat', 'dog']
        >>> trained = image_tagger.create(photos, "tags")  # doctest: +SKIP
    """
    if frame is not None:
        frame = check_frame(frame)
    check_arguments({"feature_column": feature_column}, _CREATE_ARGUMENTS)
    if tags_column is None:
        return _create_pretrained(frame, image_column, model, vocabulary, feature_column,
                                  batch_size=batch_size, device=device, **extractor_options)
    if frame is None:
        raise InputError("a trained tagger needs a frame of images with tags: create(frame, tags_column)")
    return _create_trained(
        frame, tags_column, image_column, model, vocabulary,
        feature_column or _FEATURE_COLUMNS[TRAINED], min_precision=min_precision,
        l2_penalty=l2_penalty, max_iterations=max_iterations, validation_set=validation_set, seed=seed,
        verbose=verbose, batch_size=batch_size, device=device, **extractor_options,
    )


class ImageTagger(ExtractorPart, Model):
    """Tags images: ``tag`` adds a column of (tag, score) lists, ``evaluate`` scores it against yours.

    Out of the box (``mode == "pretrained"``) or trained on your tags
    (``mode == "trained"``); either way ``tag`` and ``evaluate`` take raw
    images (features are extracted on the way) or a frame that already has
    the model's features column.

    Example:
        >>> from framelab.toolkits import image_tagger
        >>> image_tagger.create().mode
        'pretrained'
    """

    kind = "image_tagger"

    def __init__(
        self,
        *,
        mode: str,
        extractor: DeepFeatureExtractor,
        vocabulary: Sequence[str],
        scorer: Rollup | OneVsRest,
        thresholds: np.ndarray,
        image_column: str | None,
        feature_column: str,
        tags_column: str | None = None,
        held_out: dict[str, np.ndarray] | None = None,
        training: dict[str, Any] | None = None,
    ):
        self.mode = mode
        self.extractor = extractor
        self._vocabulary = tuple(vocabulary)
        self.scorer = scorer
        self._thresholds = np.asarray(thresholds, dtype=np.float64)
        self.image_column = image_column
        self.feature_column = feature_column
        self.tags_column = tags_column
        self.held_out = dict(held_out or {})
        self.training = dict(training or {})

    # ------------------------------------------------------------ properties
    @property
    def vocabulary(self) -> list[str]:
        """The tags the model gives, in its own order (the order of its scores).

        Example:
            >>> from framelab.toolkits import image_tagger
            >>> tagger = image_tagger.create()
            >>> len(tagger.vocabulary), tagger.vocabulary[:2]
            (1330, ['tench', 'goldfish'])
        """
        return list(self._vocabulary)

    @property
    def thresholds(self) -> Any:
        """Each tag's threshold as a Frame; a trained model adds its held-out precision and recall there.

        Example:
            >>> from framelab.toolkits import image_tagger
            >>> image_tagger.create(vocabulary=["dog"]).thresholds.to_pydict()
            {'tag': ['dog'], 'threshold': [0.1]}
        """
        columns = {"tag": pa.array(self._vocabulary, pa.string()), "threshold": pa.array(self._thresholds)}
        for key in ("precision", "recall"):
            if key in self.held_out:
                columns[f"held_out_{key}"] = pa.array(self.held_out[key], from_pandas=True)
        return Frame.from_arrow(pa.table(columns))

    # --------------------------------------------------------------- tagging
    def tag(
        self,
        frame: Frame,
        k: int | None = DEFAULT_K,
        threshold: float | None = None,
        output_column: str = DEFAULT_COLUMN,
    ) -> Any:
        """The frame with a column of each image's tags: a list of ``{"tag", "score"}``, best first.

        A tag is given when its score reaches ``threshold`` (None: the
        model's own, see :attr:`thresholds`), at most ``k`` per image (None: no
        limit). Out of the box the finest confident tag comes first, then the
        broader tags above it, finest to broadest, then the next finest tag
        (so ``k=1`` gives "macaw", not "animal"); a trained tagger, which knows
        no hierarchy, lists best score first; equal scores keep vocabulary
        order. An image that could not be decoded
        keeps its row with null tags (a warning counts them); an image with
        no tag above its threshold gets ``[]``. The result is lazy and runs
        block by block on the cluster; search it with
        :data:`framelab.toolkits.image_tagger.tags`.

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.frames import Frame, vectors_from_numpy
            >>> from framelab.toolkits import image_tagger
            >>> tagger = image_tagger.create()
            >>> logits = np.zeros((1, 1000), np.float32); logits[0, 88] = 12.0  # a network sure of "macaw"
            >>> field = tagger.extractor.output_field("imagenet_logits")  # the features the tagger reads
            >>> frame = Frame(pa.table([vectors_from_numpy(logits)], schema=pa.schema([field])))
            >>> [(t["tag"], round(t["score"], 3)) for t in tagger.tag(frame)["tags"][0].as_py()]
            [('macaw', 0.994), ('parrot', 0.994), ('bird', 0.994), ('animal', 0.996)]
            >>> photos = Frame.read_images("photos/")  # doctest: +SKIP
            >>> birds = tagger.tag(photos).filter(image_tagger.tags.has("bird"))  # doctest: +SKIP
        """
        frame = check_frame(frame)
        k = integer(1, none="no limit").check(k, "k")
        thresholds = self._thresholds_for(threshold)
        text().check(output_column, "output_column")
        if output_column in frame.schema.names:
            raise InputError(
                f"the frame already has a column {output_column!r}; pass output_column=<another name> "
                "or drop that column first"
            )
        featured = self._with_features(frame)
        expr = TagScores(self.feature_column, self.scorer, self._vocabulary,
                         None if k is None else int(k), thresholds)
        out = featured.with_column(output_column, expr)
        if self.feature_column not in frame.schema.names:
            out = out.drop(self.feature_column)  # extracted on the way; the caller asked for tags
        return out

    def explore(self, frame: Frame, path: str | None = None, k: int | None = DEFAULT_K,
                threshold: float | None = None, **options: Any) -> str:
        """A page of the images with their tags: tag facets with counts over all rows, a filter by tag and score.

        Example:
            >>> tagger.explore(photos)  # doctest: +SKIP
            '/tmp/framelab-explore-....html'
        """
        return tagger_page(self, frame, path, k=k, threshold=threshold, **options)

    def evaluate(self, frame: Frame, tags_column: str | None = None, threshold: float | None = None) -> dict[str, Any]:
        """Per-tag precision, recall and average precision against the frame's tags, and their macro means.

        Returns ``{"precision", "recall", "average_precision"}`` (macro means
        over the tags that occur in the frame) and ``"per_tag"``: a Frame of
        tag, support, predicted, precision, recall, average_precision and
        threshold. A row counts as tagged when the tag's score reaches its
        threshold (``threshold``: as in :meth:`tag`; ``k`` does not apply).
        ``tags_column`` defaults to the one the model was trained on ("tags"
        out of the box); tags outside the vocabulary are left out, with a
        warning, and so are images that could not be decoded.

        Example:
            >>> import numpy as np, pyarrow as pa
            >>> from framelab.frames import Frame, vectors_from_numpy
            >>> from framelab.toolkits import image_tagger
            >>> tagger = image_tagger.create()
            >>> logits = np.zeros((2, 1000), np.float32); logits[0, 88] = 12.0; logits[1, 285] = 12.0
            >>> schema = pa.schema([tagger.extractor.output_field("imagenet_logits"), ("tags", pa.list_(pa.string()))])
            >>> truth = pa.array([["macaw", "bird"], ["cat"]])  # the second image shows an Egyptian cat
            >>> result = tagger.evaluate(Frame(pa.table([vectors_from_numpy(logits), truth], schema=schema)))
            >>> result["per_tag"].select("tag", "recall", "average_precision").to_pydict()
            {'tag': ['macaw', 'bird', 'cat'], 'recall': [1.0, 1.0, 1.0], 'average_precision': [1.0, 1.0, 1.0]}
        """
        frame = check_frame(frame)
        truth_column = tags_column or self.tags_column or DEFAULT_COLUMN
        check_tags_column(frame.schema, truth_column)
        thresholds = self._thresholds_for(threshold)
        if truth_column == self.feature_column:
            raise InputError(f"the tags column cannot be the features column {self.feature_column!r}")
        featured = self._with_features(frame).select(self.feature_column, truth_column)
        featured = drop_rows_without_features(featured, self.feature_column, "evaluation", toolkit="image tagger")
        scorer, feature_column = self.scorer, self.feature_column

        def run(table: pa.Table) -> pa.Table:
            scores = scorer.scores(vectors_to_numpy(table.column(feature_column)))
            return pa.table({"scores": vectors_from_numpy(scores), "truth": table.column(truth_column)})

        result = featured.map_batches(run, preserves_rows=True).to_arrow()
        if result.num_rows == 0:
            raise InputError("cannot evaluate on an empty frame; pass images with known tags")
        truth, unknown = tag_matrix(result, "truth", self._vocabulary)
        if unknown:
            warnings.warn(
                f"{len(unknown)} tag(s) in column {truth_column!r} are not in the model's vocabulary and "
                f"were not scored: {sorted(unknown)[:10]}",
                stacklevel=2,
            )
        scores = vectors_to_numpy(result.column("scores"))
        return multilabel_metrics(truth, scores, thresholds, self._vocabulary)

    # ---------------------------------------------------------- persistence
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        metadata = {
            "mode": self.mode,
            "vocabulary": list(self._vocabulary),
            **self._extractor_state(),
            "tags_column": self.tags_column,
            "training": self.training,
        }
        arrays = {"thresholds": self._thresholds}
        if isinstance(self.scorer, Rollup):
            metadata["num_classes"] = self.scorer.num_classes
            arrays.update(rollup_indptr=self.scorer.indptr, rollup_indices=self.scorer.indices)
        else:
            metadata["num_features"] = self.scorer.num_inputs
            arrays.update(mean=self.scorer.mean, scale=self.scorer.scale,
                          weights=self.scorer.weights, bias=self.scorer.bias)
        # A tag with no held-out rows has NaN precision; a loaded NaN is damage, so it is saved as -1.
        arrays.update({f"held_out_{k}": np.nan_to_num(np.asarray(v, dtype=np.float64), nan=_NO_HELD_OUT)
                       for k, v in self.held_out.items()})
        return metadata, arrays

    @classmethod
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse saved fields of the wrong type, and thresholds, roll-ups or weights that do not fit the tags."""
        mode = saved.field("mode", str)
        if mode not in (PRETRAINED, TRAINED):
            saved.refuse("mode", f"is {mode!r}, not {PRETRAINED!r} or {TRAINED!r}")
        vocabulary = saved.field("vocabulary", list)
        if not vocabulary or not all(isinstance(t, str) and t for t in vocabulary):
            saved.refuse("vocabulary", "must list one or more tags (non-empty strings)")
        if len(set(vocabulary)) != len(vocabulary):
            saved.refuse("vocabulary", "lists a tag more than once")
        saved.field("tags_column", (str, type(None)), required=False)
        saved.field("training", (dict, type(None)), required=False)
        # A tagger reads the network's own outputs (or features it was trained on): no provenance to match here.
        cls._check_saved_extractor(saved)
        t = len(vocabulary)
        tags = f" ({t} tag(s) in the vocabulary)"
        thresholds = saved.array("thresholds", (t,), meaning=tags)
        if ((thresholds < 0) | (thresholds > 1)).any():
            saved.refuse_array("thresholds", "holds a threshold outside [0, 1]")
        if mode == PRETRAINED:
            num_classes = saved.field("num_classes", int)
            if num_classes < 1:
                saved.refuse("num_classes", f"is {num_classes}, but the network has at least one class")
            indptr = saved.array("rollup_indptr", (t + 1,), meaning=f" (tags + 1 = {t + 1})", integer=True)
            indices = saved.array("rollup_indices", (None,), meaning=" (the classes each tag covers)", integer=True)
            if indptr[0] != 0 or (np.diff(indptr) < 0).any() or indptr[-1] != len(indices):
                saved.refuse_array("rollup_indptr", f"does not cut the {len(indices)} rolled-up class(es) "
                                                    "into one run per tag")
            if len(indices) and (indices.min() < 0 or indices.max() >= num_classes):
                saved.refuse_array("rollup_indices", f"names a class outside the network's {num_classes}")
        else:
            mean = saved.arrays.get("mean")
            # Models saved before num_features was recorded: the mean's length says it, checked against the rest.
            d = saved.field("num_features", int, required=False,
                            default=mean.shape[0] if mean is not None and mean.ndim else 0)
            if d < 1:
                saved.refuse("num_features", f"is {d}, but a trained tagger reads at least one feature")
            features = f" ({d} feature(s))"
            saved.array("mean", (d,), meaning=features)
            saved.array("scale", (d,), meaning=features, positive=True)
            saved.array("weights", (d, t), meaning=f" ({d} feature(s) x {t} tag(s))")
            saved.array("bias", (t,), meaning=tags)
        for name in sorted(saved.arrays):
            if name.startswith("held_out_"):
                values = saved.array(name, (t,), meaning=tags)
                if ((values > 1) | ((values < 0) & (values != _NO_HELD_OUT))).any():
                    saved.refuse_array(name, "holds a value outside [0, 1] (or -1: no held-out rows)")

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, np.ndarray],
                    files: dict[str, bytes] | None = None) -> ImageTagger:
        if metadata["mode"] == PRETRAINED:
            scorer = Rollup(arrays["rollup_indptr"], arrays["rollup_indices"], int(metadata["num_classes"]))
        else:
            scorer = OneVsRest(arrays["mean"], arrays["scale"], arrays["weights"], arrays["bias"])
        held_out = {k[len("held_out_"):]: np.where(v == _NO_HELD_OUT, np.nan, v)
                    for k, v in arrays.items() if k.startswith("held_out_")}
        return cls(
            mode=metadata["mode"],
            **cls._extractor_from_saved(metadata, files),
            vocabulary=metadata["vocabulary"],
            scorer=scorer,
            thresholds=arrays["thresholds"],
            tags_column=metadata.get("tags_column"),
            held_out=held_out,
            training=metadata.get("training") or {},
        )

    # -------------------------------------------------------------- display
    def _summary_sections(self) -> list[Section]:
        shown = ", ".join(self._vocabulary[:6]) + (", ..." if len(self._vocabulary) > 6 else "")
        sections: list[Section] = [
            ("Schema", [
                ("Mode", "out of the box (ImageNet classes + WordNet tags)" if self.mode == PRETRAINED
                 else "trained on your tags (one-vs-rest logistic)"),
                ("Number of tags", len(self._vocabulary)),
                ("Vocabulary", shown),
                ("Tags column", self.tags_column),
            ]),
            self._extractor_section(),
        ]
        t = self.training
        if self.mode == TRAINED:
            reached = self.held_out.get("precision")
            target = t.get("min_precision")
            met = None if reached is None else int(np.sum(np.nan_to_num(reached) >= (target or 0)))
            sections.append(("Training", [
                ("Number of examples", t.get("num_examples")),
                ("Held-out examples", t.get("num_validation_examples")),
                ("Solver", "L-BFGS on standardised features"),
                ("L2 penalty", t.get("l2_penalty")),
                ("Iterations", t.get("iterations")),
                ("Converged", t.get("converged")),
                ("Training time (s)", t.get("training_time_s")),
                ("Target precision", target),
                ("Tags reaching it (held out)", None if met is None else f"{met} of {len(self._vocabulary)}"),
                ("Shards", f"{t.get('num_shards')} on {t.get('num_nodes')} node(s)"),
            ]))
        else:
            sections.append(("Tagging", [("Default minimum score", float(self._thresholds.max(initial=0)))]))
        return sections

    # ------------------------------------------------------------ internals
    def _with_features(self, frame: Frame) -> Any:
        if isinstance(self.scorer, Rollup) and self.extractor.dim != self.scorer.num_classes:
            raise InputError(
                f"an out-of-the-box tagger reads a network's ImageNet head ({self.scorer.num_classes} "
                f"classes), but this one gives {self.extractor.dim} outputs; train a tagger on your own "
                "tags instead: create(frame, tags_column)"
            )
        schema = frame.schema
        image_column = self.image_column if self.image_column in schema.names else None
        if image_column is None and self.feature_column not in schema.names and image_column_or_none(schema) is None:
            raise InputError(
                f"the frame has neither an image column nor the model's features column "
                f"{self.feature_column!r} (columns: {schema.names}); read images with "
                "Frame.read_images(...)"
            )
        return with_features(frame, self.extractor, image_column, self.feature_column)

    def _thresholds_for(self, threshold: float | None) -> np.ndarray:
        if threshold is None:
            return self._thresholds
        threshold = number(0, 1, none="the model's own").check(threshold, "threshold")
        return np.full(len(self._vocabulary), threshold)


# ------------------------------------------------------------------ create
def _create_pretrained(
    frame: Frame, image_column: str | None, model: Any, vocabulary: Any, feature_column: str | None, **options: Any
) -> ImageTagger:
    hierarchy = imagenet_hierarchy()
    if frame is not None:
        image_column = find_image_column(frame.schema, image_column)
    # Its outputs are checked against the hierarchy when it first runs: loading a network takes seconds.
    extractor = DeepFeatureExtractor(model, layer=_logits_layer(model), **options)
    chosen = _pretrained_vocabulary(vocabulary, hierarchy)
    parts = [hierarchy.covered(t) for t in chosen]
    indptr = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return ImageTagger(
        mode=PRETRAINED,
        extractor=extractor,
        vocabulary=[hierarchy.names[t] for t in chosen],
        scorer=Rollup(indptr, np.concatenate(parts).astype(np.int64), hierarchy.num_classes),
        thresholds=np.full(len(chosen), DEFAULT_MIN_SCORE),
        image_column=image_column,
        feature_column=feature_column or _FEATURE_COLUMNS[PRETRAINED],
    )


def _pretrained_vocabulary(vocabulary: Any, hierarchy: Any) -> list[int]:
    vocabulary = _PRETRAINED_VOCABULARY.check(vocabulary, "vocabulary")
    if vocabulary is None or vocabulary == "imagenet":
        return list(range(len(hierarchy.names)))
    return sorted({hierarchy.index(name) for name in vocabulary})


@functools.lru_cache(maxsize=16)
def _logits_layer(model: Any) -> str | None:
    """The layer of a registered network that gives its class logits (its last classifier module)."""
    if not isinstance(model, str):
        return None  # your own module: its output
    import torch  # heavy: only when a tagger is made

    arch = architecture(model)
    name = arch.head
    module = arch.build().get_submodule(name)
    while isinstance(module, torch.nn.Sequential):  # mobilenet_v2's head is Sequential(Dropout, Linear)
        last, module = list(module.named_children())[-1]
        name = f"{name}.{last}"
    return name


def _create_trained(
    frame: Frame,
    tags_column: str,
    image_column: str | None,
    model: Any,
    vocabulary: Any,
    feature_column: str,
    *,
    min_precision: float,
    l2_penalty: float,
    max_iterations: int,
    validation_set: Any,
    seed: int | None,
    verbose: bool,
    **options: Any,
) -> ImageTagger:
    check_tags_column(frame.schema, tags_column)
    _check_training_options(min_precision, l2_penalty, max_iterations, validation_set, seed, vocabulary)
    if tags_column == feature_column:
        raise InputError(f"the tags column cannot be the features column {feature_column!r}")
    extractor = DeepFeatureExtractor(model, **options)
    if image_column is None and feature_column not in frame.schema.names:
        image_column = image_column_or_none(frame.schema)
    features = _training_rows(frame, extractor, image_column, feature_column, tags_column, "training")
    if features.num_rows() == 0:
        raise InputError("no image in the training frame could be decoded; check the frame's error column")
    validation = validation_set
    if validation is not None and not isinstance(validation, str):
        validation = check_frame(validation, "validation_set")
        check_tags_column(validation.schema, tags_column)
        validation = _training_rows(validation, extractor, image_column, feature_column, tags_column,
                                    "validation")
    elif validation is None:
        validation = features.head(0)  # no held-out rows: every tag keeps the default threshold
    seed = check_seed(seed)
    fit = fit_tagger(
        features, feature_column, tags_column, validation=validation, vocabulary=vocabulary,
        min_precision=min_precision,
        l2_penalty=l2_penalty, max_iterations=max_iterations, seed=seed, verbose=verbose,
    )
    return ImageTagger(
        mode=TRAINED,
        extractor=extractor,
        vocabulary=fit.vocabulary,
        scorer=OneVsRest(fit.mean, fit.scale, fit.weights, fit.bias),
        thresholds=fit.thresholds.threshold,
        image_column=image_column,
        feature_column=feature_column,
        tags_column=tags_column,
        held_out={"precision": fit.thresholds.precision, "recall": fit.thresholds.recall},
        training=fit.training,
    )


def _training_rows(
    frame: Frame, extractor: DeepFeatureExtractor, image_column: str | None, feature_column: str,
    tags_column: str, stage: str,
) -> Any:
    """(features, tags) of the images that decoded."""
    rows = with_features(frame, extractor, image_column, feature_column).select(feature_column, tags_column)
    return drop_rows_without_features(rows, feature_column, stage, toolkit="image tagger")


def _is_tag_list(value: Any) -> bool:
    return (isinstance(value, Sequence) and not isinstance(value, str) and len(value) > 0
            and all(isinstance(t, str) and t for t in value))


# What create() accepts, declared once and checked by the one helper every toolkit uses.
_CREATE_ARGUMENTS = {"feature_column": text(none="'imagenet_logits' out of the box, 'deep_features' trained")}
_PRETRAINED_VOCABULARY = Constraint("'imagenet', None or a non-empty list of its tags",
                                    lambda v: v is None or v == "imagenet" or _is_tag_list(v))
_TRAINING_ARGUMENTS = {
    "min_precision": number(0, 1, low_open=True),
    "l2_penalty": number(0),
    "max_iterations": integer(1),
    "validation_set": Constraint("'auto', None or a Frame", lambda v: not isinstance(v, str) or v == "auto"),
    "seed": SEED,
    "vocabulary": Constraint("None (every tag) or a non-empty list of tags", lambda v: v is None or _is_tag_list(v)),
}


def _check_training_options(min_precision, l2_penalty, max_iterations, validation_set, seed, vocabulary) -> None:
    check_arguments({"min_precision": min_precision, "l2_penalty": l2_penalty, "max_iterations": max_iterations,
                     "validation_set": validation_set, "seed": seed, "vocabulary": vocabulary}, _TRAINING_ARGUMENTS)
