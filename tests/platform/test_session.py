"""framelab.platform.session and resources against the real session Ray."""

from __future__ import annotations

import subprocess
import sys

from framelab.platform.resources import actor_pool, threads_for
from framelab.platform.session import connect, session_info


def test_connect_is_idempotent_and_describes_the_session():
    first = connect()
    second = connect()
    assert first.num_cpus == second.num_cpus >= 1
    assert session_info().num_nodes == 1
    assert "CPU" in repr(first)


def test_cpu_pools_leave_room_for_the_stages_that_feed_them():
    pool = actor_pool(use_gpu=False)
    assert pool.max_size == 1  # the test session has 2 CPUs: one actor, one CPU left for reads
    assert pool.ray_kwargs()["num_cpus"] == 1.0
    assert pool.ray_kwargs()["compute"].max_size == 1
    assert threads_for(1.0) == 1 and threads_for(0.25) == 1


def test_the_session_configures_ray_data_for_frames():
    import ray.data

    connect()
    ctx = ray.data.DataContext.get_current()
    assert ctx.execution_options.preserve_order is True  # frames keep their row order
    assert ctx.wait_for_min_actors_s > 0  # pools are placed before the tasks that feed them


def test_asking_for_gpus_on_a_cpu_cluster_says_what_to_do():
    import pytest

    with pytest.raises(RuntimeError, match="device='cpu'"):
        actor_pool(use_gpu=True)


def test_frame_operations_connect_lazily_and_quietly(tmp_path):
    script = (
        "import ray\n"
        "from framelab.frames import Frame\n"
        "assert not ray.is_initialized()\n"
        "frame = Frame({'x': [1, 2, 3]}).repartition(2)\n"
        "print(frame.num_rows())\n"
        "assert not ray.is_initialized()  # a count of rows in the driver needs no cluster\n"
        "print(frame.materialize().num_rows())\n"
        "assert ray.is_initialized()  # blocks on the cluster: the session starts here\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["3", "3"]
    assert "INFO" not in out.stdout


def test_address_comes_from_the_argument_then_the_environment(monkeypatch):
    from framelab.platform.session import ADDRESS_ENV, RAY_ADDRESS_ENV, resolve_address

    monkeypatch.delenv(ADDRESS_ENV, raising=False)
    monkeypatch.delenv(RAY_ADDRESS_ENV, raising=False)
    assert resolve_address(None) is None
    monkeypatch.setenv(RAY_ADDRESS_ENV, "http://head:8265")      # the Jobs API's address, not Ray's
    assert resolve_address(None) is None
    monkeypatch.setenv(RAY_ADDRESS_ENV, "10.0.0.5:6379")         # what a job's driver is given
    assert resolve_address(None) == "10.0.0.5:6379"
    monkeypatch.setenv(ADDRESS_ENV, "ray://head:10001")
    assert resolve_address(None) == "ray://head:10001"
    assert resolve_address("auto") == "auto"


def _listening_addresses(root_pid: int) -> list[tuple[int, str, int]]:
    """(pid, ip, port) of every TCP socket listening in ``root_pid`` and its descendants, from /proc."""
    import ipaddress
    import os
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    pids, todo = set(), [root_pid]
    while todo:
        pid = todo.pop()
        pids.add(pid)
        todo.extend(children.get(pid, []))
    listening: dict[str, tuple[str, int]] = {}
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A":  # TCP_LISTEN
                continue
            hex_ip, hex_port = cols[1].split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, width, 4))
            listening[cols[9]] = (str(ipaddress.ip_address(raw)), int(hex_port, 16))
    found = []
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in listening:
                found.append((pid, *listening[link[8:-1]]))
    return found


def _is_loopback(ip: str) -> bool:
    import ipaddress

    addr = ipaddress.ip_address(ip)
    if getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    return addr.is_loopback


