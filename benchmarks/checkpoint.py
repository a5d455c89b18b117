"""Benchmark: the cost of resuming a checkpointed extraction after a crash half-way, against a clean run.

Both sides run ``deep_features.extract(photos, checkpoint=url)`` on the same
Caltech images (MobileNetV2, CPU): the clean run (A) starts from an empty
checkpoint; the resumed run (B) starts from the checkpoint a run that crashed
at 50% leaves behind: the parts of the first half of the images, written
beforehand and not timed (a part is only ever complete or absent, so what a
crash leaves is exactly that). The resumed run still reads and hashes every
image to find the done rows, then extracts the other half. Rounds alternate
A B after a warm-up; we print the median ratio B/A with its min and max (goal:
at most 0.6), and check that both outputs hold every image once with the same
features.

Checkpoints are for long jobs, so the default corpus is twice the bundled
1,200 images: past the bundle, images are copied again under new names (new
paths, so new keys; decoding and the network cost the same).

Run:
    python benchmarks/checkpoint.py                    # 2,400 images, 2 pairs
    python benchmarks/checkpoint.py --images 200 --pairs 3
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform as _stdlib_platform  # noqa: F401  (the stdlib module, not framelab's folder)
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"


def corpus(n: int) -> Path:
    """n Caltech images, taken round-robin over the classes, in a <class>/<file> folder.

    Past the bundled images, each further pass copies them again as ``copy<k>-<file>``.
    """
    root = Path(tempfile.mkdtemp(prefix="framelab-ckpt-bench-"))
    classes = [sorted(f.glob("*.jpg")) for f in sorted(p for p in CALTECH.iterdir() if p.is_dir())]
    bundled = [f for rank in itertools.zip_longest(*classes) for f in rank if f is not None]
    for k in range(n):
        copy, i = divmod(k, len(bundled))
        source = bundled[i]
        (root / source.parent.name).mkdir(exist_ok=True)
        shutil.copy(source, root / source.parent.name / (f"copy{copy}-{source.name}" if copy else source.name))
    return root


def features_by_path(frame) -> dict[str, np.ndarray]:
    table = frame.select("path", "deep_features").to_arrow()
    vectors = np.stack(table.column("deep_features").to_numpy(zero_copy_only=False))
    return dict(zip(table.column("path").to_pylist(), vectors))


def wait_idle(timeout: float = 60.0) -> None:
    """Wait until the previous job's actors have gone, so neither side pays for the other's teardown.

    Model actors stay warm between calls (platform/warm_pools.py): released here, so every timed run
    starts its own, and neither side gets the other's warm actors.
    """
    import ray

    from framelab.platform import warm_pools

    warm_pools.release()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ray.available_resources().get("CPU", 0) >= ray.cluster_resources().get("CPU", 0):
            return
        time.sleep(0.2)


def timed_extract(photos, url: str) -> tuple[float, dict[str, np.ndarray]]:
    from framelab.toolkits import deep_features

    wait_idle()
    start = time.perf_counter()
    out = deep_features.extract(photos, device="cpu", checkpoint=url)
    rows = out.num_rows()  # the checkpoint is complete when extract returns; count it as a user would
    elapsed = time.perf_counter() - start
    assert rows == photos.num_rows()
    return elapsed, features_by_path(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2400)
    parser.add_argument("--pairs", type=int, default=2, help="timed A B rounds after the warm-up")
    args = parser.parse_args()

    from framelab.frames import Frame
    from framelab.platform.session import connect

    info = connect()
    folder = corpus(args.images)
    photos = Frame.read_images(str(folder)).materialize()
    half = photos.head(args.images // 2)  # a crash at 50%: the first half's parts are written
    work = Path(tempfile.mkdtemp(prefix="framelab-ckpt-runs-"))
    ratios, clean_times, resumed_times = [], [], []
    try:
        for round_ in range(args.pairs + 1):
            clean_url, resumed_url = str(work / f"clean{round_}"), str(work / f"resumed{round_}")
            a, clean = timed_extract(photos, clean_url)
            from framelab.toolkits import deep_features

            deep_features.extract(half, device="cpu", checkpoint=resumed_url).num_rows()  # the crash's leftovers
            b, resumed = timed_extract(photos, resumed_url)
            assert clean.keys() == resumed.keys() and len(clean) == args.images
            worst = max(float(np.abs(clean[p] - resumed[p]).max()) for p in clean)
            assert worst < 1e-3, worst
            label = "warm-up" if round_ == 0 else f"pair {round_}"
            print(f"{label}: clean {a:.1f}s, resumed {b:.1f}s, ratio {b / a:.2f} (features equal to {worst:.1e})",
                  flush=True)
            if round_:
                ratios.append(b / a)
                clean_times.append(a)
                resumed_times.append(b)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
    print()
    print(f"machine: {os.cpu_count()} cores, no GPU; {info}")
    print("| work | images | clean s | resumed after 50% s | resumed / clean (min-max) | goal |")
    print("|---|---|---|---|---|---|")
    print(f"| extract(checkpoint=...) MobileNetV2 CPU | {args.images} | {statistics.median(clean_times):.1f} | "
          f"{statistics.median(resumed_times):.1f} | {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}-{max(ratios):.2f}) | <= 0.6 |")


if __name__ == "__main__":
    main()
