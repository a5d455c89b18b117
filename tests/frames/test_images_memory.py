"""Reading a folder several times larger than Ray's object store streams to completion.

Runs in a subprocess with its own small Ray (80 MB object store), so the test
session's Ray is untouched.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image

OBJECT_STORE = 80 * 1024 * 1024
FILES = 1000

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import ray
    # address="local": always a fresh Ray of our own, even if a `ray start` cluster is up.
    ray.init(address="local", num_cpus=2, object_store_memory=int(sys.argv[2]), include_dashboard=False)
    from framelab.frames import images
    from framelab.frames import read_images
    frame = read_images(sys.argv[1]).with_column(
        "small", images.col("image").resize(8, 8).convert("RGB").decode()
    )
    rows = nbytes = 0
    for batch in frame.iter_batches(batch_size=64, format="arrow"):
        rows += batch.num_rows
        nbytes += sum(len(b) for b in batch.column("image").combine_chunks().storage.field("bytes").to_pylist())
        assert batch.column("error").null_count == batch.num_rows
    print("RESULT " + json.dumps({"rows": rows, "bytes": nbytes}))
    """
)


def _write_corpus(folder: Path) -> int:
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(8):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (480, 480, 3), dtype=np.uint8)).save(buf, "JPEG", quality=95)
        blobs.append(buf.getvalue())
    total = 0
    for i in range(FILES):
        sub = folder / f"part{i % 10}"
        sub.mkdir(exist_ok=True)
        data = blobs[i % len(blobs)]
        (sub / f"img_{i:05d}.jpg").write_bytes(data)
        total += len(data)
    return total


def test_reading_a_folder_bigger_than_the_object_store_streams_to_completion(tmp_path):
    total = _write_corpus(tmp_path)
    assert total > 3 * OBJECT_STORE
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(OBJECT_STORE)],
        capture_output=True, text=True, timeout=300,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT "):])
    assert result == {"rows": FILES, "bytes": total}
