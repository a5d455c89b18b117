"""Package discovery for the three layer folders (the rest of the metadata is in pyproject.toml).

Every folder under frames/, toolkits/ and platform/ becomes a package of
framelab, so a new module or data folder is in the wheel without editing a list.
"""

from pathlib import Path

from setuptools import setup

LAYERS = {"frames": "framelab.frames", "toolkits": "framelab.toolkits", "platform": "framelab.platform"}
HERE = Path(__file__).parent


def _packages() -> list[str]:
    found = []
    for folder, package in LAYERS.items():
        root = HERE / folder
        for path in sorted([root, *root.rglob("*")]):
            if path.is_dir() and path.name != "__pycache__" and not path.name.startswith("."):
                rel = path.relative_to(root).parts
                found.append(".".join([package, *rel]))
    return found


setup(packages=_packages())
