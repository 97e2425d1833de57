"""Faults on --engine dask (issue 15): a worker process killed mid-run, a partition that cannot be read, a
scheduler that cannot be reached. The run completes with the local engine's output through Dask's retries, or
fails with one clear message and nothing at the destination."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper.distributed
from grouper.distributed import Engine, connect
from grouper.errors import ClusterError
from grouper.pipeline import group_to_file
from grouper.resources import data_path
from grouper.synth import generate
from payment.cli import app
from payment.pipeline import settle_files

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def parts(tmp_path_factory) -> Path:
    """8 partitions of 500 synthetic discharges; the region's hospitals in ``../hospitals.csv``."""
    folder = tmp_path_factory.mktemp("region") / "parts"
    folder.mkdir()
    table, hospitals = generate(4000, [2025], 6, seed=3)
    for k in range(8):
        pq.write_table(table.slice(500 * k, 500), folder / f"part-{k}.parquet")
    pacsv.write_csv(hospitals, folder.parent / "hospitals.csv")
    return folder


def test_a_worker_killed_mid_run_changes_nothing(parts, tmp_path):
    """Real worker processes on loopback; the first grouping task to start kills its worker (os._exit), and so
    does the first task of settlement's pass 2 (each worker writes its parts of cases.parquet): the nanny
    restarts the worker, the scheduler reruns its tasks, and the outputs are the local engine's, byte for byte."""

    class KillOnce(distributed.WorkerPlugin):
        def transition(self, key, start, finish, **kwargs):
            for task in ("_group_partition", "_cases"):
                marker = tmp_path / f"killed{task}"
                if finish == "executing" and task in str(key) and not marker.exists():
                    marker.touch()
                    os._exit(1)

    settings = {"scheme": "dip", "catalogue": "pingdingshan-2025"}
    group_to_file([parts], tmp_path / "local.parquet")
    group_to_file([parts], tmp_path / "grouped", **settings)
    args = (tmp_path / "grouped", parts.parent / "hospitals.csv", data_path("policies", "demo-2025.toml"))
    settle_files(*args, tmp_path / "local", discharges=parts, catalogue="pingdingshan-2025")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", host="127.0.0.1"
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        client.register_plugin(KillOnce())
        engine = Engine("dask", client=client)
        run = group_to_file([parts], tmp_path / "dask.parquet", engine=engine)
        settle_files(*args, tmp_path / "dask", discharges=parts, catalogue="pingdingshan-2025", engine=engine)
    assert (tmp_path / "killed_group_partition").exists() and (tmp_path / "killed_cases").exists()
    assert run.rows == 4000
    assert (tmp_path / "local.parquet").read_bytes() == (tmp_path / "dask.parquet").read_bytes()
    names = sorted(str(p.relative_to(tmp_path / "local")) for p in (tmp_path / "local").rglob("*"))
    assert names == sorted(str(p.relative_to(tmp_path / "dask")) for p in (tmp_path / "dask").rglob("*"))
    assert len([n for n in names if n.startswith("cases.parquet/part-")]) == 8
    for name in names:
        if name != "cases.parquet":
            assert (tmp_path / "local" / name).read_bytes() == (tmp_path / "dask" / name).read_bytes(), name


def test_a_partition_that_cannot_be_read_is_one_error_line_and_leaves_no_output(parts, tmp_path):
    """``drgdip group --engine dask --workers 1`` as a user runs it (its own LocalCluster): a broken part is the
    one error line naming it, with no worker log or traceback before it, and nothing at the destination."""
    broken = tmp_path / "parts"
    broken.mkdir()
    for f in sorted(parts.iterdir()):
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "part-5.parquet").write_bytes(b"PAR1 not parquet at all")
    out = tmp_path / "out" / "grouped.parquet"
    cli = [sys.executable, "-c", "from payment.cli import main; main()"]
    run = subprocess.run(
        [*cli, "group", str(broken), "-o", str(out), "--engine", "dask", "--workers", "1", "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "part-5.parquet" in lines[0], run.stderr
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
