"""framelab.platform.failures: bad rows counted across tasks and reported once per job."""

from __future__ import annotations

import warnings

import pytest
import ray

from framelab.frames import Frame
from framelab.platform import failures


@ray.remote
def _task_with_bad_rows(i: int) -> int:
    failures.report("decode", 1, 10, [f"img{i}.jpg: truncated"], unit="image(s)")
    return i


def test_failures_in_many_tasks_become_one_warning_with_the_total():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with failures.job():
            assert ray.get([_task_with_bad_rows.remote(i) for i in range(6)]) == list(range(6))
    messages = [str(w.message) for w in caught if issubclass(w.category, failures.RowFailureWarning)]
    assert len(messages) == 1
    assert messages[0].startswith("decode: 6 of 60 image(s) failed and were kept with a null; e.g. img")
    assert messages[0].count(".jpg: truncated") == 3  # a few examples, not all


def test_a_distributed_image_decode_warns_once_for_the_whole_job():
    from framelab.frames import images

    good = _jpeg()
    truncated = good[: len(good) // 2]  # its header reads fine; decoding it fails
    column = images.images_from_bytes([good, truncated] * 8)
    frame = Frame({"i": list(range(16)), "image": column}).repartition(4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = frame.with_column("px", images.col("image").decode()).to_arrow()
    assert out.num_rows == 16 and out.column("px").null_count == 8
    messages = [str(w.message) for w in caught if issubclass(w.category, failures.RowFailureWarning)]
    assert len(messages) == 1 and "8 of 16 image(s) failed" in messages[0], messages


def test_nothing_failed_nothing_said():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with failures.job():
            failures.report("read", 0, 100)


def test_outside_a_job_the_driver_warns_at_once():
    with pytest.warns(failures.RowFailureWarning, match="read: 2 of 5 file"):
        failures.report("read", 2, 5, unit="file(s)")


def _jpeg() -> bytes:
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_a_decode_warning_counts_the_whole_job_not_only_the_blocks_with_failures():
    from framelab.frames import images

    good = _jpeg()
    data = [good] * 277
    for i in (5, 100, 250):  # three bad images, in three of the job's blocks; the other blocks are clean
        data[i] = good[: len(good) // 2]
    frame = Frame({"i": list(range(277)), "image": images.images_from_bytes(data)}).repartition(9)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = frame.with_column("px", images.col("image").decode()).to_arrow()
    assert out.num_rows == 277
    messages = [str(w.message) for w in caught if issubclass(w.category, failures.RowFailureWarning)]
    assert len(messages) == 1 and "3 of 277 image(s) failed" in messages[0], messages
