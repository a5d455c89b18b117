"""Deep features for toolkits that take images: a matching features column is reused, else extracted.

Shared by image_classifier, image_similarity and k-means on images. A frame
that already carries the features column made by the same extractor
(same provenance) is used as it is; one made by another extractor is
extracted again when the images are there, and refused when they are not.

Example:
    >>> from framelab.frames import Frame
    >>> from framelab.toolkits.image_features import image_column_or_none
    >>> image_column_or_none(Frame({"x": [1]}).schema) is None
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from framelab.frames.errors import InputError
from framelab.platform import failures
from framelab.toolkits.deep_features import find_image_column
from framelab.toolkits.provenance import provenance_of

if TYPE_CHECKING:
    from framelab.frames import Frame


def image_column_or_none(schema: pa.Schema) -> str | None:
    """The frame's only image column, or None when it has none (or several).

    Example:
        >>> import pyarrow as pa
        >>> from framelab.toolkits.image_features import image_column_or_none
        >>> image_column_or_none(pa.schema([("x", pa.int64())])) is None
        True
    """
    try:
        return find_image_column(schema, None)
    except InputError:
        return None


def with_features(frame: Frame, extractor: Any, image_column: str | None, column: str) -> Any:
    """The frame with the extractor's features in ``column``: reused when its provenance matches.

    Example:
        >>> from framelab.toolkits import datasets
        >>> from framelab.toolkits.deep_features import DeepFeatureExtractor
        >>> from framelab.toolkits.image_features import with_features
        >>> featured = with_features(datasets.caltech101(), DeepFeatureExtractor(), None, "deep_features")  # doctest: +SKIP
    """
    schema = frame.schema
    if column in schema.names:
        found = provenance_of(schema.field(column))
        if found == extractor.provenance:
            return frame
        has_images = image_column in schema.names if image_column else image_column_or_none(schema) is not None
        if not has_images:
            raise InputError(
                f"column {column!r} holds features made by {describe_provenance(found)}, but this model uses "
                f"{describe_provenance(extractor.provenance)}; give a frame with the images so they can be "
                "extracted again"
            )
        frame = frame.drop(column)
    return extractor.transform(frame, image_column=image_column, output_column=column)


def drop_rows_without_features(frame: Frame, column: str, stage: str, toolkit: str = "image classifier") -> Any:
    """The rows of ``frame`` whose features are not null, materialised; the others are counted once per job.

    Rows without features are images that were missing or could not be
    decoded: the stage that failed has named the files, and this counts what
    ``stage`` (training, validation, evaluation) left out. An empty frame is
    refused.

    Example:
        >>> import numpy as np
        >>> from framelab.frames import Frame
        >>> from framelab.toolkits.image_features import drop_rows_without_features
        >>> drop_rows_without_features(Frame({"f": np.ones((2, 3), np.float32)}), "f", "training").num_rows()
        2
    """
    import polars as pl

    frame = frame.materialize()
    total = frame.num_rows()
    if total == 0:
        # Checked on the materialised rows: an empty lazy frame may not even keep its columns.
        raise InputError(f"the {stage} frame is empty; {toolkit} needs labelled images")
    kept = frame.filter(pl.col(column).is_not_null()).materialize()
    failures.report(f"{toolkit}: {stage}", total - kept.num_rows(), total, action=f"left out of {stage}")
    return kept


def describe_provenance(provenance: dict | None) -> str:
    """A short description of a features column's provenance, for messages.

    Example:
        >>> from framelab.toolkits.image_features import describe_provenance
        >>> describe_provenance(None)
        'an unknown extractor (no provenance metadata)'
    """
    if not provenance:
        return "an unknown extractor (no provenance metadata)"
    return (f"model {provenance.get('model')!r} (weights sha256 {str(provenance.get('weights_sha256'))[:12]}..., "
            f"layer {provenance.get('layer')!r})")
