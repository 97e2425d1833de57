"""Payment routing (支付方式分流): every case → DRG | DIP | BED_DAY | PER_CASE | FEE_FOR_SERVICE | EXCLUDED.

docs/formulas.md §12, recommended order: unpaid insurance type and policy exclusions → EXCLUDED; the
per-case list (dx + main procedure) → PER_CASE, unless an exit rule sends the case back; the bed-day categories
(dx or department) → BED_DAY; a trusted 按项目 hint (``hi_paymtd`` 1) → FEE_FOR_SERVICE; an ungroupable case →
the policy's ``routing.ungrouped``; else the scheme (DIP or DRG). A case discharged before its admission
(docs/records.md Q10 ``DATE_CONFLICT``), a case without a readable total cost (empty, or text that is not a number:
``COST_INVALID``, docs/records.md §4) and a case without a usable length of stay (negative or not a number, or empty
on a bed-day case: ``LOS_INVALID``, docs/records.md §4) take the policy's ``routing.invalid`` (fee-for-service by
default), after the lists and before the exclusions. A case the grouper marked ``DUPLICATE_CASE`` or
``CASE_ID_MISSING``, and a case discharged outside the policy's effective period, is EXCLUDED. ``hi_paymtd`` is only a hint (docs/records.md §3):
2 and 5 never route a case that the policy's lists do not confirm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codes import normalise_codes
from payment._arrays import column, encoded, isin, numbers, prefix_in, strings
from payment.percase import match_items, per_case_exit, per_case_price

__all__ = ["REASONS", "Route", "Routing", "cost_invalid", "date_conflict", "los_invalid", "route_cases"]


class Route(IntEnum):
    """Payment route (支付方式) of a case."""

    DRG = 1
    DIP = 2
    BED_DAY = 3  #: 按床日
    PER_CASE = 4  #: 单病种 / 按病种定额
    FEE_FOR_SERVICE = 5  #: 按项目
    EXCLUDED = 6  #: not paid by this budget (self-pay, policy exclusion, unknown hospital)


#: Reason codes (``route_reason``), in the order the rules are tried.
REASONS = (
    "scheme",
    "self_pay_or_unknown_insurance",
    "unknown_hospital",
    "duplicate_case",
    "excluded_dx",
    "excluded_department",
    "per_case_list",
    "per_case_exit_to_scheme",
    "per_case_exit_to_fee_for_service",
    "per_case_no_price_at_level",
    "bed_day_category",
    "fee_for_service_hint",
    "ungrouped",
    "outside_settlement_period",
    "case_id_missing",
    "date_conflict",
    "special_case_fee_for_service",
    "cost_invalid",
    "los_invalid",
)


@dataclass(frozen=True)
class Routing:
    """Routing result: one entry per case."""

    route: np.ndarray  #: int8 ``Route`` codes
    reason: np.ndarray  #: int8 index into ``REASONS``
    per_case_item: np.ndarray  #: int32 item index (−1 when not PER_CASE)
    per_case_price: np.ndarray  #: float64 yuan (NaN when not PER_CASE)
    bed_day_category: np.ndarray  #: int32 category index (−1 when not BED_DAY)


def route_cases(
    table: pa.Table,
    policy,
    level: np.ndarray,
    grouped: np.ndarray,
    pooled: np.ndarray,
    duplicate: np.ndarray | None = None,
    no_case_id: np.ndarray | None = None,
) -> Routing:
    """Route every case to a payment method with a reason (支付方式分流).

    Parameters
    ----------
    table : pa.Table
        Discharges: ``principal_dx``, ``principal_proc``, ``department``, ``los_days``, ``total_cost``,
        ``payment_method`` (each optional).
    policy : Policy
    level : ndarray of int8
        Hospital level per case (0 = hospital not in the hospitals table).
    grouped : ndarray of bool
        The case has a payable DIP group / DRG.
    pooled : ndarray of bool
        The case's 险种 has a budget pool (employee/resident); self-pay and unknown types do not.
    duplicate : ndarray of bool, optional
        The grouper marked the case ``DUPLICATE_CASE``: never paid twice.
    no_case_id : ndarray of bool, optional
        The grouper marked the case ``CASE_ID_MISSING``: a case nobody can identify or audit is not paid.

    Returns
    -------
    Routing
    """
    n = table.num_rows
    scheme = Route.DIP if policy.scheme == "dip" else Route.DRG
    rt = policy.routing
    ungrouped_route = Route.FEE_FOR_SERVICE if rt.ungrouped == "fee_for_service" else scheme
    route_of = np.array([_ROUTE_OF.get(why, scheme) for why in REASONS], dtype=np.int8)
    route_of[REASONS.index("ungrouped")] = ungrouped_route
    invalid = Route.FEE_FOR_SERVICE if rt.invalid == "fee_for_service" else Route.EXCLUDED
    for why in ("date_conflict", "cost_invalid", "los_invalid"):
        route_of[REASONS.index(why)] = invalid
    reason = np.zeros(n, dtype=np.int8)

    # rules from the lowest priority to the highest: a later rule overwrites an earlier one
    def rule(mask: np.ndarray, why: str, where: np.ndarray | None = None) -> None:
        if where is None:
            np.putmask(reason, mask, REASONS.index(why))
        else:
            reason[where[mask]] = REASONS.index(why)

    dx, proc, dept = (  # codes cleaned exactly as the groupers clean them before matching the policy's lists
        _codes(strings(table, "principal_dx"), "dx"),
        _codes(strings(table, "principal_proc"), "proc"),
        encoded(strings(table, "department")),
    )
    rule(~grouped, "ungrouped")
    if rt.trust_fee_for_service_hint:
        rule(isin(strings(table, "payment_method"), ["1"]), "fee_for_service_hint")
    category = np.full(n, -1, dtype=np.int32)
    for i, c in reversed(list(enumerate(policy.bed_day.categories))):  # the first listed category wins
        np.putmask(category, prefix_in(dx, c["dx"]) | prefix_in(dept, c["departments"]), i)
    rule(category >= 0, "bed_day_category")

    items = policy.per_case.entries
    item = match_items(dx, proc, items) if items else np.full(n, -1, np.int32)
    sel = np.flatnonzero(item >= 0)
    price = per_case_price(item[sel], level[sel], items)
    exits = per_case_exit(item[sel], price, numbers(table, "total_cost", 0.0)[sel],
                          numbers(table, "los_days", 0.0)[sel], items)  # fmt: skip
    to_ffs = np.array([it["exit_to"] == "fee_for_service" for it in items], dtype=bool)[item[sel]]
    rule(np.ones(len(sel), bool), "per_case_list", sel)
    rule(exits, "per_case_exit_to_scheme", sel)
    rule(exits & to_ffs, "per_case_exit_to_fee_for_service", sel)
    rule(np.isnan(price), "per_case_no_price_at_level", sel)

    rule(los_invalid(table, reason == REASONS.index("bed_day_category")), "los_invalid")  # §4: no stay to pay
    # docs/records.md Q10: discharged before admitted (DATE_CONFLICT) is an invalid record, never paid by points
    rule(date_conflict(table), "date_conflict")
    rule(cost_invalid(table), "cost_invalid")  # §4: no deviation class, no points without a cost
    rule(prefix_in(dept, rt.exclude_departments), "excluded_department")
    rule(prefix_in(dx, rt.exclude_dx), "excluded_dx")
    if duplicate is not None:
        rule(duplicate, "duplicate_case")
    rule(level == 0, "unknown_hospital")
    rule(~pooled, "self_pay_or_unknown_insurance")
    rule(_outside_period(table, policy.header["effective"]), "outside_settlement_period")
    if no_case_id is not None:
        rule(no_case_id, "case_id_missing")

    route = route_of[reason]
    # a rule that sends a case back to the scheme cannot pay a case the scheme cannot price
    np.putmask(route, (route == scheme) & ~grouped, ungrouped_route)
    per_case_item = np.full(n, -1, dtype=np.int32)
    per_case_price_out = np.full(n, np.nan)
    paid = reason[sel] == REASONS.index("per_case_list")
    per_case_item[sel[paid]] = item[sel[paid]]
    per_case_price_out[sel[paid]] = price[paid]
    np.putmask(category, route != Route.BED_DAY, -1)
    return Routing(route, reason, per_case_item, per_case_price_out, category)


def _codes(values: pa.Array, kind: str) -> pa.DictionaryArray:
    """Codes cleaned as the groupers clean them, on the distinct values only (the column stays encoded; the
    batches of one Parquet row group share their dictionary, cleaned once)."""
    values = encoded(values)
    last = _CLEANED.get(kind)
    if last is None or not last[0].equals(values.dictionary):
        last = _CLEANED[kind] = (values.dictionary, normalise_codes(values.dictionary, kind))
    return pa.DictionaryArray.from_arrays(values.indices, last[1])


#: The last dictionary cleaned per kind of code, and its cleaned values.
_CLEANED: dict[str, tuple[pa.Array, pa.Array]] = {}


#: Route of each reason that fixes one; the others fall back to the scheme (or the policy's ungrouped route).
_ROUTE_OF = {
    "self_pay_or_unknown_insurance": Route.EXCLUDED,
    "unknown_hospital": Route.EXCLUDED,
    "duplicate_case": Route.EXCLUDED,
    "excluded_dx": Route.EXCLUDED,
    "excluded_department": Route.EXCLUDED,
    "per_case_list": Route.PER_CASE,
    "per_case_exit_to_fee_for_service": Route.FEE_FOR_SERVICE,
    "bed_day_category": Route.BED_DAY,
    "fee_for_service_hint": Route.FEE_FOR_SERVICE,
    "outside_settlement_period": Route.EXCLUDED,
    "case_id_missing": Route.EXCLUDED,
    "special_case_fee_for_service": Route.FEE_FOR_SERVICE,
}


def date_conflict(table: pa.Table) -> np.ndarray:
    """Discharged before admitted (docs/records.md Q10 ``DATE_CONFLICT``); False where either date is missing."""
    if not {"admission_date", "discharge_date"} <= set(table.column_names):
        return np.zeros(table.num_rows, dtype=bool)
    adm, dis = (column(table, c).cast(pa.date32()) for c in ("admission_date", "discharge_date"))
    return pc.less(dis, adm).fill_null(False).to_numpy(zero_copy_only=False)


def cost_invalid(table: pa.Table) -> np.ndarray:
    """No readable total cost (docs/records.md §4 ``COST_INVALID``): empty, NaN, or text that is not a number
    (the readers' :data:`grouper.io.values.UNREADABLE`); all False when the table has no ``total_cost`` column."""
    if "total_cost" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    cost = table.column("total_cost").combine_chunks()
    if not pa.types.is_floating(cost.type):
        cost = cost.cast(pa.float64())
    return pc.fill_null(pc.is_nan(cost), True).to_numpy(zero_copy_only=False)


def los_invalid(table: pa.Table, bed_day: np.ndarray) -> np.ndarray:
    """No usable length of stay (docs/records.md §4 ``LOS_INVALID``): negative, or written but not a number (the
    readers' -1), on any case; empty (or no ``los_days`` column) on a case whose payment is its bed days
    (``bed_day``): a bed-day amount cannot be priced without it. An empty LOS elsewhere is accepted, as the
    groupers accept it."""
    if "los_days" not in table.column_names:
        return bed_day.copy()
    los = table.column("los_days").combine_chunks()
    if not pa.types.is_floating(los.type):
        los = los.cast(pa.float64())
    negative = pc.fill_null(pc.less(los, 0.0), False).to_numpy(zero_copy_only=False)
    empty = pc.fill_null(pc.is_nan(los), True).to_numpy(zero_copy_only=False)
    return negative | (empty & bed_day)


def _outside_period(table: pa.Table, effective: dict) -> np.ndarray:
    """Discharged before or after the policy's effective period: another year's budget pays it."""
    if "discharge_date" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    day = column(table, "discharge_date").cast(pa.date32())
    start, end = pa.scalar(effective["start"], pa.date32()), pa.scalar(effective["end"], pa.date32())
    outside = pc.or_(pc.less(day, start), pc.greater(day, end))
    return outside.fill_null(False).to_numpy(zero_copy_only=False)
