"""The platform's commands of the ``framelab`` command line: ``info``, ``submit`` and ``jobs``.

The ``framelab`` entry point itself lives in the top layer
(``framelab.toolkits.cli``), which adds these commands to its parser next to
the toolkits' own; this layer never names the layers above it.
"""

from __future__ import annotations

import argparse
import sys

from framelab.platform.errors import PlatformError


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add ``info``, ``submit`` and ``jobs`` to a ``framelab`` parser's subcommands.

    Each sets ``run``: a function of the parsed arguments that returns the exit code.

    Example:
        >>> import argparse
        >>> from framelab.platform.cli import add_commands
        >>> parser = argparse.ArgumentParser(prog="framelab")
        >>> add_commands(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["jobs", "status", "raysubmit_1", "--address", "http://head:8265"])
        >>> args.job_id, args.address
        ('raysubmit_1', 'http://head:8265')
    """
    info = sub.add_parser("info", help="connect to Ray and print what the cluster offers")
    info.add_argument("--address", default=None, help="Ray address (default: embedded local Ray)")
    info.set_defaults(run=_info)

    submit = sub.add_parser(
        "submit",
        help="submit a command as a Ray job, stream its logs and exit with its status",
        description="Submit COMMAND as a Ray job through the cluster's Jobs API. Exit code: 0 SUCCEEDED, "
        "1 FAILED, 3 STOPPED, 4 still running (--no-wait, or --timeout reached; the job goes on).",
        usage="framelab submit [--address URL] [--working-dir DIR] [--requirements FILE] [--env KEY=VALUE ...] "
        "[--python PATH] [--no-wait] [--timeout S] -- COMMAND ...",
    )
    _address_option(submit)
    submit.add_argument("--working-dir", default=None, help="folder shipped to the cluster as the job's cwd")
    submit.add_argument("--requirements", default=None, help="pip requirements file installed for the job")
    submit.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="an environment variable of the job (repeat for more)")
    submit.add_argument("--python", default=None, metavar="PATH",
                        help="the nodes' Python that has framelab (e.g. /opt/venv/bin/python): a COMMAND starting "
                        "with `python` runs it instead of the first python on the nodes' PATH")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    submit.add_argument("--timeout", type=float, default=None, metavar="S",
                        help="stop waiting after S seconds (the job keeps running; exit code 4)")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="the command, after --")
    submit.set_defaults(run=_submit)

    jobs = sub.add_parser("jobs", help="list, inspect, follow or stop the cluster's jobs")
    verbs = jobs.add_subparsers(dest="verb", required=True)
    listing = verbs.add_parser("list", help="every submitted job: id, status, exit code, command")
    _address_option(listing)
    listing.add_argument("--sessions", action="store_true",
                         help="also list drivers connected to the cluster (notebooks, scripts), as ENDED once gone")
    listing.set_defaults(run=_jobs_list)
    for verb, text, run in (("status", "a job's status and why it ended (exit code as for submit)", _jobs_status),
                            ("logs", "what a job printed", _jobs_logs),
                            ("stop", "stop a running job", _jobs_stop)):
        parser = verbs.add_parser(verb, help=text)
        parser.add_argument("job_id", help="the id `framelab submit` printed (see `framelab jobs list`)")
        _address_option(parser)
        if verb == "logs":
            parser.add_argument("--follow", action="store_true", help="keep printing until the job ends")
        parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run a parsed platform command; a platform error prints its message (no traceback) and returns 2.

    Example:
        >>> import argparse
        >>> from framelab.platform.cli import run
        >>> run(argparse.Namespace(run=lambda args: 0))
        0
    """
    try:
        return int(args.run(args))
    except PlatformError as exc:
        print(f"framelab: {exc}", file=sys.stderr)
        return 2


def _address_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="the dashboard's URL, e.g. http://head:8265 (default: RAY_API_SERVER_ADDRESS "
                        "or RAY_ADDRESS, as for `ray job`)")


def _info(args: argparse.Namespace) -> int:
    from framelab.platform.session import connect

    print(connect(args.address))
    return 0


def _submit(args: argparse.Namespace) -> int:
    from framelab.platform.jobs import (
        EXIT_STILL_RUNNING,
        entrypoint_command,
        follow_job,
        job_client,
        parse_env,
        submit_job,
        with_python,
    )

    command = with_python(entrypoint_command(args.entrypoint), args.python)
    env_vars = parse_env(args.env)
    client = job_client(args.address)
    job_id = submit_job(command, working_dir=args.working_dir, requirements=args.requirements, env_vars=env_vars,
                        client=client)
    print(f"framelab: submitted job {job_id}: {command}", file=sys.stderr, flush=True)
    if args.no_wait:
        print(job_id)
        return EXIT_STILL_RUNNING
    try:
        report = follow_job(job_id, timeout_s=args.timeout, client=client)
    except KeyboardInterrupt:
        print(f"\nframelab: stopped waiting; job {job_id} goes on (framelab jobs stop {job_id} stops it)",
              file=sys.stderr)
        return 130
    print(f"framelab: job {report}", file=sys.stderr)
    if report.exit_code == EXIT_STILL_RUNNING:
        print(f"framelab: still running at the time limit; follow it with `framelab jobs logs {job_id} "
              "--follow`", file=sys.stderr)
    return report.exit_code


def _jobs_list(args: argparse.Namespace) -> int:
    from framelab.platform.jobs import list_jobs

    reports = list_jobs(address=args.address, sessions=args.sessions)
    width = max([len(r.job_id) for r in reports] + [6])
    print(f"{'JOB ID':<{width}}  {'STATUS':<9}  {'EXIT':>4}  COMMAND")
    for r in reports:
        code = "" if r.driver_exit_code is None else str(r.driver_exit_code)
        print(f"{r.job_id:<{width}}  {r.status:<9}  {code:>4}  {r.entrypoint}")
    return 0


def _jobs_status(args: argparse.Namespace) -> int:
    from framelab.platform.jobs import job_report

    report = job_report(args.job_id, address=args.address)
    print(report)
    return report.exit_code


def _jobs_logs(args: argparse.Namespace) -> int:
    from framelab.platform.jobs import follow_job, job_logs

    if args.follow:
        return follow_job(args.job_id, address=args.address).exit_code
    print(job_logs(args.job_id, address=args.address), end="")
    return 0


def _jobs_stop(args: argparse.Namespace) -> int:
    from framelab.platform.jobs import job_report, stop_job

    stopped = stop_job(args.job_id, address=args.address)
    print(f"{args.job_id}: {'stop requested' if stopped else 'had already ended'}")
    return 0 if stopped else job_report(args.job_id, address=args.address).exit_code
