"""The image classifier model: a DeepFeatureExtractor and a LogisticClassifier kept together.

Predicting on raw images extracts features on the way; a frame that already
carries the matching features column (same provenance) is not extracted again.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.toolkits.classifier import LogisticClassifier
from framelab.toolkits.classifier import create as create_classifier
from framelab.toolkits.deep_features import DeepFeatureExtractor, find_image_column, provenance_of
from framelab.toolkits.features import check_frame, check_target

KIND = "image_classifier"


def create(
    frame: Any,
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
    **extractor_options: Any,
) -> ImageClassifier:
    """Train an image classifier: deep features of ``model``, then logistic regression on ``target``.

    ``image_column=None`` uses the frame's only image column. When the frame
    already has ``feature_column`` made by the same extractor (checked through
    the column's provenance metadata) it is used as it is. ``extractor_options``
    go to :class:`DeepFeatureExtractor` (``weights``, ``layer``, ``precision``,
    ...); the rest are :func:`framelab.toolkits.classifier.create`'s. Rows whose
    image could not be decoded are left out of training, with a warning.

    Example:
        >>> from framelab.toolkits import datasets, image_classifier
        >>> model = image_classifier.create(datasets.caltech101(), "label")  # doctest: +SKIP
    """
    frame = check_frame(frame)
    check_target(frame.schema, target)
    extractor = DeepFeatureExtractor(model, batch_size=batch_size, device=device, **extractor_options)
    features = _with_features(frame, extractor, image_column, feature_column).select(feature_column, target)
    features = _drop_failed(features.materialize(), feature_column, "training")
    if features.num_rows() == 0:
        raise InputError("no image in the training frame could be decoded; check the frame's error column")
    if hasattr(validation_set, "schema"):
        validation_set = _with_features(validation_set, extractor, image_column, feature_column)
        validation_set = _drop_failed(validation_set.select(feature_column, target).materialize(), feature_column, "validation")
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
    used = image_column or _image_column_or_none(frame.schema)
    return ImageClassifier(extractor, classifier, image_column=used, feature_column=feature_column)


class ImageClassifier:
    """Deep features + logistic classifier; ``predict`` and ``evaluate`` take frames of raw images.

    Example:
        >>> model.predict_topk(photos, k=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        extractor: DeepFeatureExtractor,
        classifier: LogisticClassifier,
        *,
        image_column: str | None,
        feature_column: str,
    ):
        self.extractor = extractor
        self.classifier = classifier
        self.image_column = image_column
        self.feature_column = feature_column

    @property
    def target(self) -> str:
        """Name of the column the model predicts."""
        return self.classifier.target

    @property
    def classes(self) -> list:
        """The classes, in the order of probability vectors."""
        return self.classifier.classes

    def _features(self, frame: Any) -> Any:
        frame = check_frame(frame)
        return _with_features(frame, self.extractor, self.image_column, self.feature_column)

    def predict(self, frame: Any, output_type: str = "class") -> pa.ChunkedArray:
        """One prediction per row (``output_type``: "class", "probability", "probability_vector").

        Rows whose image could not be decoded predict null.

        Example:
            >>> model.predict(photos)  # doctest: +SKIP
        """
        return self.classifier.predict(self._features(frame), output_type=output_type)

    def predict_topk(self, frame: Any, output_type: str = "probability", k: int = 3) -> Any:
        """The ``k`` likeliest classes of each row, as a Frame of (id, class, probability).

        Example:
            >>> model.predict_topk(photos.head(2), k=3)  # doctest: +SKIP
        """
        return self.classifier.predict_topk(self._features(frame), output_type=output_type, k=k)

    def classify(self, frame: Any) -> Any:
        """Each row's likeliest class and its probability, as a Frame.

        Example:
            >>> model.classify(photos)  # doctest: +SKIP
        """
        return self.classifier.classify(self._features(frame))

    def evaluate(self, frame: Any, metric: str = "auto") -> dict[str, Any]:
        """Accuracy, precision, recall, F1, log loss, AUC and a confusion matrix on labelled images.

        Example:
            >>> model.evaluate(test)["accuracy"]  # doctest: +SKIP
        """
        features = self._features(frame).select(self.feature_column, self.target)
        features = _drop_failed(features.materialize(), self.feature_column, "evaluation")
        return self.classifier.evaluate(features, metric=metric)

    def save(self, url: str, storage_options: dict | None = None) -> None:
        """Save to a folder (path or fsspec URL); :func:`framelab.toolkits.load_model` loads it.

        Example:
            >>> model.save("s3://bucket/models/caltech")  # doctest: +SKIP
        """
        from framelab.toolkits.model_io import save_model

        metadata, arrays = self.classifier._state()
        metadata = {
            "classifier": metadata,
            "extractor": self.extractor.to_config(),
            "image_column": self.image_column,
            "feature_column": self.feature_column,
        }
        save_model(url, KIND, metadata, arrays, storage_options=storage_options)

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, Any]) -> ImageClassifier:
        return cls(
            DeepFeatureExtractor.from_config(metadata["extractor"]),
            LogisticClassifier._from_saved(metadata["classifier"], arrays),
            image_column=metadata.get("image_column"),
            feature_column=metadata["feature_column"],
        )

    def summary(self) -> None:
        """Print the extractor and the classifier's training summary.

        Example:
            >>> model.summary()  # doctest: +SKIP
        """
        print(repr(self))

    def __repr__(self) -> str:
        return f"ImageClassifier\n  features: {self.extractor!r}\n{self.classifier!r}"


def _image_column_or_none(schema: pa.Schema) -> str | None:
    try:
        return find_image_column(schema, None)
    except InputError:
        return None


def _with_features(frame: Any, extractor: DeepFeatureExtractor, image_column: str | None, column: str) -> Any:
    """The frame with the extractor's features in ``column``: reused when its provenance matches."""
    schema = frame.schema
    if column in schema.names:
        found = provenance_of(schema.field(column))
        if found == extractor.provenance:
            return frame
        has_images = image_column in schema.names if image_column else _image_column_or_none(schema) is not None
        if not has_images:
            raise InputError(
                f"column {column!r} holds features made by {_describe(found)}, but this model uses "
                f"{_describe(extractor.provenance)}; give a frame with the images so they can be extracted again"
            )
        frame = frame.drop(column)
    return extractor.transform(frame, image_column=image_column, output_column=column)


def _drop_failed(frame: Any, column: str, stage: str) -> Any:
    import polars as pl

    kept = frame.filter(pl.col(column).is_not_null())
    failed = frame.num_rows() - kept.num_rows()
    if failed:
        warnings.warn(
            f"{failed} row(s) have no deep features (their image could not be decoded) and were left out of "
            f"{stage}; see the frame's error column",
            stacklevel=3,
        )
    return kept.materialize()


def _describe(provenance: dict | None) -> str:
    if not provenance:
        return "an unknown extractor (no provenance metadata)"
    return f"model {provenance.get('model')!r} (weights sha256 {str(provenance.get('weights_sha256'))[:12]}..., layer {provenance.get('layer')!r})"
