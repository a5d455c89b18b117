"""Tag search expressions against a plain-Python reference, in the driver and on cluster blocks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

from framelab.frames import ColumnNotFoundError, Frame, InputError
from framelab.toolkits.image_tagger import col, tags
from framelab.toolkits.image_tagger.scoring import TAGS_TYPE

VOCABULARY = ["cat", "dog", "bird", "animal", "car"]


def _random_tags(n: int, seed: int) -> list[list[dict] | None]:
    rng = np.random.default_rng(seed)
    rows: list[list[dict] | None] = []
    for _ in range(n):
        if rng.random() < 0.1:
            rows.append(None)
            continue
        chosen = rng.choice(VOCABULARY, size=rng.integers(0, 4), replace=False)
        rows.append([{"tag": str(t), "score": float(np.float32(rng.random()))} for t in chosen])
    return rows


@pytest.fixture(scope="module")
def tagged() -> tuple[Frame, list]:
    rows = _random_tags(400, seed=3)
    return Frame(pa.table({"id": np.arange(len(rows)), "tags": pa.array(rows, TAGS_TYPE)})), rows


def _has(row, wanted, min_score=None):
    return any(t["tag"] in wanted and (min_score is None or t["score"] >= min_score) for t in row)


@pytest.mark.parametrize("where", ["driver", "cluster"])
def test_searches_keep_the_rows_a_python_loop_keeps(tagged, where):
    frame, rows = tagged
    if where == "cluster":
        frame = frame.repartition(4)
    cases = [
        (tags.has("dog"), lambda r: _has(r, {"dog"})),
        (tags.has("dog", min_score=0.5), lambda r: _has(r, {"dog"}, 0.5)),
        (tags.any_of(["cat", "car"], min_score=0.3), lambda r: _has(r, {"cat", "car"}, 0.3)),
        (tags.all_of(["cat", "animal"]), lambda r: _has(r, {"cat"}) and _has(r, {"animal"})),
        (tags.has("animal") & ~tags.has("bird"), lambda r: _has(r, {"animal"}) and not _has(r, {"bird"})),
        (tags.has("cat") & (pl.col("id") < 100), None),
    ]
    for expr, keep in cases:
        got = sorted(frame.filter(expr)["id"].to_pylist())
        if keep is None:
            want = [i for i, r in enumerate(rows) if r is not None and _has(r, {"cat"}) and i < 100]
        else:
            want = [i for i, r in enumerate(rows) if r is not None and keep(r)]
        assert got == want, expr


def test_score_and_names_read_a_tag_out_of_each_row(tagged):
    frame, rows = tagged
    out = frame.with_column("dog", tags.score("dog")).with_column("names", tags.names()).to_pydict()
    for row, dog, names in zip(rows, out["dog"], out["names"]):
        if row is None:
            assert dog is None and names is None
            continue
        expected = next((t["score"] for t in row if t["tag"] == "dog"), None)
        assert dog == (None if expected is None else pytest.approx(expected))
        assert names == [t["tag"] for t in row]


def test_a_row_without_tags_matches_nothing_and_a_null_row_is_unknown():
    frame = Frame(pa.table({"tags": pa.array([[], None], TAGS_TYPE)}))
    assert frame.with_column("dog", tags.has("dog"))["dog"].to_pylist() == [False, None]


def test_another_tags_column_is_named_with_col():
    frame = Frame(pa.table({"labels": pa.array([[{"tag": "cat", "score": 0.9}]], TAGS_TYPE)}))
    assert frame.filter(col("labels").has("cat")).num_rows() == 1
    with pytest.raises(ColumnNotFoundError, match="'tags'.*the frame has: 'labels'"):
        frame.filter(tags.has("cat"))


def test_bad_search_arguments_say_what_is_expected():
    with pytest.raises(InputError, match="non-empty string"):
        tags.has("")
    with pytest.raises(InputError, match="list of tags"):
        tags.any_of("cat")
    with pytest.raises(InputError, match="at least one"):
        tags.all_of([])
    with pytest.raises(InputError, match="between 0 and 1"):
        tags.has("cat", min_score=2)
    with pytest.raises(InputError, match="column name"):
        col("")
