"""Image similarity: find similar images and near-duplicates with deep features and nearest neighbours.

Example:
    >>> from framelab.toolkits import image_similarity
    >>> image_similarity.NEAR_DUPLICATE_MIN_THRESHOLD, image_similarity.NEAR_DUPLICATE_THRESHOLD
    (0.065, 0.085)
"""

from framelab.toolkits.image_similarity.image_similarity import (
    NEAR_DUPLICATE_MIN_THRESHOLD,
    NEAR_DUPLICATE_THRESHOLD,
    ImageSimilarityModel,
    create,
)

__all__ = ["NEAR_DUPLICATE_MIN_THRESHOLD", "NEAR_DUPLICATE_THRESHOLD", "ImageSimilarityModel", "create"]
