"""platform/remote_errors.py: input errors from tasks surface as themselves; other failures keep Ray's report."""

from __future__ import annotations

import pytest
import ray

from framelab.platform.remote_errors import get, surfaced_errors


@ray.remote
def _fail(kind: str):
    if kind == "value":
        raise ValueError("column 'x' has NaN")
    if kind == "key":
        raise KeyError("no column 'y'")
    raise RuntimeError("a bug in a worker")


@ray.remote
def _await(kind: str):
    return ray.get(_fail.remote(kind))  # a task awaiting a failed task: Ray nests the errors


@pytest.mark.parametrize(("kind", "error", "message"), [("value", ValueError, "has NaN"), ("key", KeyError, "no column")])
def test_an_input_error_from_a_task_is_raised_as_itself(kind, error, message):
    for task in (_fail, _await):
        with pytest.raises(error, match=message) as info:
            get(task.remote(kind))
        assert not isinstance(info.value, ray.exceptions.RayError)


def test_a_bug_in_a_worker_keeps_rays_report():
    with pytest.raises(ray.exceptions.RayTaskError, match="a bug in a worker"):
        with surfaced_errors():
            ray.get(_fail.remote("bug"))


def test_errors_raised_in_this_process_pass_unchanged():
    with pytest.raises(KeyError) as info:
        with surfaced_errors():
            raise KeyError("local")
    assert info.value.args == ("local",)
