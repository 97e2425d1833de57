"""The audit prices a case as the settlement does: same route, deviation class and points for every case the
settlement pays by DIP points (the audit then converts at the budget point value, the settlement at its own)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import payment
from grouper import Codebook
from grouper.codebook import DEFAULT_SCHEME
from grouper.dip import group_dip, read_catalogue
from grouper.resources import data_path
from payment.policy import Policy


def test_audit_points_equal_the_settlements(region):
    _, discharges, hospitals = region
    discharges = discharges.drop(["synthetic_defect"])
    catalogue = read_catalogue("pingdingshan-2025")
    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    grouped = group_dip(discharges, catalogue, codebook=Codebook.load(DEFAULT_SCHEME))
    cases = discharges
    for name in grouped.column_names[1:]:
        cases = cases.append_column(name, grouped.column(name))
    settled = payment.settle(cases, hospitals, policy, catalogue=catalogue).cases
    audited = payment.audit(discharges, scheme="dip", catalogue=catalogue, policy=policy, hospitals=hospitals)
    a, s = audited["cases"], settled
    assert a.column("case_id").equals(s.column("case_id").cast(pa.string()))
    route_a = np.asarray(a.column("route").to_pylist(), dtype=object)
    route_s = np.asarray(s.column("route").cast(pa.string()).to_pylist(), dtype=object)
    checked = route_a != "QC_ERROR"  # a QC error is not paid by points in the audit
    assert (route_a[checked] == route_s[checked]).all()
    dip = route_a == "DIP"
    assert dip.sum() > 4000
    dev_a = np.asarray(a.column("deviation").to_pylist(), dtype=object)[dip]
    dev_s = np.asarray(s.column("deviation").cast(pa.string()).to_pylist(), dtype=object)[dip]
    assert (dev_a == dev_s).all()
    points_a = a.column("points").to_numpy(zero_copy_only=False)[dip]
    points_s = s.column("points").to_numpy(zero_copy_only=False)[dip]
    assert np.array_equal(points_a, points_s)


def test_results_do_not_depend_on_the_batches(region):
    # the per-case passes stream in batches: cutting the region into batches of 777 cases (a duplicate case id
    # and a re-admission may sit in another batch than their first stay) gives the same tables to the bit
    _, discharges, hospitals = region
    discharges = discharges.drop(["synthetic_defect"]).slice(0, 3000)
    discharges = pa.concat_tables([discharges, discharges.slice(5, 3)])  # duplicates across batches
    options = {"scheme": "dip", "catalogue": read_catalogue("pingdingshan-2025"),
               "policy": Policy.load(data_path("policies", "demo-2025.toml")), "hospitals": hospitals}  # fmt: skip
    whole = payment.audit(discharges, **options)
    cut = payment.audit(discharges, batch_size=777, **options)
    assert whole.tables.keys() == cut.tables.keys()
    for name, table in whole.tables.items():
        assert cut[name].equals(table), name
    qc = whole["qc"].filter(pa.compute.equal(whole["qc"].column("code"), "DUPLICATE_CASE"))
    assert {3001, 3002, 3003} <= set(qc.column("row").to_pylist())
    assert {"READMISSION_15", "PDX_CHOICE"} <= set(whole["flags"].column("flag").to_pylist())


def test_progress_counts_every_case_once_per_pass(region):
    # on_pass(label, total) and on_batch(rows), as grouper.fitting reports them: pass 1 (pricing scanned), then
    # pricing and the flags' variants, then the tables (no cases read); with level= the hospitals are known
    # after pass 1 only: one more pass to scan
    _, discharges, hospitals = region
    discharges = discharges.drop(["synthetic_defect"]).slice(0, 1000)
    passes: list[tuple[str, int | None]] = []
    seen: list[int] = []
    progress = {"on_pass": lambda label, total: passes.append((label, total)), "on_batch": seen.append}
    payment.audit(discharges, batch_size=300, scheme="chs-drg-1.1", **progress)
    assert seen == [300, 300, 300, 100] * 2
    assert [total for _, total in passes] == [1000, 1000, None]
    assert passes[0][0] == "auditing: grouping and QC edits"
    seen.clear()
    passes.clear()
    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    payment.audit(discharges, batch_size=600, scheme="dip", policy=policy, hospitals=hospitals, **progress)
    assert seen == [600, 400] * 2 and len(passes) == 3
    seen.clear()
    passes.clear()
    payment.audit(discharges, batch_size=600, scheme="dip", policy=policy, level=2, **progress)
    assert seen == [600, 400] * 3 and len(passes) == 4


def test_the_streamed_folder_is_the_in_memory_audit_to_the_byte(region, tmp_path, monkeypatch):
    # audit_to_folder writes cases.parquet and flags.parquet batch by batch (memory flat in the cases): every
    # file is the one write_audit writes from the in-memory tables; with row groups smaller than a table, the
    # same rows in several row groups
    from payment.audit import files

    folder, _, _ = region
    source = folder / "discharges.parquet"
    options = {"scheme": "dip", "catalogue": read_catalogue("pingdingshan-2025"),
               "policy": Policy.load(data_path("policies", "demo-2025.toml")), "level": 2}  # fmt: skip
    files.write_audit(files.audit_files([source], **options), tmp_path / "memory")
    result = files.audit_to_folder([source], tmp_path / "streamed", batch_size=1000, **options)
    assert "cases" not in result.tables and "flags" not in result.tables
    names = sorted(p.name for p in (tmp_path / "memory").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "streamed").iterdir())
    for name in names:
        assert (tmp_path / "memory" / name).read_bytes() == (tmp_path / "streamed" / name).read_bytes(), name
    monkeypatch.setattr(files, "ROW_GROUP", 1500)
    files.audit_to_folder([source], tmp_path / "small", batch_size=1000, **options)
    for name in ("cases", "flags"):
        small = pq.ParquetFile(tmp_path / "small" / f"{name}.parquet")
        assert small.metadata.num_row_groups > 2
        assert small.read().equals(pq.read_table(tmp_path / "memory" / f"{name}.parquet")), name
    assert (tmp_path / "small" / "report.html").read_bytes() == (
        tmp_path / "memory" / "report.html"
    ).read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no scratch folder left


def test_a_hospital_in_focus_gets_its_rows_of_the_region_audit(region):
    # the flags' variants are regrouped for the audited hospital's cases only: its flags and cases are still the
    # region audit's rows of that hospital (re-admissions from another hospital included)
    _, discharges, _ = region
    discharges = discharges.drop(["synthetic_defect"]).slice(0, 3000)
    whole = payment.audit(discharges, scheme="chs-drg-2.0")
    hospital = whole["hospitals"].sort_by([("cases", "descending")]).column("hospital_id")[0].as_py()
    one = payment.audit(discharges, scheme="chs-drg-2.0", hospital=hospital)
    mine = pa.compute.field("hospital_id") == hospital
    for name in ("flags", "cases", "qc"):
        assert one[name].equals(whole[name].filter(mine)), name
    assert {"POSSIBLE_UPCODING", "PDX_CHOICE"} <= set(one["flags"].column("flag").to_pylist())
