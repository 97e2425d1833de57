"""Settlement (结算): per-case payments, monthly pre-settlement (月度预结算), annual clearing (年度清算).

docs/formulas.md §6–§9 and §12. Per case: route, points, point value, standard payment and fund payment.
Per hospital: points, the share of the distributable budget (largest remainder, so the shares add up to the
budget to the fen), payment due after the assessment coefficient, audit deductions and 结余留用/超支分担 bands,
monthly prepayments and the clearing payment. Hospital money is exact (fractions) and rounded once.

:func:`settle_batches` streams: a reduction pass (sums per hospital × pool in row order, and the region-wide
special-case and bed-day aggregates), each batch's priced cases kept in a spill file, then a per-case pass over
the spill; :func:`settle` runs it over slices of a table.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.errors import DrgdipError, InputError, PolicyError
from grouper.io.discharges import to_arrow
from grouper.io.formats import read_ahead
from grouper.status import Status
from payment._arrays import isin, lookup, numbers, spread, strings, to_str_numpy
from payment.bands import Bands
from payment.bedday import bed_day_amounts, merged_prior_days
from payment.budget import (
    budget_cascade,
    budget_point_value,
    efficient_point_value_1d,
    efficient_point_value_2d,
    elastic_point_value,
    trimmed_budget_point_value,
)
from payment.clearing import band_adjustment, clearing_payment, hospital_shares
from payment.deductions import deduction_grid
from payment.kernels import (
    add_exact,
    case_kinds,
    case_payments,
    priced_tail,
    resolved_points,
    sum_cases,
    tally_cases,
)
from payment.money import (
    POINT_UNITS,
    TIE_FEN,
    exact,
    fen_exact,
    fen_half_up,
    fen_to_yuan,
    publish,
    round_fen,
)
from payment.plausibility import check_cases, soft_limit
from payment.points import (
    Deviation,
    DeviationRule,
    DrgRule,
    compare,
    dip_points,
    drg_points,
    special_case_cap,
)
from payment.policy import ByKey
from payment.route import REASONS, Route, route_cases
from payment.spill import Spill

__all__ = [
    "ExpectedPayments",
    "Settlement",
    "cases_part",
    "expected_payments",
    "finish",
    "merge_scans",
    "merge_sums",
    "needs_second_sums",
    "prepare",
    "scan_part",
    "settle",
    "settle_batches",
    "settle_pools",
    "sums_part",
]

#: Rows per batch of the in-memory :func:`settle` (bounds the per-case intermediates).
BATCH_SIZE = 1 << 19

_ROUTE_NAMES = {int(r): r.name for r in Route}
_DEV_NAMES = [m.name.lower() for m in Deviation]


@dataclass(frozen=True)
class Settlement:
    """Result of :func:`settle`: per-case table, per-hospital table, region summary (JSON-ready).

    Money types: in ``hospitals`` every amount is an exact ``decimal128(20, 2)`` (yuan to the fen) and
    ``points`` a ``decimal128(30, 10)``; in ``cases`` ``standard_payment`` and ``fund_payment`` are float64 yuan,
    each the double nearest to a whole number of fen (``round(x * 100)`` gives the fen back exactly); in
    ``region`` amounts are decimal strings (JSON has no exact decimal).
    """

    cases: pa.Table
    hospitals: pa.Table
    region: dict


def _hospital_coefs(hospitals: pa.Table, level: np.ndarray, policy, history) -> np.ndarray:
    hc = policy.hospital_coef
    if hc.method == "column":
        if "coefficient" not in hospitals.column_names:
            raise InputError(
                "hospitals table: hospital_coef.method = 'column' but the table has no coefficient column",
                column="coefficient",
            )
        k = numbers(hospitals, "coefficient")
        if np.isnan(k).any():
            raise InputError("hospitals table: coefficient is empty for some hospital", column="coefficient")
        return k
    if hc.method == "history":
        if history is None or "level_coefficients" not in history:
            raise InputError(
                "hospital_coef.method = 'history' needs level history (level_years.csv in the history folder)",
                key="hospital_coef.method",
            )
        table = ByKey({int(lv): float(v) for lv, v in history["level_coefficients"].items()})
    else:
        table = hc.table
    return table.at(level)


def _avg_cost(cases: pa.Table, catalogue, factor: np.ndarray) -> np.ndarray:
    """Comparison average A (§3.2): ``dip_avg_cost`` if given, else the catalogue's avg_cost; × the level factor
    of each case (``factor``)."""
    if "dip_avg_cost" in cases.column_names:
        a = numbers(cases, "dip_avg_cost")
    elif catalogue is not None:
        cat = catalogue.table
        idx = lookup(strings(cases, "dip_group"), cat.column("dip_code"))
        avg = cat.column("avg_cost").to_numpy(zero_copy_only=False).astype(np.float64)
        a = np.where(idx >= 0, avg[np.maximum(idx, 0)], np.nan)
    else:
        raise InputError(
            "cases: no comparison average: give a dip_avg_cost column or a catalogue", column="dip_avg_cost"
        )
    return a * factor


def _pool_of(ins: pa.Array, pools: tuple[str, ...]) -> np.ndarray:
    """Pool index per case (−1 = no pool: self-pay or unknown 险种)."""
    index = [0, 0] if pools == ("all",) else [pools.index("employee"), pools.index("resident")]
    return lookup(ins, pa.array(["employee", "resident"]), np.array(index))


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
    deductions: Mapping[tuple[str, int], int] | None = None,
    batch_size: int = BATCH_SIZE,
) -> Settlement:
    """Settle a region's year (区域点数法总额预算结算): route, points, point values, hospital payments.

    Parameters
    ----------
    cases : pa.Table, pandas DataFrame or any Arrow-compatible table
        Grouped discharges: canonical columns (``case_id``, ``hospital_id``, ``insurance_type``, ``los_days``,
        ``discharge_date``, ``total_cost``, ``fund_paid``, ``patient_paid``, …) plus, for DIP, ``dip_group``,
        ``dip_kind``, ``dip_score``, ``aux_coef`` (``dip_avg_cost`` optional) or, for DRG, ``drg``.
    hospitals : pa.Table, pandas DataFrame or any Arrow-compatible table
        ``hospital_id``, ``name``, ``level`` (1/2/3); optional ``coefficient``, ``assessment_coef``,
        ``audit_deduction`` (yuan).
    policy : Policy
    catalogue : grouper.dip.catalogue.Catalogue, optional
        Source of A when the cases carry no ``dip_avg_cost``.
    weights : pa.Table, optional
        DRG weights (``drg``, ``rw``), required for a DRG policy.
    history : dict, optional
        ``{"pools": {pool: (costs[3], points[3])}, "hospitals": {pool: (costs, points, own_costs | None)},
        "cases": pa.Table, "level_coefficients": {level: k}}`` as :func:`payment.history.read_history` reads a
        history folder (docs/history.md);
        ``cases`` (``pool`` or ``insurance_type``, ``year``, ``total_cost``, ``points``) feeds
        ``budget_method = "history_trimmed"``.
    special_cases : sequence of str
        case_ids declared for 特例单议, in review-priority order; approved up to the region-wide cap.
    deductions : mapping, optional
        Monthly audit deductions (该月审核扣款) in fen by ``(hospital_id, month 1–12)``, as
        :func:`payment.deductions.parse_deductions` returns them: taken off the monthly pre-settlement (so off ``prepaid``) and
        counted in the year's ``audit_deduction``, so that the clearing takes them once.
    batch_size : int
        Rows per batch of :func:`settle_batches` (bounds the intermediates; results do not depend on it).

    Returns
    -------
    Settlement
    """
    cases, hospitals = to_arrow(cases), to_arrow(hospitals)
    weights = None if weights is None else to_arrow(weights)
    n = cases.num_rows
    check_cases(cases, where="cases table", first_row=1)
    check_cases(hospitals, where="hospitals table", first_row=1, kind="hospitals")

    def batches() -> Iterator[pa.Table]:
        return (cases.slice(i, batch_size) for i in range(0, max(n, 1), batch_size))

    parts: list[pa.Table] = []
    hosp, region = settle_batches(
        batches,
        hospitals,
        policy,
        write=parts.append,
        catalogue=catalogue,
        weights=weights,
        history=history,
        special_cases=special_cases,
        deductions=deductions,
    )
    return Settlement(pa.concat_tables(parts), hosp, region)


def settle_batches(
    batches: Callable[[], Iterable[pa.Table]],
    hospitals: pa.Table,
    policy,
    *,
    write: Callable[[pa.Table], None],
    catalogue=None,
    weights: pa.Table | None = None,
    history: dict | None = None,
    special_cases: Sequence[str] = (),
    deductions: Mapping[tuple[str, int], int] | None = None,
    on_pass: Callable[[str, int | None], None] | None = None,
    on_rows: Callable[[int], None] | None = None,
    early: Callable[[pa.Table], None] | None = None,
) -> tuple[pa.Table, dict]:
    """Settle a region's year from record batches with bounded memory (the engine behind :func:`settle`).

    Pass 1 reads the batches (once), routes and prices every case and reduces them to per hospital × pool
    sums (the point value depends on all cases) and to the small aggregates that need the whole region: the
    特例单议 approvals (region-wide cap, declared order) and the bed-day episodes (re-admission merging and
    yearly caps per patient). What pass 2 needs of each priced batch goes to a spill file (payment.spill:
    bounded memory, no second read or pricing). When approved special cases or unified bed-day points change
    a case's points, the sums are taken again from the spill (pass 1b). Pass 2 reads the spill back, applies
    the region-wide decisions and hands each per-case table to ``write``, in input order. Sums are taken in
    row order across batches, so the results do not depend on how the cases are cut.

    Parameters
    ----------
    batches : callable
        Returns an iterable of case tables (called once).
    hospitals, policy, catalogue, weights, history, special_cases, deductions
        As for :func:`settle`.
    write : callable
        Receives the per-case table of each batch (columns as in ``Settlement.cases``).
    on_pass : callable, optional
        ``on_pass(what, rows)`` at the start of each pass over the batches (progress bars): what it does and
        the rows it reads (None for the first pass, whose count is not known yet).
    on_rows : callable, optional
        Called with the rows of each batch read back from the spill (passes 1b and 2; the caller counts the
        batches it gives pass 1), for progress bars.
    early : callable, optional
        When no special case is declared, the per-case columns up to :data:`LEADING` are final after pass 1: each
        batch's are then given to ``early`` in pass 1 (to be encoded while the cases are read) and ``write``
        receives the other columns only (payment.casefile.CaseWriter joins them). Otherwise not called.

    Returns
    -------
    (hospitals, region) : pa.Table, dict   as ``Settlement.hospitals`` and ``Settlement.region``
    """
    reg = prepare(
        hospitals,
        policy,
        catalogue=catalogue,
        weights=weights,
        history=history,
        special_cases=special_cases,
        deductions=deductions,
    )
    passes = on_pass or (lambda what, rows: None)
    passes("pass 1: points and sums", None)
    ahead = early is not None and not reg.special_cases  # the leading columns written in pass 1

    def priced() -> Iterator[tuple[_Frame, pa.Table, pa.Table | None]]:
        rows = 0
        for t in batches():
            f = _priced(t, reg, rows)
            yield f, _spilled(f, ids=not ahead), _leading_columns(f) if ahead else None
            rows += t.num_rows

    with Spill() as spill:  # each batch as pass 1 priced it, for pass 2 (the input is read once)
        scan = _Scan(reg)
        for f, kept, leading in read_ahead(priced()):  # the next batch priced in a background thread
            scan.add(f)
            spill.write(kept)
            if ahead:
                early(leading)
        res = scan.resolve()

        def frames() -> Iterator[_Frame]:
            offset = 0
            for t in spill:
                yield _resolved(_unspilled(t, reg, offset), reg, res)
                offset += t.num_rows
                if on_rows is not None:
                    on_rows(t.num_rows)

        if needs_second_sums(reg, res):
            passes("pass 1b: sums after special cases and bed-day episodes", scan.rows)
            scan.sums = _Sums(reg)
            for f in frames():
                scan.sums.add(f)
        pools = settle_pools(reg, scan.sums)
        passes("pass 2: payments per case", scan.rows)
        fund_by_route = np.zeros(reg.n_h * 8 + 1, dtype=np.int64)
        for f in frames():
            write(_case_table(f, reg, pools, fund_by_route, leading=not ahead))
    return finish(reg, scan, pools, fund_by_route, res)


# ---------------------------------------------------------------------------------------------------------
# the passes over one part of the cases (the whole of them locally, a partition on a cluster:
# payment.distributed merges the parts' aggregates in row order)


def prepare(
    hospitals: pa.Table,
    policy,
    *,
    catalogue=None,
    weights: pa.Table | None = None,
    history: dict | None = None,
    special_cases: Sequence[str] = (),
    deductions: Mapping[tuple[str, int], int] | None = None,
) -> _Region:
    """What every part of the cases is settled with: the policy, the hospitals and the budget point values
    (arguments as for :func:`settle`)."""
    return _Region.build(hospitals, policy, catalogue, weights, history or {}, special_cases, deductions)


def scan_part(reg: _Region, batches: Callable[[], Iterable[pa.Table]]) -> _Scan:
    """Pass 1 over a part of the cases: sums and region-wide aggregates, row numbers counted from the part's
    first row (:meth:`_Scan.merge` shifts them)."""
    scan = _Scan(reg)
    for t in batches():
        scan.add(_frame(t, reg, scan.rows, None))
    return scan


def merge_scans(reg: _Region, scans: Sequence[_Scan]) -> _Scan:
    """The scans of consecutive parts, in row order, as one (as :func:`scan_part` over all of them gives)."""
    merged = _Scan(reg)
    for scan in scans:
        merged.merge(scan)
    return merged


def merge_sums(reg: _Region, parts: Sequence[_Sums]) -> _Sums:
    """The pass-1b sums of the parts, added."""
    merged = _Sums(reg)
    for sums in parts:
        merged.merge(sums)
    return merged


def needs_second_sums(reg: _Region, res: _Resolved) -> bool:
    """Whether approved special cases or unified bed-day points change case points (pass 1b)."""
    return bool(len(res.approved) or (reg.unified and len(res.bd_rows)))


def sums_part(reg: _Region, batches: Callable[[], Iterable[pa.Table]], offset: int, res: _Resolved) -> _Sums:
    """Pass 1b over a part whose first row is region row ``offset``: the sums with the resolved cases."""
    sums = _Sums(reg)
    for t in batches():
        sums.add(_frame(t, reg, offset, res))
        offset += t.num_rows
    return sums


def cases_part(
    reg: _Region,
    batches: Callable[[], Iterable[pa.Table]],
    offset: int,
    res: _Resolved,
    pools: _Pools,
    write: Callable[[pa.Table], None],
) -> tuple[np.ndarray, int]:
    """Pass 2 over a part whose first row is region row ``offset``: each per-case table to ``write``; returns
    the fund paid outside the pools per hospital × route (fen, flat) and the rows read."""
    fund_by_route = np.zeros(reg.n_h * 8 + 1, dtype=np.int64)
    rows = 0
    for t in batches():
        f = _frame(t, reg, offset + rows, res)
        write(_case_table(f, reg, pools, fund_by_route))
        rows += t.num_rows
    return fund_by_route, rows


def finish(
    reg: _Region, scan: _Scan, pools: _Pools, fund_by_route: np.ndarray, res: _Resolved
) -> tuple[pa.Table, dict]:
    """The hospital table and the region summary from the merged aggregates."""
    fund = fund_by_route[:-1].reshape(reg.n_h, 8)
    hosp, totals = _hospital_table(reg, scan, pools, fund)
    return hosp, _region_summary(reg, scan, pools, fund, res, totals)


def expected_payments(
    batches: Callable[[], Iterable[pa.Table]],
    hospitals: pa.Table,
    policy,
    *,
    catalogue=None,
    weights: pa.Table | None = None,
) -> Iterator[pa.Table]:
    """Expected payment (预计支付) of each case at the budget point value, batch by batch, without settling.

    Cases are routed and priced as :func:`settle_batches` does (routes, hospital coefficient, deviation class,
    基层/中医 factors, per-case prices, bed-day standards), and their points are converted at the published
    **budget** point value (年初/预算点值) of their pool: what a hospital knows before the year-end clearing.
    Fee-for-service and excluded cases are paid their cost; a hospital missing from ``hospitals`` gets null.
    A first pass reads every batch for the region-wide aggregates (bed-day episodes); then one table is yielded
    per batch, same rows and order.

    Parameters
    ----------
    batches : callable
        Returns a fresh iterable of grouped case tables (the same rows, in the same order, at every call).
    hospitals, policy, catalogue, weights
        As for :func:`settle` (no history, special cases or deductions: those belong to the clearing).

    Yields
    ------
    pa.Table: ``route``, ``deviation``, ``points``, ``point_value``, ``expected_payment`` (yuan, to the fen).
    """
    pricing = ExpectedPayments(hospitals, policy, catalogue=catalogue, weights=weights)
    for t in batches():
        pricing.scan(t)
    for t in batches():
        yield pricing.price(t)


class ExpectedPayments:
    """:func:`expected_payments` driven by the caller: :meth:`scan` every batch of the region once, then
    :meth:`price` the same batches in the same order (a caller that reads its batches for other work too can scan
    and price in those passes).

    Examples
    --------
    >>> pricing = ExpectedPayments(hospitals, policy, catalogue=catalogue)  # doctest: +SKIP
    >>> for t in batches: pricing.scan(t)  # doctest: +SKIP
    >>> priced = [pricing.price(t) for t in batches]  # doctest: +SKIP
    """

    def __init__(self, hospitals: pa.Table, policy, *, catalogue=None, weights: pa.Table | None = None):
        hospitals = to_arrow(hospitals)
        weights = None if weights is None else to_arrow(weights)
        self._reg = _Region.build(hospitals, policy, catalogue, weights, {}, (), None)
        self._scan = _Scan(self._reg)
        self._res: _Resolved | None = None
        self._offset = 0

    def scan(self, cases: pa.Table) -> None:
        """Pass 1: one batch of grouped cases, in order (the region-wide aggregates: bed-day episodes)."""
        if self._res is not None:
            raise InputError("cases: every batch is scanned before the first is priced")
        self._scan.add(_frame(cases, self._reg, self._scan.rows, None))

    def price(self, cases: pa.Table) -> pa.Table:
        """Pass 2: the next batch, as scanned: ``route``, ``deviation``, ``points``, ``point_value``,
        ``expected_payment``."""
        if self._res is None:
            self._res = self._scan.resolve()
        if self._offset + cases.num_rows > self._scan.rows:
            raise InputError(f"cases: more rows priced than scanned ({self._scan.rows})")
        f = _frame(cases, self._reg, self._offset, self._res)
        self._offset += cases.num_rows
        return _expected_table(f)

    # a run cut into parts priced apart (the workers of a cluster): scan each part on an empty copy, merge the
    # scans here in row order, then price each part on a copy positioned at its first row

    def part(self) -> ExpectedPayments:
        """An empty copy (the same region) to :meth:`scan` one part of the cases apart."""
        new = copy.copy(self)
        new._scan, new._res, new._offset = _Scan(self._reg), None, 0
        return new

    def scanned(self):
        """What the scan of a part sends back to :meth:`merge` (its aggregates, not the region)."""
        scan = copy.copy(self._scan)
        scan.reg = None
        return scan

    def merge(self, scans: Iterable) -> None:
        """Take in the :meth:`scanned` parts that follow the cases scanned so far, in row order."""
        for scan in scans:
            self._scan.merge(scan)

    def at(self, offset: int) -> ExpectedPayments:
        """A copy, every batch scanned, that prices the cases from row ``offset`` on."""
        if self._res is None:
            self._res = self._scan.resolve()
        new = copy.copy(self)
        new._offset = offset
        return new


def _expected_table(f: _Frame) -> pa.Table:
    route = f.route
    pay = np.where(f.pooled, f.points * f.vb_case, np.nan)
    carve = ~f.pooled & ((route == Route.BED_DAY) | (route == Route.PER_CASE))
    pay = np.where(carve, f.standard_amount, pay)
    pay = np.where(route == Route.FEE_FOR_SERVICE, f.cost, pay)
    pay = np.where(f.hidx < 0, np.nan, pay)  # a hospital missing from the hospitals table: no level, no price
    fen = np.floor(np.abs(pay) * 100 + 0.5 + TIE_FEN) * np.sign(pay)
    names = np.array([r.name for r in Route], dtype=object)  # Route values are 1 …
    return pa.table(
        {
            "route": pa.array(names[route.astype(np.int64) - 1].astype(str)),
            "deviation": pa.array(np.array(_DEV_NAMES)[f.deviation.astype(np.int64)]),
            "points": pa.array(np.where(f.pooled, f.points, np.nan), mask=~f.pooled),
            "point_value": pa.array(f.vb_case, mask=~f.pooled),
            "expected_payment": pa.array(fen / 100.0, mask=np.isnan(pay)),
        }
    )


@dataclass(frozen=True)
class _Region:
    """What every batch needs: the policy, the hospitals and the budget point values of the pools."""

    policy: object
    catalogue: object
    hospitals: pa.Table
    hosp_ids: pa.Array
    h_level: np.ndarray
    h_coef: np.ndarray
    pools: tuple[str, ...]
    v_budget: list[Fraction]
    vb_pub: list[Fraction]
    vb_pool: np.ndarray  #: published budget point value per pool index (last entry 0.0: no pool)
    weights: tuple[pa.Array, np.ndarray] | None  #: DRG codes and rw
    special_cases: tuple[str, ...]
    budget_trim: list[dict | None]  #: per pool: the trimmed years behind the budget point value, if trimmed
    deduct_fen: np.ndarray | None  #: monthly audit deductions, hospital × month (1–12), fen

    @classmethod
    def build(cls, hospitals, policy, catalogue, weights, history, special_cases, deductions) -> _Region:
        hosp_ids = pc.cast(hospitals.column("hospital_id"), pa.string()).combine_chunks()
        if pc.count_distinct(hosp_ids).as_py() != len(hosp_ids):
            raise InputError("hospitals table: hospital_id is not unique", column="hospital_id")
        h_level = numbers(hospitals, "level", 0).astype(np.int64)
        bad = ~np.isin(h_level, (1, 2, 3))
        if bad.any():
            raise InputError(
                f"hospitals table: level must be 1, 2 or 3 (hospital {hosp_ids[int(np.argmax(bad))]})",
                column="level",
            )
        h_coef = _hospital_coefs(hospitals, h_level, policy, history)
        w = None
        if policy.scheme != "dip":
            if weights is None:
                raise InputError("a DRG policy needs a weights table (drg, rw)", key="scheme")
            rw = pc.cast(weights.column("rw"), pa.float64()).to_numpy(zero_copy_only=False)
            w = (weights.column("drg").combine_chunks(), rw)
        # budget point values per pool (given, history 1:2:7, trimmed case history, or the 优值区间)
        v_budget, trim = zip(*(_budget_value(policy, p, history) for p in policy.pools), strict=True)
        vb_pub = [publish(v, policy.point_value.decimals) for v in v_budget]
        return cls(
            policy, catalogue, hospitals, hosp_ids, h_level, h_coef, policy.pools, list(v_budget), vb_pub,
            np.array([float(v) for v in vb_pub] + [0.0]), w, tuple(special_cases), list(trim),
            deduction_grid(deductions, hosp_ids),
        )  # fmt: skip

    @property
    def n_h(self) -> int:
        return len(self.hosp_ids)

    @property
    def n_pool(self) -> int:
        return len(self.pools)

    @property
    def unified(self) -> bool:
        return self.policy.budget.design == "unified"


@dataclass(frozen=True)
class _Resolved:
    """The region-wide decisions of pass 1, by row number: approved 特例单议 cases and bed-day amounts."""

    approved: np.ndarray  #: sorted row numbers
    n_declared: int
    cap: int
    bd_rows: np.ndarray  #: sorted row numbers of the bed-day cases
    bd_amount: np.ndarray  #: their standard amounts (yuan)


@dataclass
class _Frame:
    """Per-case arrays of one batch (rows ``offset`` … ``offset + n − 1`` of the region)."""

    table: (
        pa.Table
    )  #: the cases (a frame read back from the spill: case_id, hospital_id, insurance_type only)
    offset: int
    hidx: np.ndarray
    pool: np.ndarray
    cost: np.ndarray
    cost_fen: np.ndarray  #: the case's money in fen (int64): sums of it are exact
    fund_fen: np.ndarray
    patient_fen: np.ndarray
    month: np.ndarray  #: month 1–12 of the discharge date (0: none)
    route: np.ndarray  #: int8 ``Route`` codes (payment.route.Routing)
    reason: np.ndarray  #: index into ``REASONS``
    per_case_item: np.ndarray  #: per-case price item (−1: not PER_CASE)
    in_scheme: np.ndarray
    base: np.ndarray
    k_case: np.ndarray
    aux: np.ndarray
    points: np.ndarray  #: float64 points, = units / POINT_UNITS
    units: np.ndarray  #: int64 points in 1e-9 point (money.POINT_UNITS): what the money is computed from
    deviation: np.ndarray
    vb_case: np.ndarray
    special: np.ndarray
    standard_amount: np.ndarray
    pooled: np.ndarray  #: points paid from the pool (scheme cases; fallbacks under the unified design)
    slot: np.ndarray  #: hospital × pool slot (last slot: outside every pool)
    # pass 1 only (None in a frame read back from the spill)
    level: np.ndarray | None = None
    los: np.ndarray | None = None
    bed_day_category: np.ndarray | None = None
    #: the group's average cost A (DIP A × level factor; DRG RW × city_avg_cost), NaN unknown
    group_avg: np.ndarray | None = None


def _frame(cases: pa.Table, reg: _Region, offset: int, res: _Resolved | None) -> _Frame:
    """Route and price one batch; ``res`` None (pass 1) = no special case approved, bed-day amounts unknown."""
    f = _priced(cases, reg, offset)
    return f if res is None else _resolved(f, reg, res)


def _priced(cases: pa.Table, reg: _Region, offset: int) -> _Frame:
    """One batch routed and priced as pass 1 sees it: before the region-wide decisions (approved 特例单议, bed-day
    amounts), which :func:`_resolved` applies."""
    policy, pools = reg.policy, reg.pools
    n = cases.num_rows
    hidx = lookup(strings(cases, "hospital_id"), reg.hosp_ids)
    # per hospital, with one more entry for the cases of no known hospital (index −1), spread to the cases
    h_level = np.append(reg.h_level, 0)
    level = spread(h_level, hidx)
    kk = spread(np.nan_to_num(np.append(reg.h_coef, 0.0), nan=0.0), hidx)

    pool = _pool_of(strings(cases, "insurance_type"), pools)
    cost = numbers(cases, "total_cost", 0.0)
    los = numbers(cases, "los_days", 0.0).astype(np.int64)

    # base points (S or RW × scale) and whether the case has a payable group
    if policy.scheme == "dip":
        score = numbers(cases, "dip_score")
        aux = numbers(cases, "aux_coef", 1.0)
        grouped = np.isfinite(score) & (score > 0)
        status = strings(cases, "dip_status")
        grouped &= ~isin(status, [s.name for s in Status if s.is_error])
        base = np.where(grouped, score, 0.0)
    else:
        widx = lookup(strings(cases, "drg"), reg.weights[0])
        rw = np.where(widx >= 0, reg.weights[1][np.maximum(widx, 0)], np.nan)
        grouped = np.isfinite(rw) & (rw > 0)
        status = strings(cases, "drg_status")
        grouped &= ~isin(status, [s.name for s in Status if s.is_error])
        base = np.where(grouped, rw * policy.scores.score_scale, 0.0)

    duplicate = isin(status, ["DUPLICATE_CASE"])
    no_id = isin(status, ["CASE_ID_MISSING"])
    routing = route_cases(cases, policy, level.astype(np.int8), grouped, pool >= 0, duplicate, no_id)
    route = routing.route
    in_scheme = route == (Route.DIP if policy.scheme == "dip" else Route.DRG)

    # case points
    if policy.scheme == "dip":
        rule = DeviationRule.from_policy(policy.deviation)
        avg = _avg_cost(
            cases, reg.catalogue, spread(policy.deviation.avg_cost_factor.at(h_level, missing=1.0), hidx)
        )
        group = strings(cases, "dip_group")
        primary = isin(group, policy.primary_care.groups)  # 基层病种: the 基层 factor in place of k
        tcm = isin(group, policy.tcm.groups)  # 中医优势病种: own factor, no deviation unless the policy says
        k_case = np.where(primary, policy.primary_care.factor, kk)
        if policy.deviation.k == "by_pool":  # a k per 险种 replaces the hospital coefficient (§3.3)
            k_case = np.array([policy.deviation.k_by_pool[p] for p in pools] + [0.0])[pool]
        unmatched = isin(strings(cases, "dip_kind"), ["blank", "placeholder"])
        pts, dev = dip_points(
            base,
            k_case,
            aux,
            cost,
            avg,
            rule,
            unmatched=unmatched,
            no_deviation=tcm & (not policy.tcm.deviation),
        )
        pts = np.where(tcm, pts * policy.tcm.factor, pts)
    else:
        rw0 = np.nan_to_num(rw, nan=0.0)
        pts, dev = drg_points(rw0, kk, cost, DrgRule.from_policy(policy))
        k_case, aux = kk, np.ones(n)
        avg = rw0 * policy.deviation.drg.city_avg_cost  # the DRG's average cost A = RW × city average
    # points (a scheme case's; a fallback's standard amount at the budget point value under the unified design),
    # the budget point value of its pool, bed-day amounts (known after pass 1) and the hospital × pool slot (last
    # slot: cases outside every pool), in one pass
    units, points, deviation, vb_case, standard_amount, pooled, slot = priced_tail(
        in_scheme, np.ascontiguousarray(pts, np.float64), np.ascontiguousarray(dev, np.int8), pool, hidx,
        route, np.ascontiguousarray(routing.per_case_price, np.float64), reg.vb_pool, reg.unified, reg.n_h,
        reg.n_pool,
    )  # fmt: skip
    fund_paid, patient_paid = numbers(cases, "fund_paid", 0.0), numbers(cases, "patient_paid", 0.0)
    return _Frame(
        table=cases, offset=offset, hidx=hidx, pool=pool, cost=cost, cost_fen=fen_half_up(cost),
        fund_fen=fen_half_up(fund_paid), patient_fen=fen_half_up(patient_paid), month=_months(cases), route=route,
        reason=routing.reason, per_case_item=routing.per_case_item, in_scheme=in_scheme, base=base, k_case=k_case,
        aux=aux, points=points, units=units, deviation=deviation, vb_case=vb_case,
        special=np.zeros(n, dtype=bool), standard_amount=standard_amount, pooled=pooled, slot=slot, level=level,
        los=los, group_avg=avg, bed_day_category=routing.bed_day_category,
    )  # fmt: skip


def _resolved(f: _Frame, reg: _Region, res: _Resolved) -> _Frame:
    """A batch priced by :func:`_priced` with the region-wide decisions of pass 1 applied: 特例单议 approved (paid
    by item, or at the actual cost in points: docs/formulas.md §9) and the bed-day standard amounts; the same
    arrays as routing and pricing the batch again with them."""
    policy, n, offset = reg.policy, len(f.cost), f.offset
    special = np.zeros(n, dtype=bool)
    special[_rows_in(res.approved, offset, n)] = True
    route, reason = f.route, f.reason
    if special.any() and policy.special_case.payment == "fee_for_service":
        route, reason = route.copy(), reason.copy()
        np.putmask(route, special, Route.FEE_FOR_SERVICE)
        np.putmask(reason, special, REASONS.index("special_case_fee_for_service"))
    standard_amount = f.standard_amount.copy()
    lo, hi = np.searchsorted(res.bd_rows, (offset, offset + n))
    standard_amount[res.bd_rows[lo:hi] - offset] = res.bd_amount[lo:hi]
    # approved cases only leave the scheme: the scheme cases' points and deviation are pass 1's; 特例单议 paid in
    # points: the actual cost at the budget point value
    in_scheme, units, points, deviation, vb_case, pooled, slot = _points_of(
        f, reg, route, f.units, f.deviation, special, standard_amount
    )
    return dataclasses.replace(
        f,
        route=route,
        reason=reason,
        in_scheme=in_scheme,
        points=points,
        units=units,
        deviation=deviation,
        vb_case=vb_case,
        special=special,
        standard_amount=standard_amount,
        pooled=pooled,
        slot=slot,
    )


#: What pass 2 needs of a priced batch besides the case columns it copies (_IDS): kept in the spill
_KEPT = ("hidx", "pool", "cost", "fund_fen", "patient_fen", "month", "route", "reason", "per_case_item", "units",
         "deviation", "base", "k_case", "aux", "standard_amount")  # fmt: skip
#: What only the leading columns need (not spilled when those are written in pass 1).
_LEADING_ONLY = ("base", "k_case", "aux")
#: The case columns cases.parquet copies (as they are read).
_IDS = ("case_id", "hospital_id", "insurance_type")


#: The integer arrays the spill keeps in the narrowest integer type that holds a batch's values (fewer bytes
#: written and read between the passes), and the type they are read back as (a frame's).
_NARROWED = {"hidx": np.int64, "pool": np.int64, "month": np.int64, "fund_fen": np.int64, "patient_fen": np.int64,
             "per_case_item": np.int32}  # fmt: skip


def _narrowest(a: np.ndarray) -> np.ndarray:
    """Integers in the narrowest integer type that holds their values."""
    if len(a):
        lo, hi = int(a.min()), int(a.max())
        for t in (np.int8, np.int16, np.int32):
            if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max:
                return a.astype(t)
    return a


def _spilled(f: _Frame, ids: bool = True) -> pa.Table:
    """A priced batch as the spill keeps it: the copied case columns and the arrays of :data:`_KEPT` (with
    ``ids=False``, what the columns after :data:`LEADING` need: neither those nor :data:`_LEADING_ONLY`)."""
    names = _KEPT if ids else tuple(n for n in _KEPT if n not in _LEADING_ONLY)
    kept = [getattr(f, name) for name in names]
    kept = [pa.array(_narrowest(a) if name in _NARROWED else a) for name, a in zip(names, kept, strict=True)]
    if not ids:
        return pa.table(kept, names=list(names))
    ids = [f.table.column("case_id"), f.table.column("hospital_id"), strings(f.table, "insurance_type")]
    return pa.table(ids + kept, names=[*_IDS, *names])


def _unspilled(t: pa.Table, reg: _Region, offset: int) -> _Frame:
    """The frame of a batch read back from the spill (rows ``offset`` … of the region), as :func:`_priced` gave
    it (without the pass-1-only arrays; without those of :data:`_LEADING_ONLY` when they were not spilled), for
    :func:`_resolved`, which works out its points, pools and slots."""
    a = {name: t.column(name).to_numpy() for name in _KEPT if name in t.column_names}
    a.update({name: a[name].astype(typ, copy=False) for name, typ in _NARROWED.items()})
    hidx, pool, route = a["hidx"], a["pool"], a["route"]
    return _Frame(
        table=t.select([n for n in _IDS if n in t.column_names]), offset=offset, hidx=hidx, pool=pool, cost=a["cost"],
        cost_fen=fen_half_up(a["cost"]), fund_fen=a["fund_fen"], patient_fen=a["patient_fen"], month=a["month"],
        route=route, reason=a["reason"], per_case_item=a["per_case_item"], in_scheme=None, base=a.get("base"),
        k_case=a.get("k_case"), aux=a.get("aux"), points=None, units=a["units"], deviation=a["deviation"],
        vb_case=None, special=np.zeros(len(route), dtype=bool), standard_amount=a["standard_amount"], pooled=None,
        slot=None,
    )  # fmt: skip


def _points_of(f: _Frame, reg: _Region, route, units, deviation, special, standard_amount) -> tuple:
    """``in_scheme``, ``units``, ``points``, ``deviation``, ``vb_case``, ``pooled`` and ``slot`` of a batch whose
    cases take ``route`` (payment.kernels.resolved_points)."""
    scheme = Route.DIP if reg.policy.scheme == "dip" else Route.DRG
    return resolved_points(
        route, units, deviation, special, f.cost, standard_amount, f.hidx, f.pool, reg.vb_pool, reg.unified,
        int(scheme), reg.n_h, reg.n_pool,
    )  # fmt: skip


def _rows_in(rows: np.ndarray, offset: int, n: int) -> np.ndarray:
    """Positions in the batch of the sorted region row numbers that fall in ``[offset, offset + n)``."""
    lo, hi = np.searchsorted(rows, (offset, offset + n))
    return rows[lo:hi] - offset


class _Sums:
    """Exact per hospital × pool (× month) sums: points in 1e-9 point, money in fen (int64)."""

    def __init__(self, reg: _Region):
        m = reg.n_h * reg.n_pool
        self.slot = np.zeros((4, m + 1), np.int64)  # points, patient paid, total cost, fund paid
        self.month = np.zeros(
            (2, m * 13 + 13), np.int64
        )  # points, patient paid per slot × month (0 = unknown)
        self.month_count = np.zeros(m * 13 + 13, dtype=np.int64)

    def add(self, f: _Frame) -> None:
        at = sum_cases(
            f.slot, f.month, f.units, f.patient_fen, f.cost_fen, f.fund_fen, bool(f.pooled.any()), self.slot,
            self.month, self.month_count,
        )  # fmt: skip
        if at >= 0:
            raise _overflow(at)

    def merge(self, other: _Sums) -> None:
        """Add the sums of another part (exact: int64, an overflow is an error)."""
        for mine, theirs in ((self.slot, other.slot), (self.month, other.month)):
            for row, w in zip(mine, theirs, strict=True):
                _add_exact(row, np.arange(len(row)), w)
        self.month_count += other.month_count

    def per_slot(self, reg: _Region) -> list[np.ndarray]:
        """points (1e-9 point), patient paid, cost and fund paid (fen) as n_h × n_pool int64 arrays."""
        return [row[:-1].reshape(reg.n_h, reg.n_pool) for row in self.slot]


def _add_exact(acc: np.ndarray, index: np.ndarray, weights: np.ndarray) -> None:
    """``acc[index[i]] += weights[i]`` in int64; a sum beyond int64 is an error, never a wrap-around."""
    at = add_exact(acc, index, weights)
    if at >= 0:
        raise _overflow(at)


def _overflow(at: int) -> DrgdipError:
    return DrgdipError(
        f"a hospital's sum of case points or money exceeds the int64 range (slot {at}): split the region"
    )


class _Scan:
    """Pass 1: the sums, the route counts, and the small region-wide aggregates (special cases, bed days)."""

    def __init__(self, reg: _Region):
        self.reg = reg
        self.rows = 0
        self.sums = _Sums(reg)
        self.routes = np.zeros(7, dtype=np.int64)
        self.cases_h = np.zeros(reg.n_h + 1, dtype=np.int64)
        self.paid_cost = np.zeros(2, np.int64)  # cost (fen) of the cases paid by this budget (1: the others)
        self.scheme_cost = np.zeros(2, np.int64)  # cost (fen) of the cases paid by the scheme (1: the others)
        self.declared_row = np.full(len(reg.special_cases), -1, dtype=np.int64)
        self.declared_ok = np.zeros(len(reg.special_cases), dtype=bool)
        self.declared_reason = np.zeros(len(reg.special_cases), dtype=np.int64)
        self.declared_cost = np.zeros(len(reg.special_cases), dtype=np.int64)  # fen
        self.bd: list[tuple] = []
        self.reasons = np.zeros(len(REASONS), dtype=np.int64)
        self.no_date = (
            0  #: cases without a discharge date (one written but unreadable stops a file's settlement)
        )
        self.no_cost = (
            0  #: COST_INVALID cases whose total cost is empty (the others hold text that is not a number)
        )
        self.unknown_hospitals: set[str | None] = set()  # hospital_ids missing from the hospitals table
        #: scheme cases costing more than k × their group's average (plausibility, soft), per hospital
        self.costly = np.zeros(reg.n_h + 1, dtype=np.int64)

    def add(self, f: _Frame) -> None:
        reg, n = self.reg, len(f.cost)
        self.sums.add(f)
        # routes, reasons, cases per hospital, costs paid by the budget and by the scheme, costly cases
        at = tally_cases(
            f.route, f.reason, f.hidx, f.in_scheme, f.cost_fen, f.cost, f.group_avg,
            soft_limit("case_cost_vs_group"), self.routes, self.reasons, self.cases_h, self.paid_cost,
            self.scheme_cost, self.costly,
        )  # fmt: skip
        if at >= 0:
            raise _overflow(at)
        if "discharge_date" in f.table.column_names:
            self.no_date += f.table.column("discharge_date").null_count
        if "total_cost" in f.table.column_names:
            invalid = f.reason == REASONS.index("cost_invalid")
            if invalid.any():
                empty = f.table.column("total_cost").is_null().to_numpy(zero_copy_only=False)
                self.no_cost += int((invalid & empty).sum())
        if (f.hidx < 0).any():
            ids = pc.filter(strings(f.table, "hospital_id"), pa.array(f.hidx < 0))
            self.unknown_hospitals.update(pc.unique(pc.cast(ids, pa.string())).to_pylist())
        if reg.special_cases:
            self._declare(f)
        if (f.route == Route.BED_DAY).any():
            self.bd.append(_bed_day_inputs(f, reg))
        self.rows += n

    def merge(self, other: _Scan) -> None:
        """Take in the scan of the part that follows this one (its row numbers shift by this part's rows)."""
        self.sums.merge(other.sums)
        for name in ("routes", "cases_h", "reasons"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("paid_cost", "scheme_cost"):
            _add_exact(getattr(self, name), np.arange(2), getattr(other, name))
        todo = (self.declared_row < 0) & (other.declared_row >= 0)  # the first case with each declared id
        self.declared_row[todo] = other.declared_row[todo] + self.rows
        for name in ("declared_ok", "declared_reason", "declared_cost"):
            getattr(self, name)[todo] = getattr(other, name)[todo]
        self.bd += [(rows + self.rows, *rest) for rows, *rest in other.bd]
        self.no_date += other.no_date
        self.no_cost += other.no_cost
        self.unknown_hospitals |= other.unknown_hospitals
        self.costly += other.costly
        self.rows += other.rows

    def _declare(self, f: _Frame) -> None:
        """Row of the first case with each declared case_id, and whether it qualifies (over the ratio)."""
        sc = self.reg.policy.special_case
        todo = np.flatnonzero(self.declared_row < 0)
        pos = lookup(
            pa.array([self.reg.special_cases[i] for i in todo], pa.string()), strings(f.table, "case_id")
        )
        found = pos >= 0
        todo, pos = todo[found], pos[found]
        # the group's average standard S × V (docs/formulas.md §9), or the case's own S · k · a × V
        standard = f.base[pos] * f.vb_case[pos]
        if sc.eligible_basis == "case_standard":
            standard = standard * f.k_case[pos] * f.aux[pos]
        self.declared_row[todo] = f.offset + pos
        self.declared_reason[todo] = f.reason[pos]
        self.declared_cost[todo] = f.cost_fen[pos]
        self.declared_ok[todo] = f.in_scheme[pos] & compare(
            f.cost[pos], sc.eligible_ratio * standard, sc.eligible_op
        )

    def resolve(self) -> _Resolved:
        """特例单议: the first ``cap`` qualifying declared cases, in declared order; bed-day amounts."""
        reg = self.reg
        policy = reg.policy
        sc = policy.special_case
        scheme_route = Route.DIP if policy.scheme == "dip" else Route.DRG
        cap = special_case_cap(int(self.routes[scheme_route]), sc.cap_rate)
        found = self.declared_row >= 0
        pos, ok = self.declared_row[found], self.declared_ok[found]
        _, first = np.unique(pos, return_index=True)
        keep = np.sort(first)
        chosen = np.flatnonzero(found)[keep][ok[keep]][:cap]  # declared indices of the approved cases
        approved = np.sort(self.declared_row[chosen])
        if policy.special_case.payment == "fee_for_service":  # counted as paid by item from here on
            self.routes[scheme_route] -= len(chosen)
            self.routes[Route.FEE_FOR_SERVICE] += len(chosen)
            np.subtract.at(self.reasons, self.declared_reason[chosen], 1)
            self.reasons[REASONS.index("special_case_fee_for_service")] += len(chosen)
            moved = int(self.declared_cost[chosen].sum())
            self.scheme_cost += (-moved, moved)
        rows, amount = _bed_day_resolve(self.bd, reg)
        return _Resolved(approved, len(reg.special_cases), cap, rows, amount)


def _bed_day_inputs(f: _Frame, reg: _Region) -> tuple:
    """What the bed-day amounts need of one batch's BED_DAY cases (they depend on a patient's other stays)."""
    bd = reg.policy.bed_day
    cases = f.table
    sel = np.flatnonzero(f.route == Route.BED_DAY)
    cat = f.bed_day_category[sel]
    rate = np.zeros(len(sel))
    for i, c in enumerate(bd.categories):
        np.copyto(rate, c["rate"].at(f.level[sel], missing=0.0), where=cat == i)
    at = pa.array(sel)
    own = pc.binary_join_element_wise(
        "\x1f", strings(cases, "case_id").take(at), ""
    )  # apart from every patient_id
    who = (
        pc.coalesce(strings(cases, "patient_id").take(at), own) if "patient_id" in cases.column_names else own
    )
    patient = to_str_numpy(who)
    dates = None
    if bd.readmit_merge_days and {"admission_date", "discharge_date"} <= set(cases.column_names):
        # a missing date never continues a stay nor is continued (admitted late, discharged early)
        dates = (
            _days(cases, "admission_date", 1 << 40)[sel],
            _days(cases, "discharge_date", -(1 << 40))[sel],
        )
    return f.offset + sel, cat, rate, patient, f.los[sel], dates


#: Bed days without day bands: every day at the full rate.
_FLAT_DAYS = Bands.from_rows([{"from": 0, "factor": 1}], "factor")


def _bed_day_resolve(parts: list[tuple], reg: _Region) -> tuple[np.ndarray, np.ndarray]:
    """Bed-day standard amounts of all BED_DAY cases of the region (row numbers, yuan)."""
    if not parts:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    bd = reg.policy.bed_day
    rows, cat, rate, patient, los = (np.concatenate([p[i] for p in parts]) for i in range(5))
    prior = None
    if all(p[5] is not None for p in parts):
        adm, dis = (np.concatenate([p[5][i] for p in parts]) for i in range(2))
        prior = merged_prior_days(patient, cat, adm, dis, los, bd.readmit_merge_days)
    amount = bed_day_amounts(
        los,
        rate,
        bd.bands if len(bd.bands) else _FLAT_DAYS,
        prior_days=prior,
        max_days=bd.max_days,
        patient=patient,
        annual_cap=bd.annual_cap,
    )
    return rows, amount


@dataclass(frozen=True)
class _Pools:
    """Settlement point values and hospital shares of the pools."""

    value: np.ndarray  #: published settlement point value per pool index (last: 0.0)
    ratio: np.ndarray  #: fund ratio r per pool index (last: 0.0)
    value_exact: list[Fraction]  #: the same, exact (last: 0)
    ratio_exact: list[Fraction]
    allocated: list[int]  #: fen per hospital
    standard: list[Fraction]  #: Σ P_h × V per hospital (yuan)
    summary: dict
    warnings: list[str]  #: wrong clearings that would otherwise pass in silence


def settle_pools(reg: _Region, sums: _Sums) -> _Pools:
    """Per pool: distributable money, settlement point value, hospital shares (docs/formulas.md §1–§2, §7)."""
    policy, pools, n_h = reg.policy, reg.pools, reg.n_h
    hp_all, hpat_all, hcost_all, hfund_all = sums.per_slot(reg)
    v_pool = np.zeros(reg.n_pool + 1)
    r_pool = np.zeros(reg.n_pool + 1)
    v_exact = [Fraction(0)] * (reg.n_pool + 1)
    r_exact = [Fraction(0)] * (reg.n_pool + 1)
    h_alloc = [0] * n_h
    h_std = [Fraction(0)] * n_h
    region_pools = {}
    warnings: list[str] = []
    for pi, p in enumerate(pools):
        bud = policy.budget[p]
        casc = budget_cascade(bud, method=policy.budget.method, design=policy.budget.design)
        hp, hpat, hcost, hfund = hp_all[:, pi], hpat_all[:, pi], hcost_all[:, pi], hfund_all[:, pi]
        P = Fraction(sum(int(x) for x in hp), POINT_UNITS)
        pat_total = Fraction(sum(int(x) for x in hpat), 100)
        cost_total = sum(int(x) for x in hcost)
        fund_total = sum(int(x) for x in hfund)
        r = Fraction(fund_total, cost_total) if cost_total else Fraction(1)
        form, regime = policy.point_value.form, policy.point_value.regime
        D = casc.distributable
        kept = Fraction(0)
        elastic = None
        if P == 0:
            v = Fraction(0)
            if hp_all.any():  # (no points anywhere: the case warnings say why)
                warnings.append(
                    f"pool {p}: no case earns points, so its distributable budget {fen_to_yuan(round_fen(D))} "
                    "yuan is not shared out (point value 0)"
                )
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
        v_exact[pi], r_exact[pi] = v_pub, r
        hr = [Fraction(int(f), int(c)) if c else r for f, c in zip(hfund, hcost, strict=True)]
        gross, alloc = hospital_shares(
            [Fraction(int(x), POINT_UNITS) for x in hp],
            v_pub,
            r,
            keys=reg.hosp_ids.to_pylist(),
            form=form,
            scope=policy.point_value.fund_ratio_scope,
            patient=[Fraction(int(x), 100) for x in hpat],
            hospital_ratio=hr,
        )
        for i in range(n_h):
            h_alloc[i] += alloc[i]
            h_std[i] += gross[i]
        if elastic is not None:  # an elastic pool without points pays nothing and keeps nothing, as floating
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
            "budget_point_value": _fmt_value(reg.v_budget[pi]),
            "budget_point_value_published": _fmt_value(reg.vb_pub[pi]),
            "settlement_point_value": _fmt_value(v),
            "settlement_point_value_exact": f"{v.numerator}/{v.denominator}",
            "settlement_point_value_published": _fmt_value(v_pub),
            "allocated": fen_to_yuan(sum(alloc)),
            "kept_by_fund": fen_to_yuan(round_fen(kept)),
            **_publication_difference(sum(alloc), kept, D),
            "elastic_increment_value": None if elastic is None else _fmt_value(elastic.increment_value),
        }
        if reg.budget_trim[pi] is not None:
            region_pools[p]["budget_trim"] = reg.budget_trim[pi]
        gap = _point_value_gap(P, reg.vb_pub[pi], v_pub)
        region_pools[p]["point_value_gap"] = None if gap is None else round(float(gap), 6)
        warnings += _pool_warnings(reg, p, casc, gap, alloc)
    return _Pools(v_pool, r_pool, v_exact, r_exact, h_alloc, h_std, region_pools, warnings)


def _point_value_gap(points: Fraction, v_budget: Fraction, v_settle: Fraction) -> Fraction | None:
    """|P × (V_budget − V_settlement)| / (P × V_settlement): the share of the pool's money that the clearing
    moves because the prepayments used the budget point value (None when nothing is paid)."""
    if points == 0 or v_settle == 0:
        return None
    return abs(v_budget - v_settle) / v_settle


def _pool_warnings(reg: _Region, pool: str, casc, gap: Fraction | None, alloc: list[int]) -> list[str]:
    """Carve-outs nobody is paid from, a clearing that moves a large share of the budget, one hospital
    taking (nearly) the whole pool."""
    policy, st = reg.policy, reg.policy.settlement
    out = []
    if casc.design == "carve_out":
        for item, routed in (
            ("bed_day", bool(policy.bed_day.categories)),
            ("per_case", bool(policy.per_case.entries)),
        ):
            money = getattr(casc, item)
            if money and not routed:
                what = "bed-day categories" if item == "bed_day" else "per-case entries"
                out.append(
                    f"budget.{pool}.{item} carves {fen_to_yuan(round_fen(money))} yuan out of the pool, but the "
                    f"policy defines no {what}: no case is paid from that money"
                )
    if gap is not None and gap > exact(st.clearing_share_limit):
        out.append(
            f"pool {pool}: the budget point value {_fmt_value(reg.vb_pub[reg.pools.index(pool)])} is "
            f"{float(gap):.1%} away from the settlement value, so the clearing moves about that share of the "
            f"pool's money (settlement.clearing_share_limit {st.clearing_share_limit})"
        )
    total = sum(alloc)
    if reg.n_h > 1 and total > 0:
        top = max(range(reg.n_h), key=lambda i: alloc[i])
        share = Fraction(alloc[top], total)
        if share >= exact(st.hospital_share_limit):
            out.append(
                f"pool {pool}: hospital {reg.hosp_ids[top].as_py()} receives {float(share):.1%} of the pool "
                f"among {reg.n_h} hospitals (settlement.hospital_share_limit {st.hospital_share_limit})"
            )
    return out


#: The per-case columns of cases.parquet that are final after pass 1 when no special case is declared (the
#: first ones: the rest follow).
LEADING = ("case_id", "hospital_id", "insurance_type", "route", "route_reason", "deviation", "special_case",
           "base_points", "hospital_coef", "aux_coef")  # fmt: skip


def _case_table(
    f: _Frame, reg: _Region, pools: _Pools, fund_by_route: np.ndarray, *, leading: bool = True
) -> pa.Table:
    """Pass 2: the per-case money of one batch (informational; hospital totals are exact) and its table (with
    ``leading=False``, its columns after :data:`LEADING`).

    Adds the fund payments of the cases outside the pools to ``fund_by_route`` (hospital × route, fen).
    """
    policy = reg.policy
    pc_ratios = np.array([it["fund_ratio"] for it in policy.per_case.entries] + [0.0])
    kind, point_value, std_yuan, fund_yuan = case_kinds(
        f.route, f.pooled, f.pool, f.per_case_item, f.units, f.standard_amount, pools.value, pools.ratio,
        pc_ratios, reg.unified,
    )  # fmt: skip
    std_fen, fund_fen = _case_money(f, kind, std_yuan, fund_yuan, pools, pc_ratios)
    std_yuan, fund_yuan, at = case_payments(
        kind, std_fen, fund_fen, f.cost_fen, f.fund_fen, f.patient_fen, policy.point_value.form == "subtraction",
        f.hidx, f.pooled, f.route, fund_by_route,
    )  # fmt: skip
    if at >= 0:
        raise _overflow(at)
    rest = {
        "points": pa.array(f.points),
        "point_value": pa.array(point_value, mask=~f.pooled),
        "standard_payment": pa.array(std_yuan),
        "fund_payment": pa.array(fund_yuan),
    }
    if not leading:
        return _per_case(rest)
    first = _leading_columns(f)
    return _per_case({**dict(zip(first.column_names, first.columns, strict=True)), **rest})


#: The per-case columns every case has a value in: written as required (no definition levels to encode: about a
#: tenth of the CPU of writing cases.parquet).
_ALWAYS_SET = frozenset(
    ("route", "route_reason", "deviation", "special_case", "base_points", "points", "standard_payment",
     "fund_payment")
)  # fmt: skip


def _per_case(columns: dict[str, pa.Array | pa.ChunkedArray]) -> pa.Table:
    """A per-case table of ``columns``, those of :data:`_ALWAYS_SET` declared not null."""
    fields = [pa.field(name, c.type, nullable=name not in _ALWAYS_SET) for name, c in columns.items()]
    return pa.Table.from_arrays(list(columns.values()), schema=pa.schema(fields))


def _leading_columns(f: _Frame) -> pa.Table:
    """The columns :data:`LEADING` of one batch's per-case table (the case columns copied from ``f.table``)."""
    cases, route, in_scheme = f.table, f.route, f.in_scheme
    return _per_case(
        {
            "case_id": cases.column("case_id"),
            "hospital_id": cases.column("hospital_id"),
            "insurance_type": strings(cases, "insurance_type"),
            "route": pa.DictionaryArray.from_arrays(
                pa.array(route.astype(np.int8) - 1), pa.array([r_.name for r_ in Route])
            ),
            "route_reason": pa.DictionaryArray.from_arrays(pa.array(f.reason), pa.array(list(REASONS))),
            "deviation": pa.DictionaryArray.from_arrays(pa.array(f.deviation), pa.array(_DEV_NAMES)),
            "special_case": pa.array(f.special),
            "base_points": pa.array(np.where(in_scheme, f.base, 0.0)),
            "hospital_coef": pa.array(np.asarray(f.k_case, dtype=np.float64), mask=~in_scheme),
            "aux_coef": pa.array(np.asarray(f.aux, dtype=np.float64), mask=~in_scheme),
        }
    )


def _publication_difference(allocated: int, kept: Fraction, distributable: Fraction) -> dict:
    """Allocated (+ kept by the fund) − distributable: hospitals are paid points × the *published* point value
    (``point_value.decimals``), so the pool's money differs from its budget by the rounding (docs/formulas.md §0)."""
    diff = round_fen(Fraction(allocated, 100) + kept - distributable)
    return {
        "publication_difference": fen_to_yuan(diff),
        "publication_difference_is": "over" if diff > 0 else "under" if diff < 0 else "none",
    }


def _prepaid(reg: _Region, sums: _Sums) -> list[int]:
    """Monthly pre-settlement per hospital × pool × month at the budget point value, summed per hospital."""
    prepaid = [0] * reg.n_h
    prepay = exact(reg.policy.settlement.prepay_ratio)
    size = reg.n_h * reg.n_pool * 13  # the outside slot's months lie past the end and are dropped
    at = np.flatnonzero(sums.month_count[:size])
    slot, month = np.divmod(at, 13)
    hosp, pool = np.divmod(slot, reg.n_pool)
    hosp = hosp.tolist()
    for pi, name in enumerate(reg.pools):
        for m in np.unique(month[pool == pi]).tolist():
            which = np.flatnonzero((pool == pi) & (month == m))
            sel = at[which]
            # V is in total-cost terms, so points × V − patient payments is the fund's part in either form
            value = _month_value(reg.policy.point_value[name].monthly, m, reg.vb_pub[pi])
            fen = _monthly_fen(
                sums.month[0][sel].astype(object), value, sums.month[1][sel].astype(object), prepay
            )
            for k, f in zip(which.tolist(), fen.tolist(), strict=True):
                prepaid[hosp[k]] += f
    if reg.deduct_fen is not None:  # − 该月审核扣款 (whole fen, so after the rounding of each month)
        prepaid = [a - int(d) for a, d in zip(prepaid, reg.deduct_fen.sum(axis=1), strict=True)]
    return prepaid


_HOSPITAL_COLUMNS = (
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
_FALLBACK_FUNDS = (
    (Route.BED_DAY, "bed_day_fund"),
    (Route.PER_CASE, "per_case_fund"),
    (Route.FEE_FOR_SERVICE, "fee_for_service_fund"),
)


def _hospital_table(reg: _Region, scan: _Scan, pools: _Pools, fund: np.ndarray) -> tuple[pa.Table, dict]:
    """Annual clearing per hospital (docs/formulas.md §7–§8); also the region totals (fen)."""
    st, hospitals = reg.policy.settlement, reg.hospitals
    hp_all, _, hcost_all, _ = scan.sums.per_slot(reg)
    prepaid = _prepaid(reg, scan.sums)
    assess = numbers(hospitals, "assessment_coef", 1.0)
    deduct = numbers(hospitals, "audit_deduction", 0.0)
    billed = hcost_all.sum(axis=1)
    pts_h = hp_all.sum(axis=1)
    monthly = np.zeros(reg.n_h, np.int64) if reg.deduct_fen is None else reg.deduct_fen.sum(axis=1)
    names = strings(hospitals, "name").to_pylist()
    columns = _HOSPITAL_COLUMNS
    if reg.deduct_fen is not None:
        at = columns.index("prepaid") + 1
        columns = (*columns[:at], "monthly_deduction", *columns[at:])
    rows: dict[str, list] = {k2: [] for k2 in columns}
    totals = {"allocated": 0, "payment_due": 0, "prepaid": 0, "clearing": 0}
    for i in range(reg.n_h):
        a_fen = pools.allocated[i]
        gap, adj = band_adjustment(
            pools.standard[i],
            Fraction(int(billed[i]), 100),
            st.surplus_bands,
            st.overspend_bands,
            st.band_mode,
        )
        # the year's audit deductions: those left to the clearing plus those already taken month by month
        deduct_i = exact(float(deduct[i])) + Fraction(int(monthly[i]), 100)
        due, clearing = clearing_payment(a_fen, float(assess[i]), deduct_i, adj, prepaid[i])
        for k2, v2 in (
            ("allocated", a_fen),
            ("payment_due", due),
            ("prepaid", prepaid[i]),
            ("clearing", clearing),
        ):
            totals[k2] += v2
        rows["hospital_id"].append(reg.hosp_ids[i].as_py())
        rows["name"].append(names[i] or "")
        rows["level"].append(int(reg.h_level[i]))
        rows["points"].append(_fmt_value(Fraction(int(pts_h[i]), POINT_UNITS)))
        rows["standard_amount"].append(fen_to_yuan(round_fen(pools.standard[i])))
        rows["billed"].append(fen_to_yuan(int(billed[i])))
        rows["allocated"].append(fen_to_yuan(a_fen))
        rows["assessment_coef"].append(repr(float(assess[i])))
        rows["audit_deduction"].append(fen_to_yuan(round_fen(deduct_i)))
        rows["surplus_or_overspend"].append(fen_to_yuan(round_fen(gap)))
        rows["band_adjustment"].append(fen_to_yuan(round_fen(adj)))
        rows["payment_due"].append(fen_to_yuan(due))
        rows["prepaid"].append(fen_to_yuan(prepaid[i]))
        if reg.deduct_fen is not None:
            rows["monthly_deduction"].append(fen_to_yuan(int(monthly[i])))
        rows["clearing"].append(fen_to_yuan(clearing))
        for r_, col in _FALLBACK_FUNDS:
            rows[col].append(fen_to_yuan(int(fund[i, int(r_)])))
        rows["cases"].append(int(scan.cases_h[i]))
    if reg.deduct_fen is not None:
        totals["monthly_deduction"] = int(monthly.sum())
    return pa.table({k: _typed(k, v) for k, v in rows.items()}), totals


#: Types of the hospital table's columns that are not text or counts: money is exact (decimal, yuan to the fen),
#: points exact to 10 decimals.
_MONEY, _POINTS = pa.decimal128(20, 2), pa.decimal128(30, 10)


def _typed(name: str, values: list) -> pa.Array:
    """A hospital table column from the exact decimal strings the clearing computed (money never as float)."""
    if name in ("hospital_id", "name"):
        return pa.array(values, pa.string())
    if name in ("level", "cases"):
        return pa.array(values, pa.int64())
    if name == "points":
        return pa.array(values, pa.string()).cast(_POINTS)
    if name == "assessment_coef":
        return pa.array([float(v) for v in values], pa.float64())
    return pa.array(values, pa.string()).cast(_MONEY)


def _region_summary(
    reg: _Region, scan: _Scan, pools: _Pools, fund: np.ndarray, res: _Resolved, totals: dict
) -> dict:
    """region.json: route counts, special cases, pools, totals, fund spend growth and warnings."""
    policy, st = reg.policy, reg.policy.settlement
    counts = scan.routes
    paid_all, scheme_cost = float(scan.paid_cost[0]), float(scan.scheme_cost[0])
    fund_spent = totals["payment_due"] + sum(int(fund[:, int(r_)].sum()) for r_, _ in _FALLBACK_FUNDS)
    last = sum(
        (
            exact(policy.budget[p].last_year_fund_spent)
            for p in reg.pools
            if policy.budget[p].last_year_fund_spent
        ),
        Fraction(0),
    )
    growth = (Fraction(fund_spent, 100) / last - 1) if last else None
    warnings = []
    if growth is not None and st.spend_growth_cap is not None and growth > exact(st.spend_growth_cap):
        warnings.append(f"fund spend growth {float(growth):.4f} exceeds the cap {st.spend_growth_cap}")
    warnings += pools.warnings
    warnings += _case_warnings(reg, scan, res)
    warnings += _grouping_warnings(policy, reg.catalogue)
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
    return {
        "region": policy.header["region"],
        "year": policy.header["year"],
        "scheme": policy.scheme,
        "policy_sha256": policy.sha256,
        "catalogue_fingerprint": getattr(reg.catalogue, "fingerprint", None),
        "cases": scan.rows,
        "routes": {r_.name: int(counts[int(r_)]) for r_ in Route},
        "special_cases": {"declared": res.n_declared, "cap": res.cap, "approved": len(res.approved)},
        "invalid_cases": {
            "DATE_CONFLICT": int(scan.reasons[REASONS.index("date_conflict")]),
            "COST_INVALID": int(scan.reasons[REASONS.index("cost_invalid")]),
            "LOS_INVALID": int(scan.reasons[REASONS.index("los_invalid")]),
            "route": policy.routing.invalid,
        },
        "pools": pools.summary,
        "totals": {k2: fen_to_yuan(v2) for k2, v2 in totals.items()},
        "fund_spent": fen_to_yuan(fund_spent),
        "method_share": None if method_share is None else round(float(method_share), 6),
        "fund_spend_growth": None if growth is None else round(float(growth), 6),
        "assumptions": policy.assumptions(),
        "warnings": warnings,
    }


def _grouping_warnings(policy, catalogue) -> list[str]:
    """A catalogue built with other grouping choices than the policy's ``[dip.grouping]`` (the cases were then
    grouped by rules the policy does not state)."""
    recorded = (catalogue.meta.get("grouping") or {}) if catalogue is not None else {}
    if policy.scheme != "dip" or not recorded:
        return []
    out = []
    for key, value in policy.dip.grouping.items():
        want = list(value) if isinstance(value, tuple) else value
        if value not in (None, ()) and key in recorded and recorded[key] != want:
            out.append(
                f"the catalogue was built with {key} = {recorded[key]!r}, the policy says {want!r} "
                f"(dip.grouping.{key})"
            )
    return out


def _case_warnings(reg: _Region, scan: _Scan, res: _Resolved) -> list[str]:
    """Cases left out silently otherwise: hospitals not in the table, discharges outside the policy's period,
    declared special cases that are not among the cases."""
    out = []
    n, unknown = scan.rows, int(scan.cases_h[reg.n_h])
    if n and unknown == n:
        what = (
            "have no hospital_id"
            if scan.unknown_hospitals == {None}
            else "name no hospital of the hospitals table"
        )
        out.append(f"every case ({n:,}) is EXCLUDED: the cases {what}, so nothing is paid to any hospital")
    elif unknown:
        ids = sorted(scan.unknown_hospitals, key=lambda x: (x is None, x or ""))
        shown = ", ".join("(no hospital_id)" if x is None else x for x in ids[:5]) + (
            ", …" if len(ids) > 5 else ""
        )
        out.append(
            f"{unknown:,} cases ({unknown / n:.1%}) of {len(ids):,} hospital_ids not in the hospitals table "
            f"({shown}) are EXCLUDED (unknown_hospital); the budget goes to the hospitals listed"
        )
    conflict = int(scan.reasons[REASONS.index("date_conflict")])
    paid = "paid by item" if reg.policy.routing.invalid == "fee_for_service" else "EXCLUDED"
    if conflict:
        out.append(
            f"{conflict:,} cases ({conflict / n:.1%}) were discharged before their admission (DATE_CONFLICT, "
            f"docs/records.md Q10): {paid} (routing.invalid), not by points"
        )
    no_cost = int(scan.reasons[REASONS.index("cost_invalid")])
    if no_cost:
        parts = ((scan.no_cost, "empty"), (no_cost - scan.no_cost, "not a number"))
        what = ", ".join(f"{k:,} {word}" for k, word in parts if k)
        out.append(
            f"{no_cost:,} cases ({no_cost / n:.1%}) have no readable total_cost ({what}; COST_INVALID, "
            f"docs/records.md §4): {paid} (routing.invalid), not by points — fix the column and settle again"
        )
    no_los = int(scan.reasons[REASONS.index("los_invalid")])
    if no_los:
        out.append(
            f"{no_los:,} cases ({no_los / n:.1%}) have no usable los_days (negative or not a number; empty on a "
            f"bed-day case; LOS_INVALID, docs/records.md §4): {paid} (routing.invalid), not by points or bed days"
        )
    outside = int(scan.reasons[REASONS.index("outside_settlement_period")])
    if outside:
        eff = reg.policy.header["effective"]
        out.append(
            f"{outside:,} cases ({outside / n:.1%}) were discharged outside the policy's effective period "
            f"{eff['start']} – {eff['end']} and are EXCLUDED (outside_settlement_period)"
        )
    if scan.no_date:
        out.append(
            f"{scan.no_date:,} cases have no discharge date: settled in the policy's year, "
            "month of the pre-settlement unknown"
        )
    if scan.costly.any():
        k = soft_limit("case_cost_vs_group")
        ids = reg.hosp_ids.to_pylist()
        top = sorted(np.flatnonzero(scan.costly[:-1]), key=lambda i: (-scan.costly[i], ids[i]))
        where = ", ".join(f"{ids[i]}: {scan.costly[i]:,}" for i in top[:5]) + (", …" if len(top) > 5 else "")
        out.append(
            f"{int(scan.costly.sum()):,} cases cost more than {k:g} × their group's average cost (by hospital: "
            f"{where}): check them for typos before paying (codebooks/qc/plausibility.csv, case_cost_vs_group)"
        )
    missing = int((scan.declared_row < 0).sum())
    if missing:
        out.append(
            f"{missing:,} of the {res.n_declared:,} declared special cases (特例单议) are not among the cases"
        )
    return out


def _budget_value(policy, pool: str, history: dict) -> tuple[Fraction, dict | None]:
    """The pool's budget point value and, when trimmed, the per-year record for region.json."""
    method = policy.point_value.budget_method
    if method == "history_trimmed":
        return _trimmed_budget_value(policy, pool, history.get("cases"))
    return _untrimmed_budget_value(policy, pool, history), None


def _trimmed_budget_value(policy, pool: str, cases: pa.Table | None) -> tuple[Fraction, dict]:
    """1:2:7 budget point value from case history trimmed at the policy's percentiles (docs/formulas.md §2.1, §2.6)."""
    if cases is None:
        raise InputError(
            "budget_method 'history_trimmed' needs case history (history_cases.parquet or .csv in the history "
            "folder)",
            key="point_value.budget_method",
        )
    if "pool" in cases.column_names:
        sel = np.asarray(isin(strings(cases, "pool"), [pool]))
    else:
        sel = _pool_of(strings(cases, "insurance_type"), policy.pools) == policy.pools.index(pool)
    if not sel.any():
        raise InputError(
            f"budget_method 'history_trimmed': case history has no cases of pool {pool!r}", column="pool"
        )
    pv = policy.point_value
    cost, pts, year = (numbers(cases, c)[sel] for c in ("total_cost", "points", "year"))
    if not np.isfinite(year).all():
        raise InputError(
            f"budget_method 'history_trimmed', pool {pool!r}: history_cases has a missing year", column="year"
        )
    try:
        v, years = trimmed_budget_point_value(
            cost, pts, year.astype(np.int64), pv.year_weights, pv.budget_trim_lower, pv.budget_trim_upper
        )
    except ValueError as exc:
        raise InputError(f"budget_method 'history_trimmed', pool {pool!r}: history_cases {exc}") from None
    record = {
        "lower": pv.budget_trim_lower,
        "upper": pv.budget_trim_upper,
        "years": [
            y
            | {
                "total_cost": fen_to_yuan(round_fen(y["total_cost"])),
                "total_points": _fmt_value(y["total_points"]),
            }
            for y in years
        ],
    }
    return v, record


def _untrimmed_budget_value(policy, pool: str, history: dict) -> Fraction:
    method = policy.point_value.budget_method
    if method == "given":
        if policy.point_value[pool].budget is None:
            raise PolicyError(
                f"point_value.{pool}.budget: no budget point value", key=f"point_value.{pool}.budget"
            )
        return exact(policy.point_value[pool].budget)
    if method == "history":
        if pool not in history.get("pools", {}):
            raise InputError(
                f"budget_method 'history' needs three years of pool {pool!r} (region_years.csv)",
                key="point_value",
            )
        costs, pts = history["pools"][pool]
        return budget_point_value(costs, pts, policy.point_value.year_weights)
    if pool not in history.get("hospitals", {}):
        raise InputError(
            f"budget_method {method!r} needs hospital history of pool {pool!r} (hospital_years.csv)",
            key="point_value.budget_method",
        )
    costs, pts, own = history["hospitals"][pool]
    if method == "efficient_1d":
        try:
            return efficient_point_value_1d(costs, pts)
        except ValueError as exc:  # the formula's refusal of these data: an input error
            raise InputError(
                f"budget_method 'efficient_1d', pool {pool!r}: hospital_years.csv {exc}"
            ) from None
    if own is None:
        raise InputError(
            "budget_method 'efficient_2d' needs total_own_cost in hospital_years.csv", column="total_own_cost"
        )
    c, q, o = (np.asarray(x, dtype=np.float64) for x in (costs, pts, own))
    try:
        v = efficient_point_value_2d(c / q, o / q, c.sum() / q.sum(), o.sum() / q.sum())
    except ValueError as exc:  # the formula's refusal of these data: an input error
        raise InputError(f"budget_method 'efficient_2d', pool {pool!r}: hospital_years.csv {exc}") from None
    return exact(v)


def _month_value(series, month: int, fallback: Fraction) -> Fraction:
    """The month's published point value: the latest dated entry at or before the month, else the fallback."""
    value = fallback
    for d, v in series:
        if d.month <= month:
            value = exact(v)
    return value


def _case_money(
    f: _Frame,
    kind: np.ndarray,
    std_yuan: np.ndarray,
    fund_yuan: np.ndarray,
    pools: _Pools,
    pc_ratios: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-case standard and fund payments in fen of the cases of ``kind`` 1 pooled points, 2 per-case price and
    3 bed-day standard (payment.kernels.case_kinds; 4 fee-for-service and 0 nothing are
    payment.kernels.case_payments'), each rounded once, half-up, from its exact value: pooled P × V and
    P × V × r, price × the item's fund ratio (``pc_ratios`` by item, the last: none), the bed-day standard × r;
    ``std_yuan`` and ``fund_yuan`` are their float approximations."""
    pool, units = f.pool, f.units
    vn, vd, rn, rd = (
        np.array([getattr(x, part) for x in xs], dtype=object)
        for xs in (pools.value_exact, pools.ratio_exact)
        for part in ("numerator", "denominator")
    )

    def exact_parts(at: np.ndarray, with_ratio: bool) -> tuple[np.ndarray, np.ndarray]:
        p = pool[at]
        num = units[at].astype(object) * vn[p]
        den = vd[p] * POINT_UNITS
        if with_ratio:
            num, den = num * rn[p], den * rd[p]
        for j in np.flatnonzero(kind[at] != 1):  # a price or bed-day standard (× a ratio): few, one by one
            i = at[j]
            x = exact(float(f.standard_amount[i]))
            if with_ratio:
                x *= (
                    exact(float(pc_ratios[f.per_case_item[i]]))
                    if kind[i] == 2
                    else pools.ratio_exact[pool[i]]
                )
            num[j], den[j] = x.numerator, x.denominator
        return num, den

    which = np.where(kind == 1, pool, -1)  # pooled: points × the pool's point value (× its ratio)
    fund_prices = [v * r for v, r in zip(pools.value_exact, pools.ratio_exact, strict=True)]
    std = fen_exact(std_yuan, lambda at: exact_parts(at, False), (units, which, pools.value_exact))
    fund = fen_exact(fund_yuan, lambda at: exact_parts(at, True), (units, which, fund_prices))
    return std, fund


def _monthly_fen(units: np.ndarray, value: Fraction, patient_fen: np.ndarray, ratio: Fraction) -> np.ndarray:
    """``round_fen(monthly_presettlement(units / POINT_UNITS, value, patient_fen / 100, ratio))`` of each entry, in
    plain integer arithmetic: ``units`` (points in 1e-9 point) and ``patient_fen`` are object arrays of ints."""
    num = (units * value.numerator * 100 - patient_fen * POINT_UNITS * value.denominator) * ratio.numerator
    den = POINT_UNITS * value.denominator * ratio.denominator
    q = (2 * abs(num) + den) // (2 * den)
    return np.where(num < 0, -q, q)


def _days(table: pa.Table, name: str, missing: int) -> np.ndarray:
    col = pc.cast(pc.cast(table.column(name), pa.date32()), pa.int32()).combine_chunks()
    return pc.fill_null(pc.cast(col, pa.int64()), missing).to_numpy(zero_copy_only=False)


def _months(table: pa.Table) -> np.ndarray:
    """Month 1–12 of the discharge date (0 when missing)."""
    if "discharge_date" not in table.column_names:
        return np.zeros(table.num_rows, dtype=np.int64)
    col = pc.cast(table.column("discharge_date"), pa.date32())
    return pc.fill_null(pc.month(col), 0).to_numpy(zero_copy_only=False).astype(np.int64)
