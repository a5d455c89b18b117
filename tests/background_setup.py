"""The clone-and-install check started at the beginning of the run, so its minutes overlap the other tests.

``make setup`` in a fresh clone spends about three minutes unpacking wheels
into a new venv, mostly waiting on the disk; started when collection ends, it
runs while the rest of the suite does, and its test only waits for the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

TEST_NAME = "test_a_clone_sets_up_from_the_lock_in_a_new_venv_and_imports_every_module"


class CloneSetup:
    """``git clone`` of the repository and ``make setup`` in it, running in a process of its own."""

    def __init__(self, repo: Path):
        self.root = Path(tempfile.mkdtemp(prefix="framelab-clone-setup-"))
        self.clone, self.venv = self.root / "clone", self.root / "venv"
        self.took_file = self.root / "took"
        # bash's SECONDS times make alone; the clone's own seconds are not the set-up's.
        script = (
            f"git clone -q {_q(repo)} {_q(self.clone)} && cd {_q(self.clone)} && SECONDS=0 && "
            f"make setup VENV={_q(self.venv)}; code=$?; echo $SECONDS > {_q(self.took_file)}; exit $code"
        )
        self.log = open(self.root / "log", "w+")  # noqa: SIM115 - read back by result()
        self.process = subprocess.Popen(["bash", "-c", script], stdout=self.log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
                                        start_new_session=True)

    def result(self, timeout: float = 1200) -> tuple[int, str, float]:
        """(exit code, the output's end, seconds ``make setup`` took), waiting up to ``timeout``."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise AssertionError(f"git clone and make setup did not finish in {timeout:.0f} s") from None
        self.log.seek(0)
        took = float(self.took_file.read_text()) if self.took_file.exists() else float("nan")
        return code, self.log.read()[-6000:], took

    def close(self) -> None:
        if self.process.poll() is None:
            # The whole group (git, make, pip), so nothing writes into the folder after it is removed.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _q(path: Path | str) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"
