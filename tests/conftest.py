"""Shared fixtures: one real local Ray for the whole session, and a real two-node cluster.

Tests marked ``multinode`` replace the session's Ray with a
``ray.cluster_utils.Cluster``; they are moved to the end of the run so every
other test shares one Ray instance.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
# Keep Ray's worker start-up quiet and small on 2-core machines.
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "multinode: builds its own multi-node Ray cluster (runs last)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("multinode") is not None)


@pytest.fixture(scope="session", autouse=True)
def ray_session():
    """A real local Ray, started once for the whole test session."""
    import ray

    from framelab.platform.session import connect

    connect(num_cpus=2, object_store_memory=1_000_000_000)
    yield
    ray.shutdown()


@pytest.fixture()
def two_node_cluster():
    """A real two-node Ray cluster (one process tree per node) on this machine."""
    import ray
    from ray.cluster_utils import Cluster

    from framelab.platform.session import connect

    ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "object_store_memory": 300_000_000, "resources": {"node_a": 1}},
    )
    cluster.add_node(num_cpus=1, object_store_memory=300_000_000, resources={"node_b": 1})
    cluster.wait_for_nodes()
    connect(address=cluster.address)
    yield cluster
    ray.shutdown()
    cluster.shutdown()
    connect(num_cpus=2, object_store_memory=1_000_000_000)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real data beside the checkout (../shared/data)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not there")
    return SHARED_DATA


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server on loopback (SeaweedFS, moto as fallback); see tests/s3_server.py."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s3_server import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()
