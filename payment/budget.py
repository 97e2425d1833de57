"""Regional budget (区域总额预算) and point values (点值): carve-outs, budget and settlement point values, regimes.

docs/formulas.md §1 (cascade, B-1), §2 (point values V-1…V-6), §4 (hospital coefficients K-1) and §12
(carve-out vs unified points, F-1). Money and point values are exact :class:`~fractions.Fraction` s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from payment.money import exact

__all__ = [
    "Cascade",
    "Elastic",
    "budget_cascade",
    "budget_point_value",
    "efficient_point_value_1d",
    "efficient_point_value_2d",
    "elastic_point_value",
    "group_coefficients",
    "level_coefficients",
    "percentile_keep",
    "ratio_point_value",
    "subtraction_point_value",
    "trimmed_budget_point_value",
    "trimmed_point_value",
    "trimmed_totals",
]


@dataclass(frozen=True)
class Cascade:
    """The budget cascade of one pool: every step in exact yuan."""

    method: str
    design: str
    inpatient_fund: Fraction
    reserve: Fraction
    out_of_area: Fraction
    bed_day: Fraction
    per_case: Fraction
    fee_for_service: Fraction
    other: Fraction
    distributable: (
        Fraction  #: the money the point value shares out (DIP/DRG, or all pooled routes if unified)
    )

    def as_dict(self) -> dict[str, Fraction | str]:
        return dict(self.__dict__)


def budget_cascade(pool: Mapping, *, method: str = "items", design: str = "carve_out") -> Cascade:
    """Carve the scheme's money out of the inpatient fund budget (DIP/DRG 付费总额).

    Parameters
    ----------
    pool : mapping
        A ``[budget.<pool>]`` section: ``inpatient_fund``, ``reserve_share``, ``out_of_area``, ``bed_day``,
        ``per_case``, ``fee_for_service``, ``other``, and ``last_year_share`` / ``last_year_total`` + ``growth``.
    method : {"items", "share", "growth"}
        按支出项目分配, 按比例分配, 按增长率 (docs/formulas.md §1).
    design : {"carve_out", "unified"}
        ``unified`` (统一点数口径, §12) keeps bed-day and per-case money in the pool; they are paid by points.

    Examples
    --------
    >>> pool = dict(inpatient_fund=120e6, reserve_share=0.05, out_of_area=4e6, bed_day=8e6, per_case=2e6,
    ...             fee_for_service=0, other=0)
    >>> int(budget_cascade(pool).distributable)
    100000000
    """
    g = {k: exact(pool.get(k) or 0) for k in ("inpatient_fund", "out_of_area", "bed_day", "per_case")}
    g |= {k: exact(pool.get(k) or 0) for k in ("fee_for_service", "other")}
    reserve = g["inpatient_fund"] * exact(pool.get("reserve_share") or 0)
    if method == "share":
        dist = exact(pool["last_year_share"]) * g["inpatient_fund"]
    elif method == "growth":
        dist = exact(pool["last_year_total"]) * (1 + exact(pool["growth"]))
    else:
        dist = g["inpatient_fund"] - reserve - g["out_of_area"] - g["fee_for_service"] - g["other"]
        if design == "carve_out":
            dist -= g["bed_day"] + g["per_case"]
    return Cascade(
        method,
        design,
        g["inpatient_fund"],
        reserve,
        g["out_of_area"],
        g["bed_day"],
        g["per_case"],
        g["fee_for_service"],
        g["other"],
        dist,
    )


def budget_point_value(costs: Sequence, points: Sequence, weights: Sequence = (0.1, 0.2, 0.7)) -> Fraction:
    """Budget point value (预算/年初点值) = Σ w·住院总费用 / Σ w·总分值 over three years (1:2:7).

    docs/formulas.md §2.1, vector V-1: costs 900/960/1,000 M, points 90/94/96 M → 982/95 = 10.3368…

    Examples
    --------
    >>> budget_point_value([900, 960, 1000], [90, 94, 96])
    Fraction(982, 95)
    """
    w = [exact(x) for x in weights]
    num = sum((wi * exact(c) for wi, c in zip(w, costs, strict=True)), Fraction(0))
    den = sum((wi * exact(p) for wi, p in zip(w, points, strict=True)), Fraction(0))
    return num / den


def ratio_point_value(fund, fund_ratio, total_points) -> Fraction:
    """Settlement point value, ratio form (结算点值): (fund / r) / total points. §2.2, V-2 = 75/7.

    Examples
    --------
    >>> ratio_point_value(600_000_000, 0.7, 80_000_000)
    Fraction(75, 7)
    """
    return exact(fund) / exact(fund_ratio) / exact(total_points)


def subtraction_point_value(fund, patient_burden, total_points) -> Fraction:
    """Settlement point value, subtraction form: (fund + 个人负担) / total points. §2.3, C-2.

    Examples
    --------
    >>> float(subtraction_point_value(100_000_000, 42_000_000, 8_500_000))
    16.705882352941178
    """
    return (exact(fund) + exact(patient_burden)) / exact(total_points)


@dataclass(frozen=True)
class Elastic:
    """Elastic regime (弹性点值) result, docs/formulas.md §2.5."""

    base_total: Fraction
    increment_total: Fraction
    base_points: Fraction
    increment_points: Fraction
    increment_value: Fraction  #: V_increment after the cap
    paid: Fraction  #: total money paid out
    kept: Fraction  #: money not paid under the cap, kept by the fund
    blended_value: Fraction  #: paid / actual points


def elastic_point_value(budget, split, fixed_value, actual_points, *, cap: bool = True) -> Elastic:
    """Elastic point value: base total at a fixed V, increment total at a floating V capped at V_fixed.

    Recommended reading (volume split): base points = base total / V_fixed; increment points = actual − base;
    V_inc = increment total / increment points, capped at V_fixed; money left under the cap stays in the fund.
    Vector V-4: 100 M split 0.8, V_fixed 10; 11 M points → V_inc 6.6667, paid 100 M; 9 M points → V_inc capped
    at 10, 10 M kept.

    Examples
    --------
    >>> e = elastic_point_value(100_000_000, 0.8, 10, 9_000_000)
    >>> e.increment_value, e.kept
    (Fraction(10, 1), Fraction(10000000, 1))
    """
    budget, split, vf, pts = exact(budget), exact(split), exact(fixed_value), exact(actual_points)
    base_total = budget * split
    inc_total = budget - base_total
    base_points = base_total / vf
    if pts <= base_points:  # no increment volume: only the points earned are paid, at V_fixed
        paid = pts * vf
        return Elastic(
            base_total,
            inc_total,
            base_points,
            Fraction(0),
            vf,
            paid,
            budget - paid,
            vf if pts else Fraction(0),
        )
    inc_points = pts - base_points
    v_inc = inc_total / inc_points
    if cap and v_inc > vf:
        v_inc = vf
    paid = base_total + inc_points * v_inc
    return Elastic(base_total, inc_total, base_points, inc_points, v_inc, paid, budget - paid, paid / pts)


def efficient_point_value_1d(costs: Sequence, points: Sequence) -> Fraction:
    """优值区间, one-dimensional: hospitals below the regional 每指数点值 mean; their cost / their points.

    docs/formulas.md §2.6, vector V-5 → 33 M / 3.5 M = 9.4286.

    Examples
    --------
    >>> efficient_point_value_1d([52e6, 24e6, 9e6], [5e6, 2.5e6, 1e6])
    Fraction(66, 7)
    """
    c, p = [exact(x) for x in costs], [exact(x) for x in points]
    mean = sum(c) / sum(p)
    keep = [i for i in range(len(c)) if p[i] > 0 and c[i] / p[i] < mean]
    return sum(c[i] for i in keep) / sum(p[i] for i in keep)


def efficient_point_value_2d(
    revenue: Sequence[float],
    cost: Sequence[float],
    mean_revenue: float,
    mean_cost: float,
    *,
    tol: float = 1e-10,
) -> float:
    """优值区间, two-dimensional: geometric median of the low-revenue, low-cost, revenue ≥ cost quadrant.

    ``revenue`` = 每指数点值, ``cost`` = 每指数成本 per hospital; ``mean_*`` the regional values (total / points).
    Returns the revenue coordinate of the geometric median (Weiszfeld; two points → their midpoint).
    docs/formulas.md §2.6, vector V-6 → 9.4.

    Examples
    --------
    >>> round(efficient_point_value_2d([9.0, 9.4, 9.8, 10.8], [8.5, 8.9, 9.3, 11.3], 10.0, 9.5), 6)
    9.4
    """
    r, c = np.asarray(revenue, float), np.asarray(cost, float)
    keep = (r < mean_revenue) & (c < mean_cost) & (r >= c)
    pts = np.column_stack([r[keep], c[keep]])
    if len(pts) == 0:
        raise ValueError("no hospital in the efficient quadrant")
    if len(pts) <= 2:
        return float(pts[:, 0].mean())
    y = pts.mean(axis=0)
    for _ in range(10_000):
        d = np.linalg.norm(pts - y, axis=1)
        if np.any(d < tol):  # the iterate sits on a data point: Weiszfeld's fixed point
            return float(pts[np.argmin(d), 0])
        y_new = (pts / d[:, None]).sum(axis=0) / (1.0 / d).sum()
        if np.linalg.norm(y_new - y) < tol:
            return float(y_new[0])
        y = y_new
    return float(y[0])


def percentile_keep(ratio: np.ndarray, lower, upper) -> np.ndarray:
    """Cases inside the percentile band ``[P_lower, P_upper]`` of ``ratio`` (分位数法), decided exactly.

    Percentiles interpolate linearly between order statistics (NumPy's default) at the exact positions
    ``q · (n − 1)``; a case is kept when ``P_lower ≤ ratio ≤ P_upper``. An interpolated bound lies strictly
    between two neighbouring order statistics, so it is replaced by the nearer one inside the band and no
    float rounding can move a case across it (docs/drg.md §7.1: NumPy's P97.5 may come out a hair low).

    Examples
    --------
    >>> r = np.r_[np.arange(1.0, 40.0), 200.0]          # docs/drg.md §7.1 DRG-RW: P2.5 = 1.975, P97.5 = 43.025
    >>> keep = percentile_keep(r, 0.025, 0.975)
    >>> int(keep.sum()), float(r[keep].min()), float(r[keep].max())
    (38, 2.0, 39.0)
    """
    n = len(ratio)
    if n == 0:
        return np.zeros(0, dtype=bool)
    ordered = np.sort(ratio)
    lo_pos, hi_pos = exact(lower) * (n - 1), exact(upper) * (n - 1)
    lo_k, hi_k = lo_pos.numerator // lo_pos.denominator, hi_pos.numerator // hi_pos.denominator
    lo = ordered[lo_k if lo_pos == lo_k else lo_k + 1]
    return (ratio >= lo) & (ratio <= ordered[hi_k])


def trimmed_totals(cost: np.ndarray, points: np.ndarray, lower, upper) -> tuple[Fraction, Fraction, int]:
    """Σ cost, Σ points and the number of cases kept after trimming ``cost / points`` at the percentiles.

    Sums are correctly rounded (``math.fsum``), so they do not depend on the order of the cases.

    Examples
    --------
    >>> trimmed_totals(np.r_[np.full(38, 10.0), 1.0, 1000.0], np.ones(40), 0.025, 0.975)
    (Fraction(380, 1), Fraction(38, 1), 38)
    """
    cost, points = np.asarray(cost, dtype=np.float64), np.asarray(points, dtype=np.float64)
    keep = percentile_keep(cost / points, lower, upper)
    kept_cost, kept_points = cost[keep], points[keep]
    return Fraction(math.fsum(kept_cost)), Fraction(math.fsum(kept_points)), int(keep.sum())


def trimmed_point_value(cost: np.ndarray, points: np.ndarray, lower=0.025, upper=0.975) -> Fraction:
    """Point value after percentile trimming (分位数法): Σ cost / Σ points over the cases whose C/P lies
    inside ``[P_lower, P_upper]`` (:func:`percentile_keep`). docs/formulas.md §2.6, last paragraph.

    Examples
    --------
    >>> c = np.r_[np.full(38, 10.0), 1.0, 1000.0]
    >>> float(trimmed_point_value(c, np.ones(40)))
    10.0
    """
    c, p, _ = trimmed_totals(cost, points, lower, upper)
    return c / p


def trimmed_budget_point_value(
    cost: np.ndarray, points: np.ndarray, year: np.ndarray, weights: Sequence, lower, upper
) -> tuple[Fraction, list[dict]]:
    """Budget point value (年初点值) from case-level history, trimmed per year, then weighted 1:2:7.

    For each of the three years (oldest first) drop the cases whose C/P lies outside that year's
    ``[P_lower, P_upper]``, total the cost and points of the rest, and apply :func:`budget_point_value`.
    docs/formulas.md §2.1 and §2.6 (last paragraph: "drop cases … before forming cost and points totals").

    Returns
    -------
    (value, years) : Fraction, list of dict   ``years`` = ``{year, cases, kept, total_cost, total_points}``

    Examples
    --------
    >>> y = np.repeat([2022, 2023, 2024], 3)
    >>> c = np.array([9.0, 10, 11, 9, 10, 11, 9, 10, 11])
    >>> trimmed_budget_point_value(c, np.ones(9), y, (0.1, 0.2, 0.7), 0.5, 0.5)[0]
    Fraction(10, 1)
    """
    cost, points, year = np.asarray(cost, np.float64), np.asarray(points, np.float64), np.asarray(year)
    bad = ~(np.isfinite(cost) & (cost >= 0) & np.isfinite(points) & (points > 0))
    if bad.any():
        raise ValueError(f"has {int(bad.sum())} case(s) with a missing or negative cost or points ≤ 0")
    years = np.unique(year)
    if len(years) != 3:
        raise ValueError(
            f"needs exactly three years of cases, got {len(years)} ({', '.join(map(str, years))})"
        )
    costs, pts, info = [], [], []
    for y in years:
        sel = year == y
        c, p, kept = trimmed_totals(cost[sel], points[sel], lower, upper)
        costs.append(c)
        pts.append(p)
        info.append(
            {"year": int(y), "cases": int(sel.sum()), "kept": kept, "total_cost": c, "total_points": p}
        )
    return budget_point_value(costs, pts, weights), info


def level_coefficients(
    level_means: Mapping, city_means: Sequence, weights: Sequence = (0.1, 0.2, 0.7)
) -> dict:
    """Hospital level coefficients (等级系数) = level's 3-year weighted mean cost / the city's. §4, K-1.

    ``level_means`` maps a level to its yearly mean costs (oldest first); ``city_means`` likewise.

    Examples
    --------
    >>> level_coefficients({3: [12600] * 3}, [10500] * 3)
    {3: Fraction(6, 5)}
    """
    w = [exact(x) for x in weights]
    city = sum((wi * exact(m) for wi, m in zip(w, city_means, strict=True)), Fraction(0))
    return {
        lv: sum((wi * exact(m) for wi, m in zip(w, means, strict=True)), Fraction(0)) / city
        for lv, means in level_means.items()
    }


def group_coefficients(level_means: Mapping[int, float], city_mean: float) -> dict | None:
    """Per-group level coefficients (某病种等级系数), or None when levels invert (a lower level costs more).

    docs/formulas.md §4, vector K-1: 三级 15,000, 二级 11,000, 一级 9,000, city 12,500 → 1.2, 0.88, 0.72; with 二级 at
    15,500 (> 三级) → None (fall back to the category coefficient).

    Examples
    --------
    >>> {lv: float(v) for lv, v in group_coefficients({3: 15000, 2: 11000, 1: 9000}, 12500).items()}
    {3: 1.2, 2: 0.88, 1: 0.72}
    >>> group_coefficients({3: 15000, 2: 15500, 1: 9000}, 12500) is None
    True
    """
    levels = sorted(level_means)
    means = [exact(level_means[lv]) for lv in levels]
    if any(a > b for a, b in itertools.pairwise(means)):
        return None
    return {lv: exact(level_means[lv]) / exact(city_mean) for lv in sorted(level_means, reverse=True)}
