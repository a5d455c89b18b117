"""Sessions against a real multi-process cluster on loopback, through Ray Client, with token auth on.

Each driver runs in its own process, as a user's laptop session would, with
only ``RAY_AUTH_TOKEN_PATH`` set: framelab finds the token and sends it.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.multinode


def _driver(cluster, body: str, timeout: float = 300) -> dict:
    code = (
        "import json, warnings\n"
        "from framelab.platform.session import connect, session_info, shutdown\n"
        "from framelab.platform.client import run_on_cluster\n"
        "from framelab.platform.errors import SessionMismatchError\n"
        f"ADDRESS = {cluster.client_address!r}\n"
        "out = {}\n"
        f"{body}\n"
        "print('RESULT ' + json.dumps(out))\n"
    )
    done = cluster.run_driver(code, timeout=timeout)
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def test_a_ray_client_session_joins_the_cluster_with_its_token(loopback_cluster):
    out = _driver(loopback_cluster, """
info = connect(ADDRESS)
out["repr"] = repr(info)
out["nodes"], out["cpus"], out["client"], out["local"] = info.num_nodes, info.num_cpus, info.client, info.local
import ray
@ray.remote(resources={"worker": 1})
def where():
    import ray
    return ray.get_runtime_context().get_node_id()
out["ran_on_worker"] = bool(ray.get(where.remote()))
out["again"] = repr(connect())                     # no arguments: the running session
out["same"] = repr(connect(ADDRESS))               # the same address: the running session
try:
    connect("ray://127.0.0.9:10001")
except SessionMismatchError as exc:
    out["mismatch"] = str(exc)
try:
    connect(num_cpus=4)
except SessionMismatchError as exc:
    out["size"] = str(exc)
""")
    assert out["nodes"] == 2 and out["cpus"] == 3 and out["client"] and not out["local"]
    assert "Ray Client" in out["repr"] and out["again"] == out["same"] == out["repr"]
    assert out["ran_on_worker"]
    assert f"already connected to the Ray cluster at 'ray://{loopback_cluster.head_ip}" in out["mismatch"]
    assert "shutdown()" in out["mismatch"] and "num_cpus=4" in out["size"]


def test_ray_data_runs_inside_the_cluster_for_a_client_session(loopback_cluster):
    # Ray Data's executor cannot run in a Ray Client driver (Ray 2.60); run_on_cluster runs it in the
    # cluster and hands back only the small result.
    out = _driver(loopback_cluster, """
connect(ADDRESS)
import ray.data
def pipeline():
    ds = ray.data.range(1000, override_num_blocks=8).map_batches(lambda b: {"id": b["id"] * 2})
    return ds.sum("id")
out["sum"] = run_on_cluster(pipeline)
def keep():
    return ray.data.range(100, override_num_blocks=4).materialize()
ds = run_on_cluster(keep)                     # blocks owned inside the cluster stay readable
import ray
out["rows"] = sum(len(ray.get(ref)) for ref in ds.to_arrow_refs())
""")
    assert out["sum"] == 2 * sum(range(1000))
    assert out["rows"] == 100


def test_without_the_token_the_failure_names_where_a_token_goes(loopback_cluster, tmp_path):
    empty_home = tmp_path / "home"
    empty_home.mkdir()
    code = (
        "from framelab.platform.session import connect\n"
        f"connect({loopback_cluster.client_address!r})\n"
    )
    import subprocess
    import sys

    env = {**loopback_cluster.client_env(), "HOME": str(empty_home)}
    env.pop("RAY_AUTH_TOKEN_PATH")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert f"could not reach a Ray cluster at 'ray://{loopback_cluster.head_ip}" in done.stderr
    assert "RAY_AUTH_TOKEN" in done.stderr
    assert loopback_cluster.token_path.read_text() not in done.stderr + done.stdout
