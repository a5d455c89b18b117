"""Deep features (DeCAF-style transfer learning): images -> a pretrained network's activations.

Example:
    >>> from framelab.frames.images import read_images
    >>> from framelab.toolkits import deep_features
    >>> frame = read_images("../shared/data/caltech101_subset/ewer")  # doctest: +SKIP
    >>> frame = deep_features.extract(frame)  # doctest: +SKIP
    >>> deep_features.provenance_of(frame.schema.field("deep_features"))["dim"]  # doctest: +SKIP
    1280
"""

from framelab.toolkits.deep_features.extractor import (
    DeepFeatureExtractor,
    extract,
    find_image_column,
)
from framelab.toolkits.deep_features.preprocessing import Preprocessing
from framelab.toolkits.deep_features.provenance import PROVENANCE_KEY, provenance_of
from framelab.toolkits.deep_features.registry import (
    Architecture,
    architecture,
    known_models,
    layer_names,
)

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
