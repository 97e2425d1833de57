"""Settlement (结算): per-case payments, monthly pre-settlement (月度预结算), annual clearing (年度清算).

reference/payment.md §6–§9 and §12. Per case: route, points, point value, standard payment and fund payment.
Per hospital: points, the share of the distributable budget (largest remainder, so the shares add up to the
budget to the fen), payment due after the assessment coefficient, audit deductions and 结余留用/超支分担 bands,
monthly prepayments and the clearing payment. Hospital money is exact (fractions) and rounded once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from grouper.dip.group import DipStatus
from grouper.status import Status
from payment._arrays import isin, lookup, numbers, strings, to_str_numpy
from payment.bedday import bed_day_amounts, merged_prior_days
from payment.budget import (
    budget_cascade,
    budget_point_value,
    efficient_point_value_1d,
    efficient_point_value_2d,
    elastic_point_value,
)
from payment.money import TIE_FEN, exact, fen_to_yuan, largest_remainder, publish, round_fen
from payment.points import (
    Deviation,
    DeviationProfile,
    DrgRule,
    compare,
    dip_points,
    drg_points,
    special_case_cap,
)
from payment.route import REASONS, Route, route_cases

__all__ = [
    "Settlement",
    "band_adjustment",
    "clearing_payment",
    "hospital_shares",
    "monthly_presettlement",
    "settle",
]

_ROUTE_NAMES = {int(r): r.name for r in Route}
_DEV_NAMES = [m.name.lower() for m in Deviation]


def monthly_presettlement(points, point_value, patient_paid, prepay_ratio, deduction=0) -> Fraction:
    """医疗机构月度预结费用 = (月度总分值 × 该月点值 − 该月患者支付总额) × 预拨比例 − 该月审核扣款.

    payment.md §6, vector M-1: (100,000 × 10.5 − 300,000) × 0.9 − 5,000 = 670,000.

    Examples
    --------
    >>> monthly_presettlement(100_000, 10.5, 300_000, 0.9, 5_000)
    Fraction(670000, 1)
    """
    gross = exact(points) * exact(point_value) - exact(patient_paid)
    return gross * exact(prepay_ratio) - exact(deduction)


def band_adjustment(
    due, billed, surplus_bands: Sequence, overspend_bands: Sequence, mode: str = "progressive"
):
    """结余留用 / 合理超支分担: money added to (+) or recovered from (−) a hospital's payment.

    ``rate = due / billed`` (DIP 应支付额 / 项目记账金额). A surplus slice is kept at its band's ``retain``
    share (the rest is recovered); an overspend slice is covered at its band's ``fund_share``. Bands are
    half-open ``[from, to)``; ``progressive`` prices each slice at its own band, ``whole`` prices the whole
    gap at the band of the final rate. A slice outside every band keeps the surplus and bears the overspend.
    payment.md §8, vector S-1.

    Returns
    -------
    (gap, adjustment) : Fraction, Fraction   gap = due − billed (surplus > 0, overspend < 0)

    Examples
    --------
    >>> sb = [{"from": 1.0, "to": 1.1, "retain": 1.0}, {"from": 1.1, "to": None, "retain": 0.5}]
    >>> ob = [{"from": 0.9, "to": 1.0, "fund_share": 0.5}, {"from": 0.0, "to": 0.9, "fund_share": 0.0}]
    >>> band_adjustment(11_500_000, 10_000_000, sb, ob)
    (Fraction(1500000, 1), Fraction(-250000, 1))
    >>> band_adjustment(8_500_000, 10_000_000, sb, ob)
    (Fraction(-1500000, 1), Fraction(500000, 1))
    """
    due, billed = exact(due), exact(billed)
    gap = due - billed
    if billed <= 0 or gap == 0:
        return gap, Fraction(0)
    rate = due / billed
    surplus = gap > 0
    bands = surplus_bands if surplus else overspend_bands
    if not bands:
        return gap, Fraction(0)
    key = "retain" if surplus else "fund_share"
    lo, hi = (Fraction(1), rate) if surplus else (rate, Fraction(1))
    covered = Fraction(0)  # Σ slice × share, in rate units
    if mode == "whole":
        for b in bands:
            f, t = exact(b["from"]), (None if b.get("to") is None else exact(b.get("to")))
            if f <= rate and (t is None or rate < t):
                covered = (hi - lo) * exact(b[key])
                break
        else:
            covered = (hi - lo) if surplus else Fraction(0)
    else:
        width = Fraction(0)
        for b in bands:
            f, t = exact(b["from"]), (None if b.get("to") is None else exact(b.get("to")))
            a, z = max(lo, f), (hi if t is None else min(hi, t))
            if z > a:
                covered += (z - a) * exact(b[key])
                width += z - a
        if surplus:
            covered += (hi - lo) - width  # slices outside every band are kept
    if surplus:
        return gap, -(gap - covered * billed)
    return gap, covered * billed


def hospital_shares(
    points, point_value, fund_ratio, *, keys, form="ratio", scope="region", patient=None, hospital_ratio=None
):
    """Hospital standard amounts and fund amounts (fen) of one pool; payment.md §7, vectors C-1 and C-2.

    Ratio form with the regional r: the fund total Σ P_h × V × r is shared by the largest-remainder rule, so
    the parts add up to it (to the budget itself when V is the full-precision floating value). Subtraction
    form: the gross Σ P_h × V is shared, then each hospital's patient payments are subtracted. With
    hospital-specific ratios the parts do not reconcile to a fixed total and each is rounded half-up.

    Returns
    -------
    (gross, fund_fen) : list of Fraction (yuan, P_h × V), list of int (fen)

    Examples
    --------
    >>> v = Fraction(100_000_000) / Fraction(7, 10) / 8_500_000
    >>> hospital_shares([5_000_000, 2_500_000, 1_000_000], v, Fraction(7, 10), keys=["H1", "H2", "H3"])[1]
    [5882352941, 2941176471, 1176470588]
    """
    pts = [exact(x) for x in points]
    v, r = exact(point_value), exact(fund_ratio)
    gross = [x * v for x in pts]
    if scope == "hospital":
        return gross, [round_fen(g * exact(rr)) for g, rr in zip(gross, hospital_ratio, strict=True)]
    if form == "ratio":
        return gross, largest_remainder(round_fen(sum(gross, Fraction(0)) * r), gross, keys)
    g_fen = largest_remainder(round_fen(sum(gross, Fraction(0))), gross, keys)
    return gross, [g - round_fen(exact(x)) for g, x in zip(g_fen, patient, strict=True)]


def clearing_payment(allocated_fen, assessment_coef=1, audit_deduction=0, band_adjust=0, prepaid_fen=0):
    """Annual clearing (年度清算): (allocated × 考核系数 − 审核扣减 + band adjustment) → payment due, then
    clearing = due − prepaid; both in fen, rounded once. payment.md §7.1/§7.5, vector C-3.

    Examples
    --------
    >>> clearing_payment(5882352941, 0.98, 120_000, 0, 5_200_000_000)
    (5752705882, 552705882)
    """
    due = round_fen(
        Fraction(allocated_fen, 100) * exact(assessment_coef) - exact(audit_deduction) + exact(band_adjust)
    )
    return due, due - prepaid_fen


@dataclass(frozen=True)
class Settlement:
    """Result of :func:`settle`: per-case table, per-hospital table, region summary (JSON-ready)."""

    cases: pa.Table
    hospitals: pa.Table
    region: dict


def _hospital_coefs(hospitals: pa.Table, level: np.ndarray, policy, history) -> np.ndarray:
    hc = policy.hospital_coef
    if hc.method == "column":
        if "coefficient" not in hospitals.column_names:
            raise ValueError(
                "hospital_coef.method = 'column' but the hospitals table has no coefficient column"
            )
        k = numbers(hospitals, "coefficient")
        if np.isnan(k).any():
            raise ValueError("hospitals table: coefficient is empty for some hospital")
        return k
    if hc.method == "history":
        if history is None or "level_coefficients" not in history:
            raise ValueError("hospital_coef.method = 'history' needs level history (--history DIR)")
        table = {int(lv): float(v) for lv, v in history["level_coefficients"].items()}
    else:
        table = {1: hc.level_1, 2: hc.level_2, 3: hc.level_3}
    return np.array([table.get(int(lv), np.nan) for lv in level], dtype=np.float64)


def _avg_cost(cases: pa.Table, catalogue, policy, level: np.ndarray) -> np.ndarray:
    """Comparison average A (§3.2): ``dip_avg_cost`` if given, else the catalogue's avg_cost; × level factor."""
    if "dip_avg_cost" in cases.column_names:
        a = numbers(cases, "dip_avg_cost")
    elif catalogue is not None:
        cat = catalogue.table
        idx = lookup(strings(cases, "dip_group"), cat.column("dip_code"))
        avg = cat.column("avg_cost").to_numpy(zero_copy_only=False).astype(np.float64)
        a = np.where(idx >= 0, avg[np.maximum(idx, 0)], np.nan)
    else:
        raise ValueError("no comparison average: give a dip_avg_cost column or a catalogue")
    d = policy.deviation
    factor = np.array([1.0, d.avg_cost_level_1, d.avg_cost_level_2, d.avg_cost_level_3])
    return a * factor[np.clip(level, 0, 3)]


