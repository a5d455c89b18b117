"""Image classifier: deep features from a pretrained network, then a logistic classifier.

Example:
    >>> from framelab.toolkits import datasets, image_classifier
    >>> photos = datasets.caltech101(classes=["ewer", "sunflower"], per_class=8)
    >>> train, test = photos.random_split(0.75, seed=1)
    >>> model = image_classifier.create(train, target="label", seed=0, verbose=False)
    >>> model.evaluate(test)["accuracy"]
    1.0
"""

from framelab.toolkits.image_classifier.image_classifier import ImageClassifier, create

__all__ = ["ImageClassifier", "create"]
