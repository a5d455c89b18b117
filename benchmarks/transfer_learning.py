"""Transfer learning, measured: a linear classifier on MobileNetV2 features vs on raw pixels.

The 1,200 Caltech-101 images (20 classes x 60) bundled in toolkits/datasets/caltech101_subset; features from
framelab's deep_features.extract (the bundled ImageNet MobileNetV2, penultimate layer), raw pixels
as the images resized to 32x32 RGB. Each representation gets StandardScaler + LogisticRegression(C=1)
on stratified half/half splits, the same splits for both, one per seed; the table gives mean, min and
max test accuracy over the seeds.

    python benchmarks/transfer_learning.py            # all 1,200 images, 5 seeds
    python benchmarks/transfer_learning.py --per-class 10 --seeds 2
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from framelab.frames import read_images
from framelab.frames.images import image_bytes
from framelab.frames.vectors import vectors_to_numpy
from framelab.platform.session import connect
from framelab.toolkits import deep_features

CALTECH = Path(__file__).resolve().parents[1] / "toolkits" / "datasets" / "caltech101_subset"


def files(per_class: int) -> list[str]:
    out = []
    for folder in sorted(p for p in CALTECH.iterdir() if p.is_dir()):
        out += [str(p) for p in sorted(folder.glob("*.jpg"))[:per_class]]
    return out


def raw_pixels(data: list[bytes], size: int = 32) -> np.ndarray:
    rows = [
        np.asarray(Image.open(io.BytesIO(d)).convert("RGB").resize((size, size), Image.BILINEAR), np.float32)
        for d in data
    ]
    return np.stack(rows).reshape(len(rows), -1) / 255.0


def accuracy(x: np.ndarray, y: np.ndarray, seed: int) -> float:
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.5, stratify=y, random_state=seed)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return float(model.fit(x_train, y_train).score(x_test, y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()

    connect()
    start = time.perf_counter()
    frame = deep_features.extract(read_images(files(args.per_class), label_from="folder"))
    table = frame.to_arrow()
    extract_s = time.perf_counter() - start
    labels = np.asarray(table.column("label").to_pylist())
    features = vectors_to_numpy(table.column("deep_features"))
    pixels = raw_pixels(image_bytes(table.column("image")))

    results = {}
    for name, x in (("MobileNetV2 features (1280-d)", features), ("raw pixels 32x32 (3072-d)", pixels)):
        results[name] = [accuracy(x, labels, seed) for seed in range(args.seeds)]

    n, classes = len(labels), len(set(labels))
    print(f"\n{n} images, {classes} classes, stratified 50/50 splits, seeds 0..{args.seeds - 1}, "
          f"StandardScaler + LogisticRegression(C=1); features extracted in {extract_s:.1f}s "
          f"({n / extract_s:.1f} img/s, {os.cpu_count()} cores)\n")
    print("| representation | mean test accuracy | min | max |")
    print("|---|---|---|---|")
    for name, accs in results.items():
        print(f"| {name} | {100 * statistics.mean(accs):.1f}% | {100 * min(accs):.1f}% | {100 * max(accs):.1f}% |")


if __name__ == "__main__":
    main()
