"""deep_features.extract(checkpoint=url): a run killed half-way is resumed, and every row comes out once.

The crash is real: the extracting driver (with its embedded Ray) is killed
with SIGKILL once parts have landed, then the same call runs again. The
features are compared with a plain extract of the same images.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from framelab.frames import Frame
from framelab.frames.errors import InputError
from framelab.toolkits import deep_features
from framelab.toolkits.deep_features.checkpoint import KEY_COLUMN, resume_plan, written_keys

REPO = Path(__file__).resolve().parents[2]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"


@pytest.fixture(scope="module")
def photos_dir(tmp_path_factory) -> Path:
    """96 real Caltech images (8 classes x 12)."""
    root = tmp_path_factory.mktemp("ckpt")
    for folder in sorted(p for p in CALTECH.iterdir() if p.is_dir())[:8]:
        (root / folder.name).mkdir()
        for path in sorted(folder.glob("*.jpg"))[:12]:
            shutil.copy(path, root / folder.name / path.name)
    return root


def test_a_run_killed_half_way_resumes_with_every_row_exactly_once(photos_dir, tmp_path):
    """Killed: the driver process group (driver and its Ray) after the first parts were written.
    Counted: rows the checkpoint held before the rerun, rows after, and features against a plain run."""
    url = str(tmp_path / "checkpoint")
    code = (
        "from framelab.frames import Frame\n"
        "from framelab.platform.session import connect\n"
        "from framelab.toolkits import deep_features\n"
        "connect(num_cpus=2)\n"
        f"photos = Frame.read_images({str(photos_dir)!r}).repartition(24)\n"
        f"deep_features.extract(photos, device='cpu', batch_size=4, checkpoint={url!r})\n"
        "print('finished', flush=True)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 400
        while not (Path(url).exists() and list(Path(url).glob("part-*.parquet"))):
            assert driver.poll() is None, driver.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no part was written"
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    photos = Frame.read_images(str(photos_dir))
    before = resume_plan(photos, url)
    assert before["done"] > 0 and before["todo"] > 0, f"the kill did not land mid-run: {before}"
    resumed = deep_features.extract(photos, device="cpu", checkpoint=url).to_arrow()
    paths = resumed.column("path").to_pylist()
    assert len(paths) == len(set(paths)) == photos.num_rows() == 96
    assert KEY_COLUMN not in resumed.column_names and "image" not in resumed.column_names
    assert len(written_keys(url)) == 96 and resume_plan(photos, url) == {"done": 96, "todo": 0}
    # The same features as one uninterrupted extraction, row by row.
    plain = deep_features.extract(photos, device="cpu").select("path", "deep_features").to_arrow()
    order = {p: i for i, p in enumerate(plain.column("path").to_pylist())}
    expected = np.stack(plain.column("deep_features").to_numpy(zero_copy_only=False))
    got = np.stack(resumed.column("deep_features").to_numpy(zero_copy_only=False))
    np.testing.assert_allclose(got, expected[[order[p] for p in paths]], rtol=1e-4, atol=1e-5)
    assert resumed.schema.field("deep_features").metadata == plain.schema.field("deep_features").metadata


def test_a_changed_image_at_the_same_path_is_extracted_again(photos_dir, tmp_path):
    url = str(tmp_path / "checkpoint")
    folder = tmp_path / "two" / "x"
    folder.mkdir(parents=True)
    first, second = sorted(photos_dir.glob("*/*.jpg"))[:2]
    shutil.copy(first, folder / "a.jpg")
    photos = Frame.read_images(str(folder.parent))
    deep_features.extract(photos, device="cpu", checkpoint=url)
    shutil.copy(second, folder / "a.jpg")  # same path, new content: its key changes
    assert resume_plan(Frame.read_images(str(folder.parent)), url) == {"done": 0, "todo": 1}


def test_a_frame_without_paths_is_refused_with_the_fix(tmp_path):
    photos = Frame.read_images(str(CALTECH / "ewer"), include_paths=False).head(2)
    with pytest.raises(InputError, match=r"no 'path' column \(read_images\(include_paths=True\)"):
        deep_features.extract(photos, checkpoint=str(tmp_path / "c"))
