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
from numba import njit
from numba.cpython.unsafe.numbers import trailing_zeros

from grouper.codes import normalise_codes
from payment._arrays import column, encoded, isin, numbers, prefix_in, strings
from payment.percase import per_case_exit, per_case_price

__all__ = ["REASONS", "Route", "Routing", "date_conflict", "route_cases"]


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

    Notes
    -----
    The policy's lists are matched on the distinct codes and departments only (each column's dictionary); one
    compiled pass (:func:`_route_kernel`) then applies the rules to every case, in the order above.
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

    dx, proc, dept = (  # codes cleaned exactly as the groupers clean them before matching the policy's lists
        _codes(strings(table, "principal_dx"), "dx"),
        _codes(strings(table, "principal_proc"), "proc"),
        encoded(strings(table, "department")),
    )
    # per distinct code and department: the first bed-day category whose list holds it
    categories, items = policy.bed_day.categories, policy.per_case.entries
    dx_category = _first_listed(dx.dictionary, [c["dx"] for c in categories])
    dept_category = _first_listed(dept.dictionary, [c["departments"] for c in categories])
    hint = (
        isin(strings(table, "payment_method"), ["1"])
        if rt.trust_fee_for_service_hint
        else np.zeros(n, dtype=bool)
    )
    # the per-case items (the first whose lists hold the case's dx and procedure), their prices and exits: on the
    # few cases an item holds
    dx_at, dept_at = _positions(dx), _positions(dept)
    item = _first_items(
        dx_at, _positions(proc),
        _listed_bits(dx.dictionary, [it["dx"] for it in items]),
        _listed_bits(proc.dictionary, [it["procs"] for it in items]),
    )  # fmt: skip
    los, cost = numbers(table, "los_days"), numbers(table, "total_cost")
    sel = np.flatnonzero(item >= 0)
    price = per_case_price(item[sel], level[sel], items)
    exits = per_case_exit(item[sel], price, _or_zero(cost[sel]), _or_zero(los[sel]), items)
    to_ffs = np.array([it["exit_to"] == "fee_for_service" for it in items], dtype=bool)[item[sel]]
    nothing = np.zeros(n, dtype=bool)
    reason, route, category = _route_kernel(
        dx_at, dept_at, dx_category, dept_category,
        _listed(dx.dictionary, rt.exclude_dx), _listed(dept.dictionary, rt.exclude_departments),
        np.ascontiguousarray(level, np.int8), np.ascontiguousarray(grouped, np.bool_),
        np.ascontiguousarray(pooled, np.bool_),
        nothing if duplicate is None else np.ascontiguousarray(duplicate, np.bool_),
        nothing if no_case_id is None else np.ascontiguousarray(no_case_id, np.bool_), hint, sel, exits,
        exits & to_ffs, np.isnan(price), los, cost, "total_cost" in table.column_names, date_conflict(table),
        _outside_period(table, policy.header["effective"]), route_of, int(scheme), int(ungrouped_route),
    )  # fmt: skip
    per_case_item = np.full(n, -1, dtype=np.int32)
    per_case_price_out = np.full(n, np.nan)
    paid = reason[sel] == REASONS.index("per_case_list")
    per_case_item[sel[paid]] = item[sel[paid]]
    per_case_price_out[sel[paid]] = price[paid]
    return Routing(route, reason, per_case_item, per_case_price_out, category)


#: A code or department in no bed-day category's list.
_NO_CATEGORY = np.iinfo(np.int32).max


def _positions(values: pa.DictionaryArray) -> np.ndarray:
    """The dictionary position of each value; a null's: ``len(dictionary)`` (the last entry of the per-value
    arrays, the null's own)."""
    idx = values.indices
    if idx.null_count:
        idx = pc.fill_null(idx, len(values.dictionary))
    return idx.to_numpy(zero_copy_only=False)


def _listed(values: pa.Array, prefixes) -> np.ndarray:
    """Per distinct value (and a last entry: null), whether it starts with one of ``prefixes``."""
    return np.append(prefix_in(values, prefixes), False)


def _first_listed(values: pa.Array, lists) -> np.ndarray:
    """Per distinct value (and null), the first list that holds one of its prefixes (:data:`_NO_CATEGORY`:
    none)."""
    out = np.full(len(values) + 1, _NO_CATEGORY, dtype=np.int32)
    for i in reversed(range(len(lists))):
        np.putmask(out, _listed(values, lists[i]), i)
    return out


