"""Faults on --engine dask (issue 15): a worker process killed mid-run, a partition that cannot be read, a
scheduler that cannot be reached. The run completes with the local engine's output through Dask's retries, or
fails with one clear message and nothing at the destination."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper.distributed
from grouper.distributed import Engine, connect
from grouper.errors import ClusterError, InputError
from grouper.pipeline import group_to_file
from grouper.synth import generate
from payment.cli import app

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("parts")
    table, _ = generate(4000, [2025], 6, seed=3)
    for k in range(8):
        pq.write_table(table.slice(500 * k, 500), folder / f"part-{k}.parquet")
    return folder


def test_a_worker_killed_mid_run_changes_nothing(parts, tmp_path):
    """Real worker processes on loopback; the first partition task to start kills its worker (os._exit): the
    nanny restarts it, the scheduler reruns its tasks, and the output is the local engine's, byte for byte."""
    marker = tmp_path / "killed"

    class KillOnce(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "_group_partition" in str(key) and not marker.exists():
                marker.touch()
                os._exit(1)

    group_to_file([parts], tmp_path / "local.parquet")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(KillOnce())
        run = group_to_file([parts], tmp_path / "dask.parquet", engine=Engine("dask", client=client))
    assert marker.exists()  # a worker did die
    assert run.rows == 4000
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()


def test_a_partition_that_cannot_be_read_leaves_no_output(parts, tmp_path):
    broken = tmp_path / "parts"
    broken.mkdir()
    for f in sorted(parts.iterdir()):
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "part-5.parquet").write_bytes(b"PAR1 not parquet at all")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as c,
        distributed.Client(c, set_as_default=False) as client,
        pytest.raises(InputError, match=r"part-5\.parquet"),
    ):
        group_to_file([broken], tmp_path / "out" / "grouped.parquet", engine=Engine("dask", client=client))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_an_unreachable_scheduler_is_one_error_line(parts, tmp_path, monkeypatch):
    monkeypatch.setattr(grouper.distributed, "CONNECT_TIMEOUT", 1)
    out = tmp_path / "grouped.parquet"
    result = CliRunner().invoke(
        app, ["group", str(parts), "-o", str(out), "--engine", "dask", "--scheduler", "tcp://127.0.0.1:9"]
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "error: cannot reach the Dask scheduler at tcp://127.0.0.1:9"
    )
    assert not out.exists()


def test_without_dask_installed_the_engine_is_one_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # what an install without the dask extra sees
    with pytest.raises(ClusterError, match=r"pip install 'drgdip\[dask\]'"), connect(Engine("dask")):
        pass


def test_a_run_the_cluster_cannot_finish_is_one_error_and_no_output(parts, tmp_path):
    """Every attempt of a partition kills its worker and no retry is allowed: a ClusterError, and the folder of
    parts being written is not left at the destination."""
    import dask

    class KillAlways(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            if finish == "executing" and "group_part_file" in str(key):
                os._exit(1)

    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(KillAlways())
        with pytest.raises(ClusterError, match="could not finish the run"):
            group_to_file([parts], tmp_path / "grouped", engine=Engine("dask", client=client))
    assert list(tmp_path.iterdir()) == []
