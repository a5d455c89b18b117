"""Read + decode + resize-to-224 throughput: framelab vs Ray Data's read_images vs a multiprocessing PIL loop.

Same 1,200 Caltech JPEGs, same output on every side (uint8 224x224x3 pixels
delivered to the driver), same machine, interleaved rounds (F R M, F R M, ...)
after one warm-up round. Prints images/s and the per-round ratios framelab/anchor
(median, min, max). Ray is started before the timed region.

    python benchmarks/images.py [--rounds 5] [--data toolkits/datasets/caltech101_subset]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 224
DEFAULT_DATA = Path(__file__).resolve().parents[1] / "toolkits" / "datasets" / "caltech101_subset"


def run_framelab(folder: str) -> tuple[int, float]:
    from framelab.frames import images, read_images

    frame = read_images(folder).with_column(
        "pixels", images.col("image").resize(SIZE, SIZE).convert("RGB").decode()
    )
    rows, total = 0, 0.0
    for batch in frame.select("pixels").iter_batches(batch_size=256, format="arrow"):
        pixels = batch.column("pixels").combine_chunks().to_numpy_ndarray()
        rows += len(pixels)
        total += float(pixels.mean(dtype=np.float64)) * len(pixels)
    return rows, total / max(rows, 1)


def run_ray_data(folder: str) -> tuple[int, float]:
    import ray.data

    ds = ray.data.read_images(folder, size=(SIZE, SIZE), mode="RGB")
    rows, total = 0, 0.0
    for batch in ds.iter_batches(batch_size=256, batch_format="numpy"):
        pixels = batch["image"]
        rows += len(pixels)
        total += float(pixels.mean(dtype=np.float64)) * len(pixels)
    return rows, total / max(rows, 1)


def _pil_load(path: str) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BILINEAR))


def run_multiprocessing(files: list[str], processes: int) -> tuple[int, float]:
    rows, total = 0, 0.0
    with mp.get_context("fork").Pool(processes) as pool:
        for pixels in pool.imap(_pil_load, files, chunksize=32):
            rows += 1
            total += float(pixels.mean(dtype=np.float64))
    return rows, total / max(rows, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    from framelab.platform.session import connect

    cpus = os.cpu_count() or 1
    connect(num_cpus=cpus)
    files = sorted(str(p) for p in Path(args.data).rglob("*.jpg"))
    n = len(files)
    sides = {
        "framelab": lambda: run_framelab(args.data),
        "ray.data.read_images": lambda: run_ray_data(args.data),
        "multiprocessing PIL": lambda: run_multiprocessing(files, cpus),
    }
    cold = time.perf_counter()
    sides["framelab"]()
    cold = time.perf_counter() - cold
    times: dict[str, list[float]] = {k: [] for k in sides}
    means: dict[str, float] = {}
    for round_ in range(args.rounds + 1):  # round 0 is the warm-up
        for name, fn in sides.items():
            start = time.perf_counter()
            rows, mean = fn()
            elapsed = time.perf_counter() - start
            if rows != n:
                raise SystemExit(f"{name} gave {rows} rows, expected {n}")
            means[name] = mean
            if round_:
                times[name].append(elapsed)

    print(f"\nread + decode + resize to {SIZE}x{SIZE} RGB, {n} Caltech JPEGs, {args.rounds} interleaved rounds")
    print("Ray Data operator CPU reservation: Ray's default for read_images, off for framelab's read (its own context)")
    print(f"machine: {cpus} cores, no GPU, {platform.python_implementation()} {platform.python_version()}")
    print("mean pixel value (output check): " + ", ".join(f"{k} {v:.2f}" for k, v in means.items()))
    print(f"framelab cold first call (fresh session, includes Ray Data warm-up): {cold:.2f} s\n")
    print("| work | images | side | images/s (median) | framelab / side (median [min, max]) |")
    print("|---|---|---|---|---|")
    fl = times["framelab"]
    for name, ts in times.items():
        rate = n / statistics.median(ts)
        ratios = [t_side / t_fl for t_side, t_fl in zip(ts, fl)]  # throughput ratio framelab/side
        ratio = f"{statistics.median(ratios):.2f} [{min(ratios):.2f}, {max(ratios):.2f}]"
        print(f"| read+decode+resize {SIZE} | {n} | {name} | {rate:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
