"""framelab.frames.hashing: values pinned forever, whatever the chunking, slicing or Arrow width."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow as pa
import pytest

from framelab.frames.hashing import hash_array, hash_rows

# Computed once and pinned: a change here changes every seeded split a user ever made.
PINNED = {
    "int64": (pa.array([0, 1, -1, None]),
              ["0xe220a8397b1dcdaf", "0x910a2dec89025cc1", "0xe4d971771b652c20", "0x5bd1e9955bd1e995"]),
    "float64": (pa.array([0.5, -0.0, float("nan"), None]),
                ["0xf456984dd1d8ce6d", "0xe220a8397b1dcdaf", "0xc72971d82e15bb46", "0x5bd1e9955bd1e995"]),
    "string": (pa.array(["", "a", "ünï", None]),
               ["0xa8a370d8b386d32b", "0xa7877234b49bd9a2", "0x9b5cfd922e6b6d76", "0x5bd1e9955bd1e995"]),
    "binary": (pa.array([b"", b"\x00", b"abc", None]),
               ["0xa8a370d8b386d32b", "0x6e0654fa59672d1b", "0xa1af6272d14f3e1", "0x5bd1e9955bd1e995"]),
    "list": (pa.array([[], [1], [1, 2], None]),
             ["0x155c40b635671f15", "0xd88d2421eadc21ce", "0xef385358e072dc59", "0x5bd1e9955bd1e995"]),
    "struct": (pa.array([{"a": 1, "b": "x"}, {"a": 2, "b": None}, None, {"a": None, "b": "y"}]),
               ["0xc96eb7b5b9efb5f0", "0x5761728010b4fa77", "0x5bd1e9955bd1e995", "0xc8c11821f53cbf2d"]),
    "date": (pa.array([datetime.date(2020, 1, 1), None, datetime.date(1970, 1, 1), datetime.date(2026, 11, 29)]),
             ["0x843e7f2e7a55b8a7", "0x5bd1e9955bd1e995", "0xe220a8397b1dcdaf", "0x4884e6499fc3d23b"]),
    "bool": (pa.array([True, False, None, True]),
             ["0x910a2dec89025cc1", "0xe220a8397b1dcdaf", "0x5bd1e9955bd1e995", "0x910a2dec89025cc1"]),
}


@pytest.mark.parametrize("name", sorted(PINNED))
def test_hash_values_are_pinned(name):
    array, expected = PINNED[name]
    assert [hex(h) for h in hash_array(array)] == expected


@pytest.mark.parametrize("name", sorted(PINNED))
def test_chunking_and_slicing_do_not_change_a_value_s_hash(name):
    array, _ = PINNED[name]
    whole = hash_array(array)
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(1, 2), array.slice(3)])
    np.testing.assert_array_equal(hash_array(chunked), whole)
    np.testing.assert_array_equal(hash_array(array.slice(2)), whole[2:])


def test_equal_values_of_other_widths_and_encodings_hash_alike():
    assert hash_array(pa.array([7], pa.int8()))[0] == hash_array(pa.array([7], pa.int64()))[0]
    assert hash_array(pa.array([1.5], pa.float32()))[0] == hash_array(pa.array([1.5]))[0]
    assert hash_array(pa.array(["a"], pa.large_string()))[0] == hash_array(pa.array(["a"]))[0]
    dictionary = pa.array(["x", "y", "x"]).dictionary_encode()
    np.testing.assert_array_equal(hash_array(dictionary), hash_array(pa.array(["x", "y", "x"])))
    vectors = pa.FixedSizeListArray.from_arrays(pa.array([1.0, 2.0, 3.0, 4.0]), 2)
    np.testing.assert_array_equal(hash_array(vectors), hash_array(pa.array([[1.0, 2.0], [3.0, 4.0]])))


def test_order_inside_a_value_matters():
    h = hash_array(pa.array(["ab", "ba", None]))
    assert h[0] != h[1]
    lists = hash_array(pa.array([[1, 2], [2, 1]]))
    assert lists[0] != lists[1]
    rows = hash_rows(pa.table({"x": [1, 2], "y": [2, 1]}))
    assert rows[0] != rows[1]
