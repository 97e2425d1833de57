"""What-if and compare (issue 13): `drgdip settle --set` equals settling with Policy.replace; `drgdip compare`
lists the differences per hospital, hospital × pool and pool, with a summary, as CSV and Excel."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.errors import PolicyError
from payment.cli import app
from payment.compare import compare_settlements
from payment.pipeline import settle_files
from payment.policy import Policy
from payment.whatif import parse_setting, with_settings
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("whatif")
    cases, hospitals = synth.region(600, 3, seed=5, codes=True)
    pq.write_table(cases, d / "cases.parquet")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    base = ["settle", "--cases", str(d / "cases.parquet"), "--hospitals", str(d / "hospitals.csv"), "-q"]
    r = runner.invoke(app, [*base, "--policy", str(DEMO), "-o", str(d / "base")])
    assert r.exit_code == 0, r.output
    sets = [
        "--set",
        "hospital_coef.table={1 = 0.9, 2 = 0.95, 3 = 1.07}",
        "--set",
        "settlement.prepay_ratio=0.8",
    ]
    r = runner.invoke(app, [*base, "--policy", str(DEMO), "-o", str(d / "scenario"), *sets])
    assert r.exit_code == 0, r.output
    return d


def test_parse_setting_reads_toml_values_and_bare_words():
    assert parse_setting("deviation.high.ratio=2.5") == ("deviation.high.ratio", 2.5)
    assert parse_setting("point_value.regime=fixed") == ("point_value.regime", "fixed")
    assert parse_setting("hospital_coef.table={1 = 0.8}") == ("hospital_coef.table", {"1": 0.8})


def test_set_is_validated_like_the_file():
    pol = Policy.load(DEMO)
    with pytest.raises(PolicyError, match=r"deviation\.high\.ratio: must be ≥ 0, got -1"):
        with_settings(pol, ["deviation.high.ratio=-1"])
    with pytest.raises(PolicyError, match=r"deviation\.hihg\.ratio: not a policy key"):
        with_settings(pol, ["deviation.hihg.ratio=2"])
    with pytest.raises(
        PolicyError, match=r"point_value\.employee\.fixed: missing \(needed by regime = 'fixed'\)"
    ):
        with_settings(pol, ["point_value.regime=fixed"])
    added = with_settings(pol, ["tcm.factor=1.2", "tcm.groups=['A08.0']"])
    assert added.tcm.factor == 1.2 and "tcm.factor" in added.assumptions()


def test_set_settles_as_policy_replace_does(region, tmp_path):
    pol = Policy.load(DEMO)
    table = {
        "by_level": {"1": 0.9, "2": 0.95, "3": 1.07},
        "unit": "ratio",
        "source": "assumption",
        "note": "x",
    }
    replaced = pol.replace({"hospital_coef.table": table, "settlement.prepay_ratio": 0.8})
    settle_files(region / "cases.parquet", region / "hospitals.csv", replaced, tmp_path / "lib")
    assert (tmp_path / "lib/hospitals.csv").read_bytes() == (region / "scenario/hospitals.csv").read_bytes()
    r = runner.invoke(app, ["settle", "--cases", str(region / "cases.parquet"), "--hospitals",
                            str(region / "hospitals.csv"), "--policy", str(DEMO), "-o", str(tmp_path / "bad"),
                            "--set", "settlement.prepay_ratio=2"])  # fmt: skip
    assert r.exit_code == 1 and "settlement.prepay_ratio: a share must lie in 0–1" in r.output


def test_compare_lists_every_difference(region):
    cmp = compare_settlements(region / "base", region / "scenario")
    a = pd.read_csv(region / "base/hospitals.csv", dtype=str).set_index("hospital_id")
    b = pd.read_csv(region / "scenario/hospitals.csv", dtype=str).set_index("hospital_id")
    for row in cmp.hospitals.itertuples():
        for f in ("points", "payment_due", "prepaid", "clearing"):
            assert getattr(row, f"{f}_diff") == Decimal(b.loc[row.hospital_id, f]) - Decimal(
                a.loc[row.hospital_id, f]
            )
    assert cmp.hospitals.prepaid_diff.ne(0).all()  # prepay_ratio changed for everyone
    ra = json.loads((region / "base/region.json").read_text(encoding="utf-8"))
    assert sorted(cmp.pools.pool) == sorted(ra["pools"]) == sorted(cmp.hospital_pools.pool.unique())
    summary = cmp.summary.set_index("item")
    assert summary.loc["payment_due", "diff"] == sum(cmp.hospitals.payment_due_diff)
    assert summary.loc["policy_sha256", "a"] != summary.loc["policy_sha256", "b"]
    pts = cmp.hospital_pools.groupby("hospital_id").points_diff.sum()
    for row in cmp.hospitals.itertuples():
        assert abs(float(pts[row.hospital_id]) - float(row.points_diff)) < 1e-3


def test_compare_cli_writes_csv_and_excel(region):
    r = runner.invoke(
        app, ["compare", str(region / "base"), str(region / "scenario"), "-o", str(region / "cmp")]
    )
    assert r.exit_code == 0, r.output
    text = (region / "cmp/compare_hospitals.csv").read_bytes()
    assert text.startswith(b"\xef\xbb\xbf") and b"E-" not in text
    r = runner.invoke(
        app, ["compare", str(region / "base"), str(region / "scenario"), "-o", str(region / "c.xlsx")]
    )
    assert r.exit_code == 0, r.output
    sheets = pd.read_excel(region / "c.xlsx", sheet_name=None)
    assert list(sheets) == ["汇总 summary", "医院 hospitals", "医院×基金池", "基金池 pools"]
    r = runner.invoke(
        app, ["compare", str(region / "base"), str(region / "nothing"), "-o", str(region / "x.xlsx")]
    )
    assert r.exit_code == 1 and "not a settlement folder" in r.output


def test_statement_walks_each_hospital_from_points_to_clearing(region, tmp_path):
    out = tmp_path / "st"
    args = ["statement", str(region / "scenario"), "--policy", str(DEMO), "-o", str(out), "-q",
            "--set", "hospital_coef.table={1 = 0.9, 2 = 0.95, 3 = 1.07}", "--set", "settlement.prepay_ratio=0.8"]  # fmt: skip
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    sheet = pd.read_excel(out / "statement.xlsx", dtype=str)
    hospitals = pd.read_csv(region / "scenario/hospitals.csv", dtype=str)
    assert sorted(sheet.hospital_id.unique()) == sorted(hospitals.hospital_id)
    first = sheet[sheet.hospital_id == hospitals.hospital_id[0]]
    assert list(first["步骤"].drop_duplicates()) == ["病例点数", "结算点值", "分配额", "考核系数", "审核扣款",
                                                    "结余留用/超支分担", "应付", "已预付", "清算"]  # fmt: skip
    clearing = first[first.step.str.startswith("clearing")].value.iloc[0]
    assert Decimal(clearing) == Decimal(hospitals.clearing[0])
    assert "settlement.prepay_ratio: " in " ".join(first.policy.dropna())
    page = (out / "statement.html").read_text(encoding="utf-8")
    assert "<script" not in page and "http" not in page and hospitals.hospital_id[0] in page
