"""The main job: Caltech-101 transfer learning (deep features + logistic regression), end to end.

Run it with ``framelab demo`` (or ``make demo``). ``--data`` points it at your
own folder of ``<class>/<image>`` files, ``--model`` picks the network.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _step(number: int, text: str) -> float:
    print(f"[{number}/6] {text}", flush=True)
    return time.perf_counter()


def _done(start: float, text: str = "") -> None:
    print(f"      done in {time.perf_counter() - start:.1f}s{'  ' + text if text else ''}", flush=True)


def check_data_folder(data: str) -> str | None:
    """Why ``data`` cannot be the demo's input (a local folder of ``<class>/<image>`` files), or None.

    Checked before Ray starts, so a wrong path costs a second, not a session.
    Folders on object stores (``s3://...``) are checked by the read itself.

    Example:
        >>> from framelab.toolkits.demo import check_data_folder
        >>> check_data_folder("/no/such/folder")
        "no such folder: '/no/such/folder'"
    """
    from framelab.frames.images.read import DEFAULT_EXTENSIONS

    if "://" in data and not data.startswith("file://"):
        return None
    root = Path(data.removeprefix("file://"))
    if not root.exists():
        return f"no such folder: {data!r}"
    if not root.is_dir():
        return f"{data!r} is a file; --data takes a folder with one sub-folder of images per class"

    def images(folder: Path) -> list[Path]:
        return [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in DEFAULT_EXTENSIONS
                and not p.name.startswith((".", "_"))]

    classes = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith((".", "_")) and images(d)]
    if not classes:
        loose = images(root)
        if not loose:
            return f"no images found in {data!r} (looked for {', '.join(DEFAULT_EXTENSIONS)})"
        return (f"{data!r} holds {len(loose)} image(s) but no <class>/<image> sub-folders: put each "
                "class's images in a folder named after the class")
    if len(classes) < 2:
        return f"{data!r} has one class folder ({classes[0].name!r}); a classifier needs at least two"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; returns 0 on success, 2 (with one line on stderr) for a bad argument.

    Example:
        >>> from framelab.toolkits.demo import main
        >>> main(["--data", "/no/such/folder"])
        2
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
    problem = check_data_folder(args.data)
    if problem is None and args.model not in _known_models():
        problem = f"unknown --model {args.model!r}; known: {', '.join(_known_models())}"
    if problem is not None:
        print(f"framelab demo: error: {problem}", file=sys.stderr)
        return 2
    from framelab.frames.errors import FramelabError

    try:
        return _run(args)
    except (FramelabError, FileNotFoundError, ConnectionError) as exc:
        # Framelab's own errors say what is wrong and how to fix it: one line, no traceback.
        print(f"framelab demo: error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
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


def _known_models() -> list[str]:
    from framelab.toolkits.deep_features.registry import known_models

    return known_models()
