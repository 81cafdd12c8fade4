"""A real Dask LocalCluster (two worker processes, one thread each) and small activation stores."""

from __future__ import annotations

import distributed
import pytest

from cluster_stores import write_store


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    return str(write_store(tmp_path_factory.mktemp("cluster") / "acts.zarr"))


@pytest.fixture(scope="session")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as cluster:
        yield cluster


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client
