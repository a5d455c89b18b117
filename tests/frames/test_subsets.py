"""frames/subsets.py: shuffle, exact samples and dropna_split, against polars, on the driver and on the cluster."""

from __future__ import annotations

import polars as pl
import pytest

from framelab.frames import Frame, InputError

PATHS = ["driver", "cluster"]


def _frame(data: dict, path: str) -> Frame:
    return Frame(data) if path == "driver" else Frame(data).repartition(3)


@pytest.mark.parametrize("path", PATHS)
def test_shuffle_keeps_every_row_reorders_them_and_a_seed_fixes_the_order(path):
    data = {"x": list(range(200)), "s": [f"r{i % 7}" for i in range(200)]}
    once = _frame(data, path).shuffle(seed=5).to_polars()
    assert once.sort("x").equals(pl.DataFrame(data))
    assert once["x"].to_list() != data["x"]
    assert _frame(data, path).shuffle(seed=5).to_polars().equals(once)
    assert _frame(data, path).shuffle(seed=6).to_polars()["x"].to_list() != once["x"].to_list()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("fraction", [0.0, 0.137, 0.5, 1.0])
def test_an_exact_sample_has_exactly_the_rows_asked_for_in_their_order(path, fraction):
    data = {"x": list(range(500)), "y": [i % 3 for i in range(500)]}
    got = _frame(data, path).sample(fraction, seed=2, exact=True).to_polars()
    assert got.height == round(fraction * 500)
    assert got["x"].to_list() == sorted(got["x"].to_list())  # a subset, in row order
    assert set(got["x"].to_list()) <= set(data["x"])
    assert got.equals(_frame(data, path).sample(fraction, seed=2, exact=True).to_polars())


@pytest.mark.parametrize("path", PATHS)
def test_dropna_split_gives_the_rows_dropna_keeps_and_the_rest_as_polars_does(path):
    data = {"x": [1.0, None, float("nan"), 4.0, None], "y": ["a", None, "c", None, None]}
    df = pl.DataFrame(data)
    for columns, how in ((None, "any"), ("x", "any"), (["x", "y"], "all")):
        kept, dropped = _frame(data, path).dropna_split(columns, how=how)
        names = ["x", "y"] if columns is None else ([columns] if isinstance(columns, str) else columns)
        missing = [pl.col(c).is_null() | (pl.col(c).is_nan() if df[c].dtype.is_float() else pl.lit(False))
                   for c in names]
        flag = pl.any_horizontal(missing) if how == "any" else pl.all_horizontal(missing)
        assert kept.to_polars().equals(df.filter(~flag)), (columns, how)
        assert dropped.to_polars().equals(df.filter(flag)), (columns, how)
    with pytest.raises(InputError, match="dropna_split how must be one of"):
        Frame(data).dropna_split(how="some")
