"""Clearing formulas (清算公式): monthly pre-settlement, 结余留用/超支分担 bands, hospital shares, annual clearing.

docs/formulas.md §6–§8. Pure functions on exact numbers (fractions, fen); the settlement engine
(:mod:`payment.settle`) applies them per hospital.
"""

from __future__ import annotations

from fractions import Fraction

from payment.bands import Bands
from payment.money import exact, largest_remainder, round_fen

__all__ = ["band_adjustment", "clearing_payment", "hospital_shares", "monthly_presettlement"]


def monthly_presettlement(points, point_value, patient_paid, prepay_ratio, deduction=0) -> Fraction:
    """医疗机构月度预结费用 = (月度总分值 × 该月点值 − 该月患者支付总额) × 预拨比例 − 该月审核扣款.

    docs/formulas.md §6, vector M-1: (100,000 × 10.5 − 300,000) × 0.9 − 5,000 = 670,000.

    Examples
    --------
    >>> monthly_presettlement(100_000, 10.5, 300_000, 0.9, 5_000)
    Fraction(670000, 1)
    """
    gross = exact(points) * exact(point_value) - exact(patient_paid)
    return gross * exact(prepay_ratio) - exact(deduction)


def band_adjustment(due, billed, surplus_bands: Bands, overspend_bands: Bands, mode: str = "progressive"):
    """结余留用 / 合理超支分担: money added to (+) or recovered from (−) a hospital's payment.

    ``rate = due / billed`` (DIP 应支付额 / 项目记账金额). A surplus slice is kept at its band's ``retain``
    share (the rest is recovered); an overspend slice is covered at its band's ``fund_share``
    (:class:`~payment.bands.Bands`, half-open ``[from, to)``); ``progressive`` prices each slice at its own band, ``whole`` prices the whole
    gap at the band of the final rate. A slice outside every band keeps the surplus and bears the overspend.
    docs/formulas.md §8, vector S-1.

    Returns
    -------
    (gap, adjustment) : Fraction, Fraction   gap = due − billed (surplus > 0, overspend < 0)

    Examples
    --------
    >>> sb = Bands.from_rows([{"from": 1.0, "to": 1.1, "retain": 1.0}, {"from": 1.1, "retain": 0.5}], "retain")
    >>> ob = [{"from": 0.9, "to": 1.0, "fund_share": 0.5}, {"from": 0.0, "to": 0.9, "fund_share": 0.0}]
    >>> ob = Bands.from_rows(ob, "fund_share")
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
    lo, hi = (Fraction(1), rate) if surplus else (rate, Fraction(1))
    if mode == "whole":
        share = bands.value_at(rate)
        if share is None:  # outside every band: the hospital keeps the surplus and bears the overspend
            share = Fraction(1 if surplus else 0)
        covered = (hi - lo) * share  # Σ slice × share, in rate units
    else:
        covered, width = bands.integral(lo, hi)
        if surplus:
            covered += (hi - lo) - width  # slices outside every band are kept
    if surplus:
        return gap, -(gap - covered * billed)
    return gap, covered * billed


def hospital_shares(
    points, point_value, fund_ratio, *, keys, form="ratio", scope="region", patient=None, hospital_ratio=None
):
    """Hospital standard amounts and fund amounts (fen) of one pool; docs/formulas.md §7, vectors C-1 and C-2.

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
    clearing = due − prepaid; both in fen, rounded once. docs/formulas.md §7.1/§7.5, vector C-3.

    Examples
    --------
    >>> clearing_payment(5882352941, 0.98, 120_000, 0, 5_200_000_000)
    (5752705882, 552705882)
    """
    due = round_fen(
        Fraction(allocated_fen, 100) * exact(assessment_coef) - exact(audit_deduction) + exact(band_adjust)
    )
    return due, due - prepaid_fen
