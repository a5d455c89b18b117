"""random_split and sample: the same seed gives the same split on any machine, folder and block layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from framelab.frames import ColumnNotFoundError, Frame


def _relative_keys(frame: Frame, depth: int = 2) -> list[str]:
    return sorted("/".join(Path(p).parts[-depth:]) for p in frame.to_pydict()["path"])


def test_the_same_images_in_two_folders_split_the_same_way(caltech, tmp_path):
    for cls in ("ewer", "watch"):
        shutil.copytree(caltech / cls, tmp_path / "here" / cls)
        shutil.copytree(caltech / cls, tmp_path / "over" / "there" / cls)
    here = Frame.read_images(str(tmp_path / "here"), label_from="folder")
    there = Frame.read_images(str(tmp_path / "over" / "there") + "/", label_from="folder").repartition(7)
    a_train, a_test = here.random_split(0.7, seed=11)
    b_train, b_test = there.random_split(0.7, seed=11)
    assert _relative_keys(a_train) == _relative_keys(b_train)
    assert _relative_keys(a_test) == _relative_keys(b_test)
    assert len(_relative_keys(a_train)) + len(_relative_keys(a_test)) == 120
    # The key is the path relative to the folder read, not the absolute path.
    assert there.schema.field("path").metadata is not None


def test_a_fixed_table_splits_as_stored():
    # Pinned: these lists may only change together with the hash (and then every user's splits change).
    table = Frame({"id": list(range(20)), "name": [f"row{i}" for i in range(20)]})
    by_content, _ = table.random_split(0.5, seed=7)
    assert by_content.to_pydict()["id"] == [0, 1, 3, 4, 6, 11, 12, 13, 14, 16, 17, 18]
    by_name, _ = table.repartition(3).random_split(0.5, seed=7, key="name")
    assert sorted(by_name.to_pydict()["id"]) == [0, 3, 5, 6, 9, 10, 12, 13, 14, 15, 16, 18]


def test_rows_with_the_same_key_stay_together():
    frame = Frame({"group": [i // 10 for i in range(1000)], "x": list(range(1000))})
    train, test = frame.random_split(0.5, seed=3, key="group")
    groups_train = set(train.to_pydict()["group"])
    groups_test = set(test.to_pydict()["group"])
    assert not groups_train & groups_test
    assert len(groups_train | groups_test) == 100
    assert frame.sample(0.5, seed=3, key="group").to_pydict() == train.to_pydict()


def test_an_unknown_key_names_the_columns():
    with pytest.raises(ColumnNotFoundError, match="no column named 'nope'; the frame has: 'x'"):
        Frame({"x": [1]}).random_split(0.5, seed=0, key="nope")
