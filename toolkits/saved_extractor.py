"""A deep-features extractor inside a saved model: its config, a copy of custom weights, and their checks.

Every model that turns images into features (image classifier, image
similarity, image tagger, k-means on images) keeps its extractor the same
way: ``metadata["extractor"]`` is the extractor's config, and weights that
came from a path or URL are copied into the model's folder
(``metadata["weights_file"]`` names the copy), so the folder is all the
model needs. A loaded model reads nothing outside its folder unless the user
passes ``load_model(..., allow_external=True)``.

Example:
    >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
    >>> from framelab.toolkits.saved_extractor import extractor_files, extractor_metadata
    >>> extractor = DeepFeatureExtractor("mobilenet_v2")
    >>> extractor_metadata(extractor)["weights_file"], extractor_files(extractor)  # bundled: nothing to copy
    (None, {})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from framelab.frames.errors import InputError
from framelab.toolkits.deep_features import DeepFeatureExtractor
from framelab.toolkits.model import Model, Section

if TYPE_CHECKING:
    from framelab.toolkits.model_io import SavedModel


def extractor_metadata(extractor: DeepFeatureExtractor) -> dict[str, Any]:
    """The metadata fields that keep ``extractor`` in a saved model: ``extractor`` and ``weights_file``.

    ``extractor["weights"]`` keeps the original source for the record; a
    model with a copy of the weights never reads it.

    Example:
        >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
        >>> from framelab.toolkits.saved_extractor import extractor_metadata
        >>> sorted(extractor_metadata(DeepFeatureExtractor()))
        ['extractor', 'weights_file']
    """
    copied = extractor.weights_copy()
    return {"extractor": extractor.to_config(), "weights_file": None if copied is None else copied[0]}


def extractor_files(extractor: DeepFeatureExtractor) -> dict[str, bytes]:
    """The files a model keeps for ``extractor``: a copy of weights from a path or URL, else none.

    Example:
        >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
        >>> from framelab.toolkits.saved_extractor import extractor_files
        >>> extractor_files(DeepFeatureExtractor("mobilenet_v2"))
        {}
    """
    copied = extractor.weights_copy()
    return {} if copied is None else {copied[0]: copied[1]}


def check_saved_extractor(saved: SavedModel) -> dict[str, Any]:
    """Refuse a saved extractor that is invalid, whose weights copy is missing or unusable, or that reads outside.

    Returns the extractor's config. Reads ``saved``'s ``extractor`` and
    ``weights_file`` fields; the copy's bytes are parsed as plain tensors
    (``torch.load(weights_only=True)``) and checked against the config's sha256.

    Example:
        >>> from framelab.toolkits.model_io import SavedModel
        >>> from framelab.toolkits.saved_extractor import check_saved_extractor
        >>> check_saved_extractor(SavedModel("m", "example", {"extractor": "mobilenet_v2"}, {}))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: m/model.json: field 'metadata.extractor' must be an object, got a string ...
    """
    from framelab.toolkits.deep_features.weights import is_file_source, weights_from_bytes

    config = saved.field("extractor", dict)
    try:
        DeepFeatureExtractor.from_config(config)
    except InputError as err:
        saved.refuse("extractor", f"is not a valid extractor config: {err}")
    weights_file = saved.field("weights_file", (str, type(None)), required=False)
    if weights_file is not None:
        if weights_file not in saved.files:
            saved.refuse("weights_file", f"names {weights_file!r}, a file model.json does not list")
        try:  # plain tensors (torch.load(weights_only=True)), and the ones the extractor pins
            weights_from_bytes(saved.files[weights_file], source=weights_file, sha256=config["weights_sha256"])
        except InputError as err:
            saved.refuse("weights_file", f"names a copy of the weights that cannot be used: {err}")
    if weights_file is None and is_file_source(config["weights"]) and not saved.allow_external:
        saved.refuse(
            "extractor.weights",
            f"names {config['weights']!r}, outside the model folder. A loaded model reads only its own "
            "folder; if you trust where this model comes from, pass load_model(..., allow_external=True)",
        )
    return config


def check_features_made_by(saved: SavedModel, name: str, features: list[dict], column: str,
                           config: dict[str, Any]) -> None:
    """Refuse a saved model whose ``column`` feature (in field ``name``) was not made by the extractor ``config``.

    The model's fitted part (classifier, index, centres) and its extractor
    must come from one model: the feature's recorded provenance must match
    the extractor's network, weights, layer and dtype.

    Example:
        >>> from framelab.toolkits.model_io import SavedModel
        >>> from framelab.toolkits.saved_extractor import check_features_made_by
        >>> saved = SavedModel("m", "example", {}, {})
        >>> check_features_made_by(saved, "features", [{"name": "x", "kind": "numeric", "dim": 1, "levels": []}], "f", {})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: m/model.json: field 'metadata.features' has no vector feature 'f' ...
    """
    from framelab.toolkits.features import VECTOR, FeatureEncoder

    try:
        encoded = {f.name: f for f in FeatureEncoder.from_json(features).features}
    except InputError as err:
        saved.refuse(name, f"is not a list of features this model could have saved: {err}")
    spec = encoded.get(column)
    if spec is None or spec.kind != VECTOR:
        saved.refuse(name, f"has no vector feature {column!r} for the deep features")
    provenance = spec.provenance or {}
    expected = {"model": config["model"], "weights_sha256": config["weights_sha256"],
                "layer": config["layer"], "dtype": config["output_dtype"]}
    mixed = [k for k, v in expected.items() if provenance.get(k) != v]
    if mixed:
        saved.refuse(
            name,
            f"was trained on features whose {', '.join(mixed)} differ from the saved extractor's: "
            "the model's parts come from different models",
        )


def extractor_from_saved(metadata: dict[str, Any], files: dict[str, bytes] | None) -> DeepFeatureExtractor:
    """The extractor :func:`extractor_metadata` saved, on its copy of the weights when the model keeps one.

    Example:
        >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
        >>> from framelab.toolkits.saved_extractor import extractor_from_saved, extractor_metadata
        >>> extractor_from_saved(extractor_metadata(DeepFeatureExtractor()), None).model
        'mobilenet_v2'
    """
    weights_file = metadata.get("weights_file")
    data = (files or {}).get(weights_file) if weights_file else None
    return DeepFeatureExtractor.from_config(metadata["extractor"], weights_data=data)


class ExtractorPart:
    """The deep-feature extractor of a model and its two columns: state, files, saved-state checks, load and summary.

    Every kind that turns images into features keeps these the same way, at
    the top level of ``model.json``: the extractor's config and weights copy
    (:func:`extractor_metadata`), ``image_column`` (None: the frame's only
    image column) and ``feature_column``. A kind mixes this part in beside
    :class:`~framelab.toolkits.model.Model` and adds only what is its own.
    A kind that may have no extractor (k-means on plain numeric columns)
    sets ``_extractor_optional``: its ``extractor`` is then None, saved as null.

    Example:
        >>> from framelab.toolkits.image_tagger import ImageTagger
        >>> from framelab.toolkits.kmeans import KMeansModel
        >>> from framelab.toolkits.saved_extractor import ExtractorPart
        >>> issubclass(ImageTagger, ExtractorPart), KMeansModel._extractor_optional
        (True, True)
    """

    _extractor_optional: ClassVar[bool] = False
    extractor: DeepFeatureExtractor | None
    image_column: str | None
    feature_column: str | None

    def _extractor_state(self) -> dict[str, Any]:
        """The metadata fields of the part: ``extractor``, ``weights_file``, ``image_column``, ``feature_column``."""
        fields = ({"extractor": None, "weights_file": None} if self.extractor is None
                  else extractor_metadata(self.extractor))
        return {**fields, "image_column": self.image_column, "feature_column": self.feature_column}

    def _files(self) -> dict[str, bytes]:
        # Weights from a path or URL travel with the model: its folder is all it needs.
        return {} if self.extractor is None else extractor_files(self.extractor)

    @classmethod
    def _check_saved_extractor(cls, saved: SavedModel) -> dict[str, Any] | None:
        """Refuse a saved extractor or column that is damaged; the extractor's config (None: saved without one).

        The kind then checks, with :func:`check_features_made_by`, that its
        fitted part was trained on this extractor's features.
        """
        if cls._extractor_optional and saved.field("extractor", (dict, type(None)), required=False) is None:
            saved.field("image_column", (str, type(None)), required=False)
            saved.field("feature_column", (str, type(None)), required=False)
            return None
        if "feature_column" in saved.metadata and saved.metadata["feature_column"] is None:
            saved.refuse("feature_column", "is null, but a model on images needs the column its features go in")
        if not saved.field("feature_column", str):
            saved.refuse("feature_column", "is empty")
        saved.field("image_column", (str, type(None)), required=False)
        return check_saved_extractor(saved)

    @classmethod
    def _extractor_from_saved(cls, metadata: dict[str, Any], files: dict[str, bytes] | None) -> dict[str, Any]:
        """The constructor's ``extractor``, ``image_column`` and ``feature_column`` from the part's fields."""
        extractor = extractor_from_saved(metadata, files) if metadata.get("extractor") is not None else None
        return {"extractor": extractor, "image_column": metadata.get("image_column"),
                "feature_column": metadata.get("feature_column")}

    def _extractor_section(self) -> Section:
        """The summary's "Deep features" section: the network, its weights and layer, and the two columns."""
        provenance = self.extractor.provenance  # unlike to_config(), known for your own module too
        weights = self.extractor.weights or "default"
        if self.extractor.weights_copy() is not None:
            weights += " (a copy is saved with the model)"
        return ("Deep features", [
            ("Model", provenance["model"]),
            ("Weights", weights),
            ("Layer", provenance["layer"]),
            ("Weights sha256", provenance["weights_sha256"][:16] + "..."),
            ("Image column", self.image_column),
            ("Feature column", self.feature_column),
        ])