def _pool_of(ins: pa.Array, pools: tuple[str, ...]) -> np.ndarray:
    """Pool index per case (−1 = no pool: self-pay or unknown 险种)."""
    ok = isin(ins, ["employee", "resident"])
    if pools == ("all",):
        return np.where(ok, 0, -1)
    is_res = isin(ins, ["resident"])
    return np.where(ok, np.where(is_res, pools.index("resident"), pools.index("employee")), -1)


def _fmt_value(v: Fraction) -> str:
    """A point value as a decimal string with 10 places (exact fraction kept alongside)."""
    q = round_fen(v * 10**8)  # 10 decimals, half-up
    sign = "-" if q < 0 else ""
    s = f"{abs(q):011d}"
    return f"{sign}{s[:-10]}.{s[-10:]}"


def settle(
    cases: pa.Table,
    hospitals: pa.Table,
    policy,
    *,
    catalogue=None,
    weights: pa.Table | None = None,
    history: dict | None = None,
    special_cases: Sequence[str] = (),
) -> Settlement:
    """Settle a region's year (区域点数法总额预算结算): route, points, point values, hospital payments.

    Parameters
    ----------
    cases : pa.Table
        Grouped discharges: canonical columns (``case_id``, ``hospital_id``, ``insurance_type``, ``los_days``,
        ``discharge_date``, ``total_cost``, ``fund_paid``, ``patient_paid``, …) plus, for DIP, ``dip_group``,
        ``dip_kind``, ``dip_score``, ``aux_coef`` (``dip_avg_cost`` optional) or, for DRG, ``drg``.
    hospitals : pa.Table
        ``hospital_id``, ``name``, ``level`` (1/2/3); optional ``coefficient``, ``assessment_coef``,
        ``audit_deduction`` (yuan).
    policy : Policy
    catalogue : grouper.dip.catalogue.Catalogue, optional
        Source of A when the cases carry no ``dip_avg_cost``.
    weights : pa.Table, optional
        DRG weights (``drg``, ``rw``), required for a DRG policy.
    history : dict, optional
        ``{"pools": {pool: (costs[3], points[3])}, "hospitals": {pool: (costs, points, own_costs | None)},
        "level_coefficients": {level: k}}`` as read by the CLI from ``--history``.
    special_cases : sequence of str
        case_ids declared for 特例单议, in review-priority order; approved up to the region-wide cap.

    Returns
    -------
    Settlement
    """
    n = cases.num_rows
    history = history or {}
    hosp_ids = pc.cast(hospitals.column("hospital_id"), pa.string()).combine_chunks()
    if pc.count_distinct(hosp_ids).as_py() != len(hosp_ids):
        raise ValueError("hospitals table: hospital_id is not unique")
    h_level = numbers(hospitals, "level", 0).astype(np.int64)
    bad = ~np.isin(h_level, (1, 2, 3))
    if bad.any():
        raise ValueError(
            f"hospitals table: level must be 1, 2 or 3 (hospital {hosp_ids[int(np.argmax(bad))]})"
        )
    h_coef = _hospital_coefs(hospitals, h_level, policy, history)
    hidx = lookup(strings(cases, "hospital_id"), hosp_ids)
    known = hidx >= 0
    hsafe = np.maximum(hidx, 0)
    level = np.where(known, h_level[hsafe], 0)
    k = np.where(known, h_coef[hsafe], np.nan)

    pools = policy.pools
    pool = _pool_of(strings(cases, "insurance_type"), pools)
    cost = numbers(cases, "total_cost", 0.0)
    fund_paid = numbers(cases, "fund_paid", 0.0)
    patient_paid = numbers(cases, "patient_paid", 0.0)
    los = numbers(cases, "los_days", 0.0).astype(np.int64)

    # base points (S or RW × scale) and whether the case has a payable group
    if policy.scheme == "dip":
        score = numbers(cases, "dip_score")
        aux = numbers(cases, "aux_coef", 1.0)
        kind = strings(cases, "dip_kind")
        grouped = np.isfinite(score) & (score > 0)
        status = strings(cases, "dip_status")
        grouped &= ~isin(status, [s.name for s in DipStatus if s.is_error])
        base = np.where(grouped, score, 0.0)
    else:
        if weights is None:
            raise ValueError("a DRG policy needs a weights table (drg, rw)")
        drg = strings(cases, "drg")
        widx = lookup(drg, weights.column("drg").combine_chunks())
        rw_table = pc.cast(weights.column("rw"), pa.float64()).to_numpy(zero_copy_only=False)
        rw = np.where(widx >= 0, rw_table[np.maximum(widx, 0)], np.nan)
        grouped = np.isfinite(rw) & (rw > 0)
        status = strings(cases, "drg_status")
        grouped &= ~isin(status, [s.name for s in Status if s.is_error])
        base = np.where(grouped, rw * policy.scores.score_scale, 0.0)

    duplicate = isin(status, ["DUPLICATE_CASE"])
    routing = route_cases(cases, policy, level.astype(np.int8), grouped, pool >= 0, duplicate)
    route = routing.route
    scheme_route = Route.DIP if policy.scheme == "dip" else Route.DRG
    in_scheme = route == scheme_route

    # case points
    kk = np.nan_to_num(k, nan=0.0)
    if policy.scheme == "dip":
        prof = DeviationProfile.from_policy(policy.deviation)
        avg = _avg_cost(cases, catalogue, policy, level)
        group = strings(cases, "dip_group")
        primary = isin(group, policy.primary_care.groups)  # 基层病种: the 基层 factor in place of k
        tcm = isin(group, policy.tcm.groups)  # 中医优势病种: own factor, no deviation unless the policy says
        k_case = np.where(primary, policy.primary_care.factor, kk)
        if policy.deviation.profile == "taian":  # 泰安's normal coefficient per 险种 replaces k
            tk = np.array([policy.point_value[p].normal_coef for p in pools] + [0.0])
            k_case = tk[pool]
        unmatched = isin(kind, ["blank", "placeholder"])
        pts, dev = dip_points(
            base,
            k_case,
            aux,
            cost,
            avg,
            prof,
            unmatched=unmatched,
            no_deviation=tcm & (not policy.tcm.deviation),
        )
        pts = np.where(tcm, pts * policy.tcm.factor, pts)
        aux_out = aux
    else:
        rule = DrgRule.from_policy(policy)
        rw0 = np.nan_to_num(rw, nan=0.0)
        pts, dev = drg_points(rw0, kk, cost, rule)
        k_case, aux_out = kk, np.ones(n)
    points = np.where(in_scheme, pts, 0.0)
    deviation = np.where(in_scheme, dev, np.int8(0)).astype(np.int8)

    # budget point values per pool (given, history 1:2:7, or the 优值区间 of hospital history)
    v_budget = [_budget_value(policy, p, history) for p in pools]
    vb_pub = [publish(v, policy.point_value.decimals) for v in v_budget]
    vb_case = np.array([float(v) for v in vb_pub] + [0.0])[pool]

    # 特例单议: declared cases costing over eligible_ratio × the standard, capped region-wide
    special = np.zeros(n, dtype=bool)
    sc = policy.special_case
    cap_rate = sc.cap_rate if sc.cap_rate is not None else (0.005 if policy.scheme == "dip" else 0.05)
    cap = special_case_cap(int(in_scheme.sum()), cap_rate)
    n_declared = len(special_cases)
    if n_declared:
        pos = lookup(pa.array(list(special_cases), pa.string()), strings(cases, "case_id"))
        pos = pos[pos >= 0]
        _, first = np.unique(pos, return_index=True)
        pos = pos[np.sort(first)]
        standard = base * k_case * (aux_out if policy.scheme == "dip" else 1.0) * vb_case
        ok = in_scheme[pos] & compare(cost[pos], sc.eligible_ratio * standard[pos], sc.eligible_op)
        approved = pos[ok][:cap]
        special[approved] = True
        # approved → paid at the actual cost, converted to points at the budget point value
        points[approved] = cost[approved] / vb_case[approved]

    # bed-day and per-case standard amounts
    standard_amount = np.zeros(n)
    is_bd = route == Route.BED_DAY
    if is_bd.any():
        bd = policy.bed_day
        rates = np.array(
            [[0.0, c["rate_level_1"], c["rate_level_2"], c["rate_level_3"]] for c in bd.categories]
        )
        cat = routing.bed_day_category
        sel = np.flatnonzero(is_bd)
        rate = np.zeros(n)
        rate[sel] = rates[cat[sel], np.clip(level[sel], 0, 3)]
        who = "patient_id" if "patient_id" in cases.column_names else "case_id"
        patient_np = to_str_numpy(strings(cases, who).take(pa.array(sel)))
        prior = None
        if bd.readmit_merge_days and {"admission_date", "discharge_date"} <= set(cases.column_names):
            adm = _days(cases, "admission_date")[sel]
            dis = _days(cases, "discharge_date")[sel]
            prior = merged_prior_days(patient_np, cat[sel], adm, dis, los[sel], bd.readmit_merge_days)
        standard_amount[sel] = bed_day_amounts(
            los[sel],
            rate[sel],
            bd.bands or [{"from": 1, "to": None, "factor": 1.0}],
            prior_days=prior,
            max_days=bd.max_days,
            patient=patient_np,
            annual_cap=bd.annual_cap,
        )
    is_pc = route == Route.PER_CASE
    np.copyto(standard_amount, routing.per_case_price, where=is_pc)
    unified = np.full(n, policy.budget.design == "unified")
    fallback = is_bd | is_pc
    if policy.budget.design == "unified":
        points[fallback] = standard_amount[fallback] / vb_case[fallback]

    # pools: distributable money, settlement point value, hospital shares
    n_h = hospitals.num_rows
    pooled_pts = in_scheme | (fallback & unified)
    region_pools = {}
    h_alloc = [0] * n_h
    h_std = [Fraction(0)] * n_h
    n_pool = len(pools)
    # one slot per hospital × pool (last slot: cases outside every pool); float sums in a fixed order
    slot = np.where(pooled_pts, hidx * n_pool + np.maximum(pool, 0), n_h * n_pool)

    def per_slot(w: np.ndarray) -> np.ndarray:
        return np.bincount(slot, weights=w, minlength=n_h * n_pool + 1)[:-1].reshape(n_h, n_pool)

    hp_all, hpat_all = per_slot(points), per_slot(patient_paid)
    hcost_all, hfund_all = per_slot(cost), per_slot(fund_paid)
    v_pool = np.zeros(n_pool + 1)
    r_pool = np.zeros(n_pool + 1)
    for pi, p in enumerate(pools):
        bud = policy.budget[p]
        casc = budget_cascade(bud, method=policy.budget.method, design=policy.budget.design)
        hp, hpat, hcost, hfund = hp_all[:, pi], hpat_all[:, pi], hcost_all[:, pi], hfund_all[:, pi]
        P = sum((Fraction(float(x)) for x in hp), Fraction(0))
        pat_total = sum((Fraction(float(x)) for x in hpat), Fraction(0))
        cost_total = sum((Fraction(float(x)) for x in hcost), Fraction(0))
        fund_total = sum((Fraction(float(x)) for x in hfund), Fraction(0))
        r = fund_total / cost_total if cost_total else Fraction(1)
        form, regime = policy.point_value.form, policy.point_value.regime
        D = casc.distributable
        kept = Fraction(0)
        elastic = None
        if P == 0:
            v = Fraction(0)
        elif regime == "floating":
            v = D / r / P if form == "ratio" else (D + pat_total) / P
        elif regime == "fixed":
            v = exact(policy.point_value[p].fixed)
        else:
            budget_cost_terms = D / r if form == "ratio" else D + pat_total
            elastic = elastic_point_value(
                budget_cost_terms,
                policy.point_value.elastic_split,
                policy.point_value[p].fixed,
                P,
                cap=policy.point_value.elastic_cap,
            )
            v = elastic.blended_value
        v_pub = publish(v, policy.point_value.decimals)
        v_pool[pi], r_pool[pi] = float(v_pub), float(r)
        hr = [Fraction(float(f)) / Fraction(float(c)) if c else r for f, c in zip(hfund, hcost, strict=True)]
        gross, alloc = hospital_shares(
            [Fraction(float(x)) for x in hp],
            v_pub,
            r,
            keys=hosp_ids.to_pylist(),
            form=form,
            scope=policy.point_value.fund_ratio_scope,
            patient=[Fraction(float(x)) for x in hpat],
            hospital_ratio=hr,
        )
        for i in range(n_h):
            h_alloc[i] += alloc[i]
            h_std[i] += gross[i]
        if regime == "elastic":
            kept = elastic.kept * (r if form == "ratio" else 1)
        region_pools[p] = {
            "cascade": {
                k2: (fen_to_yuan(round_fen(v2)) if isinstance(v2, Fraction) else v2)
                for k2, v2 in casc.as_dict().items()
            },
            "regime": regime,
            "form": form,
            "fund_ratio": _fmt_value(r),
            "total_points": _fmt_value(P),
            "patient_paid": fen_to_yuan(round_fen(pat_total)),
            "budget_point_value": _fmt_value(v_budget[pi]),
            "budget_point_value_published": _fmt_value(vb_pub[pi]),
            "settlement_point_value": _fmt_value(v),
            "settlement_point_value_exact": f"{v.numerator}/{v.denominator}",
            "settlement_point_value_published": _fmt_value(v_pub),
            "allocated": fen_to_yuan(sum(alloc)),
            "kept_by_fund": fen_to_yuan(round_fen(kept)),
            "elastic_increment_value": None if elastic is None else _fmt_value(elastic.increment_value),
        }

    # per-case money (informational; hospital totals above are exact)
    point_value = v_pool[pool]
    carve = fallback & ~unified
    pc_ratio = np.array([it["fund_ratio"] for it in policy.per_case.entries] + [0.0])[routing.per_case_item]
    kind = np.select(
        [pooled_pts, carve & is_pc, carve & is_bd, route == Route.FEE_FOR_SERVICE], [1, 2, 3, 4], 0
    ).astype(np.int8)
    std_fen, fund_fen = _case_money(
        kind, points, point_value, r_pool[pool], standard_amount, pc_ratio, cost, fund_paid, patient_paid,
        policy.point_value.form == "subtraction",
    )  # fmt: skip

    # monthly pre-settlement per hospital × pool × month at the budget point value
    month = _months(cases)
    st = policy.settlement
    prepaid = [0] * n_h
    prepay = exact(st.prepay_ratio)
    if pooled_pts.any():
        key = slot * 13 + month  # the outside slot's months land past the end and are dropped
        size = n_h * n_pool * 13
        count = np.bincount(key, minlength=size + 13)[:size]
        mp = np.bincount(key, weights=points, minlength=size + 13)[:size]
        mpat = np.bincount(key, weights=patient_paid, minlength=size + 13)[:size]
        for j in np.flatnonzero(count):
            h, pi = divmod(int(j) // 13, len(pools))
            # V is in total-cost terms, so points × V − patient payments is the fund's part in either form
            value = _month_value(policy.point_value[pools[pi]].monthly, int(j) % 13, vb_pub[pi])
            prepaid[h] += _monthly_fen(float(mp[j]), value, float(mpat[j]), prepay)

    # annual clearing per hospital
    assess = numbers(hospitals, "assessment_coef", 1.0)
    deduct = numbers(hospitals, "audit_deduction", 0.0)
    billed = hcost_all.sum(axis=1)
    rows = {
        k2: []
        for k2 in (
            "hospital_id",
            "name",
            "level",
            "points",
            "standard_amount",
            "billed",
            "allocated",
            "assessment_coef",
            "audit_deduction",
            "surplus_or_overspend",
            "band_adjustment",
            "payment_due",
            "prepaid",
            "clearing",
            "bed_day_fund",
            "per_case_fund",
            "fee_for_service_fund",
            "cases",
        )
    }
    pts_h = hp_all.sum(axis=1)
    n_cases_h = np.bincount(np.where(known, hidx, n_h), minlength=n_h + 1)[:-1]
    by_route = np.where(known & ~pooled_pts, hidx * 8 + route, n_h * 8)
    fund_by_route = np.bincount(by_route, weights=fund_fen, minlength=n_h * 8 + 1)[:-1].reshape(n_h, 8)
    fb = {r_: fund_by_route[:, int(r_)] for r_ in (Route.BED_DAY, Route.PER_CASE, Route.FEE_FOR_SERVICE)}
    names = strings(hospitals, "name").to_pylist()
    totals = {"allocated": 0, "payment_due": 0, "prepaid": 0, "clearing": 0}
    for i in range(n_h):
        a_fen = h_alloc[i]
        gap, adj = band_adjustment(
            h_std[i], Fraction(float(billed[i])), st.surplus_bands, st.overspend_bands, st.band_mode
        )
        due, clearing = clearing_payment(a_fen, float(assess[i]), float(deduct[i]), adj, prepaid[i])
        for k2, v2 in (
            ("allocated", a_fen),
            ("payment_due", due),
            ("prepaid", prepaid[i]),
            ("clearing", clearing),
        ):
            totals[k2] += v2
        rows["hospital_id"].append(hosp_ids[i].as_py())
        rows["name"].append(names[i] or "")
        rows["level"].append(int(h_level[i]))
        rows["points"].append(_fmt_value(Fraction(float(pts_h[i]))))
        rows["standard_amount"].append(fen_to_yuan(round_fen(h_std[i])))
        rows["billed"].append(fen_to_yuan(round_fen(Fraction(float(billed[i])))))
        rows["allocated"].append(fen_to_yuan(a_fen))
        rows["assessment_coef"].append(repr(float(assess[i])))
        rows["audit_deduction"].append(fen_to_yuan(round_fen(exact(float(deduct[i])))))
        rows["surplus_or_overspend"].append(fen_to_yuan(round_fen(gap)))
        rows["band_adjustment"].append(fen_to_yuan(round_fen(adj)))
        rows["payment_due"].append(fen_to_yuan(due))
        rows["prepaid"].append(fen_to_yuan(prepaid[i]))
        rows["clearing"].append(fen_to_yuan(clearing))
        for r_, col in (
            (Route.BED_DAY, "bed_day_fund"),
            (Route.PER_CASE, "per_case_fund"),
            (Route.FEE_FOR_SERVICE, "fee_for_service_fund"),
        ):
            rows[col].append(fen_to_yuan(int(fb[r_][i])))
        rows["cases"].append(int(n_cases_h[i]))
    hosp_table = pa.table(rows)

    # per-case table
    case_table = pa.table(
        {
            "case_id": cases.column("case_id"),
            "hospital_id": cases.column("hospital_id"),
            "insurance_type": strings(cases, "insurance_type"),
            "route": pa.DictionaryArray.from_arrays(
                pa.array(route.astype(np.int8) - 1), pa.array([r_.name for r_ in Route])
            ),
            "route_reason": pa.DictionaryArray.from_arrays(pa.array(routing.reason), pa.array(list(REASONS))),
            "deviation": pa.DictionaryArray.from_arrays(pa.array(deviation), pa.array(_DEV_NAMES)),
            "special_case": pa.array(special),
            "base_points": pa.array(np.where(in_scheme, base, 0.0)),
            "hospital_coef": pa.array(np.asarray(k_case, dtype=np.float64), mask=~in_scheme),
            "aux_coef": pa.array(np.asarray(aux_out, dtype=np.float64), mask=~in_scheme),
            "points": pa.array(points),
            "point_value": pa.array(point_value, mask=~pooled_pts),
            "standard_payment": pa.array(std_fen / 100.0),
            "fund_payment": pa.array(fund_fen / 100.0),
        }
    )

    # region summary
    counts = np.bincount(route.astype(np.int64), minlength=7)
    paid_all = np.sum(cost, where=route != Route.EXCLUDED)
    scheme_cost = np.sum(cost, where=in_scheme)
    fund_spent = totals["payment_due"] + int(sum(int(v.sum()) for v in fb.values()))
    last = sum(
        (
            exact(policy.budget[p].last_year_fund_spent)
            for p in pools
            if policy.budget[p].last_year_fund_spent
        ),
        Fraction(0),
    )
    growth = (Fraction(fund_spent, 100) / last - 1) if last else None
    warnings = []
    if growth is not None and st.spend_growth_cap is not None and growth > exact(st.spend_growth_cap):
        warnings.append(f"fund spend growth {float(growth):.4f} exceeds the cap {st.spend_growth_cap}")
    method_share = scheme_cost / paid_all if paid_all else None
    if (
        method_share is not None
        and st.method_share_target is not None
        and method_share < st.method_share_target
    ):
        warnings.append(
            f"share of inpatient cost paid by {policy.scheme.upper()} {method_share:.4f} is below "
            f"the target {st.method_share_target}"
        )
    region = {
        "region": policy.header["region"],
        "year": policy.header["year"],
        "scheme": policy.scheme,
        "policy_sha256": policy.sha256,
        "catalogue_fingerprint": getattr(catalogue, "fingerprint", None),
        "cases": n,
        "routes": {r_.name: int(counts[int(r_)]) for r_ in Route},
        "special_cases": {"declared": n_declared, "cap": cap, "approved": int(special.sum())},
        "pools": region_pools,
        "totals": {k2: fen_to_yuan(v2) for k2, v2 in totals.items()},
        "fund_spent": fen_to_yuan(fund_spent),
        "method_share": None if method_share is None else round(float(method_share), 6),
        "fund_spend_growth": None if growth is None else round(float(growth), 6),
        "assumptions": policy.assumptions(),
        "warnings": warnings,
    }
    return Settlement(case_table, hosp_table, region)


def _budget_value(policy, pool: str, history: dict) -> Fraction:
    method = policy.point_value.budget_method
    if method == "given":
        if policy.point_value[pool].budget is None:
            raise ValueError(f"point_value.{pool}.budget: no budget point value")
        return exact(policy.point_value[pool].budget)
    if method == "history":
        if pool not in history.get("pools", {}):
            raise ValueError(f"budget_method 'history' needs three years of pool {pool!r} (region_years.csv)")
        costs, pts = history["pools"][pool]
        return budget_point_value(costs, pts, policy.point_value.year_weights)
    if pool not in history.get("hospitals", {}):
        raise ValueError(
            f"budget_method {method!r} needs hospital history of pool {pool!r} (hospital_years.csv)"
        )
    costs, pts, own = history["hospitals"][pool]
    if method == "efficient_1d":
        return efficient_point_value_1d(costs, pts)
    if own is None:
        raise ValueError("budget_method 'efficient_2d' needs total_own_cost in hospital_years.csv")
    c, q, o = (np.asarray(x, dtype=np.float64) for x in (costs, pts, own))
    v = efficient_point_value_2d(c / q, o / q, c.sum() / q.sum(), o.sum() / q.sum())
    return exact(v)


def _month_value(series, month: int, fallback: Fraction) -> Fraction:
    """The month's published point value: the latest dated entry at or before the month, else the fallback."""
    value = fallback
    for d, v in series:
        if d.month <= month:
            value = exact(v)
    return value


@njit(cache=True)
def _case_money(kind, points, value, ratio, standard, pc_ratio, cost, fund_paid, patient, subtraction):
    """Per-case standard and fund payments in fen (kind: 1 pooled points, 2 per-case price, 3 bed-day
    standard, 4 fee-for-service, 0 nothing); one half-up rounding each (money.fen_half_up)."""
    n = kind.shape[0]
    std = np.zeros(n, dtype=np.int64)
    fund = np.zeros(n, dtype=np.int64)
    for i in range(n):
        k = kind[i]
        if k == 1:
            std[i] = _fen(points[i] * value[i])
            fund[i] = std[i] - _fen(patient[i]) if subtraction else _fen(std[i] / 100.0 * ratio[i])
        elif k == 2:
            std[i] = _fen(standard[i])
            fund[i] = _fen(standard[i] * pc_ratio[i])
        elif k == 3:
            std[i] = _fen(standard[i])
            fund[i] = _fen(standard[i] * ratio[i])
        elif k == 4:
            std[i] = _fen(cost[i])
            fund[i] = _fen(fund_paid[i])
    return std, fund


@njit(cache=True, inline="always")
def _fen(yuan):
    f = yuan * 100.0
    a = np.floor(abs(f) + 0.5 + TIE_FEN)
    return np.int64(a if f >= 0 else -a)


def _monthly_fen(points: float, value: Fraction, patient: float, ratio: Fraction) -> int:
    """``round_fen(monthly_presettlement(points, value, patient, ratio))`` in plain integer arithmetic."""
    pn, pd = points.as_integer_ratio()
    an, ad = patient.as_integer_ratio()
    num = (pn * value.numerator * ad - an * pd * value.denominator) * ratio.numerator * 100
    den = pd * value.denominator * ad * ratio.denominator
    q = (2 * abs(num) + den) // (2 * den)
    return q if num >= 0 else -q


def _days(table: pa.Table, name: str) -> np.ndarray:
    col = pc.cast(table.column(name), pa.date32()).combine_chunks()
    return pc.fill_null(pc.cast(col, pa.int32()), 0).to_numpy(zero_copy_only=False).astype(np.int64)


def _months(table: pa.Table) -> np.ndarray:
    """Month 1–12 of the discharge date (0 when missing)."""
    if "discharge_date" not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64)
    col = pc.cast(table.column("discharge_date"), pa.date32())
    return pc.fill_null(pc.month(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
