"""One naming scheme for model classes, as Turi Create's: a model that predicts labels is named for what it is
(``LogisticClassifier``, ``ImageClassifier``, ``ImageTagger``); one that indexes or groups rows is named for its
toolkit, with ``Model`` (``NearestNeighborsModel``, ``ImageSimilarityModel``, ``KMeansModel``)."""

from __future__ import annotations

import importlib

import pytest

from framelab.toolkits.model import Model
from framelab.toolkits.model_io import MODEL_CLASSES
from framelab.toolkits.scoring import Classifier

_LABELLERS = ("Classifier", "Tagger")


@pytest.mark.parametrize("kind", sorted(MODEL_CLASSES))
def test_every_model_class_follows_the_naming_scheme(kind):
    module, name = MODEL_CLASSES[kind].split(":")
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, Model)
    labels = hasattr(cls, "predict_topk") or hasattr(cls, "tag")
    assert name.endswith(_LABELLERS) == labels, f"{name}: a model that predicts labels ends in Classifier or Tagger"
    assert name.endswith("Model") != labels, f"{name}: a model that indexes or groups rows ends in Model"
    # The toolkit's name is in the class's name, in the same words.
    assert kind.replace("_", "") in name.lower()
    assert name.endswith("Classifier") == issubclass(cls, Classifier)
