"""The image classifier model: a DeepFeatureExtractor and a LogisticClassifier kept together.

Predicting on raw images extracts features on the way; a frame that already
carries the matching features column (same provenance) is not extracted again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from framelab.frames.errors import InputError
from framelab.platform import failures
from framelab.platform.client import on_cluster
from framelab.toolkits.classifier import LogisticClassifier
from framelab.toolkits.classifier import create as create_classifier
from framelab.toolkits.deep_features import DeepFeatureExtractor
from framelab.toolkits.features import check_frame, check_target
from framelab.toolkits.image_features import (
    drop_rows_without_features,
    image_column_or_none,
    with_features,
)
from framelab.toolkits.model import Section
from framelab.toolkits.saved_extractor import ExtractorModel
from framelab.toolkits.scoring import Classifier, NullRows

if TYPE_CHECKING:
    from framelab.frames import Frame
    from framelab.toolkits.model_io import SavedModel

_NO_FEATURES = "its image is missing or could not be decoded"


@on_cluster
def create(
    frame: Frame,
    target: str,
    image_column: str | None = None,
    model: str = "mobilenet_v2",
    feature_column: str = "deep_features",
    l2_penalty: float = 0.01,
    max_iterations: int = 100,
    validation_set: Any = "auto",
    class_weights: str | Mapping[Any, float] | None = None,
    seed: int | None = None,
    verbose: bool = True,
    batch_size: int | str = "auto",
    device: str = "auto",
    fine_tune: bool = False,
    epochs: int | None = None,
    learning_rate: float | None = None,
    layers: int | str | None = None,
    augment: bool | None = None,
    num_workers: int | str | None = None,
    use_gpu: bool | str | None = None,
    checkpoint: str | None = None,
    resolution: int | None = None,
    **extractor_options: Any,
) -> ImageClassifier:
    """Train an image classifier: deep features of ``model``, then logistic regression on ``target``.

    ``image_column=None`` uses the frame's only image column. When the frame
    already has ``feature_column`` made by the same extractor (checked through
    the column's provenance metadata) it is used as it is. ``extractor_options``
    go to :class:`DeepFeatureExtractor` (``weights``, ``layer``, ``precision``,
    ...); the rest are :func:`framelab.toolkits.classifier.create`'s. Rows whose
    image could not be decoded are left out of training, with a warning.

    ``fine_tune=True`` trains the network itself, end to end, on the cluster
    with Ray Train (:mod:`.fine_tune`): the linear probe above gives the head
    its start, then ``epochs`` (default 10) of SGD with augmented images
    (``augment``, default True: random resized crop and flip), the backbone's
    learning rate a tenth of the head's ``learning_rate`` (default 0.001),
    cosine schedule, weight decay, label smoothing, batch norm frozen.
    ``layers``: "all" (default) or how many of the network's last blocks to
    train (0: the head alone). ``num_workers`` / ``use_gpu``: "auto" (one
    worker per GPU, else per node). ``checkpoint``: a folder or fsspec URL;
    a lost worker restarts from the last epoch written there, and the same
    call run again resumes. ``resolution``: train and predict at this square
    size instead of the network's own (smaller is faster, a little less
    accurate). ``batch_size`` is the training batch (default 32).

    Example:
        >>> from framelab.toolkits import datasets, image_classifier
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6)
        >>> model = image_classifier.create(photos, "label", seed=0, verbose=False)
        >>> model.classes, model.predict(photos.head(2)).to_pylist()
        (['ewer', 'sunflower'], ['ewer', 'ewer'])
    """
    tuning = {"epochs": epochs, "learning_rate": learning_rate, "layers": layers, "augment": augment,
              "num_workers": num_workers, "use_gpu": use_gpu, "checkpoint": checkpoint, "resolution": resolution}
    given = {k: v for k, v in tuning.items() if v is not None}
    if fine_tune not in (True, False):
        raise InputError(f"fine_tune must be True or False, got {fine_tune!r}")
    if fine_tune:
        # Loaded only when asked: fine-tuning's modules import torch (seconds), the linear probe does not.
        from framelab.toolkits.image_classifier.fine_tune import FineTuneOptions
        from framelab.toolkits.image_classifier.fine_tune import fine_tune as run_fine_tune

        return run_fine_tune(
            frame, target, FineTuneOptions(**given), image_column=image_column, model=model,
            feature_column=feature_column, l2_penalty=l2_penalty, max_iterations=max_iterations,
            validation_set=validation_set, class_weights=class_weights, seed=seed, verbose=verbose,
            batch_size=batch_size, device=device, extractor_options=extractor_options, linear_probe=create,
        )
    if given:
        raise InputError(
            f"{', '.join(sorted(given))} {'is a' if len(given) == 1 else 'are'} fine-tuning option(s); "
            "pass fine_tune=True to train the network, or leave them out for the linear probe"
        )
    frame = check_frame(frame)
    check_target(frame.schema, target)
    extractor = DeepFeatureExtractor(model, batch_size=batch_size, device=device, **extractor_options)
    with failures.job():
        features = with_features(frame, extractor, image_column, feature_column).select(feature_column, target)
        features = drop_rows_without_features(features.materialize(), feature_column, "training")
        if features.num_rows() == 0:
            raise InputError("no image in the training frame could be decoded; check the frame's error column")
        if hasattr(validation_set, "schema"):
            validation_set = with_features(validation_set, extractor, image_column, feature_column)
            validation_set = drop_rows_without_features(
                validation_set.select(feature_column, target).materialize(), feature_column, "validation"
            )
    classifier = create_classifier(
        features,
        target,
        features=[feature_column],
        l2_penalty=l2_penalty,
        max_iterations=max_iterations,
        validation_set=validation_set,
        class_weights=class_weights,
        seed=seed,
        verbose=verbose,
    )
    used = image_column or image_column_or_none(frame.schema)
    return ImageClassifier(extractor, classifier, image_column=used, feature_column=feature_column)


class ImageClassifier(Classifier, ExtractorModel):
    """Deep features + logistic classifier: its answers take frames of raw images.

    Its answers are every classifier's (:class:`~framelab.toolkits.scoring.Classifier`),
    scored by its logistic classifier on the deep features it extracts on the way.

    Example:
        >>> from framelab.toolkits import datasets, image_classifier
        >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6)
        >>> image_classifier.create(photos, "label", seed=0, verbose=False).summary()  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        Class : ImageClassifier
        <BLANKLINE>
        Deep features
        -------------
        Model : mobilenet_v2
        ...
    """

    kind = "image_classifier"

    _inner = "classifier"
    _inner_class = LogisticClassifier

    def __init__(
        self,
        extractor: DeepFeatureExtractor,
        classifier: LogisticClassifier,
        *,
        image_column: str | None,
        feature_column: str,
        fine_tuning: dict[str, Any] | None = None,
    ):
        self.extractor = extractor
        self.classifier = classifier
        self.image_column = image_column
        self.feature_column = feature_column
        # How the network was fine-tuned (recipe, per-epoch metrics); None for a linear probe.
        self.fine_tuning = fine_tuning

    @property
    def training(self) -> dict[str, Any]:
        """How the model was trained: the fine-tuning record (``"epochs"``: one dict of metrics per epoch), else the probe's.

        Example:
            >>> from framelab.toolkits import datasets, image_classifier
            >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6)
            >>> image_classifier.create(photos, "label", seed=0, verbose=False).training["num_examples"]
            12
        """
        return self.fine_tuning if self.fine_tuning is not None else self.classifier.training

    @property
    def target(self) -> str:
        """Name of the column the model predicts."""
        return self.classifier.target

    @property
    def classes(self) -> list:
        """The classes, in the order of probability vectors."""
        return self.classifier.classes

    def _scorer(self) -> LogisticClassifier:
        return self.classifier

    def _features(self, frame: Frame) -> Frame:
        frame = check_frame(frame)
        return with_features(frame, self.extractor, self.image_column, self.feature_column)

    def _nulls(self, stage: str, action: str = "predicted null") -> NullRows:
        # A row whose image is missing or undecodable has null features: it gets a null, not an error.
        return NullRows(self.feature_column, f"image classifier: {stage}", _NO_FEATURES, action=action)

    def explore(self, frame: Frame, path: str | None = None, **options: Any) -> str:
        """A page of the evaluation on labelled images: the confusion matrix, each cell opening its images.

        Misclassified rows come first in the grid; the map draws the deep
        features coloured by the true class. ``options`` go to
        :func:`framelab.frames.images.explore.explore`. Returns the page's path.

        Example:
            >>> from framelab.toolkits import datasets, image_classifier
            >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=6)
            >>> model = image_classifier.create(photos, "label", seed=0, verbose=False)  # doctest: +SKIP
            >>> model.explore(photos)  # doctest: +SKIP
            '/tmp/framelab-explore-....html'
        """
        from framelab.toolkits.model_pages import classifier_page

        return classifier_page(self, check_frame(frame), path, **options)

    def _own_state(self) -> dict[str, Any]:
        return {} if self.fine_tuning is None else {"fine_tuning": self.fine_tuning}

    @classmethod
    def _check_own_saved(cls, saved: SavedModel) -> None:
        saved.field("fine_tuning", (dict, type(None)), required=False)

    @classmethod
    def _own_from_saved(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        return {"fine_tuning": metadata.get("fine_tuning")}

    def _summary_sections(self) -> list[Section]:
        sections = [self._extractor_section(), *self._scoring_sections()]
        if self.fine_tuning is not None:
            sections.append(_fine_tuning_section(self.fine_tuning))
        return sections


def _fine_tuning_section(record: dict[str, Any]) -> Section:
    epochs = record.get("epochs") or [{}]
    last = epochs[-1]
    recipe = record.get("recipe", {})
    return ("Fine-tuning", [
        ("Epochs", len(record.get("epochs") or [])),
        ("Layers trained", recipe.get("layers")),
        ("Learning rate (head; backbone x)", f"{recipe.get('learning_rate')}; x{recipe.get('backbone_lr_ratio')}"),
        ("Augmented", recipe.get("augment")),
        ("Resolution", recipe.get("resolution")),
        ("Workers", f"{record.get('num_workers')} ({'GPU' if record.get('use_gpu') else 'CPU'})"),
        ("Final training accuracy", last.get("training_accuracy")),
        ("Final validation accuracy", last.get("validation_accuracy")),
        ("Linear probe validation accuracy", (record.get("linear_probe") or {}).get("validation_accuracy")),
        ("Training time (s)", record.get("training_time_s")),
    ])
