"""The settlement's per-case loops, compiled (numba): one pass over a batch where numpy would make one per step.

Each kernel does what :mod:`payment.settle` states in numpy terms next to its call, in the same float and integer
arithmetic (same results, bit for bit); they release the GIL, so that the reading, pricing and writing threads of a
settlement run side by side on the cores. Sums are exact int64: a sum beyond the int64 range is reported (the
position of the first one), never wrapped around.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np
from numba import njit

from payment.money import POINT_UNITS, fen_half_up

__all__ = [
    "add_exact",
    "case_kinds",
    "case_payments",
    "loading",
    "priced_tail",
    "resolved_points",
    "sum_cases",
    "tally_cases",
]

_I64_MAX = np.iinfo(np.int64).max
_I64_MIN = np.iinfo(np.int64).min
# payment.route.Route codes
_BED_DAY, _PER_CASE, _FEE_FOR_SERVICE, _EXCLUDED = 3, 4, 5, 6


@contextlib.contextmanager
def loading(start: bool = True) -> Iterator[None]:
    """numba set up in a background thread while the block runs (``start`` False: not).

    The first kernel call of a process sets up numba's compiler and loads the cache (about 0.4 s CPU): made
    at the start of a settlement, it runs beside the reading of the hospitals, the policy and the first batch,
    not on the pricing thread with the reader waiting. The thread is waited for at the end of the block.
    """
    if not start:
        yield
        return
    thread = threading.Thread(target=_first_call, name="drgdip-kernels")
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _first_call() -> None:
    with contextlib.suppress(Exception):  # (a kernel that cannot load fails where it is used, with its error)
        fen_half_up(np.zeros(1))


@njit(cache=True, inline="always")
def _overflows(a, w):
    """Whether ``a + w`` leaves the int64 range (the bound kept symmetric: −(2**63 − 1))."""
    return (w > 0 and a > _I64_MAX - w) or (w < 0 and a < -_I64_MAX - w)


@njit(cache=True)
def add_exact(acc, index, weights):
    """``acc[index[i]] += weights[i]`` in int64; returns −1, or the index of the first sum that would leave
    int64 (the sums before it made)."""
    for i in range(index.shape[0]):
        j, w = index[i], weights[i]
        a = acc[j]
        if _overflows(a, w):
            return j
        acc[j] = a + w
    return -1


@njit(cache=True, inline="always")
def _units(points):
    """``np.rint(points × POINT_UNITS).astype(np.int64)`` of one value (a value that is not finite gives the
    integer numpy gives on this machine: the smallest int64)."""
    x = np.rint(points * POINT_UNITS)
    if not np.isfinite(x):
        return _I64_MIN
    return np.int64(x)


@njit(cache=True, inline="always", error_model="numpy")
def _paid_points(r, in_scheme, u, vb, p, standard, h, unified, n_pool, outside):
    """A case's ``(units, pooled, slot)``, the same in both passes: its points ``u`` (1e-9 point; under the unified
    design a bed-day or per-case case is paid its standard amount at the budget point value ``vb``), whether they
    are paid from its pool, and its hospital × pool slot (``outside``: no pool). Scalars in and out: handed the
    output arrays to write, the helper made each case's step about ten times slower (16 ns against 1.5 here)."""
    fallback = r in (_BED_DAY, _PER_CASE)
    if unified and fallback:
        u = _units(standard / vb)
    pooled = in_scheme or (fallback and unified)
    return u, pooled, h * n_pool + max(p, 0) if pooled else outside


