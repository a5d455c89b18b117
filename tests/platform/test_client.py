"""platform/client.py without a cluster: marked calls are plain calls, and the size rule for results."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from framelab.platform.client import ResultTooLargeError, _check_size, on_cluster, result_limit


def test_a_marked_function_outside_a_client_session_is_the_plain_call():
    @on_cluster
    def add(a: int, b: int = 0) -> int:
        """Add."""
        return a + b

    assert add(1, b=2) == 3 and add.__doc__ == "Add." and add.__wrapped__(2) == 2


def test_results_over_the_limit_are_refused_with_what_to_do_and_handles_always_pass(monkeypatch):
    table = pa.table({"x": np.zeros(1000, dtype="float64")})
    _check_size(table, 8000)                                   # exactly 8,000 bytes: allowed
    with pytest.raises(ResultTooLargeError, match=r"save.*head") as caught:
        _check_size({"a": table, "b": [np.zeros(10)]}, 8000)
    assert "FRAMELAB_CLIENT_RESULT_LIMIT" in str(caught.value)
    _check_size(object(), 0)                                   # a handle (a model, a frame) has no size here
    monkeypatch.setenv("FRAMELAB_CLIENT_RESULT_LIMIT", "123")
    assert result_limit() == 123
