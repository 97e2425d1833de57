"""group_dip with auxiliary typing (辅助分型): aux_type / aux_coef from a fitted AuxTyping (docs/dip.md §5.2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from grouper.dip import Catalogue, group_dip
from grouper.dip.aux import AuxTyping
from grouper.dip.catalogue import CATALOGUE_SCHEMA
from grouper.dip.group import INPUT_COLUMNS

DATA = Path(__file__).parent / "data_aux"


def catalogue() -> Catalogue:
    """Two core groups (K35.8 conservative, C18.0 conservative), a 综合 group of K40 and the blank group."""
    rows = [
        ("K35.8", "core", "K35.8", "", 1000.0),
        ("C18.0", "core", "C18.0", "", 3000.0),
        ("K40:BSZL", "comprehensive", "K40", "conservative", 500.0),
        ("KBBZ", "blank", "", "", 300.0),
    ]
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    table = pa.table(
        {
            "dip_code": cols[0],
            "kind": cols[1],
            "subcategory": cols[2],
            "main_proc": [""] * n,
            "related_procs": [""] * n,
            "tier": cols[3],
            "name": cols[0],
            "score": cols[4],
            "avg_cost": [None] * n,
            "cv": [None] * n,
            "n_cases": [None] * n,
            "avg_los": [None] * n,
            "discuss_flag": [None] * n,
        }
    )
    return Catalogue(table.select(CATALOGUE_SCHEMA.names), {"name": "hand-made"})


def history(n_severe: int = 80, n_mild: int = 320, severe_cost=15000.0, mild_cost=8750.0) -> pa.Table:
    """Last year's K35.8 cases: 重度 (I50.900, an MCC) at ``severe_cost``, the rest (LOS 5) at ``mild_cost``.

    Group mean (80 × 15,000 + 320 × 8,750) / 400 = 10,000 → 重度 1.5, 轻度 (Ⅰ-B) 0.875; the CV falls to 0.
    """
    n = n_severe + n_mild
    severe = np.arange(n) < n_severe
    return pa.table(
        {
            "case_id": [f"h{i}" for i in range(n)],
            "year": pa.array([2024] * n, pa.int32()),
            "principal_dx": ["K35.800"] * n,
            "other_dx": pa.array([["I50.900"] if s else [] for s in severe], pa.list_(pa.string())),
            "los_days": pa.array([5] * n, pa.int32()),
            "discharge_mode": pa.array([1] * n, pa.int8()),
            "age_years": pa.array([40] * n, pa.int16()),
            "total_cost": np.where(severe, severe_cost, mild_cost),
        }
    )


def cases(rows: list[tuple]) -> pa.Table:
    """(case_id, principal_dx, other_dx, age_years) → a canonical discharge table (LOS 5, discharged alive)."""
    n = len(rows)
    return pa.table(
        {
            "case_id": [r[0] for r in rows],
            "principal_dx": [r[1] for r in rows],
            "other_dx": pa.array([r[2] for r in rows], pa.list_(pa.string())),
            "los_days": pa.array([5] * n, pa.int32()),
            "discharge_mode": pa.array([1] * n, pa.int8()),
            "age_years": pa.array([r[3] for r in rows], pa.int16()),
            "total_cost": [10000.0] * n,
        }
    )


@pytest.fixture(scope="module")
def fitted() -> AuxTyping:
    h = history()
    return AuxTyping().fit(h, group_dip(h, catalogue()))


def test_a_qualifying_subtype_gets_its_coefficient(fitted):
    coefs = {r["subtype"]: r["coef"] for r in fitted.coefficients_.to_pylist() if r["family"] == "severity"}
    assert coefs == pytest.approx({"SEV-III": 1.5, "SEV-I-B": 0.875})
    t = cases(
        [
            ("severe", "K35.800", ["I50.900"], 40),
            ("mild", "K35.800", [], 40),
            ("other group", "K40.900", ["I50.900"], 40),  # 综合 K40:BSZL: not fitted, not a core group
            ("no principal", None, ["I50.900"], 40),
        ]
    )
    out = group_dip(t, catalogue(), aux=fitted)
    assert out["dip_group"].to_pylist() == ["K35.8", "K35.8", "K40:BSZL", ""]
    assert out["aux_type"].to_pylist() == ["SEV-III", "SEV-I-B", "", ""]
    np.testing.assert_allclose(out["aux_coef"].to_numpy(), [1.5, 0.875, 1.0, 1.0])
    assert out.schema.field("aux_coef").type == pa.float64()


def test_without_aux_the_coefficient_is_one(fitted):
    t = cases([("severe", "K35.800", ["I50.900"], 40), ("mild", "K35.800", [], 40)])
    out = group_dip(t, catalogue())
    assert out["aux_type"].to_pylist() == ["", ""]
    assert out["aux_coef"].to_pylist() == [1.0, 1.0]
    with_aux = group_dip(t, catalogue(), aux=fitted)
    assert with_aux.drop_columns(["aux_type", "aux_coef"]).equals(out.drop_columns(["aux_type", "aux_coef"]))


def test_the_highest_qualifying_coefficient_wins():
    # docs/dip.md §5.2 TEST VECTORS DIP-AUX: several subtypes fit (中度 1.2, 重度 1.5, 65+ 1.1) → a = 1.5.
    aux = AuxTyping.read(DATA / "coefficients.csv")  # K35.8: SEV-II 1.2, SEV-III 1.5, AGE-65Y 1.1
    t = cases(
        [
            ("重度 and 65+", "K35.800", ["I50.900", "J18.900"], 70),  # MCC + CC → 重度 1.5 over 65+ 1.1
            ("中度 and 65+", "K35.800", ["J18.900"], 70),  # 中度 1.2 over 65+ 1.1
            ("65+ only", "K35.800", [], 70),  # 轻度 not admitted → 65+ 1.1
            ("none admitted", "K35.800", [], 40),
        ]
    )
    out = group_dip(t, catalogue(), aux=aux, explain=True)
    assert out["aux_type"].to_pylist() == ["SEV-III", "SEV-II", "AGE-65Y", ""]
    np.testing.assert_allclose(out["aux_coef"].to_numpy(), [1.5, 1.2, 1.1, 1.0])
    reasons = out["reason"].to_pylist()
    assert reasons[0].endswith("; aux type SEV-III × 1.5") and "aux type" not in reasons[3]


def test_input_columns_cover_what_aux_typing_reads():
    for col in ("other_dx", "los_days", "discharge_mode", "age_years", "age_days", "icu_hours", "total_cost"):
        assert col in INPUT_COLUMNS
    assert len(set(INPUT_COLUMNS)) == len(INPUT_COLUMNS)
