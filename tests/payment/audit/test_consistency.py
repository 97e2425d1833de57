"""The audit prices a case as the settlement does: same route, deviation class and points for every case the
settlement pays by DIP points (the audit then converts at the budget point value, the settlement at its own)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

import payment
from grouper import Codebook
from grouper.dip import group_dip, read_catalogue
from grouper.resources import data_path
from payment.policy import Policy


def test_audit_points_equal_the_settlements(region):
    _, discharges, hospitals = region
    discharges = discharges.drop(["synthetic_defect"])
    catalogue = read_catalogue("pingdingshan-2025")
    policy = Policy.load(data_path("policies", "demo-2025.toml"))
    grouped = group_dip(discharges, catalogue, codebook=Codebook.load("chs-drg-1.1"))
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
