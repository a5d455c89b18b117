"""A logistic (softmax) classifier trained where the rows are.

The training rows stay spread over the cluster: they are loaded once into a
pool of actors (:class:`framelab.platform.sharded.ShardedArrays`), and each
L-BFGS step asks every shard for its part of the loss and gradient, so the
driver only ever holds the parameters.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits import classifier
    >>> train = Frame({"x": [0.0, 0.1, 0.9, 1.0] * 5, "label": ["lo", "lo", "hi", "hi"] * 5})
    >>> model = classifier.create(train, "label", verbose=False)
    >>> model.classes
    ['hi', 'lo']
"""

from framelab.toolkits.classifier.logistic_classifier import LogisticClassifier, create

__all__ = ["LogisticClassifier", "create"]
