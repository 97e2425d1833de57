"""Collect payment test vectors from data files.

Each ``tests/payment/vectors/*.toml`` names a harness ``kind``, shared inputs ``given`` and ``[[cases]]`` with
``name``, ``input`` and ``expect``. Every case is a pytest item named after its sentence, so
``pytest tests/payment -k "half the average"`` works. Expected strings compare exactly (money to the fen,
fractions as ``n/d``); expected numbers compare to 1e-9 (points are not money).
"""

from __future__ import annotations

import datetime as dt
import math
import tomllib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from payment import bedday, budget, money, percase, points
from payment.bands import Bands
from payment.clearing import band_adjustment, clearing_payment, hospital_shares, monthly_presettlement
from payment.deductions import parse_deductions
from payment.policy import Policy
from payment.settle import settle


def _frac(x) -> Fraction:
    if isinstance(x, str) and "/" in x:
        n, d = x.split("/")
        return Fraction(int(n), int(d))
    return money.exact(x)


def _yuan(fen: int) -> str:
    return money.fen_to_yuan(int(fen))


def _dip(g, i):
    g = g | {k: v for k, v in i.items() if k != "total_cost"}
    rule = points.DeviationRule(
        g["low_formula"],
        g["low_ratio"],
        g["low_op"],
        g["high_formula"],
        g["high_ratio"],
        g["high_op"],
        g.get("extreme_formula"),
        g.get("extreme_ratio"),
        g.get("extreme_op"),
        kbbz_factor=g.get("kbbz_factor", 1.0),
    )
    a = np.array([i.get("aux_coef", g.get("aux_coef", 1.0))])
    pts, dev = points.dip_points(
        np.array([float(i.get("base_score", g.get("base_score", 0)))]),
        np.array([i.get("hospital_coef", g.get("hospital_coef", 1.0))]),
        a,
        np.array([float(i["total_cost"])]),
        np.array([float(i.get("avg_cost", g.get("avg_cost", 0)))]),
        rule,
        unmatched=np.array([i.get("unmatched", False)]),
    )
    return {"points": float(pts[0]), "deviation": points.Deviation(int(dev[0])).name.lower()}


def _drg(g, i):
    rule = points.DrgRule(
        g["city_avg_cost"],
        g["scale"],
        g["low_ratio"],
        g["low_op"],
        g["high_op"],
        Bands.from_rows(g["high_bands"], "ratio"),
        i.get("low_formula", "points_no_factor"),
        i.get("high_formula", "linear_add"),
    )
    pts, dev = points.drg_points(
        np.array([g["rw"]]), np.array([g["k"]]), np.array([float(i["total_cost"])]), rule
    )
    fee = money.round_fen(money.exact(float(pts[0])) * money.exact(g["point_value"]))
    return {
        "points": float(pts[0]),
        "deviation": points.Deviation(int(dev[0])).name.lower(),
        "fee": _yuan(fee),
    }


def _money(g, i):
    v = _frac(i["point_value"])
    v = money.publish(v, i.get("decimals"))
    return {
        "amount": _yuan(money.round_fen(money.exact(i["points"]) * v)),
        "vector_amount": _yuan(int(money.fen_half_up(np.array([float(i["points"]) * float(v)]))[0])),
    }


def _remainder(g, i):
    parts = money.largest_remainder(round(i["total"] * 100), [_frac(w) for w in i["weights"]], i["keys"])
    return {"parts": [_yuan(p) for p in parts], "sum": _yuan(sum(parts))}


def _cascade(g, i):
    c = budget.budget_cascade(i["pool"], method=i.get("method", "items"), design=i.get("design", "carve_out"))
    return {
        "distributable": _yuan(money.round_fen(c.distributable)),
        "reserve": _yuan(money.round_fen(c.reserve)),
    }


def _value(v: Fraction, g) -> dict:
    return {"value": f"{v.numerator}/{v.denominator}", "published": str(float(money.publish(v, 4)))}


def _point_value(g, i):
    f = i["function"]
    if f == "budget":
        v = budget.budget_point_value(i["costs"], i["points"], i.get("weights", (0.1, 0.2, 0.7)))
    elif f == "ratio":
        v = budget.ratio_point_value(i["fund"], i["fund_ratio"], i["points"])
    elif f == "subtraction":
        v = budget.subtraction_point_value(i["fund"], i["patient"], i["points"])
    elif f == "efficient_1d":
        v = budget.efficient_point_value_1d(i["costs"], i["points"])
    elif f == "efficient_2d":
        return {
            "published": str(
                round(
                    budget.efficient_point_value_2d(
                        i["revenue"], i["cost"], i["mean_revenue"], i["mean_cost"]
                    ),
                    4,
                )
            )
        }
    else:
        raise ValueError(f)
    return _value(v, g)


