"""Data sets that ship with framelab, for the demo and for trying things offline.

Example:
    >>> from framelab.toolkits import datasets
    >>> datasets.caltech101_path().name
    'caltech101_subset'
"""

from __future__ import annotations

from pathlib import Path

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


def caltech101(**read_options):
    """The bundled Caltech-101 subset as a Frame of images with a ``label`` column.

    Example:
        >>> from framelab.toolkits.datasets import caltech101
        >>> caltech101().num_rows()  # doctest: +SKIP
        1200
    """
    from framelab.frames import Frame

    read_options.setdefault("label_from", "folder")
    return Frame.read_images(str(caltech101_path()), **read_options)