class ExtractorModel(ExtractorPart, Model):
    """A model over a deep-feature extractor: the extractor, one inner model on its features, and the columns.

    The state, files, saved-state checks and load of such a model are written
    here once (the extractor's part in :class:`ExtractorPart`); a kind names its
    inner model (``_inner``: the attribute, which is also its key in
    ``model.json``, and ``_inner_class``) and adds only what is its own through
    :meth:`_own_state`, :meth:`_check_own_saved` and :meth:`_own_from_saved`.

    Example:
        >>> from framelab.toolkits.image_classifier import ImageClassifier
        >>> from framelab.toolkits.saved_extractor import ExtractorModel
        >>> issubclass(ImageClassifier, ExtractorModel), ImageClassifier._inner
        (True, 'classifier')
    """

    _inner: str
    _inner_class: type[Model]
    extractor: DeepFeatureExtractor
    feature_column: str

    def _own_state(self) -> dict[str, Any]:
        """Metadata fields only this kind keeps (none here)."""
        return {}

    @classmethod
    def _check_own_saved(cls, saved: SavedModel) -> None:
        """Refuse a saved field only this kind keeps (none here)."""

    @classmethod
    def _own_from_saved(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of this kind's constructor from its own fields (none here)."""
        return {}

    def _state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        metadata, arrays = getattr(self, self._inner)._state()
        return {self._inner: metadata, **self._extractor_state(), **self._own_state()}, arrays

    @classmethod
    def _check_saved(cls, saved: SavedModel) -> None:
        """Refuse a saved model whose extractor or inner model is damaged, or whose inner model was fitted
        on another network's features."""
        cls._check_own_saved(saved)
        config = cls._check_saved_extractor(saved)
        nested = saved.nested(cls._inner)
        cls._inner_class._check_saved(nested)
        check_features_made_by(saved, f"{cls._inner}.features", nested.metadata["features"],
                               saved.metadata["feature_column"], config)

    @classmethod
    def _from_saved(cls, metadata: dict[str, Any], arrays: dict[str, Any],
                    files: dict[str, bytes] | None = None) -> ExtractorModel:
        part = cls._extractor_from_saved(metadata, files)
        return cls(
            part.pop("extractor"),
            cls._inner_class._from_saved(metadata[cls._inner], arrays),
            **part,
            **cls._own_from_saved(metadata),
        )