def test_the_embedded_session_listens_on_loopback_only():
    import os

    import ray

    connect()

    @ray.remote
    def worker_pid() -> int:
        return os.getpid()

    ray.get(worker_pid.remote())  # a worker process is up and serving too
    sockets = _listening_addresses(os.getpid())
    assert len(sockets) >= 3, sockets  # GCS, raylet, worker at least: the reader sees them
    exposed = [s for s in sockets if not _is_loopback(s[1])]
    assert not exposed, f"the embedded Ray listens beyond loopback: {exposed}"


def test_connecting_elsewhere_while_connected_says_so_instead_of_pretending():
    import pytest

    from framelab.platform.errors import SessionMismatchError

    connect()
    with pytest.raises(SessionMismatchError, match=r"already connected to an embedded local Ray.*shutdown\(\)"):
        connect("ray://127.0.0.1:10001")
    with pytest.raises(SessionMismatchError, match="auto"):
        connect("auto")
    with pytest.raises(SessionMismatchError, match=r"num_cpus=7 \(running: 2\)"):
        connect(num_cpus=7)
    assert connect(num_cpus=2).num_cpus == 2  # the sizes it runs with are no mismatch


def test_sizes_for_a_cluster_are_refused_with_the_fix(monkeypatch):
    import pytest

    from framelab.platform.session import shutdown

    shutdown()
    try:
        with pytest.raises(ValueError, match="Drop num_cpus to join it"):
            connect("ray://127.0.0.1:1", num_cpus=2)
    finally:
        connect(num_cpus=2, object_store_memory=1_000_000_000)


def test_failing_reads_print_one_framelab_message_and_many_workers_no_raylet_warning(tmp_path, caltech, s3_server):
    """on_error="raise" on a broken image, an S3 read without credentials: the error is all the console shows.

    Then more Python workers than 4x the session's 2 CPUs (12 actors), as training starts on a laptop:
    Ray's raylet warns about that on stdout unless the session raised its startup concurrency.
    """
    import os
    import shutil

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(caltech / "ewer" / "image_0001.jpg", photos / "good.jpg")
    (photos / "broken.jpg").write_bytes((caltech / "ewer" / "image_0002.jpg").read_bytes()[:3000])
    bucket = s3_server.make_bucket("quiet-errors")
    s3_server.upload(photos, f"s3://{bucket}/photos")
    script = (
        "import sys\n"
        "from framelab.frames import Frame\n"
        "from framelab.platform.session import connect\n"
        "connect(num_cpus=2)  # a laptop's Ray, whatever this machine has\n"
        "reads = [lambda: Frame.read_images(sys.argv[1], on_error='raise'),\n"
        "         lambda: Frame.read_images(sys.argv[2], storage_options={'endpoint_url': sys.argv[3]})]\n"
        "for read in reads:\n"
        "    try:\n"
        "        read().materialize()\n"
        "    except Exception as err:\n"
        "        print(f'{type(err).__name__}: {err}', file=sys.stderr)\n"
        "import ray\n"
        "Worker = ray.remote(num_cpus=0)(type('Worker', (), {'ping': lambda self: 1}))\n"
        "workers = [Worker.remote() for _ in range(12)]\n"
        "print('pings', sum(ray.get([w.ping.remote() for w in workers])))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(
        [sys.executable, "-c", script, str(photos), f"s3://{bucket}/photos/", s3_server.endpoint],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stderr.splitlines()
    assert len(lines) == 2, out.stderr  # one line per failed read: no Ray ERROR log, no traceback
    assert lines[0].startswith("ImageReadError: cannot read ") and "broken.jpg" in lines[0]
    assert lines[1].startswith("StorageError: ") and f"s3://{bucket}/photos" in lines[1]
    assert "no credentials were found: pass key and secret in storage_options" in lines[1]
    assert out.stdout.splitlines() == ["pings 12"], out.stdout  # no "(raylet) WARNING: N PYTHON worker processes"
