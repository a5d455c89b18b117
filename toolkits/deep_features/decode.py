"""The decode step of extraction: each image of a column as the pixels its network takes.

It is the Frame's own image chain (:meth:`Preprocessing.pixels`), so a
frame's ``with_column`` and deep features decode, resize and crop images the
same way. In an extraction plan it is a block-wise node that runs as CPU
tasks feeding the model actors; this module imports no torch, so those
workers start fast and stay small. A row whose image is null or undecodable
gets null pixels and keeps its place.
"""

from __future__ import annotations

import pyarrow as pa

from framelab.toolkits.deep_features.preprocessing import Preprocessing

PIXELS_COLUMN = "__framelab_pixels__"


def decode_batch(
    table: pa.Table, *, column: str, preprocessing: Preprocessing, pixels_column: str = PIXELS_COLUMN
) -> pa.Table:
    """Append ``pixels_column``: each image of ``column`` decoded, resized and cropped for the network.

    Example:
        >>> import io, pyarrow as pa
        >>> from PIL import Image
        >>> from framelab.toolkits.deep_features import Preprocessing
        >>> from framelab.toolkits.deep_features.decode import decode_batch
        >>> buf = io.BytesIO(); Image.new("RGB", (9, 7)).save(buf, "PNG")
        >>> p = Preprocessing(resize=(4, 4), crop=None, mean=(0.5,) * 3, std=(0.5,) * 3)
        >>> out = decode_batch(pa.table({"img": [buf.getvalue(), None]}), column="img", preprocessing=p)
        >>> out.column("__framelab_pixels__").type.shape, out.column("__framelab_pixels__").null_count
        ([4, 4, 3], 1)
    """
    return table.append_column(pixels_column, preprocessing.pixels(column).evaluate(table))