def _listed_bits(values: pa.Array, lists) -> np.ndarray:
    """Per distinct value (and null), a bit per list that holds one of its prefixes (list ``i``: bit ``i % 64``
    of word ``i // 64``)."""
    out = np.zeros((len(values) + 1, max(1, -(-len(lists) // 64))), dtype=np.uint64)
    for i, prefixes in enumerate(lists):
        out[_listed(values, prefixes), i // 64] |= np.uint64(1 << (i % 64))
    return out


def _or_zero(x: np.ndarray) -> np.ndarray:
    """NaN (an empty or unreadable value) as 0."""
    return np.where(np.isnan(x), 0.0, x)


@njit(cache=True, nogil=True)
def _first_items(dx, proc, dx_items, proc_items):
    """Each case's first per-case item whose dx and procedure lists both hold it (−1: none), from the bits of its
    codes' items (:func:`_listed_bits`)."""
    item = np.full(dx.shape[0], -1, np.int32)
    for i in range(dx.shape[0]):
        for w in range(dx_items.shape[1]):
            bits = dx_items[dx[i], w] & proc_items[proc[i], w]
            if bits:
                item[i] = w * 64 + trailing_zeros(bits)
                break
    return item


@njit(cache=True, nogil=True)
def _route_kernel(dx, dept, dx_category, dept_category, dx_excluded, dept_excluded, level, grouped, pooled,
                  duplicate, no_case_id, hint, sel, exits, exits_to_ffs, no_price, los, cost, has_cost, conflict,
                  outside, route_of, scheme, ungrouped_route):  # fmt: skip
    """The rules of :func:`route_cases`, case by case in one pass, from the lowest priority to the highest (a later
    rule overwrites an earlier one): returns ``reason``, ``route`` and ``bed_day_category``. ``sel`` lists the
    cases a per-case item holds (ascending), with their exits and whether they have a price."""
    n = dx.shape[0]
    reason = np.zeros(n, np.int8)
    route = np.empty(n, np.int8)
    category = np.full(n, -1, np.int32)
    j = 0
    for i in range(n):
        r = 0
        if not grouped[i]:
            r = _UNGROUPED
        if hint[i]:
            r = _HINT
        c = min(dx_category[dx[i]], dept_category[dept[i]])  # the first category listing its dx or department
        if c != _NO_CATEGORY:
            r = _BED_DAY_CATEGORY
        if j < sel.shape[0] and sel[j] == i:
            r = _PER_CASE_LIST
            if exits[j]:
                r = _EXIT_TO_FFS if exits_to_ffs[j] else _EXIT_TO_SCHEME
            if no_price[j]:
                r = _NO_PRICE
            j += 1
        # §4: no usable stay (negative or unreadable on any case; empty, NaN, on a case paid by its bed days)
        if los[i] < 0 or (los[i] != los[i] and r == _BED_DAY_CATEGORY):
            r = _LOS_INVALID
        if conflict[i]:  # docs/records.md Q10: discharged before admitted, never paid by points
            r = _DATE_CONFLICT
        if has_cost and cost[i] != cost[i]:  # §4: no readable cost, no deviation class, no points
            r = _COST_INVALID
        if dept_excluded[dept[i]]:
            r = _EXCLUDED_DEPARTMENT
        if dx_excluded[dx[i]]:
            r = _EXCLUDED_DX
        if duplicate[i]:
            r = _DUPLICATE
        if level[i] == 0:
            r = _UNKNOWN_HOSPITAL
        if not pooled[i]:
            r = _SELF_PAY
        if outside[i]:
            r = _OUTSIDE_PERIOD
        if no_case_id[i]:
            r = _CASE_ID_MISSING
        reason[i] = r
        rt = route_of[r]
        if rt == scheme and not grouped[i]:  # sent back to the scheme, which cannot price it
            rt = ungrouped_route
        route[i] = rt
        if rt == _ROUTE_BED_DAY:
            category[i] = c
    return reason, route, category


_UNGROUPED, _HINT, _BED_DAY_CATEGORY, _PER_CASE_LIST, _EXIT_TO_SCHEME, _EXIT_TO_FFS, _NO_PRICE = (
    REASONS.index(why) for why in ("ungrouped", "fee_for_service_hint", "bed_day_category", "per_case_list",
                                   "per_case_exit_to_scheme", "per_case_exit_to_fee_for_service",
                                   "per_case_no_price_at_level")
)  # fmt: skip
_LOS_INVALID, _DATE_CONFLICT, _COST_INVALID, _EXCLUDED_DEPARTMENT, _EXCLUDED_DX, _DUPLICATE = (
    REASONS.index(why) for why in ("los_invalid", "date_conflict", "cost_invalid", "excluded_department",
                                   "excluded_dx", "duplicate_case")
)  # fmt: skip
_UNKNOWN_HOSPITAL, _SELF_PAY, _OUTSIDE_PERIOD, _CASE_ID_MISSING = (
    REASONS.index(why) for why in ("unknown_hospital", "self_pay_or_unknown_insurance",
                                   "outside_settlement_period", "case_id_missing")
)  # fmt: skip
_ROUTE_BED_DAY = int(Route.BED_DAY)


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


def _outside_period(table: pa.Table, effective: dict) -> np.ndarray:
    """Discharged before or after the policy's effective period: another year's budget pays it."""
    if "discharge_date" not in table.column_names:
        return np.zeros(table.num_rows, dtype=bool)
    day = column(table, "discharge_date").cast(pa.date32())
    start, end = pa.scalar(effective["start"], pa.date32()), pa.scalar(effective["end"], pa.date32())
    outside = pc.or_(pc.less(day, start), pc.greater(day, end))
    return outside.fill_null(False).to_numpy(zero_copy_only=False)
