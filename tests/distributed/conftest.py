"""The LocalCluster the distributed tests share: 2 worker processes on loopback, one per test module."""

from __future__ import annotations

import pytest

from grouper.distributed import Engine


@pytest.fixture(scope="module")
def dask():
    """An engine on a LocalCluster of 2 worker processes on loopback."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield Engine("dask", client=client)
