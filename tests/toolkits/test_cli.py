"""framelab.toolkits.cli: the ``framelab`` command composes the layers' commands."""

from __future__ import annotations

import ast
from pathlib import Path

from framelab.toolkits.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_the_command_offers_platform_and_toolkit_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("demo", "info", "submit", "jobs"):
        assert command in out


def test_the_platform_layer_names_no_layer_above_it():
    offenders = []
    for path in sorted((REPO / "platform").rglob("*.py")):
        text = path.read_text()
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(("framelab.frames", "framelab.toolkits"))]
        # Nor through a string handed to importlib.
        offenders += [f"{path.name}: string" for s in ("framelab.frames", "framelab.toolkits") if f'"{s}' in text]
    assert not offenders, offenders
