"""Image tagging vs plain deep-feature extraction on the same images, same run.

out of the box: tagger.tag(frame) (ImageNet logits, softmax, sums up the WordNet hierarchy, top-k)
                against deep_features.extract(frame, layer="classifier.1"): the features it reads.
trained:        a tagger trained on Caltech tags (class + group), tag(frame), against
                deep_features.extract(frame): the penultimate features it reads.

Both sides start from the same materialised Frame of images (read_images: encoded JPEG bytes) and
keep only (path, output), so the
difference is the tagging step. Rounds are interleaved (extract, tag, extract, tag, ...) after a
warm-up round; the table gives the median of the per-round ratios (tag time / extraction time) with
min and max. Outputs are checked: the tags each run gives equal the tags computed in the driver from
the anchor's own features. The tag step alone (on features already extracted, in this process) is
printed as the limit: what tagging would cost if extraction were free.

    python benchmarks/tagger.py --images 300 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import pyarrow as pa

from framelab.frames import Frame, read_images
from framelab.platform.session import connect, session_info
from framelab.toolkits import datasets, deep_features, image_tagger
from framelab.toolkits.image_tagger.scoring import TagScores

GROUPS = {"Motorbikes": "vehicle", "car_side": "vehicle", "helicopter": "vehicle", "ketch": "vehicle",
          "Leopards": "animal", "kangaroo": "animal", "hawksbill": "animal", "starfish": "animal"}


def load_images(n: int) -> list[str]:
    files = sorted(datasets.caltech101_path().glob("*/*.jpg"))
    step = max(1, len(files) // n)  # spread over the classes
    return sorted({str(files[(i * step) % len(files)]) for i in range(n)})


def timed(make) -> tuple[float, pa.Table]:
    start = time.perf_counter()
    out = make().to_arrow()
    seconds = time.perf_counter() - start
    return seconds, out.take(np.argsort(out.column("path").to_numpy(zero_copy_only=False)))


def expected_tags(tagger, features: pa.Table, column: str) -> list:
    """The tags the model gives to features the anchor extracted, computed here in the driver."""
    expr = TagScores(column, tagger.scorer, tuple(tagger.vocabulary), image_tagger.DEFAULT_K,
                     tagger.thresholds["threshold"].to_numpy())
    return expr.evaluate(features).to_pylist()


def same_tags(got: list, want: list, tolerance: float = 1e-4) -> bool:
    for a, b in zip(got, want, strict=True):
        if [t["tag"] for t in a] != [t["tag"] for t in b]:
            return False
        if any(abs(x["score"] - y["score"]) > tolerance for x, y in zip(a, b)):
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up")
    parser.add_argument("--skip-trained", action="store_true", help="only the out-of-the-box tagger")
    args = parser.parse_args()

    connect()  # Ray start-up stays outside every timed region
    info = session_info()
    paths = load_images(args.images)
    frame = read_images(paths).materialize()
    pretrained = image_tagger.create()

    work = {
        "out of the box": (
            lambda: deep_features.extract(frame, layer="classifier.1", output_column="imagenet_logits")
            .select("path", "imagenet_logits"),
            lambda: pretrained.tag(frame).select("path", "tags"),
            pretrained, "imagenet_logits",
        ),
    }
    if not args.skip_trained:
        # Train (untimed) on the anchor's own features: each image's class plus a group tag.
        _, features = timed(lambda: deep_features.extract(frame).select("path", "deep_features"))
        labels = [os.path.basename(os.path.dirname(p)) for p in features.column("path").to_pylist()]
        tags = [[label] + ([GROUPS[label]] if label in GROUPS else []) for label in labels]
        train = Frame(features.append_column("tags", pa.array(tags, pa.list_(pa.string()))))
        trained = image_tagger.create(train, "tags", seed=0, verbose=False)
        work["trained"] = (
            lambda: deep_features.extract(frame).select("path", "deep_features"),
            lambda: trained.tag(frame).select("path", "tags"),
            trained, "deep_features",
        )

    results = {}
    for name, (extract, tag, model, column) in work.items():
        cold_extract, anchor = timed(extract)  # warm-up round
        cold_tag, tagged = timed(tag)
        want = expected_tags(model, anchor, column)
        checked = same_tags(tagged.column("tags").to_pylist(), want)
        rounds = []
        for i in range(args.rounds):
            e, anchor = timed(extract)
            t, tagged = timed(tag)
            checked = checked and same_tags(tagged.column("tags").to_pylist(), expected_tags(model, anchor, column))
            rounds.append((e, t))
            print(f"{name}, round {i + 1}: extract {e:.2f}s  tag {t:.2f}s", flush=True)
        start = time.perf_counter()
        expected_tags(model, anchor, column)
        step = time.perf_counter() - start
        results[name] = (rounds, checked, step, cold_extract, cold_tag)

    n = len(paths)
    med = statistics.median
    print()
    print("| work | images | extraction img/s | tagging img/s | tag time / extraction time (min-max) "
          "| tag step alone img/s | outputs equal | cold extract / tag s | machine |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (rounds, checked, step, cold_e, cold_t) in results.items():
        ratios = [t / e for e, t in rounds]
        print(
            f"| MobileNetV2, {name} | {n} | {n / med([e for e, _ in rounds]):.1f} "
            f"| {n / med([t for _, t in rounds]):.1f} | {med(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f}) "
            f"| {n / step:,.0f} | {'yes' if checked else 'NO'} | {cold_e:.1f} / {cold_t:.1f} "
            f"| {os.cpu_count()} cores, Ray {info.num_cpus:g} CPU, no GPU |"
        )
    print(f"\nvocabulary: {len(pretrained.vocabulary)} tags out of the box, "
          f"{len(work['trained'][2].vocabulary) if 'trained' in work else 0} trained; k = {image_tagger.DEFAULT_K}")


if __name__ == "__main__":
    main()
