"""Deep features (DeCAF-style transfer learning): images -> a pretrained network's activations.

Example:
    >>> from framelab.toolkits import datasets, deep_features
    >>> featured = deep_features.extract(datasets.caltech101(classes=["ewer"], per_class=2))
    >>> featured.to_numpy("deep_features").shape
    (2, 1280)
    >>> deep_features.provenance_of(featured.schema.field("deep_features"))["model"]
    'mobilenet_v2'
"""

from framelab.toolkits.deep_features.extraction import extract
from framelab.toolkits.deep_features.extractor import DeepFeatureExtractor, find_image_column
from framelab.toolkits.deep_features.preprocessing import Preprocessing
from framelab.toolkits.deep_features.registry import (
    Architecture,
    architecture,
    known_models,
    layer_names,
)
from framelab.toolkits.provenance import PROVENANCE_KEY, provenance_of

__all__ = [
    "PROVENANCE_KEY",
    "Architecture",
    "DeepFeatureExtractor",
    "Preprocessing",
    "architecture",
    "extract",
    "find_image_column",
    "known_models",
    "layer_names",
    "provenance_of",
]
