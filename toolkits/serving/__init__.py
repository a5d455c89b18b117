"""Serving: any saved image model behind an HTTP endpoint, on Ray Serve, batched onto warm model replicas.

``deploy(url)`` (or ``framelab serve URL``) starts a Ray Serve application on
the session's cluster whose replicas each hold the model; ``POST`` an image's
bytes to its URL and the answer is the model's own method on that image
(``predict_topk`` for a classifier, ``tag``, ``query``, ``predict`` for
k-means), as JSON. ``status()`` and ``shutdown(name)`` cover the rest.

Example:
    >>> from framelab.toolkits import serving
    >>> serving.plan_replicas("auto", cpus=4, gpus=0).max_size
    4
    >>> app = serving.deploy("models/caltech", name="caltech")  # doctest: +SKIP
    >>> app.predict("photo.jpg", k=3)  # doctest: +SKIP
    {'predictions': [{'class': 'ewer', 'probability': 0.93}, ...]}
"""

from framelab.toolkits.serving.app import (
    ServedModel,
    application,
    deploy,
    plan_replicas,
    shutdown,
    status,
)

__all__ = ["ServedModel", "application", "deploy", "plan_replicas", "shutdown", "status"]
