"""The ``framelab`` command line: run the demo, describe the cluster, submit a job.

Subcommands that need toolkits are looked up by module name so this layer
never imports the layers above it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Subcommand -> module whose ``main(argv)`` runs it (modules of higher layers, imported on use).
COMMANDS = {
    "demo": "framelab.toolkits.demo",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framelab`` command.

    Example:
        >>> from framelab.platform.cli import main
        >>> main(["--help"])  # doctest: +SKIP
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="framelab", description="framelab: dataframe-native ML on Ray")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the Caltech-101 transfer-learning demo (see --help)", add_help=False)
    info = sub.add_parser("info", help="connect to Ray and print what the cluster offers")
    info.add_argument("--address", default=None, help="Ray address (default: embedded local Ray)")
    submit = sub.add_parser("submit", help="submit a script as a Ray job to a cluster")
    submit.add_argument("--address", required=True, help="Ray dashboard address, e.g. http://head:8265")
    submit.add_argument("--working-dir", default=".", help="folder shipped to the cluster")
    submit.add_argument("--no-wait", action="store_true", help="return once the job is submitted")
    submit.add_argument("entrypoint", nargs=argparse.REMAINDER, help="command to run, e.g. python job.py")
    args, rest = parser.parse_known_args(argv)
    if args.command in COMMANDS:
        module = importlib.import_module(COMMANDS[args.command])
        return int(module.main(rest) or 0)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "info":
        from framelab.platform.session import connect

        print(connect(args.address))
        return 0
    if args.command == "submit":
        from framelab.platform.jobs import submit_job

        status = submit_job(
            " ".join(args.entrypoint), address=args.address, working_dir=args.working_dir, wait=not args.no_wait
        )
        print(status)
        return 0 if status in ("SUCCEEDED", "PENDING", "RUNNING") else 1
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