def _elastic(g, i):
    e = budget.elastic_point_value(g["budget"], g["split"], g["fixed"], i["points"])
    return {
        "increment_value": str(float(money.publish(e.increment_value, 4))),
        "paid": _yuan(money.round_fen(e.paid)),
        "kept": _yuan(money.round_fen(e.kept)),
        "blended_value": str(float(money.publish(e.blended_value, 4))),
    }


def _shares(g, i):
    r = money.exact(i["fund_ratio"])
    pts = [money.exact(p) for p in g["points"]]
    if i["form"] == "ratio":
        v = money.exact(g["fund"]) / r / sum(pts)
    else:
        v = (money.exact(g["fund"]) + sum(money.exact(x) for x in i["patient"])) / sum(pts)
    gross, fund = hospital_shares(
        pts,
        v,
        r,
        keys=g["keys"],
        form=i["form"],
        scope=i.get("scope", "region"),
        patient=[money.exact(x) for x in i.get("patient", [0] * len(pts))],
        hospital_ratio=[money.exact(x) for x in i.get("hospital_ratio", [])] or None,
    )
    out = {
        "fund": [_yuan(f) for f in fund],
        "fund_sum": _yuan(sum(fund)),
        "value": str(float(money.publish(v, 4))),
    }
    if i["form"] == "subtraction":
        gf = money.largest_remainder(money.round_fen(sum(gross)), gross, g["keys"])
        out["gross"] = [_yuan(x) for x in gf]
    return out


def _clearing(g, i):
    alloc = money.round_fen(_frac(i["allocated"]))
    due, clearing = clearing_payment(
        alloc, i["assessment_coef"], i["audit_deduction"], 0, money.round_fen(money.exact(i["prepaid"]))
    )
    return {"payment_due": _yuan(due), "clearing": _yuan(clearing)}


def _bands(g, i):
    surplus, overspend = (
        Bands.from_rows(g["surplus_bands"], "retain"),
        Bands.from_rows(g["overspend_bands"], "fund_share"),
    )
    gap, adj = band_adjustment(i["due"], g["billed"], surplus, overspend, i["mode"])
    return {"gap": _yuan(money.round_fen(gap)), "adjustment": _yuan(money.round_fen(adj))}


def _monthly(g, i):
    amt = monthly_presettlement(
        i["points"], i["point_value"], i["patient_paid"], i["prepay_ratio"], i.get("deduction", 0)
    )
    return {"amount": _yuan(money.round_fen(amt))}


def _bed_day(g, i):
    los = np.array(i["los"])
    rate = np.full(len(los), float(i.get("rate", g["rate"])))
    prior = None
    if "admit" in i:
        prior = bedday.merged_prior_days(
            np.array(i["patient"]),
            np.zeros(len(los), int),
            np.array(i["admit"]),
            np.array(i["discharge"]),
            los,
            g.get("readmit_merge_days", 0),
        )
    amt = bedday.bed_day_amounts(
        los,
        rate,
        Bands.from_rows(g["bands"], "factor"),
        prior_days=prior,
        max_days=i.get("max_days"),
        patient=np.array(i.get("patient", list(range(len(los))))),
        annual_cap=i.get("annual_cap"),
    )
    return {"amounts": [_yuan(x) for x in money.fen_half_up(amt)]}


def _per_case(g, i):
    price, ratio = money.exact(i["price"]), money.exact(i["fund_ratio"])
    fund = money.round_fen(price * ratio)
    out = {"fund": _yuan(fund), "patient": _yuan(money.round_fen(price) - fund)}
    if "total_cost" in i:
        ex = percase.per_case_exit(
            np.array([0]),
            np.array([float(i["price"])]),
            np.array([float(i["total_cost"])]),
            np.array([1]),
            [{"exit_cost_over_price_x": i["exit_x"], "exit_los_over": None}],
        )
        out["exits"] = bool(ex[0])
    return out


def _special(g, i):
    out = {"cap": points.special_case_cap(i["cases"], i["rate"])}
    if "total_cost" in i:
        out["eligible"] = bool(
            points.compare(np.array([i["total_cost"]]), i["ratio"] * i["standard"], i["op"])[0]
        )
    return out


def _coefficients(g, i):
    if "city_means" in i:
        k = budget.level_coefficients({int(a): b for a, b in i["level_means"].items()}, i["city_means"])
    else:
        k = budget.group_coefficients({int(a): b for a, b in i["level_means"].items()}, i["city_mean"])
    return {"coefficients": "none" if k is None else {str(a): str(float(b)) for a, b in k.items()}}


