"""Case points (病例分值) and deviation classes (费用偏差病例) for DIP and DRG point-method payment.

docs/formulas.md §3 (DIP profiles, vectors P-1…P-6) and docs/drg.md §7.3–7.4 (DRG points, RW-banded
high-ratio caps, low/high settle modes, vector DRG-RATIO). Kernels are pure numpy over arrays; every
threshold direction comes from the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit

from grouper.errors import SettingsError
from payment.bands import Bands
from payment.money import exact

__all__ = [
    "BOUNDARIES",
    "FORMULAS",
    "Deviation",
    "DeviationRule",
    "DrgRule",
    "compare",
    "dip_points",
    "drg_points",
    "special_case_cap",
]


class Deviation(IntEnum):
    """Deviation class (费用偏差类别) of a case; ``NONE`` for cases not paid by points."""

    NONE = 0
    NORMAL = 1  #: 正常病例
    LOW = 2  #: 费用超低 / 低倍率
    HIGH = 3  #: 费用超高 / 高倍率
    EXTREME = 4  #: 费用极端异常 (expert review / 特病单议)
    UNMATCHED = 5  #: 空白病种 KBBZ / 未入组 placeholder

    @classmethod
    def names(cls) -> list[str]:
        return [m.name.lower() for m in cls]


#: Deviation formula kinds a policy chooses from, per scheme and band (docs/formulas.md §3 gives each formula).
#: DIP (docs/formulas.md §3.3), with S the group score, k the case's coefficient, a the auxiliary coefficient and q = C/A:
#: low ``cost`` S·q·a, ``cost_k`` S·q·k·a; normal ``standard`` S·k·a; high ``minus_one`` S·(q − 1)·a,
#: ``minus_one_k`` S·(q − 1)·k·a, ``minus_two_plus_k`` S·(q − 2 + k)·a, ``standard`` S·k·a; extreme ``high`` (the
#: high formula, paid pending expert review), ``standard`` S·k·a (sent to 特病单议).
#: DRG (docs/drg.md §7.4): low ``points_no_factor`` C/全市次均·scale, ``by_actual`` (same points, fee C × cf);
#: normal ``standard`` RW·k·scale; high ``linear_add``, ``deduct``, ``cap`` (see :func:`drg_points`).
FORMULAS: dict[str, dict[str, tuple[str, ...]]] = {
    "dip": {
        "low": ("cost", "cost_k"),
        "normal": ("standard",),
        "high": ("minus_one", "minus_one_k", "minus_two_plus_k", "standard"),
        "extreme": ("high", "standard"),
    },
    "drg": {
        "low": ("points_no_factor", "by_actual"),
        "normal": ("standard",),
        "high": ("linear_add", "deduct", "cap"),
    },
}
#: Boundary kinds per band: the comparison of q = C/A with the band's ratio that puts a case in the band.
BOUNDARIES: dict[str, tuple[str, ...]] = {"low": ("<", "<="), "high": (">", ">="), "extreme": (">", ">=")}


def _check_kind(scheme: str, band: str, formula: str | None, boundary: str | None) -> None:
    if formula not in FORMULAS[scheme][band]:
        raise SettingsError(
            f"{scheme} {band} formula {formula!r} is not one of {', '.join(FORMULAS[scheme][band])}",
            key=f"deviation.{band}.formula",
        )
    if band != "normal" and boundary not in BOUNDARIES[band]:
        raise SettingsError(
            f"{band} boundary {boundary!r} is not one of {', '.join(BOUNDARIES[band])}",
            key=f"deviation.{band}.boundary",
        )


@dataclass(frozen=True)
class DeviationRule:
    """A DIP deviation rule (费用偏差规则): one formula kind, ratio and boundary per band, from the policy.

    ``extreme_formula`` None means the rule has no extreme band. Kinds are checked against :data:`FORMULAS`
    and :data:`BOUNDARIES`; an unknown kind raises :class:`~grouper.errors.SettingsError`.
    """

    low_formula: str
    low_ratio: float
    low_op: str
    high_formula: str
    high_ratio: float
    high_op: str
    extreme_formula: str | None = None
    extreme_ratio: float | None = None
    extreme_op: str | None = None
    normal_formula: str = "standard"
    kbbz_factor: float = 1.0
    aux_on_deviation: bool = True  #: a multiplies low/high/extreme points (False: only normal cases carry a)

    def __post_init__(self) -> None:
        _check_kind("dip", "low", self.low_formula, self.low_op)
        _check_kind("dip", "normal", self.normal_formula, None)
        _check_kind("dip", "high", self.high_formula, self.high_op)
        if self.extreme_formula is not None:
            _check_kind("dip", "extreme", self.extreme_formula, self.extreme_op)
            if self.extreme_ratio is None:
                raise SettingsError("an extreme band needs a ratio", key="deviation.extreme.ratio")

    @classmethod
    def from_policy(cls, deviation) -> DeviationRule:
        """Build from a DIP policy's ``[deviation]`` section."""
        ext = deviation.extreme
        return cls(
            deviation.low.formula,
            deviation.low.ratio,
            deviation.low.boundary,
            deviation.high.formula,
            deviation.high.ratio,
            deviation.high.boundary,
            None if ext is None else ext.formula,
            None if ext is None else ext.ratio,
            None if ext is None else ext.boundary,
            deviation.normal.formula,
            deviation.kbbz_factor,
            deviation.aux_on_deviation,
        )


