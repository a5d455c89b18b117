"""Small ``<class>/<file>`` folders of the bundled Caltech-101 photos, for tests that read a folder of their own."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from framelab.toolkits import datasets


def copy_caltech(root: Path, classes: Iterable[str], per_class: int) -> Path:
    """Copy the first ``per_class`` photos of each class into ``root/<class>/``; returns ``root``."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for path in sorted((datasets.caltech101_path() / name).glob("*.jpg"))[:per_class]:
            shutil.copy(path, root / name / path.name)
    return root
