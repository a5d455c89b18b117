"""Deterministic per-row randomness for ``random_split`` and ``sample``.

A row's draw is a seeded hash of its content and of how many identical rows
came before it in its block, so a seed gives the same split however the data
is spread over blocks, and duplicate rows still split independently.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from framelab.frames.expressions import storage_table


def row_uniforms(table: pa.Table, seed: int) -> np.ndarray:
    """One number in [0, 1) per row, fixed by the row's content and ``seed``.

    Example:
        >>> import pyarrow as pa
        >>> from framelab.frames.sampling import row_uniforms
        >>> u = row_uniforms(pa.table({"x": [1, 2, 3]}), seed=0)
        >>> bool(((u >= 0) & (u < 1)).all())
        True
    """
    if table.num_rows == 0:
        return np.zeros(0)
    plain = storage_table(table)
    df = pl.from_arrow(plain) if plain.num_columns else pl.DataFrame(height=table.num_rows)
    content = df.hash_rows(seed=seed) if df.width else pl.Series("h", np.zeros(table.num_rows, dtype=np.uint64))
    keyed = pl.DataFrame({"h": content}).with_columns(occ=pl.int_range(pl.len()).over("h"))
    mixed = keyed.select(pl.struct("h", "occ").hash(seed=seed)).to_series().to_numpy()
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def check_fraction(fraction: float, method: str) -> float:
    """Validate a fraction argument."""
    if not isinstance(fraction, (int, float)) or not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"{method}(fraction=...) must be a number between 0 and 1, got {fraction!r}")
    return float(fraction)