@njit(cache=True, nogil=True, error_model="numpy")  # x / 0.0 gives inf or NaN, as in numpy
def priced_tail(in_scheme, pts, dev, pool, hidx, route, per_case_price, vb_pool, unified, n_h, n_pool):
    """The end of a batch's pricing (payment.settle._priced), in one pass: returns ``units`` (int64, 1e-9
    point), ``points`` (= units / POINT_UNITS), ``deviation`` (int8), ``vb_case``, ``standard_amount``,
    ``pooled`` and ``slot`` of each case.

    ``points`` is the scheme's points of a scheme case, else 0; under the unified design a bed-day or per-case
    case is paid in points too: its standard amount (the per-case price; bed-day amounts are known after pass 1)
    at the budget point value of its pool. ``pool`` −1 (no pool) takes ``vb_pool[-1]``."""
    n = pts.shape[0]
    units = np.empty(n, np.int64)
    points = np.empty(n, np.float64)
    deviation = np.empty(n, np.int8)
    vb_case = np.empty(n, np.float64)
    standard = np.zeros(n, np.float64)
    pooled = np.empty(n, np.bool_)
    slot = np.empty(n, np.int64)
    outside = n_h * n_pool
    for i in range(n):
        p = pool[i]
        vb = vb_pool[p] if p >= 0 else vb_pool[vb_pool.shape[0] - 1]
        vb_case[i] = vb
        r = route[i]
        if r == _PER_CASE:
            standard[i] = per_case_price[i]
        s = in_scheme[i]
        deviation[i] = dev[i] if s else 0
        u, pooled[i], slot[i] = _paid_points(
            r, s, _units(pts[i] if s else 0.0), vb, p, standard[i], hidx[i], unified, n_pool, outside
        )
        units[i] = u
        points[i] = u / POINT_UNITS
    return units, points, deviation, vb_case, standard, pooled, slot


@njit(cache=True, nogil=True)
def sum_cases(slot, month, units, patient_fen, cost_fen, fund_fen, by_month, acc, month_acc, month_count):
    """Per slot (hospital × pool): ``acc[0..3][slot] +=`` points (1e-9 point), patient paid, total cost and fund
    paid (fen); with ``by_month``, per slot × 13 + month: ``month_acc[0..1] +=`` points and patient paid, and
    ``month_count`` += 1. Returns −1, or the index (in its row) of the first sum that would leave int64."""
    for i in range(slot.shape[0]):
        s = slot[i]
        for row, w in ((0, units[i]), (1, patient_fen[i]), (2, cost_fen[i]), (3, fund_fen[i])):
            a = acc[row, s]
            if _overflows(a, w):
                return s
            acc[row, s] = a + w
        if by_month:
            key = s * 13 + month[i]
            for row, w in ((0, units[i]), (1, patient_fen[i])):
                a = month_acc[row, key]
                if _overflows(a, w):
                    return key
                month_acc[row, key] = a + w
            month_count[key] += 1
    return -1


@njit(cache=True, nogil=True)
def tally_cases(route, reason, hidx, in_scheme, cost_fen, cost, group_avg, costly_factor,
                routes, reasons, cases_h, paid_cost, scheme_cost, costly):  # fmt: skip
    """Pass 1's counts of a batch: cases per route and per reason, per hospital (``cases_h[-1]``: no known
    hospital); the cost (fen) of the cases paid by this budget (``paid_cost[0]``; ``[1]``: excluded) and of the
    scheme's (``scheme_cost[0]``; ``[1]``: the others); scheme cases costing more than ``costly_factor`` × their
    group's average (when it is > 0), per hospital. Returns −1, or 0 when a cost sum would leave int64."""
    n_h = cases_h.shape[0] - 1
    for i in range(route.shape[0]):
        routes[route[i]] += 1
        reasons[reason[i]] += 1
        h = hidx[i] if hidx[i] >= 0 else n_h
        cases_h[h] += 1
        w = cost_fen[i]
        k = 1 if route[i] == _EXCLUDED else 0
        if _overflows(paid_cost[k], w):
            return 0
        paid_cost[k] += w
        k = 0 if in_scheme[i] else 1
        if _overflows(scheme_cost[k], w):
            return 0
        scheme_cost[k] += w
        avg = group_avg[i]
        if in_scheme[i] and avg > 0 and cost[i] > costly_factor * avg:
            costly[h] += 1
    return -1


