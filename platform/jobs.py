"""Submitting framelab code as a Ray job to a cluster (the same code the demo runs locally)."""

from __future__ import annotations

import time


def submit_job(
    entrypoint: str,
    *,
    address: str,
    working_dir: str = ".",
    pip: list[str] | None = None,
    wait: bool = True,
    timeout_s: float = 3600.0,
) -> str:
    """Submit ``entrypoint`` (e.g. ``"python job.py"``) to the Ray cluster at ``address``.

    The working directory is shipped to the cluster; framelab itself must be
    installed in the cluster's image (see ``deploy/``) or named in ``pip``.
    Returns the job's final status when ``wait`` is true, else its current one.

    Example:
        >>> from framelab.platform.jobs import submit_job
        >>> submit_job("python -m framelab.platform.cli demo", address="http://127.0.0.1:8265")  # doctest: +SKIP
        'SUCCEEDED'
    """
    from ray.job_submission import JobStatus, JobSubmissionClient

    if not entrypoint.strip():
        raise ValueError("give the command to run, e.g. framelab submit --address URL python job.py")
    client = JobSubmissionClient(address)
    runtime_env: dict = {"working_dir": working_dir}
    if pip:
        runtime_env["pip"] = list(pip)
    job_id = client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
    if not wait:
        return str(client.get_job_status(job_id).value)
    deadline = time.monotonic() + timeout_s
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    while True:
        status = client.get_job_status(job_id)
        if status in terminal or time.monotonic() > deadline:
            return str(status.value)
        time.sleep(2.0)
