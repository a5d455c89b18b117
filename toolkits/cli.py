"""The ``framelab`` command: the platform's commands (``info``, ``submit``, ``jobs``) and the toolkits' (``demo``, ``serve``).

It lives in the top layer so that it may name both; the platform layer only
adds its own commands to the parser (:func:`framelab.platform.cli.add_commands`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``framelab`` command; returns the exit code.

    Example:
        >>> from framelab.toolkits.cli import main
        >>> main(["jobs", "status", "raysubmit_1", "--address", "http://127.0.0.1:9"])  # nothing there: says so
        2
    """
    from framelab.platform import cli as platform_cli

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="framelab", description="framelab: dataframe-native ML on Ray")
    sub = parser.add_subparsers(dest="command")
    # The demo parses its own options (its --help lists them).
    sub.add_parser("demo", help="run the Caltech-101 transfer-learning demo (see demo --help)", add_help=False)
    sub.add_parser("serve", help="serve a saved image model over HTTP on Ray Serve (see serve --help)", add_help=False)
    platform_cli.add_commands(sub)
    if argv[:1] == ["demo"]:
        from framelab.toolkits.demo import main as demo_main

        return int(demo_main(argv[1:]) or 0)
    if argv[:1] == ["serve"]:
        from framelab.toolkits.serving.cli import main as serve_main

        return serve_main(argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return platform_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
