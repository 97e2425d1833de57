"""Synthetic grouped cases and hospitals for settlement tests (in memory; nothing is written to disk)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _dictionary(codes: np.ndarray, values: list[str]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(values))


def region(
    n_cases: int, n_hospitals: int, seed: int = 0, *, codes: bool = False
) -> tuple[pa.Table, pa.Table]:
    """A random DIP region: ``n_cases`` grouped cases over ``n_hospitals`` hospitals of levels 1–3.

    With ``codes``, cases also carry principal_dx / principal_proc / department (dictionary-encoded) so that
    the demo policy routes a few to per-case prices (J35.3 + 28.3) and bed-day payment (F20, 精神科).
    """
    rng = np.random.default_rng(seed)
    hid = np.array([f"H{i:04d}" for i in range(n_hospitals)])
    hospitals = pa.table(
        {
            "hospital_id": hid,
            "name": [f"hospital {i}" for i in range(n_hospitals)],
            "level": rng.integers(1, 4, n_hospitals).astype(np.int8),
            "region": ["demo"] * n_hospitals,
            "type": ["general"] * n_hospitals,
        }
    )
    score = rng.choice(np.array([250.0, 500.0, 1000.0, 1500.0, 3000.0]), n_cases)
    avg = score * 5.7
    cost = np.round(avg * rng.lognormal(0.0, 0.5, n_cases), 2)
    fund = np.round(cost * 0.7, 2)
    h = rng.integers(0, n_hospitals, n_cases)
    ins = np.array(["employee", "resident", "self_pay"])[rng.choice(3, n_cases, p=[0.45, 0.5, 0.05])]
    cases = pa.table(
        {
            "case_id": pc.binary_join_element_wise(
                "C", pc.cast(pa.array(np.arange(n_cases)), pa.string()), ""
            ),
            "hospital_id": pa.DictionaryArray.from_arrays(pa.array(h.astype(np.int32)), pa.array(hid)),
            "insurance_type": pa.DictionaryArray.from_arrays(
                pa.array(np.searchsorted(["employee", "resident", "self_pay"], ins).astype(np.int32)),
                pa.array(["employee", "resident", "self_pay"]),
            ),
            "los_days": rng.integers(1, 30, n_cases).astype(np.int32),
            "discharge_date": pa.array(rng.integers(20089, 20453, n_cases).astype(np.int32)).cast(
                pa.date32()
            ),
            "total_cost": cost,
            "fund_paid": fund,
            "patient_paid": np.round(cost - fund, 2),
            "dip_group": pa.DictionaryArray.from_arrays(
                pa.array(np.searchsorted([250.0, 500.0, 1000.0, 1500.0, 3000.0], score).astype(np.int32)),
                pa.array(["G1", "G2", "G3", "G4", "G5"]),
            ),
            "dip_kind": pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n_cases, np.int32)), pa.array(["core"])
            ),
            "dip_score": score,
            "aux_coef": np.ones(n_cases),
            "dip_avg_cost": avg,
        }
    )
    if codes:
        kind = rng.choice(4, n_cases, p=[0.9, 0.03, 0.02, 0.05])
        cases = cases.append_column(
            "principal_dx", _dictionary(kind, ["K35.800", "J35.300", "F20.000", "I10.x00"])
        )
        cases = cases.append_column("principal_proc", _dictionary(kind, ["47.0100", "28.3x00", "", ""]))
        cases = cases.append_column("department", _dictionary(kind, ["外科", "耳鼻喉科", "精神科", "内科"]))
        cases = cases.append_column(
            "patient_id",
            pc.binary_join_element_wise(
                "P", pc.cast(pa.array(rng.integers(0, max(1, n_cases // 3), n_cases)), pa.string()), ""
            ),
        )
    return cases, hospitals


def pooled_region(n_cases: int, n_hospitals: int, seed: int = 0) -> tuple[pa.Table, pa.Table]:
    """``region(..., codes=True)`` with plain (not dictionary) columns and every case insured ``employee``: each case
    is in a pool, so that a reading problem given to a case is the reason of its route."""
    cases, hospitals = region(n_cases, n_hospitals, seed, codes=True)
    plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns]
    cases = pa.table(plain, names=cases.column_names)
    at = cases.column_names.index("insurance_type")
    return cases.set_column(at, "insurance_type", pa.array(["employee"] * cases.num_rows)), hospitals