@njit(cache=True, nogil=True)
def case_kinds(route, pooled, pool, per_case_item, units, standard, value, ratio, pc_ratios, unified):
    """How each case of pass 2 is paid and its money as floats (payment.settle._case_table): ``kind`` 1 pooled
    points, 2 per-case price, 3 bed-day standard (both carved out of the pools: not ``unified``), 4
    fee-for-service, 0 nothing; the settlement point value of its pool (``value[-1]`` without one); the float
    standard and fund amounts (yuan) that :func:`payment.money.fen_exact` rounds: points × V and × r, the price ×
    the item's fund ratio (``pc_ratios``), the bed-day standard × r."""
    n = route.shape[0]
    kind = np.zeros(n, np.int8)
    point_value = np.empty(n, np.float64)
    std = np.zeros(n, np.float64)
    fund = np.zeros(n, np.float64)
    last = value.shape[0] - 1
    for i in range(n):
        p = pool[i] if pool[i] >= 0 else last
        v = value[p]
        point_value[i] = v
        r = route[i]
        carve = r in (_BED_DAY, _PER_CASE) and not unified
        if pooled[i]:
            kind[i] = 1
            std[i] = units[i] / POINT_UNITS * v
            fund[i] = std[i] * ratio[p]
        elif carve and r == _PER_CASE:
            kind[i] = 2
            std[i] = standard[i]
            item = per_case_item[i]
            fund[i] = standard[i] * (pc_ratios[item] if item >= 0 else pc_ratios[pc_ratios.shape[0] - 1])
        elif carve:
            kind[i] = 3
            std[i] = standard[i]
            fund[i] = standard[i] * ratio[p]
        elif r == _FEE_FOR_SERVICE:
            kind[i] = 4
    return kind, point_value, std, fund


@njit(cache=True, nogil=True)
def case_payments(kind, std_fen, fund_fen, cost_fen, paid_fen, patient_fen, subtraction, hidx, pooled, route,
                  fund_by_route):  # fmt: skip
    """The fen of pass 2 finished (payment.settle._case_money) and summed: a fee-for-service case is paid its
    cost and the fund its own payment (``cost_fen``, ``paid_fen``); under the subtraction form a pooled case's
    fund payment is its standard payment less the patient's payments. Adds each fund payment outside the pools
    to ``fund_by_route`` (hospital × 8 + route; the last entry: no known hospital or pooled). Returns the standard
    and fund payments in yuan (fen / 100), and −1, or the entry whose sum would leave int64."""
    n = kind.shape[0]
    std = np.empty(n, np.float64)
    fund = np.empty(n, np.float64)
    outside = fund_by_route.shape[0] - 1
    for i in range(n):
        s, f = std_fen[i], fund_fen[i]
        if kind[i] == 4:
            s, f = cost_fen[i], paid_fen[i]
        elif kind[i] == 1 and subtraction:
            f = s - patient_fen[i]
        std[i] = s / 100.0
        fund[i] = f / 100.0
        k = hidx[i] * 8 + route[i] if hidx[i] >= 0 and not pooled[i] else outside
        if _overflows(fund_by_route[k], f):
            return std, fund, k
        fund_by_route[k] += f
    return std, fund, -1


@njit(cache=True, nogil=True, error_model="numpy")
def resolved_points(route, units_in, dev_in, special, cost, standard, hidx, pool, vb_pool, unified, scheme, n_h,
                    n_pool):  # fmt: skip
    """A priced batch's points with the region-wide decisions of pass 1 (payment.settle._resolved): a case left in
    the scheme keeps its points and deviation (others: 0); an approved special case (``special``) left in the
    scheme is paid its cost at the budget point value, a bed-day or per-case case its standard amount under the
    unified design. Returns ``in_scheme``, ``units``, ``points``, ``deviation``, ``vb_case``, ``pooled`` and
    ``slot``, as :func:`priced_tail`."""
    n = route.shape[0]
    in_scheme = np.empty(n, np.bool_)
    units = np.empty(n, np.int64)
    points = np.empty(n, np.float64)
    deviation = np.empty(n, np.int8)
    vb_case = np.empty(n, np.float64)
    pooled = np.empty(n, np.bool_)
    slot = np.empty(n, np.int64)
    outside = n_h * n_pool
    for i in range(n):
        p = pool[i]
        vb = vb_pool[p] if p >= 0 else vb_pool[vb_pool.shape[0] - 1]
        vb_case[i] = vb
        r = route[i]
        s = r == scheme
        in_scheme[i] = s
        u = units_in[i] if s else 0
        deviation[i] = dev_in[i] if s else 0
        if special[i] and s:
            u = _units(cost[i] / vb)
        u, pooled[i], slot[i] = _paid_points(r, s, u, vb, p, standard[i], hidx[i], unified, n_pool, outside)
        units[i] = u
        points[i] = u / POINT_UNITS
    return in_scheme, units, points, deviation, vb_case, pooled, slot
