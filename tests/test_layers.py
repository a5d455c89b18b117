"""Imports point one way: toolkits use frames, frames use platform, and inside frames each module only
uses the ones listed before it (so following any call, say Frame.join, visits each module once, in order).

Every import counts, including those inside functions; ``if TYPE_CHECKING:`` imports (type names only)
do not. A new module of frames/ must be placed in FRAMES_ORDER. Docstring examples are code a reader
copies and tests/test_docstrings.py runs, so their imports keep to the same layers (a frames/ example
shows frames at work without a toolkit). No import, at the top or in a function, closes a cycle: a
function-local import is for a heavy package loaded on use.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import inspect
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAYERS = {"platform": "framelab.platform", "frames": "framelab.frames", "toolkits": "framelab.toolkits"}
RANK = {"framelab.platform": 0, "framelab.frames": 1, "framelab.toolkits": 2}

# Lower first. A module may import only modules listed before it.
FRAMES_ORDER = [
    "errors", "validation", "vectors", "cells", "expressions", "conversion", "storage", "commits", "predicates",
    "blocks",
    "hashing", "sampling", "blockwise", "aggregates", "joins", "io", "saved",
    "images.decode", "images.image_type", "images.ops", "images.display",
    "display", "images.summaries", "images.page", "images.explore", "logical", "sources", "images.read", "execution", "planner", "groupby", "readers", "subsets", "frame",
]
# (importer, imported): upward imports with a reason.
ALLOWED: set[tuple[str, str]] = set()


def _module_files() -> dict[str, Path]:
    found = {}
    for folder, package in LAYERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(REPO / folder).with_suffix("").parts if p != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def _imports(path: Path, module: str) -> set[str]:
    """The framelab modules ``path`` imports (names resolved to the module that defines them)."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for b in node.body for n in ast.walk(b))
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("framelab."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("framelab"):
            for alias in node.names:
                out.add(_defining_module(node.module, alias.name))
    out.discard(module)
    return out


def _defining_module(package: str, name: str) -> str:
    try:
        importlib.import_module(f"{package}.{name}")
        return f"{package}.{name}"  # a submodule
    except ImportError:
        pass
    value = getattr(importlib.import_module(package), name)
    if isinstance(value, type(importlib)):
        return value.__name__
    if inspect.isclass(value) or inspect.isfunction(value):  # where it is defined
        return value.__module__
    return package  # a constant: the module it was imported from


def _example_imports(path: Path) -> set[str]:
    """The framelab modules imported by the docstring examples of ``path`` (module, classes, functions)."""
    tree = ast.parse(path.read_text())
    docstrings = [ast.get_docstring(n, clean=True) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))]
    parser = doctest.DocTestParser()
    out = set()
    for doc in filter(None, docstrings):
        for example in parser.get_examples(doc):
            try:
                code = ast.parse(example.source)
            except SyntaxError:
                continue  # not Python a reader could copy either; test_docstrings reports it
            for node in ast.walk(code):
                if isinstance(node, ast.Import):
                    out.update(a.name for a in node.names if a.name.startswith("framelab"))
                elif isinstance(node, ast.ImportFrom) and node.module == "framelab":
                    out.update(f"framelab.{a.name}" for a in node.names)  # from framelab import toolkits
                elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("framelab."):
                    out.add(node.module)
    return out


def _layer(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_layers_import_only_the_layers_below_them():
    wrong = []
    for module, path in _module_files().items():
        for imported in _imports(path, module):
            if RANK.get(_layer(imported), 9) > RANK[_layer(module)]:
                wrong.append(f"{module} imports {imported}")
    assert not wrong, "imports pointing up a layer:\n" + "\n".join(wrong)


def test_inside_frames_every_module_imports_only_the_modules_before_it():
    files = {m: p for m, p in _module_files().items() if _layer(m) == "framelab.frames"}
    short = {m: m[len("framelab.frames."):] for m in files if m not in ("framelab.frames", "framelab.frames.images")}
    unplaced = sorted(set(short.values()) - set(FRAMES_ORDER))
    assert not unplaced, f"place these frames modules in FRAMES_ORDER: {unplaced}"
    position = {name: i for i, name in enumerate(FRAMES_ORDER)}
    wrong = []
    for module, name in short.items():
        for imported in _imports(files[module], module):
            other = imported[len("framelab.frames."):] if imported.startswith("framelab.frames.") else None
            if other is None or other not in position or (name, other) in ALLOWED:
                continue
            if position[other] >= position[name]:
                wrong.append(f"{name} imports {other}")
    assert not wrong, "frames modules importing a module at or above their place:\n" + "\n".join(wrong)


def test_docstring_examples_import_only_their_layer_and_the_layers_below():
    wrong = []
    for module, path in _module_files().items():
        for imported in _example_imports(path):
            if RANK.get(_layer(imported), 9) > RANK[_layer(module)]:
                wrong.append(f"{module}'s docstring example imports {imported}")
    assert not wrong, "docstring examples importing a layer above their own:\n" + "\n".join(sorted(wrong))


# (importer, imported): a function-local import that closes a cycle, kept until the module pair is split.
CYCLES_ALLOWED: set[tuple[str, str]] = set()


def test_no_import_inside_a_function_closes_a_cycle():
    """A function-local import is for a heavy package loaded on use, never to hide a cycle: for every
    import A -> B (at the top or in a function), B must not lead back to A."""
    graph = {module: _imports(path, module) for module, path in _module_files().items()}

    def leads_to(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            module = todo.pop()
            if module == goal:
                return True
            if module not in seen:
                seen.add(module)
                todo.extend(graph.get(module, ()))
        return False

    closing = sorted(f"{a} -> {b}" for a, targets in graph.items() for b in targets
                     if (a, b) not in CYCLES_ALLOWED and (b, a) not in CYCLES_ALLOWED and leads_to(b, a))
    assert not closing, "imports that close a cycle (move what both need lower):\n" + "\n".join(closing)