def compare(x: np.ndarray, limit: float, op: str) -> np.ndarray:
    """``x op limit`` for an op written in the policy (``<``, ``<=``, ``>``, ``>=``)."""
    if op == "<":
        return x < limit
    if op == "<=":
        return x <= limit
    if op == ">":
        return x > limit
    if op == ">=":
        return x >= limit
    raise ValueError(f"unknown comparison {op!r}")


def dip_points(
    score: np.ndarray,
    k: np.ndarray,
    a: np.ndarray,
    cost: np.ndarray,
    avg_cost: np.ndarray,
    rule: DeviationRule,
    *,
    unmatched: np.ndarray | None = None,
    no_deviation: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """DIP case points (病例分值) and deviation class under a deviation rule.

    Parameters
    ----------
    score : ndarray of float64, points        S, the group's score (病种分值)
    k, a : ndarray of float64                 hospital coefficient (or 基层 factor) and 辅助分型系数
    cost, avg_cost : ndarray of float64, yuan C, the case's total cost, and A, the comparison average
    rule : DeviationRule                      ``aux_on_deviation`` False: a multiplies normal cases only
    unmatched : ndarray of bool, optional     空白病种 cases: P = S × C/A × kbbz_factor (no k, no a)
    no_deviation : ndarray of bool, optional  cases always paid S·k·a (e.g. 中医优势病种)

    Returns
    -------
    points : ndarray of float64; deviation : ndarray of int8 (``Deviation`` codes)

    Notes
    -----
    docs/formulas.md §3.3–3.5. A case with no usable A (missing or ≤ 0) is classed normal.

    Examples
    --------
    >>> p = DeviationRule("cost_k", 0.5, "<=", "minus_one_k", 2.0, ">=")
    >>> one = np.ones(1)
    >>> dip_points(one * 1000, one * 1.05, one, np.array([4000.0]), one * 10000, p)[0]
    array([420.])
    """
    n = len(score)
    f64 = np.float64
    points = np.empty(n, dtype=f64)
    dev = np.empty(n, dtype=np.int8)
    _dip_kernel(
        np.ascontiguousarray(score, f64),
        np.ascontiguousarray(k, f64),
        np.ascontiguousarray(a, f64),
        np.ascontiguousarray(cost, f64),
        np.ascontiguousarray(avg_cost, f64),
        np.zeros(n, np.bool_) if unmatched is None else np.ascontiguousarray(unmatched, np.bool_),
        np.zeros(n, np.bool_) if no_deviation is None else np.ascontiguousarray(no_deviation, np.bool_),
        _LOW_KINDS.index(rule.low_formula),
        _HIGH_KINDS.index(rule.high_formula),
        _EXT_KINDS.index(rule.extreme_formula),
        rule.low_ratio,
        _OPS.index(rule.low_op),
        rule.high_ratio,
        _OPS.index(rule.high_op),
        np.inf if rule.extreme_ratio is None else rule.extreme_ratio,
        _OPS.index(rule.extreme_op or ">"),
        rule.kbbz_factor,
        rule.aux_on_deviation,
        points,
        dev,
    )
    return points, dev


_OPS = ("<", "<=", ">", ">=")
_LOW_KINDS = FORMULAS["dip"]["low"]  # kernel codes: the index in each closed set
_HIGH_KINDS = FORMULAS["dip"]["high"]
_EXT_KINDS = (None, *FORMULAS["dip"]["extreme"])


@njit(cache=True, inline="always")
def _cmp(x, limit, op):
    if op == 0:
        return x < limit
    if op == 1:
        return x <= limit
    if op == 2:
        return x > limit
    return x >= limit


@njit(cache=True, nogil=True)
def _dip_kernel(score, k, a, cost, avg, unmatched, no_dev, low_kind, high_kind, ext_kind,
                low_r, low_op, high_r, high_op, ext_r, ext_op, kbbz, aux_dev, points, dev):  # fmt: skip
    for i in range(score.shape[0]):
        s, kk = score[i], k[i]
        q = cost[i] / avg[i] if avg[i] > 0 else 1.0
        if not np.isfinite(q):
            q = 1.0
        normal = s * kk * a[i]
        aa = a[i] if aux_dev else 1.0  # a on the deviation formulas
        if unmatched[i]:  # 空白病种: S × C/A × factor, no k, no a (§3.5)
            points[i], dev[i] = s * q * kbbz, 5
        elif no_dev[i]:
            points[i], dev[i] = normal, 1
        elif _cmp(q, low_r, low_op):
            points[i], dev[i] = s * q * aa * (kk if low_kind == 1 else 1.0), 2
        elif ext_kind != 0 and _cmp(q, ext_r, ext_op):
            points[i], dev[i] = (_high(high_kind, s, kk, aa, q) if ext_kind == 1 else normal), 4
        elif _cmp(q, high_r, high_op):
            points[i], dev[i] = _high(high_kind, s, kk, aa, q), 3
        else:
            points[i], dev[i] = normal, 1


@njit(cache=True, inline="always")
def _high(kind, s, k, a, q):
    if kind == 0:
        return s * (q - 1.0) * a
    if kind == 1:
        return s * (q - 1.0) * k * a
    if kind == 2:
        return s * (q - 2.0 + k) * a
    return s * k * a


@dataclass(frozen=True)
class DrgRule:
    """DRG point-method parameters (点数法): docs/drg.md §7.3–7.4, from a DRG policy's ``[deviation]``."""

    city_avg_cost: float
    scale: int
    low_ratio: float
    low_op: str
    high_op: str
    high_bands: Bands  # high-ratio limit K by RW, [from, to)
    low_formula: str = "points_no_factor"
    high_formula: str = "linear_add"

    def __post_init__(self) -> None:
        _check_kind("drg", "low", self.low_formula, self.low_op)
        _check_kind("drg", "high", self.high_formula, self.high_op)

    @classmethod
    def from_policy(cls, policy) -> DrgRule:
        """Build from a DRG policy."""
        d, drg = policy.deviation, policy.deviation.drg
        return cls(
            drg.city_avg_cost,
            policy.scores.score_scale,
            d.low.ratio,
            d.low.boundary,
            d.high.boundary,
            drg.high_bands,
            d.low.formula,
            d.high.formula,
        )


def drg_points(
    rw: np.ndarray, k: np.ndarray, cost: np.ndarray, rule: DrgRule
) -> tuple[np.ndarray, np.ndarray]:
    """DRG case points (病例点数) with low/high-ratio cases (低倍率 / 高倍率).

    Parameters
    ----------
    rw : ndarray of float64                   relative weight of the case's DRG (相对权重)
    k : ndarray of float64                    hospital coefficient (差异/等级系数)
    cost : ndarray of float64, yuan           the case's total cost
    rule : DrgRule

    Returns
    -------
    points : ndarray of float64; deviation : ndarray of int8

    Notes
    -----
    docs/drg.md §7.4: ratio = C / (RW × 全市次均); K = the ratio of the RW band ``[from, to)`` holding RW. Points:
    normal RW·k·scale; low C/全市次均·scale; high ``linear_add`` RW·k·scale + (ratio − K)·RW·scale, ``deduct``
    (C/全市次均 − (K − 1)·RW·k)·scale, ``cap`` RW·K·k·scale (= fee / 点值, the fee being mean × K × k × cf).
    ``by_actual`` reports the same points as ``points_no_factor``; the fee is then C × cf, which equals C only
    when the point value equals the standard point value.

    Examples
    --------
    >>> k = [{"from": f, "to": t, "ratio": r} for f, t, r in [(0, 1, 3.0), (1, 2, 2.5), (2, None, 2.0)]]
    >>> r = DrgRule(10000.0, 100, 0.35, "<", ">", Bands.from_rows(k, "ratio"))
    >>> drg_points(np.array([1.8]), np.array([1.1]), np.array([54000.0]), r)[0]
    array([288.])
    """
    group_mean = rw * rule.city_avg_cost
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(group_mean > 0, cost / group_mean, 1.0)
    big_k = rule.high_bands.at(rw)
    scale = float(rule.scale)
    normal = rw * k * scale
    low = compare(q, rule.low_ratio, rule.low_op)
    high = ~low & compare(q, big_k, rule.high_op)
    low_p = cost / rule.city_avg_cost * scale
    if rule.high_formula == "linear_add":
        high_p = normal + (q - big_k) * rw * scale
    elif rule.high_formula == "deduct":
        high_p = (cost / rule.city_avg_cost - (big_k - 1.0) * rw * k) * scale
    else:
        high_p = rw * big_k * k * scale
    points = np.select([low, high], [low_p, high_p], normal)
    dev = np.select([low, high], [Deviation.LOW, Deviation.HIGH], Deviation.NORMAL)
    return points.astype(np.float64), dev.astype(np.int8)


def special_case_cap(n_cases: int, rate: float) -> int:
    """The region-wide cap on 特例单议 cases: floor(cases × rate) ("不超过"); docs/formulas.md §9, vector X-1.

    Examples
    --------
    >>> special_case_cap(240_123, 0.005), special_case_cap(80_000, 0.05)
    (1200, 4000)
    """
    return int((exact(n_cases) * exact(rate)).__floor__())
