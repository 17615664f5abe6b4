"""One real local Ray cluster for the whole session, and this process connected to it as a driver.

The tests that need Ray run only where it is installed (``make test`` installs it: the
``dev`` extra); elsewhere they are skipped, not failed.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ray.cluster import ENV, Cluster, start

# Before anything imports ray: it reads these once, at import (the node address above all:
# without RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 a driver turns 127.0.0.1 into the host's address).
os.environ.update(ENV)

RAY_MISSING = "ray is not installed (pip install -e '.[ray]')"


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster, with this test process connected to it (compiled modules reuse that)."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip(RAY_MISSING)
    import ray

    running = start(tmp_path_factory.mktemp("ray-cluster"))
    try:
        ray.init(address=running.address, log_to_driver=False, logging_level="WARNING")
        yield running
    finally:
        ray.shutdown()
        running.stop()


@pytest.fixture
def ray_workdir(tmp_path: Path, cluster: Cluster) -> Path:
    """A scratch directory, with the cluster running."""
    return tmp_path
