"""Shared fixtures: one real local Ray for the whole session, and a real two-node cluster.

Tests marked ``multinode`` start or join a cluster of several nodes (some
replace the session's Ray with a ``ray.cluster_utils.Cluster`` for their
duration); their modules run last, each with its multi-node tests at its end.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests' helper modules (ray_cluster, ...)

REPO = Path(__file__).resolve().parents[1]
# Real data that ships in the repository, so every test runs from a clone.
CALTECH = REPO / "toolkits" / "datasets" / "caltech101_subset"
CORAL = REPO / "tests" / "data" / "coral_test_images"
WEIGHTS = REPO / "toolkits" / "deep_features" / "weights"
# Keep Ray's worker start-up quiet and small on 2-core machines.
os.environ.setdefault("RAY_DEDUP_LOGS", "1")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
# Ray refuses to spill objects once the disk is 95% full, which on a large shared CI disk still leaves
# many GB: tests that spill a few hundred MB fail for a reason that is not theirs.
os.environ.setdefault("RAY_local_fs_capacity_threshold", "0.995")
# A job whose work waits for CPUs that nothing gives back fails with what holds them (platform/stalls.py)
# well before the test's own time limit, so a stuck run says why.
os.environ.setdefault("FRAMELAB_STALL_S", "240")


# The fast tier's longest test takes about 90 s on 2 busy cores: a test past this limit hangs (see pyproject.toml).
FAST_TIER_TIMEOUT_S = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Modules with multi-node tests run last, whole, each with its multi-node tests at its end: a test on
    # its own cluster then finds its module's fixtures (features, trained models) still built, instead of
    # building them again at the end of the run, and the other tests share the session's one Ray.
    multinode = {id(item): item.get_closest_marker("multinode") is not None for item in items}
    order: dict[str, int] = {}
    for item in items:
        order.setdefault(item.nodeid.split("::")[0], len(order))
    clustered = {item.nodeid.split("::")[0] for item in items if multinode[id(item)]}

    def key(item: pytest.Item) -> tuple[bool, int, bool]:
        module = item.nodeid.split("::")[0]
        return module in clustered, order[module], multinode[id(item)]

    items.sort(key=key)
    for item in items:
        slow = item.get_closest_marker("multinode") or item.get_closest_marker("slow")
        if not slow and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(FAST_TIER_TIMEOUT_S))

_clone_setup = None


def pytest_collection_finish(session: pytest.Session) -> None:
    # The clone-and-install test's minutes of unpacking overlap the run instead of adding to it.
    global _clone_setup
    from background_setup import TEST_NAME, CloneSetup

    if session.config.option.collectonly or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.name == TEST_NAME for item in session.items):
        _clone_setup = CloneSetup(REPO)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _clone_setup is not None:
        _clone_setup.close()


@pytest.fixture()
def clone_setup():
    """The background ``git clone`` + ``make setup`` of this run (tests/background_setup.py), started if it was not."""
    global _clone_setup
    from background_setup import CloneSetup

    if _clone_setup is None:
        _clone_setup = CloneSetup(REPO)
    return _clone_setup


@pytest.fixture(scope="session", autouse=True)
def ray_session():
    """A real local Ray, started once for the whole test session."""
    import ray

    from framelab.platform import console
    from framelab.platform.session import connect

    # pytest captures file descriptor 2 per test itself; the console filter is tested in subprocesses.
    console.disable()
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
def caltech() -> Path:
    """The bundled 20-class, 1,200-image Caltech-101 subset (``<class>/image_NNNN.jpg``)."""
    return CALTECH


@pytest.fixture(scope="session")
def coral() -> Path:
    """Eight photos with their reference ImageNet top-1 (``expected_top1.csv``)."""
    return CORAL


@pytest.fixture(scope="session")
def bundled_weights() -> Path:
    """The MobileNetV2 ImageNet state dict that ships with framelab."""
    return next(WEIGHTS.glob("*.pth"))


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A real S3-compatible server on loopback (SeaweedFS); see tests/s3_server.py."""
    from s3_server import start_s3_server

    server = start_s3_server(tmp_path_factory.mktemp("s3"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def loopback_cluster():
    """A real multi-process Ray cluster on loopback with token authentication (tests/ray_cluster.py).

    A head (1 CPU) and a worker node (2 CPUs, resource ``worker``), each its
    own ``ray start`` process tree. Tests that kill a worker add a new one
    before they finish, as an operator would, so the next test finds the
    cluster whole.
    """
    from ray_cluster import LoopbackCluster

    cluster = LoopbackCluster()
    try:
        cluster.start_head(num_cpus=1)
        cluster.add_worker(num_cpus=2, resources={"worker": 1})
        yield cluster
    finally:
        cluster.stop()
