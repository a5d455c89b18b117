"""The one call that adds deep features to a frame: straight through, or resumable from a checkpoint.

It sits above both :mod:`~framelab.toolkits.deep_features.extractor` (the
network) and :mod:`~framelab.toolkits.deep_features.checkpoint` (what a
resumable run keeps), so neither imports the other's caller.

Example:
    >>> from framelab.toolkits import datasets
    >>> from framelab.toolkits.deep_features.extraction import extract
    >>> extract(datasets.caltech101(classes=["ewer"], per_class=1)).num_rows()
    1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from framelab.toolkits.deep_features.checkpoint import extract_resumable
from framelab.toolkits.deep_features.extractor import DeepFeatureExtractor

if TYPE_CHECKING:
    from framelab.frames import Frame


def extract(
    frame: Frame,
    image_column: str | None = None,
    model: Any = "mobilenet_v2",
    layer: str | None = None,
    output_column: str = "deep_features",
    batch_size: int | str = "auto",
    device: str = "auto",
    checkpoint: str | None = None,
    **options: Any,
) -> Any:
    """Add a column of deep features: each image through a pretrained network.

    ``checkpoint`` (a folder path or fsspec URL) makes a long run resumable:
    finished blocks are written there as Parquet while it runs, and the same
    call after a crash computes only the rows not yet written (see
    :mod:`framelab.toolkits.deep_features.checkpoint`).

    ``options`` are :class:`DeepFeatureExtractor`'s (``weights``,
    ``weights_sha256``, ``preprocessing``, ``output_dtype``, ``precision``,
    ``storage_options``). The column's Arrow field metadata records the
    provenance (see :func:`provenance_of`).

    Example:
        >>> from framelab.toolkits import datasets, deep_features
        >>> photos = datasets.caltech101(classes=["ewer"], per_class=2)
        >>> logits = deep_features.extract(photos, layer="classifier.1", output_column="logits")
        >>> logits.to_numpy("logits").shape              # ImageNet's 1,000 classes
        (2, 1000)
    """
    if checkpoint is not None:
        return extract_resumable(
            frame, checkpoint, image_column=image_column, model=model, layer=layer,
            output_column=output_column, batch_size=batch_size, device=device, **options,
        )
    extractor = DeepFeatureExtractor(
        model, layer=layer, batch_size=batch_size, device=device, **options
    )
    return extractor.transform(frame, image_column=image_column, output_column=output_column)
