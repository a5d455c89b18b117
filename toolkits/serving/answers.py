"""What each kind of image model answers over HTTP: its own Python method, on a frame of deep features.

A replica computes the deep features of a batch itself, in a column that
carries the model's extractor provenance, so the model's public method
(``predict_topk``, ``tag``, ``query``, ``predict``) reuses them instead of
extracting again: the answer is that method's, converted to one JSON object
per image. The query parameters each kind takes are declared here too.

Example:
    >>> from framelab.toolkits.serving.answers import ANSWERS
    >>> sorted(ANSWERS)
    ['image_classifier', 'image_similarity', 'image_tagger', 'kmeans']
    >>> sorted(ANSWERS["image_tagger"].params)
    ['k', 'threshold']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framelab.frames.errors import InputError
from framelab.toolkits.serving.uploads import Param


@dataclass(frozen=True)
class Answer:
    """How one model kind answers: the query parameters it takes and the function that answers a frame."""

    params: dict[str, Param]
    answer: Callable[[Any, Any, dict], list[dict]]


def _classifier(model: Any, features: Any, params: dict) -> list[dict]:
    top = model.predict_topk(features, **params).to_pydict()
    out: list[dict] = [{"predictions": []} for _ in range(features.num_rows())]
    for row, label, probability in zip(top["id"], top["class"], top["probability"]):
        out[row]["predictions"].append({"class": label, "probability": probability})
    return out


def _tagger(model: Any, features: Any, params: dict) -> list[dict]:
    tagged = model.tag(features, **params, output_column="tags")
    return [{"tags": tags} for tags in tagged.select("tags").to_pydict()["tags"]]


def _similarity(model: Any, features: Any, params: dict) -> list[dict]:
    found = model.query(features, **params).to_pydict()
    out: list[dict] = [{"neighbors": []} for _ in range(features.num_rows())]
    for row, label, distance, rank in zip(found["query_label"], found["reference_label"], found["distance"],
                                          found["rank"]):
        out[row]["neighbors"].append({"reference_label": label, "distance": distance, "rank": rank})
    return out


def _kmeans(model: Any, features: Any, params: dict) -> list[dict]:
    ids = model.predict(features).to_pylist()
    distances = model.predict(features, output_type="distance").to_pylist()
    return [{"cluster_id": i, "distance": d} for i, d in zip(ids, distances)]


ANSWERS = {
    "image_classifier": Answer({"k": Param(int, 1)}, _classifier),
    "image_tagger": Answer({"k": Param(int, 1), "threshold": Param(float, 0.0, 1.0)}, _tagger),
    "image_similarity": Answer({"k": Param(int, 1)}, _similarity),
    "kmeans": Answer({}, _kmeans),
}


def servable_kind(model: Any) -> str:
    """The model's kind, when it is an image model a deployment can serve; else an InputError saying why.

    Example:
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits import kmeans
        >>> from framelab.toolkits.serving.answers import servable_kind
        >>> servable_kind(kmeans.create(Frame({"x": [0.0, 1.0]}), 1, verbose=False))
        Traceback (most recent call last):
        ...
        framelab.frames.errors.InputError: this kmeans model was built on numeric columns, not images: ...
    """
    kind = getattr(model, "kind", None)
    if kind not in ANSWERS:
        raise InputError(
            f"a {kind or type(model).__name__} model takes no images, so it cannot be served from image uploads; "
            f"serve one of: {', '.join(sorted(ANSWERS))} (kmeans built on an image column)"
        )
    if getattr(model, "extractor", None) is None:
        raise InputError(
            f"this {kind} model was built on numeric columns, not images: only a model built on an image "
            "column (it keeps its deep-features extractor) can answer image uploads"
        )
    return kind
