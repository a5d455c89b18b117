"""Data sets that ship with framelab, for the demo and for trying things offline.

Example:
    >>> from framelab.toolkits import datasets
    >>> datasets.caltech101_path().name
    'caltech101_subset'
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from framelab.frames.errors import InputError

HERE = Path(__file__).resolve().parent


def caltech101_path() -> Path:
    """Folder of the bundled 20-class, 1,200-image Caltech-101 subset (``<class>/image_NNNN.jpg``).

    Its SOURCE.md says where the images come from and under which licence.

    Example:
        >>> from framelab.toolkits.datasets import caltech101_path
        >>> (caltech101_path() / "SOURCE.md").exists()
        True
    """
    return HERE / "caltech101_subset"


def caltech101(classes: Sequence[str] | None = None, per_class: int | None = None, **read_options: Any) -> Any:
    """The bundled Caltech-101 subset as a Frame of images with a ``label`` column.

    ``classes`` picks some of the 20 classes (folder names), ``per_class``
    the first images of each, for a quick try; ``read_options`` go to
    ``Frame.read_images``.

    Example:
        >>> from framelab.toolkits.datasets import caltech101
        >>> caltech101(classes=["ewer", "sunflower"], per_class=3).to_pydict()["label"]
        ['ewer', 'ewer', 'ewer', 'sunflower', 'sunflower', 'sunflower']
        >>> caltech101(classes=["ewer"]).num_rows()
        60
    """
    from framelab.frames import Frame

    root = caltech101_path()
    read_options.setdefault("label_from", "folder")
    if classes is None and per_class is None:
        return Frame.read_images(str(root), **read_options)
    known = sorted(p.name for p in root.iterdir() if p.is_dir())
    unknown = [c for c in classes or [] if c not in known]
    if unknown:
        raise InputError(f"the Caltech-101 subset has no class {', '.join(map(repr, unknown))}; it has {known}")
    files = [str(p) for c in (classes or known) for p in sorted((root / c).glob("*.jpg"))[:per_class]]
    return Frame.read_images(files, **read_options)
