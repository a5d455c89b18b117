"""``framelab submit`` and ``framelab jobs`` against a real loopback cluster with token auth on.

The CLI runs as its own process with only ``RAY_AUTH_TOKEN_PATH`` set, as a
user's shell would have it; it must find the token itself and never print it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.multinode

REPO = Path(__file__).resolve().parents[2]
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"


def _framelab(cluster, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "framelab.toolkits.cli", *args], capture_output=True, text=True,
        timeout=timeout, env=cluster.client_env(), cwd=REPO,
    )


@pytest.fixture(scope="module")
def small_photos(tmp_path_factory) -> Path:
    """Three classes x 10 real Caltech images in a <class>/<file> folder every node can read."""
    root = tmp_path_factory.mktemp("photos")
    for name in ("Faces_easy", "Motorbikes", "watch"):
        (root / name).mkdir()
        for path in sorted((CALTECH / name).glob("*.jpg"))[:10]:
            shutil.copy(path, root / name / path.name)
    return root


def test_the_documented_submit_runs_the_demo_and_the_model_lands_where_asked(loopback_cluster, small_photos, tmp_path):
    output = tmp_path / "model"
    done = _framelab(
        loopback_cluster, "submit", "--address", loopback_cluster.dashboard_url, "--working-dir", "deploy",
        "--", "python", "job.py", "--data", str(small_photos), "--output", str(output), "--device", "cpu",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "[6/6]" in done.stdout and "test accuracy" in done.stdout  # logs streamed while waiting
    assert "SUCCEEDED" in done.stderr
    assert (output / "model.json").is_file() and len(list(output.glob("arrays.*.safetensors"))) == 1
    token = loopback_cluster.token_path.read_text()
    assert token not in done.stdout + done.stderr
    job_id = done.stderr.split("submitted job ", 1)[1].split(":", 1)[0]
    listing = _framelab(loopback_cluster, "jobs", "list", "--address", loopback_cluster.dashboard_url)
    assert listing.returncode == 0 and job_id in listing.stdout and "SUCCEEDED" in listing.stdout
    status = _framelab(loopback_cluster, "jobs", "status", job_id, "--address", loopback_cluster.dashboard_url)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    logs = _framelab(loopback_cluster, "jobs", "logs", job_id, "--address", loopback_cluster.dashboard_url)
    assert "[6/6]" in logs.stdout


def test_a_job_still_running_at_the_time_limit_exits_with_its_own_code(loopback_cluster):
    url = loopback_cluster.dashboard_url
    done = _framelab(loopback_cluster, "submit", "--address", url, "--timeout", "5", "--",
                     "python", "-c", "import time; print('working', flush=True); time.sleep(120)")
    assert done.returncode == 4, done.stderr[-2000:]
    assert "still running" in done.stderr
    job_id = done.stderr.split("submitted job ", 1)[1].split(":", 1)[0]
    stop = _framelab(loopback_cluster, "jobs", "stop", job_id, "--address", url)
    assert stop.returncode == 0, stop.stderr
    deadline = time.monotonic() + 60
    while (status := _framelab(loopback_cluster, "jobs", "status", job_id, "--address", url)).returncode == 4:
        assert time.monotonic() < deadline, status.stdout
        time.sleep(1)
    assert status.returncode == 3 and "STOPPED" in status.stdout


def test_an_interrupted_driver_is_reported_as_failed_with_the_reason(loopback_cluster, tmp_path):
    """Killed: the job's driver process (SIGINT, as Ctrl-C would). Counted: the status framelab reports."""
    import os
    import signal

    url = loopback_cluster.dashboard_url
    pid_file = tmp_path / "driver.pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    done = _framelab(loopback_cluster, "submit", "--address", url, "--no-wait", "--", "python", "-c", script)
    assert done.returncode == 4, done.stderr  # submitted, still running
    job_id = done.stdout.strip()
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job's driver never started"
        time.sleep(0.5)
    os.kill(int(pid_file.read_text()), signal.SIGINT)
    deadline = time.monotonic() + 60
    while (status := _framelab(loopback_cluster, "jobs", "status", job_id, "--address", url)).returncode == 4:
        assert time.monotonic() < deadline, f"still reported running after its driver died: {status.stdout}"
        time.sleep(1)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "FAILED" in status.stdout and "exit code" in status.stdout


JOIN_AND_EXTRACT = """
import sys
from framelab.frames import Frame
from framelab.platform.session import session_info
from framelab.toolkits import deep_features
photos = Frame.read_images(sys.argv[1])           # no connect(): the job's cluster is joined on first use
print("SESSION", session_info())
print("FEATURES", deep_features.extract(photos).materialize().num_rows())
"""


def test_submitted_jobs_that_never_connect_run_on_the_jobs_cluster_and_succeed(loopback_cluster, small_photos, tmp_path):
    """Three extraction jobs in a row (the closing note gives a run of 30): each joins the cluster, none crashes."""
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "job.py").write_text(JOIN_AND_EXTRACT)
    for _ in range(3):
        done = _framelab(loopback_cluster, "submit", "--address", loopback_cluster.dashboard_url,
                         "--working-dir", str(job_dir), "--env", "FRAMELAB_JOB_TEST=1", "--",
                         "python", "job.py", str(small_photos))
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
        assert f"Ray cluster at {loopback_cluster.head_ip}" in done.stdout, done.stdout[-2000:]
        assert "embedded local Ray" not in done.stdout and "FEATURES 30" in done.stdout


def test_a_killed_driver_is_reported_failed_with_its_exit_code_and_a_gone_session_never_as_succeeded(
    loopback_cluster, tmp_path
):
    import os
    import signal

    url = loopback_cluster.dashboard_url
    pid_file = tmp_path / "driver.pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(300)"
    done = _framelab(loopback_cluster, "submit", "--address", url, "--no-wait", "--", "python", "-c", script)
    job_id = done.stdout.strip()
    deadline = time.monotonic() + 120
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the job's driver never started"
        time.sleep(0.5)
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    # A session that joined the cluster and was killed: Ray records only that it ended.
    session = loopback_cluster.run_driver(
        "import os, signal\nfrom framelab.platform.session import connect\n"
        f"connect({loopback_cluster.gcs_address!r})\nos.kill(os.getpid(), signal.SIGKILL)\n", timeout=300)
    assert session.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 60
    while (status := _framelab(loopback_cluster, "jobs", "status", job_id, "--address", url)).returncode == 4:
        assert time.monotonic() < deadline, status.stdout
        time.sleep(1)
    assert status.returncode == 1 and "FAILED" in status.stdout and "exit code 137" in status.stdout
    listing = _framelab(loopback_cluster, "jobs", "list", "--sessions", "--address", url)
    row = next(line for line in listing.stdout.splitlines() if line.startswith(job_id))
    assert row.split()[1:3] == ["FAILED", "137"], listing.stdout
    assert "SUCCEEDED" not in "".join(line for line in listing.stdout.splitlines() if "ENDED" in line)
    assert any(line.split()[1] == "ENDED" for line in listing.stdout.splitlines()[1:]), listing.stdout
