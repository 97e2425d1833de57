"""Plausibility rules (issue 11 item 3; codebooks/qc/plausibility.csv): a money input outside its hard range is an
InputError naming the file, row and column — never the value; a soft one is a warning in region.json."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.errors import InputError
from grouper.schema import DISCHARGE_SCHEMA
from payment.cli import app
from payment.inputs import read_deductions, read_hospitals
from payment.pipeline import settle_files
from payment.plausibility import rules, soft_limit
from payment.policy import Policy
from payment.settle import settle
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
HARD = [r for r in rules() if r.kind == "hard"]
runner = CliRunner()


def _plain(table: pa.Table) -> pa.Table:
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


def _outside(rule, finite: bool = False) -> list[float]:
    """Values breaking the rule: below its min, above its max, infinite (unless ``finite``)."""
    out = [] if finite else [math.inf, -math.inf]
    if rule.min is not None:
        out.append(rule.min - 1)
    if rule.max is not None:
        out.append(rule.max * 1000)
    return out


def _set(table: pa.Table, column: str, i: int, value: float) -> pa.Table:
    v = table.column(column).to_numpy().astype(np.float64) if column in table.column_names else None
    v = np.ones(table.num_rows) if v is None else v.copy()
    v[i] = value
    if column in table.column_names:
        return table.set_column(table.schema.get_field_index(column), column, pa.array(v))
    return table.append_column(column, pa.array(v))


def _no_value(message: str, value: float) -> None:
    for text in (repr(value), str(value), f"{value:,.0f}" if math.isfinite(value) else "inf"):
        if text not in ("1000", "0"):
            assert f": {text}" not in message and f"got {text}" not in message, message


@pytest.fixture(scope="module")
def region():
    cases, hospitals = synth.region(300, 4, seed=5, codes=True)
    return _plain(cases), hospitals


@pytest.mark.parametrize("rule", [r for r in HARD if r.table == "cases"], ids=lambda r: r.rule)
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_case_value_outside_its_hard_range_names_file_row_and_column(tmp_path, region, rule, fmt):
    cases, hospitals = region
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    # "inf" in a whole-number column of a CSV (los_days) is unreadable there (-1, a per-case status), not a number
    whole = pa.types.is_integer(DISCHARGE_SCHEMA.field(rule.column).type)
    for value in _outside(rule, finite=fmt == "csv" and whole):
        bad = _set(cases, rule.column, 6, value)
        path = tmp_path / f"cases.{fmt}"
        if fmt == "parquet":
            pq.write_table(bad, path)
        else:  # numbers as a program writes them: "1e+11", "inf", "-inf", "-1" are numbers to the reader too
            text = pa.array([f"{x:g}" for x in bad.column(rule.column).to_pylist()])
            at = bad.schema.get_field_index(rule.column)
            pacsv.write_csv(bad.set_column(at, rule.column, text), path)
        row = 7 if fmt == "parquet" else 8  # the 7th data row; CSV line 1 is the header
        with pytest.raises(InputError) as info:
            settle_files(path, tmp_path / "h.csv", DEMO, tmp_path / "out")
        msg = str(info.value)
        assert msg.startswith(f"{path}: row {row}, column {rule.column}: outside its plausible range"), msg
        assert (info.value.path, info.value.row, info.value.column) == (str(path), row, rule.column)
        assert f"rule {rule.rule}" in msg
        _no_value(msg, value)
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("rule", [r for r in HARD if r.table == "hospitals"], ids=lambda r: r.rule)
def test_a_hospital_value_outside_its_hard_range_names_file_row_and_column(tmp_path, region, rule):
    _, hospitals = region
    for value in _outside(rule):
        path = tmp_path / "hospitals.csv"
        pacsv.write_csv(_set(hospitals, rule.column, 2, value), path)
        with pytest.raises(InputError) as info:
            read_hospitals(path)
        msg = str(info.value)
        # "inf" in a CSV is infinite, as in a Parquet file: outside the range, not "not a number"
        assert msg.startswith(f"{path}: row 4, column {rule.column}: outside its plausible range"), msg
        _no_value(msg, value)
        # the in-memory entry point applies the same rule
        with pytest.raises(InputError, match=rf"hospitals table: row 3, column {rule.column}: outside"):
            settle(region[0], _set(hospitals, rule.column, 2, value), Policy.load(DEMO))


def test_a_negative_assessment_coefficient_is_one_line_from_the_cli(tmp_path, region):
    cases, hospitals = region
    pq.write_table(cases, tmp_path / "cases.parquet")
    path = tmp_path / "hospitals.csv"
    pacsv.write_csv(_set(hospitals, "assessment_coef", 0, -0.5), path)
    args = ["settle", "--cases", str(tmp_path / "cases.parquet"), "--hospitals", str(path)]
    result = runner.invoke(app, [*args, "--policy", str(DEMO), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1, result.output
    assert result.output.strip() == (
        f"error: {path}: row 2, column assessment_coef: outside its plausible range 0 – 2 or not finite "
        "(codebooks/qc/plausibility.csv, rule hospital_assessment)"
    )


@pytest.mark.parametrize("amount", ["1e30", "100000000000000000000000000000", "-5"])
def test_a_deduction_outside_its_range_is_one_line_without_the_value(tmp_path, region, amount):
    _, hospitals = region
    path = tmp_path / "deductions.csv"
    path.write_text(
        f"hospital_id,month,amount\nH0000,2025-03,100\nH0001,2025-04,{amount}\n", encoding="utf-8"
    )
    with pytest.raises(InputError) as info:
        read_deductions(path, hospitals.column("hospital_id"), Policy.load(DEMO))
    msg = str(info.value)
    assert msg.startswith(f"{path}: row 3, column amount: "), msg
    assert amount.lstrip("-") not in msg.removeprefix(f"{path}: ")


def test_a_case_costing_k_times_its_group_average_is_warned(region):
    cases, hospitals = region
    k = soft_limit("case_cost_vs_group")
    policy = Policy.load(DEMO)
    base = settle(cases, hospitals, policy).region["warnings"]
    assert not any("their group's average cost" in w for w in base)
    avg = cases.column("dip_avg_cost").to_numpy()
    i = cases.column("insurance_type").to_pylist().index("resident")  # a case paid by the scheme
    at_k = settle(_set(cases, "total_cost", i, float(avg[i]) * k), hospitals, policy).region["warnings"]
    assert not any("their group's average cost" in w for w in at_k)  # more than k ×, not k × itself
    typo = _set(cases, "total_cost", i, float(avg[i]) * 1000)  # a ×1000 typo
    hit = [w for w in settle(typo, hospitals, policy).region["warnings"] if "their group's average cost" in w]
    h = cases.column("hospital_id")[i].as_py()
    assert hit == [
        f"1 cases cost more than {k:g} × their group's average cost (by hospital: {h}: 1): check them for "
        "typos before paying (codebooks/qc/plausibility.csv, case_cost_vs_group)"
    ]
    # the same cases in another order: the same warning (region.json does not depend on the row order)
    back = typo.take(pa.array(np.arange(typo.num_rows)[::-1].copy()))
    assert (
        settle(back, hospitals, policy).region["warnings"]
        == settle(typo, hospitals, policy).region["warnings"]
    )


def test_one_hospital_taking_nearly_the_whole_pool_is_warned(region):
    """The soft rule on a hospital's share is the policy's settlement.hospital_share_limit (a region's choice)."""
    cases, hospitals = region
    policy = Policy.load(DEMO).replace(
        {
            "settlement.hospital_share_limit": {
                "value": 0.3,
                "unit": "share",
                "source": "assumption",
                "note": "test",
            }
        }
    )
    warnings = settle(cases, hospitals, policy).region["warnings"]
    assert any("settlement.hospital_share_limit 0.3" in w for w in warnings), warnings
    quiet = settle(cases, hospitals, Policy.load(DEMO)).region["warnings"]
    assert not any("hospital_share_limit" in w for w in quiet)


def test_every_rule_is_tested_here():
    tested = {"cases", "hospitals", "deductions"}
    assert {r.table for r in HARD} <= tested
    assert [r.rule for r in rules() if r.kind == "soft"] == ["case_cost_vs_group"]


def test_the_warning_reaches_region_json(tmp_path, region):
    cases, hospitals = region
    avg = cases.column("dip_avg_cost").to_numpy()
    ins = cases.column("insurance_type").to_pylist()
    i = next(j for j, x in enumerate(ins) if x == "resident")
    pq.write_table(_set(cases, "total_cost", i, float(avg[i]) * 1000), tmp_path / "cases.parquet")
    pacsv.write_csv(hospitals, tmp_path / "h.csv")
    region_json = settle_files(tmp_path / "cases.parquet", tmp_path / "h.csv", DEMO, tmp_path / "out")
    on_disk = json.loads((tmp_path / "out" / "region.json").read_text(encoding="utf-8"))
    assert on_disk["warnings"] == region_json["warnings"]
    assert any(
        f"(by hospital: {cases.column('hospital_id')[i].as_py()}: 1)" in w for w in on_disk["warnings"]
    )
