"""drgdip audit --engine dask (issue 15): the passes of the audit run per partition on the workers, and every
file is the local engine's, byte for byte: a region cut into partitions, with a duplicate case id and the
re-admissions of one patient spread across them, under CHS-DRG (weights from the run: the pricing scans in a
pass of its own) and DIP (the pricing scans in pass 1).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.resources import data_path
from grouper.synth import generate
from payment.audit.files import audit_to_folder
from payment.cli import app
from payment.policy import Policy

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """1,200 cases in three partitions; the last partition repeats a case id of the first."""
    folder = tmp_path_factory.mktemp("audit-parts")
    table, hospitals = generate(1200, [2025], 4, seed=7, fees=True)
    table = table.drop(["synthetic_defect"])
    cuts = [
        table.slice(0, 600),
        table.slice(600, 500),
        pa.concat_tables([table.slice(1100, 400), table.slice(3, 1)]),
    ]
    for k, part in enumerate(cuts):
        (folder / "parts" / f"part={k}").mkdir(parents=True)
        pq.write_table(part, folder / "parts" / f"part={k}" / "data.parquet")
    pacsv.write_csv(hospitals, folder / "hospitals.csv")
    return folder


def _same_files(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_the_audit_on_dask_writes_the_local_files(region, dask, tmp_path):
    # CHS-DRG, RW from the run and every hospital at one level: the pricing scans in a pass of its own
    options = {"scheme": "chs-drg-2.0", "policy": Policy.load(data_path("policies", "example-drg-2025.toml")),
               "level": 2, "batch_size": 300}  # fmt: skip
    local = audit_to_folder([region / "parts"], tmp_path / "local", **options)
    remote = audit_to_folder([region / "parts"], tmp_path / "dask", engine=dask, **options)
    _same_files(tmp_path / "local", tmp_path / "dask")
    assert local["summary"].equals(remote["summary"])
    flags = pq.read_table(tmp_path / "dask" / "flags.parquet").column("flag").to_pylist()
    assert {"PDX_CHOICE", "POSSIBLE_UPCODING"} <= set(flags)
    assert {"READMISSION_15", "READMISSION_31"} & set(flags)
    cases = pq.read_table(tmp_path / "dask" / "cases.parquet")
    assert cases.column("expected_payment").null_count < cases.num_rows  # priced
    qc = pq.read_table(tmp_path / "dask" / "qc.parquet").column("code").to_pylist()
    assert qc.count("DUPLICATE_CASE") == 1  # the repeated id, flagged once, in the last partition


def test_the_command_audits_on_a_scheduler(region, dask, tmp_path):
    # DIP with the hospitals table: the pricing scans in pass 1
    base = ["audit", str(region / "parts"), "--scheme", "dip", "--policy", str(data_path("policies", "demo-2025.toml")),
            "--hospitals", str(region / "hospitals.csv"), "-q"]  # fmt: skip
    local = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "local")])
    assert local.exit_code == 0, local.output
    address = dask.client.scheduler.address
    remote = CliRunner().invoke(
        app, [*base, "--out", str(tmp_path / "dask"), "--engine", "dask", "--scheduler", address]
    )
    assert remote.exit_code == 0, remote.output
    _same_files(tmp_path / "local", tmp_path / "dask")


def test_a_worker_killed_mid_audit_changes_nothing(region, dask, tmp_path):
    """The module's worker processes; the first task of the last pass kills its worker (os._exit) while it holds
    a partition's numbers of the run: the nanny restarts it, the scheduler reruns its tasks (and makes again what
    was sent to the dead worker), and every file is the local engine's, byte for byte. Last in the module."""
    from grouper.dip import read_catalogue
    from payment.inputs import read_hospitals

    class KillOnce(distributed.WorkerPlugin):
        name = "kill-once"

        def transition(self, key, start, finish, **kwargs):
            marker = tmp_path / "killed"
            if finish == "executing" and str(key).startswith("_last") and not marker.exists():
                marker.touch()
                os._exit(1)

    policy = Policy.load(data_path("policies", "demo-2025.toml"))  # DIP: pass 1, then the last pass
    options = {"scheme": "dip", "policy": policy, "catalogue": read_catalogue(policy.header["catalogue"]),
               "hospitals": read_hospitals(region / "hospitals.csv"), "batch_size": 300}  # fmt: skip
    audit_to_folder([region / "parts"], tmp_path / "local", **options)
    dask.client.register_plugin(KillOnce())
    try:
        audit_to_folder([region / "parts"], tmp_path / "dask", engine=dask, **options)
    finally:
        dask.client.unregister_worker_plugin(KillOnce.name)
    assert (tmp_path / "killed").exists()
    _same_files(tmp_path / "local", tmp_path / "dask")
