"""A real multi-process Ray cluster on loopback, with token authentication, for tests.

Each node is its own ``ray start --block`` process tree in its own session
(``setsid``), on its own loopback address (127.0.0.2 for the head, .3, .4, ...
for workers: Ray swaps 127.0.0.1 itself for the machine's network address;
``FRAMELAB_TEST_LOOPBACK_BASE`` moves the range, so two test runs on one machine
never share a node address),
with unique ports and a private temp folder, so it never meets another Ray
on the machine. Killing a node kills exactly the processes of its session, and
``stop()`` kills only what this cluster started (never ``ray stop``).
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def session_pids(sid: int) -> list[int]:
    """Every live process whose session id is ``sid`` (a node started with setsid)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state, [3] the session id; zombies are already dead.
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(stat.parent.name))
    return pids


@dataclass
class Node:
    """One ``ray start`` process tree."""

    name: str
    ip: str
    process: subprocess.Popen
    log: Path
    resources: dict = field(default_factory=dict)

    @property
    def sid(self) -> int:
        return self.process.pid  # started with setsid: the session leader

    def pids(self) -> list[int]:
        return session_pids(self.sid)


class LoopbackCluster:
    """A head and any number of worker nodes, each its own process tree on 127.0.0.x."""

    _started = 0  # clusters made in this process: each takes the next range of 32 addresses

    def __init__(self, object_store_memory: int = 150_000_000):
        self.root = Path(tempfile.mkdtemp(prefix="flc-", dir="/tmp"))  # short: Ray's socket paths
        self.token_path = self.root / "auth_token"
        self.token_path.write_text(secrets.token_hex(32))
        self.token_path.chmod(0o600)
        self.object_store_memory = object_store_memory
        self.gcs_port, self.client_port, self.dashboard_port = free_port(), free_port(), free_port()
        self.nodes: list[Node] = []
        # Each cluster of a run gets its own range (a module's cluster may start while the session's runs).
        self._base = int(os.environ.get("FRAMELAB_TEST_LOOPBACK_BASE", "2")) + 32 * LoopbackCluster._started
        LoopbackCluster._started += 1
        self._next_ip = self._base
        # A test run that ends without its fixture's teardown still leaves nothing behind.
        atexit.register(self.stop)

    # -- addresses and environments -------------------------------------------------------------
    @property
    def head_ip(self) -> str:
        return f"127.0.0.{self._base}"

    @property
    def gcs_address(self) -> str:
        return f"{self.head_ip}:{self.gcs_port}"

    @property
    def client_address(self) -> str:
        return f"ray://{self.head_ip}:{self.client_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def client_env(self) -> dict[str, str]:
        """Environment of a process talking to the cluster: the token file, as a user would have it.

        ``RAY_AUTH_MODE`` is left unset on purpose: framelab must turn token
        mode on by itself when it finds the token.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH", "RAY_ADDRESS"))}
        env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env.pop("FRAMELAB_RAY_ADDRESS", None)
        return env

    def _node_env(self) -> dict[str, str]:
        env = self.client_env()
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_DEDUP_LOGS"] = "1"
        # A job's `python` is this interpreter, framelab installed: the image a real cluster runs.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        return env

    # -- nodes ----------------------------------------------------------------------------------
    def start_head(self, num_cpus: int = 1, resources: dict | None = None) -> Node:
        args = [
            "start", "--head", "--block", f"--node-ip-address={self.head_ip}", f"--port={self.gcs_port}",
            f"--ray-client-server-port={self.client_port}", "--include-dashboard=true",
            f"--dashboard-port={self.dashboard_port}", f"--temp-dir={self.root / 'ray'}",
        ]
        return self._start("head", self.head_ip, args, num_cpus, resources)

    def add_worker(self, num_cpus: int = 1, resources: dict | None = None) -> Node:
        self._next_ip += 1
        ip = f"127.0.0.{self._next_ip}"
        # Its own temp folder: nodes sharing one would share runtime_env's package cache, and one
        # node's clean-up would delete the working_dir of a job running on another.
        args = ["start", "--block", f"--address={self.gcs_address}", f"--node-ip-address={ip}",
                f"--temp-dir={self.root / f'ray{self._next_ip}'}"]
        return self._start(f"worker{self._next_ip - self._base}", ip, args, num_cpus, resources)

    def _start(self, name: str, ip: str, args: list[str], num_cpus: int, resources: dict | None) -> Node:
        import json

        args += [
            f"--num-cpus={num_cpus}", f"--object-store-memory={self.object_store_memory}",
            f"--dashboard-agent-listen-port={free_port()}", f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}", f"--runtime-env-agent-port={free_port()}",
            "--disable-usage-stats",
        ]
        if resources:
            args.append(f"--resources={json.dumps(resources)}")
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                RAY + args, stdout=out, stderr=subprocess.STDOUT, env=self._node_env(),
                start_new_session=True, cwd=self.root,
            )
        node = Node(name, ip, process, log, dict(resources or {}))
        self.nodes.append(node)
        deadline = time.monotonic() + 180
        while b"Ray runtime started" not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                printed = log.read_text()[-3000:]  # read before stop() removes the folder
                self.stop()
                raise RuntimeError(f"ray start for {name} failed:\n{printed}")
            time.sleep(0.5)
        return node

    def kill(self, node: Node) -> list[int]:
        """SIGKILL every process of the node (raylet, object store, workers, agents); the pids killed."""
        killed = []
        for _ in range(3):  # a process forked while the first pass ran is caught by the next
            pids = node.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
        node.process.wait(timeout=30)
        if node in self.nodes:
            self.nodes.remove(node)
        return sorted(set(killed))

    def stop(self) -> None:
        """Kill every node this cluster started (workers first) and remove its folder."""
        for node in reversed(list(self.nodes)):
            try:
                os.killpg(node.sid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(n.pids() for n in self.nodes):
            time.sleep(0.3)
        for node in list(self.nodes):
            self.kill(node)
        shutil.rmtree(self.root, ignore_errors=True)

    def diagnose(self, driver_pid: int | None = None) -> str:
        """What a stuck test needs said: the driver's Python stacks (py-spy) and each node's Ray processes."""
        lines = []
        if driver_pid is not None:
            spy = Path(sys.executable).parent / "py-spy"
            try:
                dump = subprocess.run([str(spy), "dump", "--pid", str(driver_pid)], capture_output=True, text=True,
                                      timeout=60)
                lines.append(f"driver {driver_pid} stacks:\n{dump.stdout}{dump.stderr}")
            except (OSError, subprocess.SubprocessError) as err:
                lines.append(f"no py-spy dump of the driver: {err}")
        for node in self.nodes:
            names = []
            for pid in node.pids():
                try:
                    names.append(Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()[:60])
                except OSError:
                    continue
            lines.append(f"{node.name} ({node.ip}): " + ", ".join(sorted(n for n in names if n.startswith("ray::"))))
        return "\n".join(lines)

    def raylet_logs(self) -> str:
        """Every raylet's log text (for what the nodes did: spilling, worker deaths)."""
        return "\n".join(p.read_text(errors="replace") for p in self.root.glob("ray*/session_*/logs/raylet*.out"))

    def run_driver(self, code: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run a Python driver in a fresh process with the cluster's client environment."""
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
            env={**self.client_env(), **(env or {})}, cwd=self.root,
        )
