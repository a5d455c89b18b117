"""framelab.platform.jobs without a cluster: the entrypoint Ray runs and the exit codes.

The jobs themselves run against a real loopback cluster in tests/platform/test_cluster.py.
"""

from __future__ import annotations

import argparse
import shlex

import pytest

from framelab.platform.cli import add_commands
from framelab.platform.errors import JobSubmissionError
from framelab.platform.jobs import EXIT_STILL_RUNNING, entrypoint_command, exit_code


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="framelab")
    add_commands(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_the_documented_submit_line_sends_the_command_without_the_separator():
    args = _parse(["submit", "--address", "http://head:8265", "--working-dir", "deploy", "--",
                   "python", "job.py", "--data", "s3://bucket/photos/"])
    assert args.address == "http://head:8265" and args.working_dir == "deploy"
    assert entrypoint_command(args.entrypoint) == "python job.py --data s3://bucket/photos/"


def test_arguments_keep_their_quoting_when_joined():
    args = _parse(["submit", "--", "python", "job.py", "--data", "s3://b/my photos/", "--note", "it's; rm -rf x"])
    command = entrypoint_command(args.entrypoint)
    # What the remote shell splits it into is exactly what was typed.
    assert shlex.split(command) == ["python", "job.py", "--data", "s3://b/my photos/", "--note", "it's; rm -rf x"]


def test_a_command_without_the_separator_and_a_single_command_line_both_work():
    assert entrypoint_command(_parse(["submit", "python", "job.py"]).entrypoint) == "python job.py"
    assert entrypoint_command(["python job.py --seed 1"]) == "python job.py --seed 1"


def test_an_empty_command_says_how_to_give_one():
    with pytest.raises(JobSubmissionError, match=r"after --, e.g. framelab submit"):
        entrypoint_command(["--"])


def test_only_success_exits_zero_and_still_running_has_its_own_code():
    codes = {s: exit_code(s) for s in ("SUCCEEDED", "FAILED", "STOPPED", "PENDING", "RUNNING")}
    assert codes["SUCCEEDED"] == 0
    assert all(code != 0 for s, code in codes.items() if s != "SUCCEEDED")
    assert codes["PENDING"] == codes["RUNNING"] == EXIT_STILL_RUNNING
    assert len({codes["FAILED"], codes["STOPPED"], EXIT_STILL_RUNNING}) == 3


def test_an_unreachable_jobs_api_is_a_clear_error_not_a_traceback(capsys):
    from framelab.toolkits.cli import main

    assert main(["jobs", "list", "--address", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert "could not reach the Ray Jobs API at http://127.0.0.1:9" in err and "Traceback" not in err
