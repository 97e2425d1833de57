"""Expected payment (预计支付) of each case under a region's policy: what the hospital will be paid against its cost.

The case is routed and priced as the settlement does (:mod:`payment.settle`: routes, hospital coefficient,
deviation class, 基层/中医 factors, per-case prices, bed-day standards), and its points are converted at the
policy's published **budget** point value (年初/预算点值) of its pool: a hospital auditing itself before the
year-end clearing knows that value, not the settlement one (audit.md §1: expected payment = points × point value,
fund and patient share together). Fee-for-service and excluded cases are paid their cost (盈亏 0).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from payment.money import TIE_FEN
from payment.points import Deviation
from payment.route import Route
from payment.settle import _frame, _Region, _Scan

__all__ = ["expected_payment"]

_DEV_NAMES = [d.name.lower() for d in Deviation]


def expected_payment(
    cases: pa.Table, hospitals: pa.Table, policy, *, catalogue=None, weights=None
) -> pa.Table:
    """Route, deviation class, points and expected payment (yuan, to the fen) of each case.

    Parameters
    ----------
    cases : pa.Table      canonical discharges with the grouper's columns (``dip_group`` … or ``drg``)
    hospitals : pa.Table  ``hospital_id``, ``level`` (1–3) [, ``coefficient``]
    policy : Policy
    catalogue, weights    as for :func:`payment.settle` (DIP: comparison averages; CHS-DRG: ``drg, rw``)

    Returns
    -------
    pa.Table: ``route``, ``deviation``, ``points``, ``point_value``, ``expected_payment`` (null when the case is
    outside every route paid by this policy).
    """
    reg = _Region.build(hospitals, policy, catalogue, weights, {}, (), None)
    scan = _Scan(reg)
    scan.add(_frame(cases, reg, 0, None))
    f = _frame(cases, reg, 0, scan.resolve())
    route = f.route
    pay = np.full(len(route), np.nan)
    pay = np.where(f.pooled, f.points * f.vb_case, pay)
    carve = ~f.pooled & ((route == Route.BED_DAY) | (route == Route.PER_CASE))
    pay = np.where(carve, f.standard_amount, pay)
    pay = np.where(route == Route.FEE_FOR_SERVICE, f.cost, pay)
    pay = np.where(f.hidx < 0, np.nan, pay)  # a hospital missing from the hospitals table: no level, no price
    fen = np.floor(np.abs(pay) * 100 + 0.5 + TIE_FEN) * np.sign(pay)
    names = [r.name for r in Route]
    return pa.table(
        {
            "route": pa.array(np.array(names, dtype=object)[route.astype(np.int64) - 1].astype(str)),
            "deviation": pa.array(np.array(_DEV_NAMES)[f.deviation.astype(np.int64)]),
            "points": pa.array(np.where(f.pooled, f.points, np.nan), mask=~f.pooled),
            "point_value": pa.array(f.vb_case, mask=~f.pooled),
            "expected_payment": pa.array(fen / 100.0, mask=np.isnan(pay)),
        }
    )