def _unified(g, i):
    vb = money.exact(g["budget_point_value"])
    parts = {k: money.exact(v) for k, v in g["amounts"].items()}
    pts = {"dip": money.exact(g["dip_points"])} | {k: v / vb for k, v in parts.items()}
    total = sum(pts.values())
    v = money.exact(g["budget"]) / total
    keys = list(pts)
    alloc = money.largest_remainder(money.round_fen(money.exact(g["budget"])), list(pts.values()), keys)
    return {
        "total_points": str(total),
        "value": str(float(money.publish(v, 4))),
        "paid": {k: _yuan(a) for k, a in zip(keys, alloc, strict=True)},
        "sum": _yuan(sum(alloc)),
    }


def _trim(g, i):
    if i["function"] == "keep":
        r = np.array(i["ratios"], dtype=np.float64)
        keep = budget.percentile_keep(r, i["lower"], i["upper"])
        return {"kept": int(keep.sum()), "min_kept": float(r[keep].min()), "max_kept": float(r[keep].max())}
    rows = np.array(i["cases"], dtype=np.float64)  # year, total_cost, points
    v, years = budget.trimmed_budget_point_value(
        rows[:, 1], rows[:, 2], rows[:, 0].astype(np.int64), g["year_weights"], i["lower"], i["upper"]
    )
    return {
        "kept": [y["kept"] for y in years],
        "total_cost": [str(y["total_cost"]) for y in years],
        "total_points": [str(y["total_points"]) for y in years],
    } | _value(v, g)


def _prepaid(g, i):
    """Monthly pre-settlement of a tiny region through :func:`payment.settle.settle` (demo policy)."""
    policy = Policy.load(Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml")
    hospitals = pa.table(g["hospitals"])
    cases = pa.table(g["cases"])
    n = cases.num_rows
    cost, patient = (np.array(g["cases"][k], dtype=np.float64) for k in ("total_cost", "patient_paid"))
    cases = cases.set_column(
        cases.schema.get_field_index("discharge_date"),
        "discharge_date",
        pa.array([dt.date.fromisoformat(d) for d in g["cases"]["discharge_date"]]),
    )
    for name, values in (
        ("principal_dx", ["K35.800"] * n),
        ("department", ["外科"] * n),
        ("los_days", pa.array([5] * n, pa.int32())),
        ("fund_paid", cost - patient),
        ("dip_group", ["K35.8"] * n),
        ("dip_kind", ["core"] * n),
        ("aux_coef", [1.0] * n),
        ("dip_avg_cost", cost),  # C = A: every case is normal, P = S × k
    ):
        cases = cases.append_column(name, pa.array(values))
    deductions = None
    if "deductions" in i:
        table = pa.table(i["deductions"])
        deductions = parse_deductions(table, g["hospitals"]["hospital_id"], policy)
    h = settle(cases, hospitals, policy, deductions=deductions).hospitals.to_pydict()
    cols = ("prepaid", "audit_deduction", "payment_due", "clearing")
    cols += ("monthly_deduction",) if deductions else ()
    # money comes back as exact decimals; the vectors write it as yuan strings
    return {col: dict(zip(h["hospital_id"], (format(v, "f") for v in h[col]), strict=True)) for col in cols}


HARNESSES = {
    "dip_points": _dip,
    "drg_points": _drg,
    "money": _money,
    "largest_remainder": _remainder,
    "cascade": _cascade,
    "point_value": _point_value,
    "elastic": _elastic,
    "shares": _shares,
    "clearing": _clearing,
    "bands": _bands,
    "monthly": _monthly,
    "bed_day": _bed_day,
    "per_case": _per_case,
    "special_case": _special,
    "coefficients": _coefficients,
    "unified": _unified,
    "trim": _trim,
    "prepaid": _prepaid,
}


def _same(expected, actual) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(_same(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_same, expected, actual))
    if isinstance(expected, float | int) and not isinstance(expected, bool):
        return isinstance(actual, float | int) and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)
    return expected == actual


class VectorFile(pytest.File):
    def collect(self):
        doc = tomllib.loads(self.path.read_text(encoding="utf-8"))
        for case in doc["cases"]:
            yield VectorItem.from_parent(self, name=case["name"], doc=doc, case=case)


class VectorItem(pytest.Item):
    def __init__(self, *, doc, case, **kw):
        super().__init__(**kw)
        self.doc, self.case = doc, case

    def runtest(self):
        actual = HARNESSES[self.doc["kind"]](self.doc.get("given", {}), self.case.get("input", {}))
        if not _same(self.case["expect"], actual):
            raise AssertionError(
                f"{self.path.name} ({self.doc.get('section', '')}): {self.name}\n"
                f"  expected {self.case['expect']}\n  actual   {actual}\n  why      {self.case.get('why', '')}"
            )

    def repr_failure(self, excinfo):
        return (
            str(excinfo.value) if isinstance(excinfo.value, AssertionError) else super().repr_failure(excinfo)
        )

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}::{self.name}"


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".toml" and file_path.parent.name == "vectors":
        return VectorFile.from_parent(parent, path=file_path)
    return None
