"""Ray jobs: submit framelab code to a cluster, follow it, and report its status truthfully.

A thin layer over Ray's Jobs API (the dashboard's HTTP server, port 8265 on
the head) that adds what a command line needs: an entrypoint that keeps its
quoting, logs streamed while waiting, a time limit, exit codes a script can
branch on, and Ray's token sent the way Ray reads it (never printed).
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from framelab.platform.errors import JobSubmissionError

#: Exit codes of ``framelab submit`` and ``framelab jobs``: 0 only for a job that succeeded.
EXIT_CODES = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": 3, "PENDING": 4, "RUNNING": 4, "ENDED": 5}
#: Still running (or not started) when the command returned: distinct from any ending.
EXIT_STILL_RUNNING = 4
#: The statuses a job never leaves.
TERMINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "ENDED"})


@dataclass(frozen=True)
class JobReport:
    """A job's state as the cluster reports it."""

    job_id: str
    status: str
    message: str
    entrypoint: str
    start_time: float | None = None
    end_time: float | None = None
    # The driver process's exit code where the cluster knows it (a submitted job's entrypoint).
    driver_exit_code: int | None = None
    # "SUBMISSION" (framelab submit, ray job submit) or "DRIVER" (a session connected to the cluster).
    kind: str = "SUBMISSION"

    @property
    def exit_code(self) -> int:
        """The exit code a command reporting this job returns (see :data:`EXIT_CODES`).

        Example:
            >>> from framelab.platform.jobs import JobReport
            >>> JobReport("raysubmit_1", "RUNNING", "", "python job.py").exit_code
            4
        """
        return exit_code(self.status)

    def __str__(self) -> str:
        message = f": {self.message}" if self.message else ""
        return f"{self.job_id} {self.status}{message}"


