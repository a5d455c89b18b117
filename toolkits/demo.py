"""The main job: Caltech-101 transfer learning (deep features + logistic regression), end to end.

Run it with ``framelab demo`` (or ``make demo``). ``--data`` points it at your
own folder of ``<class>/<image>`` files, ``--model`` picks the network.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _step(number: int, text: str) -> float:
    print(f"[{number}/6] {text}", flush=True)
    return time.perf_counter()


def _done(start: float, text: str = "") -> None:
    print(f"      done in {time.perf_counter() - start:.1f}s{'  ' + text if text else ''}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 on success.

    Example:
        >>> from framelab.toolkits.demo import main
        >>> main(["--help"])  # doctest: +SKIP
    """
    from framelab.toolkits import datasets

    parser = argparse.ArgumentParser(prog="framelab demo", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(datasets.caltech101_path()),
                        help="folder of <class>/<image> files (default: the bundled Caltech-101 subset)")
    parser.add_argument("--model", default="mobilenet_v2", help="deep-features network (default: mobilenet_v2)")
    parser.add_argument("--output", default=None, help="where to save the model (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 80/20 split")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--address", default=None, help="Ray cluster to join (default: embedded local Ray)")
    args = parser.parse_args(list(argv or []))

    import polars as pl

    from framelab.frames import Frame
    from framelab.platform.session import connect
    from framelab.toolkits import deep_features, image_classifier, load_model

    total = time.perf_counter()
    t = _step(1, "connecting to Ray")
    info = connect(args.address)
    _done(t, repr(info))

    t = _step(2, f"reading images from {args.data}")
    photos = Frame.read_images(args.data, label_from="folder").materialize()
    classes = len(set(photos["label"].to_pylist()))
    _done(t, f"{photos.num_rows()} images, {classes} classes")

    t = _step(3, f"extracting deep features with {args.model} (the slow part on a CPU)")
    featured = deep_features.extract(photos, model=args.model, device=args.device).materialize()
    dim = featured.schema.field("deep_features").type.list_size
    _done(t, f"{featured.num_rows()} vectors of {dim} floats")

    t = _step(4, "splitting 80/20 and training a logistic classifier on the features")
    train, test = featured.random_split(0.8, seed=args.seed)
    model = image_classifier.create(train, target="label", model=args.model, device=args.device,
                                    seed=args.seed, verbose=False)
    _done(t, f"{train.num_rows()} training images")

    t = _step(5, "evaluating on the held-out 20%")
    metrics = model.evaluate(test)
    _done(t)
    print(f"      test accuracy: {metrics['accuracy']:.1%} on {test.num_rows()} images "
          f"(macro F1 {metrics['f1_score']:.3f}, log loss {metrics['log_loss']:.3f})")
    confusion = metrics["confusion_matrix"].filter(pl.col("target_label") != pl.col("predicted_label"))
    worst = confusion.sort("count", descending=True).head(5).to_arrow().to_pylist()
    if worst:
        print("      most confused pairs (true -> predicted: count):")
        for row in worst:
            print(f"        {row['target_label']} -> {row['predicted_label']}: {row['count']}")
    else:
        print("      no test image was misclassified")

    t = _step(6, "saving the model, loading it back and classifying two held-out images")
    output = args.output or tempfile.mkdtemp(prefix="framelab-demo-")
    model.save(output)
    loaded = load_model(output)
    two = test.select("image", "path", "label").head(2)
    top = loaded.predict_topk(two, k=3).to_arrow().to_pylist()
    for i, row in enumerate(two.to_arrow().select(["path", "label"]).to_pylist()):
        guesses = ", ".join(f"{r['class']} ({r['probability']:.0%})" for r in top if r["id"] == i)
        print(f"      {Path(row['path']).name} [{row['label']}]: {guesses}")
    _done(t, f"model saved to {output}")
    print(f"demo finished in {time.perf_counter() - total:.0f}s", flush=True)
    return 0
