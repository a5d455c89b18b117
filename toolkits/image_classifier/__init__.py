"""Image classifier: deep features from a pretrained network, then a logistic classifier.

Example:
    >>> from framelab.toolkits import datasets, image_classifier
    >>> photos = datasets.caltech101()  # doctest: +SKIP
    >>> train, test = photos.random_split(0.8, seed=0)  # doctest: +SKIP
    >>> model = image_classifier.create(train, target="label")  # doctest: +SKIP
    >>> model.evaluate(test)["accuracy"]  # doctest: +SKIP
    0.97...
"""

from framelab.toolkits.image_classifier.image_classifier import ImageClassifier, create

__all__ = ["ImageClassifier", "create"]