def entrypoint_command(words: Sequence[str]) -> str:
    """The shell command Ray runs, from the words after ``framelab submit [options]``.

    A leading ``--`` (which separates framelab's options from the command) is
    dropped. Several words are joined with shell quoting, so an argument with
    spaces stays one argument; a single word is taken as a command line as it
    is (``framelab submit -- "python job.py --data s3://b/x"``).

    Example:
        >>> from framelab.platform.jobs import entrypoint_command
        >>> entrypoint_command(["--", "python", "job.py", "--data", "s3://bucket/my photos/"])
        "python job.py --data 's3://bucket/my photos/'"
        >>> entrypoint_command(["python job.py --seed 1"])
        'python job.py --seed 1'
    """
    words = list(words)
    if words and words[0] == "--":
        words = words[1:]
    if not words or not "".join(words).strip():
        raise JobSubmissionError(
            "give the command to run after --, e.g. framelab submit --address http://HEAD:8265 "
            "--working-dir deploy -- python job.py"
        )
    return words[0] if len(words) == 1 else shlex.join(words)


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` words (``framelab submit --env``) as a dict; a word without ``=`` is refused.

    Example:
        >>> from framelab.platform.jobs import parse_env
        >>> parse_env(["MODEL_URL=s3://b/m", "OMP_NUM_THREADS=2"])
        {'MODEL_URL': 's3://b/m', 'OMP_NUM_THREADS': '2'}
    """
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise JobSubmissionError(f"--env {pair!r} is not KEY=VALUE; e.g. --env MODEL_URL=s3://bucket/model")
        env[key.strip()] = value
    return env


def with_python(command: str, python: str | None) -> str:
    """The command with a leading ``python``/``python3`` replaced by the nodes' interpreter ``python``.

    A job's ``python`` is whatever comes first on the nodes' PATH, which may
    be a Python without framelab; ``--python /opt/venv/bin/python`` names the
    one that has it. Without ``python`` the command is left as it is.

    Example:
        >>> from framelab.platform.jobs import with_python
        >>> with_python("python job.py --seed 1", "/opt/venv/bin/python")
        '/opt/venv/bin/python job.py --seed 1'
        >>> with_python("python3 -m framelab.toolkits.cli demo", None)
        'python3 -m framelab.toolkits.cli demo'
    """
    if not python:
        return command
    first, _, rest = command.strip().partition(" ")
    if first not in ("python", "python3"):
        raise JobSubmissionError(
            f"--python {python} replaces a leading `python` in the command, but the command starts with "
            f"{first!r}; start it with python (e.g. -- python job.py), or drop --python"
        )
    return f"{shlex.quote(python)} {rest}".strip()


def exit_code(status: str) -> int:
    """Exit code for a job status: 0 SUCCEEDED, 1 FAILED, 3 STOPPED, 4 still PENDING or RUNNING.

    Example:
        >>> from framelab.platform.jobs import exit_code
        >>> [exit_code(s) for s in ("SUCCEEDED", "FAILED", "STOPPED", "RUNNING")]
        [0, 1, 3, 4]
    """
    return EXIT_CODES.get(str(status), 1)


def job_client(address: str | None = None):
    """A ``JobSubmissionClient`` for the cluster at ``address``, sending Ray's token if one is found.

    ``address`` is the dashboard's URL (``http://head:8265``, or
    ``http://127.0.0.1:8265`` through ``kubectl port-forward``); by default
    Ray's ``RAY_API_SERVER_ADDRESS`` / ``RAY_ADDRESS``.

    Example:
        >>> from framelab.platform.jobs import job_client
        >>> client = job_client("http://127.0.0.1:8265")  # doctest: +SKIP
    """
    from ray.job_submission import JobSubmissionClient

    from framelab.platform.auth import auth_hint, use_token_if_available

    use_token_if_available()
    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "the address in RAY_API_SERVER_ADDRESS / RAY_ADDRESS"
        raise JobSubmissionError(
            f"could not reach the Ray Jobs API at {where}: {_first_line(exc)}. Give the dashboard's URL "
            f"(http://HEAD:8265, or http://127.0.0.1:8265 through kubectl port-forward). {auth_hint()}"
        ) from None


def submit_job(
    entrypoint: str | Sequence[str],
    *,
    address: str | None = None,
    working_dir: str | Path | None = None,
    requirements: str | Path | None = None,
    env_vars: dict[str, str] | None = None,
    client=None,
) -> str:
    """Submit a command as a Ray job; returns the job's id at once.

    ``working_dir`` is uploaded and becomes the job's current folder;
    ``requirements`` (a pip requirements file) is installed for the job.
    framelab itself must be in the cluster's image (see ``deploy/``).

    Example:
        >>> from framelab.platform.jobs import submit_job
        >>> submit_job(["python", "job.py"], address="http://127.0.0.1:8265", working_dir="deploy")  # doctest: +SKIP
        'raysubmit_XYZ'
    """
    command = entrypoint if isinstance(entrypoint, str) else entrypoint_command(entrypoint)
    if not command.strip():
        entrypoint_command([])  # raises with the usage
    runtime_env: dict = {}
    if working_dir is not None:
        folder = Path(working_dir).expanduser()
        if not folder.is_dir():
            raise JobSubmissionError(f"--working-dir {working_dir} is not a folder; give the folder to ship")
        runtime_env["working_dir"] = str(folder)
    if requirements is not None:
        path = Path(requirements).expanduser()
        if not path.is_file():
            raise JobSubmissionError(f"--requirements {requirements} is not a file; give a pip requirements file")
        runtime_env["pip"] = str(path)
    if env_vars:
        runtime_env["env_vars"] = dict(env_vars)
    client = client or job_client(address)
    try:
        return client.submit_job(entrypoint=command, runtime_env=runtime_env or None)
    except RuntimeError as exc:
        raise JobSubmissionError(f"the cluster refused the job: {_first_line(exc)}") from None


def job_report(job_id: str, *, address: str | None = None, client=None) -> JobReport:
    """The job's status, its message (why it failed or stopped) and its command.

    Example:
        >>> from framelab.platform.jobs import job_report
        >>> print(job_report("raysubmit_XYZ", address="http://127.0.0.1:8265"))  # doctest: +SKIP
        raysubmit_XYZ FAILED: Job entrypoint command failed with exit code 1
    """
    client = client or job_client(address)
    try:
        info = client.get_job_info(job_id)
    except RuntimeError as exc:
        raise JobSubmissionError(
            f"no job {job_id!r} on this cluster ({_first_line(exc)}); `framelab jobs list` shows the ids"
        ) from None
    return _report(info, job_id)


def list_jobs(*, address: str | None = None, client=None, sessions: bool = False) -> list[JobReport]:
    """The jobs submitted to the cluster, oldest first (with ``sessions=True``, connected drivers too).

    A connected driver (a notebook on ``ray://``, a script that joined with
    ``connect("auto")``) is no submitted job: the cluster records only that it
    ended, not how, so it is listed as ``ENDED``, never as ``SUCCEEDED``.

    Example:
        >>> from framelab.platform.jobs import list_jobs
        >>> [j.status for j in list_jobs(address="http://127.0.0.1:8265")]  # doctest: +SKIP
        ['SUCCEEDED', 'RUNNING']
    """
    client = client or job_client(address)
    reports = [_report(info, info.submission_id or info.job_id) for info in client.list_jobs()]
    if not sessions:
        reports = [r for r in reports if r.kind == "SUBMISSION"]
    return sorted(reports, key=lambda r: r.start_time or 0)


def job_logs(job_id: str, *, address: str | None = None, client=None) -> str:
    """Everything the job has printed so far.

    Example:
        >>> from framelab.platform.jobs import job_logs
        >>> print(job_logs("raysubmit_XYZ", address="http://127.0.0.1:8265"))  # doctest: +SKIP
        [1/6] connecting to Ray
    """
    client = client or job_client(address)
    try:
        return client.get_job_logs(job_id)
    except RuntimeError as exc:
        raise JobSubmissionError(f"no logs for job {job_id!r}: {_first_line(exc)}") from None


def stop_job(job_id: str, *, address: str | None = None, client=None) -> bool:
    """Ask the cluster to stop a job; False when it had already ended.

    Example:
        >>> from framelab.platform.jobs import stop_job
        >>> stop_job("raysubmit_XYZ", address="http://127.0.0.1:8265")  # doctest: +SKIP
        True
    """
    client = client or job_client(address)
    try:
        return bool(client.stop_job(job_id))
    except RuntimeError as exc:
        raise JobSubmissionError(f"could not stop job {job_id!r}: {_first_line(exc)}") from None


def follow_job(
    job_id: str,
    *,
    address: str | None = None,
    timeout_s: float | None = None,
    write: Callable[[str], object] | None = None,
    client=None,
) -> JobReport:
    """Stream the job's logs to ``write`` until it ends or ``timeout_s`` passes; returns its report.

    The report's status is still ``RUNNING`` (exit code 4) when the time limit
    came first: the job goes on running on the cluster.

    Example:
        >>> from framelab.platform.jobs import follow_job
        >>> follow_job("raysubmit_XYZ", address="http://127.0.0.1:8265", write=print).status  # doctest: +SKIP
        'SUCCEEDED'
    """
    client = client or job_client(address)
    write = write or _print
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        asyncio.run(_tail(client, job_id, write, deadline))
    except TimeoutError:
        pass
    except Exception:  # the log stream broke (e.g. the head restarted): fall back to polling
        while deadline is None or time.monotonic() < deadline:
            if job_report(job_id, client=client).status in TERMINAL:
                break
            time.sleep(1.0)
    report = job_report(job_id, client=client)
    # The stream can end a moment before the status is written; give it that moment.
    settle = time.monotonic() + 10.0
    while report.status not in TERMINAL and time.monotonic() < settle and (
        deadline is None or time.monotonic() < deadline
    ):
        time.sleep(0.5)
        report = job_report(job_id, client=client)
    return report


async def _tail(client, job_id: str, write: Callable[[str], object], deadline: float | None) -> None:
    stream = client.tail_job_logs(job_id).__aiter__()
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise TimeoutError
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout=remaining)
        except StopAsyncIteration:
            return
        write(chunk)


def _report(info, job_id: str) -> JobReport:
    status = str(getattr(info.status, "value", str(info.status)))
    kind = str(getattr(getattr(info, "type", None), "value", "SUBMISSION") or "SUBMISSION")
    start = info.start_time / 1000 if info.start_time else None
    end = info.end_time / 1000 if info.end_time else None
    message = (info.message or "").strip()
    code = getattr(info, "driver_exit_code", None)
    if code is None:
        found = re.search(r"exit code (-?\d+)", message)
        code = int(found.group(1)) if found else None
    if kind == "DRIVER" and status == "SUCCEEDED":
        # Ray marks every connected driver SUCCEEDED once it is gone, a killed one too.
        status, message = "ENDED", message or "a connected driver (not a submitted job); how it ended is not recorded"
    return JobReport(str(job_id), status, message, info.entrypoint or "", start, end, code, kind)


def _print(text: str) -> None:
    print(text, end="", flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().rstrip(".")
    return text.splitlines()[0] if text else type(exc).__name__
