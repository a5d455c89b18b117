"""Column summaries against polars on the same data: exact counts, quantiles within the sketch's stated error."""

from __future__ import annotations

import numpy as np
import polars as pl

from framelab.frames import Frame
from framelab.frames.images.summaries import QUANTILE_POINTS, summarize


def test_summaries_over_blocks_on_the_cluster_equal_polars_within_the_sketchs_error():
    rng = np.random.default_rng(0)
    n = 20_000  # far more values than the sketch keeps, so its error shows
    x = rng.lognormal(size=n)
    x[rng.random(n) < 0.01] = np.nan
    words = rng.choice(["cat", "dog", "owl", "eel"], n, p=[0.5, 0.3, 0.15, 0.05])
    data = pl.DataFrame({
        "x": pl.Series(x).set(pl.Series(rng.random(n) < 0.05), None),
        "word": pl.Series(words).set(pl.Series(rng.random(n) < 0.02), None),
        "tags": [list(rng.choice(["a", "b", "c"], int(k), replace=False)) for k in rng.integers(0, 3, n)],
    })
    summaries = {s["name"]: s for s in summarize(Frame(data.to_arrow()).repartition(4))}

    x_sum, col = summaries["x"], data["x"]
    assert (x_sum["rows"], x_sum["missing"], x_sum["errors"]) == (n, col.null_count(), col.is_nan().sum())
    finite = col.drop_nulls().filter(~col.drop_nulls().is_nan()).sort()
    assert x_sum["min"] == finite.min() and x_sum["max"] == finite.max()
    assert np.isclose(x_sum["mean"], finite.mean())
    values = finite.to_numpy()
    allowed = x_sum["rank_error"] * len(values) + 1
    assert x_sum["rank_error"] == 2 / QUANTILE_POINTS
    for q in ("0.05", "0.25", "0.5", "0.75", "0.95"):
        exact = finite.quantile(float(q), "lower")
        # The sketch's value sits within the stated rank error of polars' quantile.
        rank = np.searchsorted(values, x_sum["quantiles"][q])
        assert abs(rank - np.searchsorted(values, exact)) <= allowed, (q, x_sum["quantiles"][q], exact)
    assert abs(sum(x_sum["histogram"]["counts"]) - len(values)) <= len(x_sum["histogram"]["counts"])  # each bin rounds its estimate

    w = summaries["word"]
    counts = data["word"].drop_nulls().value_counts(sort=True)
    assert w["missing"] == data["word"].null_count()
    assert w["top"] == [[k, v] for k, v in counts.iter_rows()] and w["distinct"] == 4 and w["count_error"] == 0

    items = data["tags"].explode().drop_nulls().value_counts(sort=True)
    assert summaries["tags"]["top"] == [[k, v] for k, v in items.iter_rows()]
    assert summaries["tags"]["length"]["max"] == data["tags"].list.len().max()
