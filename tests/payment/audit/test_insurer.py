"""Comparison with the insurer's returned grouping (docs/audit.md §3): the first reason that applies, the payment
impact, agreement rates; the file read with Chinese headers in GBK."""

from __future__ import annotations

import pyarrow as pa
import pytest

from grouper.resources import data_path
from payment.audit import audit, read_insurer
from payment.policy import Policy

BASE = {"hospital_id": "H", "insurance_type": "employee", "sex": 2, "age_years": 88, "principal_dx": "K22.301",
        "other_dx": ["K11.901"], "total_cost": 5000.0, "los_days": 3}  # fmt: skip
CASES = [
    {**BASE, "case_id": "same"},
    {**BASE, "case_id": "cc"},
    {**BASE, "case_id": "not-sent"},
    {**BASE, "case_id": "version"},
    {**BASE, "case_id": "recoded"},
    {**BASE, "case_id": "points"},
    {**BASE, "case_id": "mapped", "other_dx": ["K11.901", "Q99.999x999"]},
]
# 结算ID, DRG编码, 点数, 支付标准, 主要诊断编码 as the platform returns them. example-drg-2025, level 3 (k 1.05):
# GZ13 = RW 1.2 × 100 × 1.05 = 126 points × 100 yuan = 12,600; GZ15 = 0.8 × 100 × 1.05 = 84 points, 8,400
INSURER = """结算ID,DRG编码,点数,支付标准,主要诊断编码
same,GZ13,126,12600,K22.301
cc,GZ15,84,8400,K22.301
version,GZ1A,100,10000,K22.301
recoded,ES31,150,15000,J18.900
points,GZ13,110,11000,K22.301
mapped,GZ15,84,8400,K22.301
only-insurer,GZ13,126,12600,K22.301
"""


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    path = tmp_path_factory.mktemp("insurer") / "returned.csv"
    path.write_bytes(INSURER.encode("gbk"))
    schema = pa.schema([("case_id", pa.string()), ("hospital_id", pa.string()), ("insurance_type", pa.string()),
                        ("sex", pa.int8()), ("age_years", pa.int16()), ("principal_dx", pa.string()),
                        ("other_dx", pa.list_(pa.string())), ("total_cost", pa.float64()), ("los_days", pa.int32())])  # fmt: skip
    weights = pa.table({"drg": ["GZ13", "GZ15"], "rw": [1.2, 0.8]})
    policy = Policy.load(data_path("policies", "example-drg-2025.toml"))
    return audit(pa.Table.from_pylist(CASES, schema=schema), scheme="chs-drg-1.1", weights=weights, policy=policy, level=3,
                 insurer=read_insurer(path))  # fmt: skip


def test_each_difference_gets_the_first_reason_that_applies(compared):
    got = {r["case_id"]: r["reason"] for r in compared["insurer"].to_pylist()}
    assert got == {
        "cc": "CC_MCC",
        "not-sent": "MISSING_AT_INSURER",
        "only-insurer": "MISSING_AT_HOSPITAL",
        "version": "SCHEME_VERSION",
        "recoded": "CODING_CHANGED",
        "points": "POINTS_OR_PAYMENT",
        "mapped": "CODE_MAPPING",
    }


def test_payment_impact_and_agreement(compared):
    rows = {r["case_id"]: r for r in compared["insurer"].to_pylist()}
    assert rows["points"]["expected_payment"] == 12600 and rows["points"]["payment_impact"] == pytest.approx(
        -1600
    )
    assert rows["cc"]["payment_impact"] == pytest.approx(8400 - 12600)
    summary = {r["item"]: r["value"] for r in compared["summary"].to_pylist()}
    # 6 cases on both sides: group agrees for "same" and "points" (2/6); ADRG (GZ1) and MDC (G) for all but
    # "recoded" (5/6); points for "same" only (1/6)
    assert summary["insurer_matched_cases"] == 6 and summary["insurer_missing_cases"] == 2
    assert summary["agree_group"] == pytest.approx(2 / 6)
    assert summary["agree_adrg"] == pytest.approx(5 / 6)
    assert summary["agree_mdc"] == pytest.approx(5 / 6)
    assert summary["agree_points"] == pytest.approx(1 / 6)


def test_a_file_without_a_case_id_column_is_refused(tmp_path):
    from grouper.errors import InputError

    path = tmp_path / "bad.csv"
    path.write_text("病组编码,点数\nGZ13,120\n", "utf-8")
    with pytest.raises(InputError, match=r"missing column\(s\) case_id"):
        read_insurer(path)
