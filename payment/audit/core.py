"""The self-audit run (医院自查): grouping, QC edits, flags, indicators, 盈亏 and the insurer comparison of one
discharge table, as Arrow tables."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper.batch import DuplicateTracker
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.dip import read_catalogue
from grouper.errors import InputError
from grouper.io.discharges import as_discharges
from grouper.schema import DISCHARGE_SCHEMA, FEE_COLUMNS
from payment.audit.flags import FLAG_SCHEMA, FLAGS, alternatives, case_flags, readmissions
from payment.audit.grouping import Grouping
from payment.audit.indicators import group_table, indicator_table
from payment.audit.insurer import compare_insurer
from payment.audit.lists import QcLists
from payment.audit.qc import QC_SCHEMA, qc_edits
from payment.audit.risk import RISK_CLASSES, risk_classes
from payment.audit.settings import AuditSettings
from payment.audit.summary import summary_table
from payment.settle import ExpectedPayments, expected_payments

__all__ = ["BATCH_SIZE", "Audit", "audit", "audit_batches"]

#: Name of the optional attending-doctor column (主治医师) of a discharge table.
DOCTOR_COLUMN = "attending_doctor"


@dataclass(frozen=True)
class Audit:
    """Result of :func:`audit`: named Arrow tables (``summary``, ``hospitals``, ``departments``, ``doctors``,
    ``groups``, ``flags``, ``qc``, ``insurer``, ``cases``) and the settings used."""

    tables: dict[str, pa.Table]
    settings: AuditSettings
    scheme: str
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, name: str) -> pa.Table:
        return self.tables[name]


#: Rows per batch of the per-case passes (bounds the intermediates; the results do not depend on it).
BATCH_SIZE = 1 << 17
#: Cases whose variants (another principal diagnosis, one CC/MCC removed) are regrouped at a time.
VARIANT_CASES = 1 << 14


def _canonical(table) -> pa.Table:
    """The groupers' view of an Arrow-compatible table, every canonical column present (absent ones null)."""
    table = as_discharges(table)
    for f in DISCHARGE_SCHEMA:
        if f.name not in table.column_names:
            table = table.append_column(f.name, pa.nulls(table.num_rows, f.type))
        elif table.column(f.name).type != f.type and not pa.types.is_dictionary(table.column(f.name).type):
            table = table.set_column(
                table.schema.get_field_index(f.name), f.name, table.column(f.name).cast(f.type)
            )
    return table.combine_chunks()


def _np(table: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    col = table.column(name)
    if dtype is object:
        return np.asarray(col.cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _los(table: pa.Table) -> np.ndarray:
    """The length of stay, NaN where it is not usable (empty; negative or not a number, the readers' -1: a Q10
    finding, docs/records.md §4 ``LOS_INVALID``), so that it takes no part in the means and the LOS flags."""
    los = _np(table, "los_days")
    return np.where(los < 0, np.nan, los)


def _shared(parts: list) -> np.ndarray:
    """Text of every case (chunks, plain or dictionary-encoded) as one object array whose equal values share one
    Python string: 8 bytes a case."""
    pool: dict = {}
    out = []
    for part in parts:
        enc = part if pa.types.is_dictionary(part.type) else pc.dictionary_encode(part.cast(pa.string()))
        labels = np.array([pool.setdefault(v, v) for v in enc.dictionary.to_pylist()] + [None], dtype=object)
        out.append(labels[enc.indices.fill_null(len(enc.dictionary)).to_numpy(zero_copy_only=False)])
    return np.concatenate(out) if out else np.zeros(0, object)


def _priced(t: pa.Table, out: pa.Table) -> pa.Table:
    """A canonical batch with the grouper's columns: what the payment engine prices."""
    for name in out.column_names:
        if name != "case_id":
            t = t.append_column(name, out.column(name))
    return t


@dataclass
class Setup:
    """What every batch of a pass needs (sent once to each worker of a cluster): the grouping, the QC lists
    and codebook, the settings, and after pass 1 the pricing of the variants."""

    grouping: Grouping
    codebook: Codebook
    lists: QcLists
    settings: AuditSettings
    principal: bool  #: keep each case's principal diagnosis and procedure (the insurer comparison)
    kept: frozenset  #: fee columns the variants keep (the DIP auxiliary typing reads them)
    price: Callable | None = None


# ---------------------------------------------------------------------------------------------------------
# the passes over one part of the run (the whole run locally, one partition on a worker of a cluster)


def first_part(setup: Setup, batches: Callable[[], Iterable], tracker, pricing, on_batch=None) -> list[dict]:
    """Pass 1 over a part: per batch, the grouping, the QC edits (rows counted from the batch's first row) and a
    few numbers per case; ``pricing`` (optional) scans each batch. ``tracker``: the duplicate case ids seen."""
    records = []
    for b in batches():
        t = _canonical(b)
        dup = tracker.flag(t.column("case_id").cast(pa.string()).combine_chunks())
        out = setup.grouping.group(t, dup)
        records.append(_first(setup, t, dup, out))
        if pricing is not None:
            pricing.scan(_priced(t, out))
        if on_batch is not None:
            on_batch(t.num_rows)
    return records


def scan_part(setup: Setup, batches: Callable[[], Iterable], dups: list, pricing, on_batch=None):
    """The pricing's scan of a part (when its weights come from the run, or its hospitals from a level)."""
    for b, dup in zip(batches(), dups, strict=True):
        t = _canonical(b)
        pricing.scan(_priced(t, setup.grouping.group(t, dup)))
        if on_batch is not None:
            on_batch(t.num_rows)
    return pricing


def last_part(setup: Setup, batches: Callable[[], Iterable], dups: list, ctx: dict, base: int, pricing,
              on_batch=None) -> Iterator[dict]:  # fmt: skip
    """The last pass over a part whose first row is the run's row ``base`` (``ctx``: the run's per-case
    arrays from that row on): per batch the ``cases`` and ``flags`` rows, the expected payment and the counts
    of the findings."""
    lo = base
    for b, dup in zip(batches(), dups, strict=True):
        t = _canonical(b)
        out = setup.grouping.group(t, dup) if pricing is not None else None
        yield _last(setup, t, out, lo, base, ctx, pricing)
        lo += t.num_rows
        if on_batch is not None:
            on_batch(t.num_rows)


def _first(setup: Setup, t: pa.Table, dup: np.ndarray, out: pa.Table) -> dict:
    grouping, dip = setup.grouping, setup.grouping.is_dip
    view = grouping.view(out)
    text = {}
    for k in ("case_id", "hospital_id", "patient_id", "department", DOCTOR_COLUMN, "payment_method"):
        column = t.column(k).cast(pa.string()).combine_chunks()
        text[k] = column if k in ("case_id", "patient_id") else pc.dictionary_encode(column)
    for k in ("group", "mdc", "adrg", "status"):
        text[k] = pc.dictionary_encode(pa.array(view[k].astype(object), pa.string()))
    if setup.principal:
        text["pdx"] = t.column("principal_dx").combine_chunks()
        text["pproc"] = t.column("principal_proc").combine_chunks()
    fee = {f: _np(t, f) for f in ("fee_08", "fee_09", "fee_10", "fee_11")}
    fees_present = any(not np.isnan(v).all() for v in fee.values())
    fee = {f: np.nan_to_num(v) for f, v in fee.items()}
    nums = {
        "admission": _days(t, "admission_date"),
        "discharge": _days(t, "discharge_date"),
        "los": _los(t),
        "cost": _np(t, "total_cost"),
        "mode": np.nan_to_num(_np(t, "discharge_mode"), nan=-1).astype(np.int64),
        "grouped": view["grouped"],
        "score": _np(out, "dip_score") if dip else np.full(t.num_rows, np.nan),
        "low_standard_dx": setup.lists["low_standard_dx"].find(t.column("principal_dx")) >= 0,
        "drug": fee["fee_09"] + fee["fee_10"] + fee["fee_11"],
        "consumable": fee["fee_08"],
    }
    qc = qc_edits(t, setup.codebook, setup.lists, duplicate=dup)
    return {
        "rows": t.num_rows,
        "dup": dup,
        "text": text,
        "nums": nums,
        "qc": qc,  # rows of the batch
        "fees": fees_present,
        "doctor": t.column(DOCTOR_COLUMN).null_count < t.num_rows,
    }


def _last(setup: Setup, t: pa.Table, out, lo: int, base: int, c: dict, pricing) -> dict:
    """The last pass over one batch (the run's rows ``lo`` …; ``c``: the run's arrays from row ``base``)."""
    settings, grouping = setup.settings, setup.grouping
    dip = grouping.is_dip
    m = t.num_rows
    a, z = lo - base, lo - base + m  # the batch in ``c``
    batch = {k: v[a:z] for k, v in c.items() if isinstance(v, np.ndarray)}
    batch["case_id"] = c["case_id"].slice(a, m)
    if pricing is not None:
        part = _payment_arrays(pricing.price(_priced(t, out)), m)
        err = batch["qc_error"]  # a QC error: not paid by points as it is
        batch["expected"][:] = np.where(err, np.nan, part["expected"])
        points, batch["deviation"] = part["points"], part["deviation"]
        batch["route"] = np.where(err & (part["route"] != ""), "QC_ERROR", part["route"])
    else:
        points = np.full(m, np.nan)
        batch["deviation"] = batch["route"] = np.full(m, "", object)
    # the variants need no fee breakdown, unless the auxiliary typing reads it
    slim = t.drop_columns([f for f in FEE_COLUMNS if f not in setup.kept])
    found = {"upcoding": None, "pdx_choice": None}
    for mask, key, fn in (("upcoding_rows", "upcoding", _upcoding), ("pdx_rows", "pdx_choice", _pdx_choice)):
        if dip and key == "upcoding":
            continue
        mine = np.flatnonzero(batch[mask])
        parts = []
        for i in range(0, len(mine), VARIANT_CASES):
            hit = fn(slim, mine[i : i + VARIANT_CASES], a, c, c, settings, grouping, setup.price, c["means"])
            if hit is not None:
                parts.append({**hit, "row": hit["row"] + base})
        found[key] = _concat(parts)
    flags = case_flags(batch, settings, readmitted=c["readmitted"], offset=lo, **found)
    flag_count = (
        np.bincount(flags.column("row").to_numpy() - 1 - lo, minlength=m)
        if flags.num_rows
        else np.zeros(m, np.int64)
    )
    cases = _cases_table(batch, lo, points, flag_count, dip)
    focus = batch["focus"]
    if not focus.all():
        flags = flags.filter(
            pc.is_in(flags.column("row"), value_set=pa.array(np.flatnonzero(focus) + lo + 1))
        )
        cases = cases.filter(pa.array(focus))
    review = pc.equal(flags.column("severity"), "review")
    kinds = flags.column("flag").value_counts()
    return {
        "rows": m,
        "cases": cases,
        "flags": flags,
        "expected": batch["expected"],
        "flagged": pc.count_distinct(pc.filter(flags.column("row"), review)).as_py(),
        "kinds": dict(zip(kinds.field(0).to_pylist(), kinds.field(1).to_pylist(), strict=True)),
    }


class LocalParts:
    """The run as one part, read in this process (the local engine)."""

    def __init__(self, batches: Callable[[], Iterable], on_batch=None) -> None:
        self.batches, self.on_batch = batches, on_batch
        self.dups: list[np.ndarray] = []

    def first(self, setup: Setup, pricing) -> list[dict]:
        records = first_part(setup, self.batches, DuplicateTracker(), pricing, self.on_batch)
        self.dups = [r["dup"] for r in records]
        return records

    def scan(self, setup: Setup, pricing) -> None:
        scan_part(setup, self.batches, self.dups, pricing, self.on_batch)

    def last(self, setup: Setup, ctx: dict, pricing) -> Iterator[dict]:
        return last_part(setup, self.batches, self.dups, ctx, 0, pricing, self.on_batch)


# ---------------------------------------------------------------------------------------------------------


def audit(discharges, *, batch_size: int = BATCH_SIZE, **options) -> Audit:
    """Hospital self-audit (医院自查) of a discharge table: QC edits, supervision flags, indicators and 盈亏.

    Parameters
    ----------
    discharges : pa.Table or pandas.DataFrame
        Canonical discharges (``grouper.schema``) of the region or of one hospital; an ``attending_doctor``
        column adds the per-doctor indicators.
    batch_size : int   rows per batch of the per-case passes (bounds memory; results do not depend on it)
    scheme : a CHS-DRG codebook (default ``"chs-drg-2.0"``, the scheme in force; ``"chs-drg-1.1"``) or ``"dip"``
        (needs ``catalogue``)
    catalogue : grouper.dip.Catalogue or name/path, optional   DIP catalogue (目录库)
    policy : payment.Policy, optional   adds routes, deviation classes, expected payment and 盈亏
    hospitals : pa.Table, optional      ``hospital_id``, ``level`` (1–3): required with a policy
    weights : pa.Table, optional        CHS-DRG ``drg, rw`` [, ``avg_cost``, ``avg_los``]; default RW from the run
    hospital : str, optional            the hospital audited (tables keep its cases; the region is every case)
    insurer : pa.Table, optional        the insurer's returned grouping (:func:`payment.audit.insurer.compare_insurer`)
    settings : AuditSettings, optional  thresholds (default ``codebooks/qc/audit-defaults.toml``)
    lists : QcLists, optional           QC lists (default ``codebooks/qc/``)
    risk_reference : pa.Table, optional ``group, cases, deaths`` of a reference population for the risk classes
    level : int, optional               with a policy and no ``hospitals``: the level (1–3) of every hospital
    aux : grouper.dip.aux.AuxTyping, optional   DIP auxiliary typing (辅助分型) applied as ``drgdip group`` does
    on_pass, on_batch : callable, optional   progress: ``on_pass(label, total)`` at each pass, ``on_batch(rows)``
        after each batch of it (as :func:`audit_batches`)

    Returns
    -------
    Audit
    """
    table = as_discharges(discharges)
    n = table.num_rows

    def batches() -> Iterator[pa.Table]:
        return (table.slice(i, batch_size) for i in range(0, max(n, 1), batch_size))

    return audit_batches(batches, total=n, **options)


def audit_batches(
    batches: Callable[[], Iterable] | None,
    *,
    scheme: str = DEFAULT_SCHEME,
    catalogue=None,
    policy=None,
    hospitals: pa.Table | None = None,
    weights: pa.Table | None = None,
    hospital: str | None = None,
    insurer: pa.Table | None = None,
    settings: AuditSettings | None = None,
    lists: QcLists | None = None,
    risk_reference: pa.Table | None = None,
    level: int | None = None,
    aux=None,
    on_pass: Callable[[str, int | None], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    total: int | None = None,
    sink: Callable[[str, pa.Table], None] | None = None,
    parts=None,
) -> Audit:
    """:func:`audit` of a run given as batches, with bounded memory: the engine behind :func:`audit` and
    :func:`payment.audit.files.audit_files`.

    ``batches()`` returns a fresh iterable of discharge tables (the same rows in the same order at every call).
    Pass 1 groups, QC-checks and reduces each batch to a few numbers per case; the last pass prices the cases
    (:class:`payment.ExpectedPayments`, scanned in pass 1, or in a pass of its own when the weights come from the
    run or the hospitals from ``level``) and regroups the variants of the flags (another principal diagnosis,
    one CC/MCC removed) a slice of cases at a time. The region-wide figures
    (weights from the run, group means, risk classes, re-admissions) come from the per-case numbers, so they do
    not depend on how the cases are cut. ``on_pass(label, total)`` starts each pass (``total``: the cases, when
    known, or None for a step that reads none) and ``on_batch(rows)`` follows it, as in :mod:`grouper.fitting`.
    ``sink(name, part)``, when given, receives the per-case tables (``cases``, ``flags``) batch by batch, in row
    order, and the result leaves them out (memory bounded by the batch size and a few numbers per case; with
    ``insurer`` the cases are also kept for the comparison). ``parts``: who runs the passes (default
    :class:`LocalParts` of ``batches``; :mod:`payment.audit.distributed`: the partitions of a dataset on a Dask
    cluster, same results). Other options as for :func:`audit`.
    """
    settings = settings or AuditSettings.load()
    lists = lists or QcLists.load()
    dip = scheme == "dip"
    # DIP reads the 医保版 2.0 dictionaries of the scheme in force, as drgdip group does
    codebook = Codebook.load(DEFAULT_SCHEME if dip else scheme)
    if dip:
        if catalogue is None and policy is not None:
            catalogue = policy.header.get("catalogue")
        if catalogue is None:
            raise InputError("the DIP scheme needs a catalogue (目录库)")
        if isinstance(catalogue, str | Path):
            catalogue = read_catalogue(catalogue)
    if policy is not None and hospitals is None and level is None:
        raise InputError("expected payment needs the hospitals table (hospital_id, level) with the policy")
    scale = float(policy.scores.score_scale) if policy is not None else 1000.0
    grouping = Grouping(
        scheme, codebook, catalogue, weights, scale, {"aux": aux} if dip and aux is not None else {}
    )
    kept = frozenset(aux.input_columns()) if dip and aux is not None else frozenset()
    setup = Setup(grouping, codebook, lists, settings, insurer is not None, kept)
    parts = parts if parts is not None else LocalParts(batches, on_batch)

    def start(label: str, counted: bool = True) -> None:
        if on_pass is not None:
            on_pass(label, total if counted else None)

    # pricing scans in pass 1 when its inputs are known up front (else in a pass of its own) and prices in the last
    early = policy is not None and hospitals is not None and (dip or weights is not None)
    pricing = ExpectedPayments(hospitals, policy, catalogue=catalogue, weights=weights) if early else None

    # pass 1: grouping, QC edits and the per-case numbers
    start("auditing: grouping and QC edits")
    records = parts.first(setup, pricing)
    n = sum(r["rows"] for r in records)
    offsets = np.cumsum([0] + [r["rows"] for r in records])[:-1]
    qc_parts = [
        r["qc"].set_column(2, "row", pc.add(r["qc"].column("row"), int(o)))
        for r, o in zip(records, offsets, strict=True)
    ]
    fees_present = any(r["fees"] for r in records)
    doctor_present = any(r["doctor"] for r in records)
    text = {k: [r["text"][k] for r in records] for k in (records[0]["text"] if records else ())}
    cat = {
        k: np.concatenate([r["nums"][k] for r in records]) if records else np.zeros(0)
        for k in ("admission", "discharge", "los", "cost", "mode", "grouped", "score", "low_standard_dx",
                  "drug", "consumable")
    }  # fmt: skip
    del records
    for k in ("case_id", "hospital_id", "patient_id", "department", DOCTOR_COLUMN, "payment_method", "group",
              "mdc", "adrg", "status"):  # fmt: skip
        text.setdefault(k, [])
    qc = pa.concat_tables(qc_parts) if qc_parts else QC_SCHEMA.empty_table()
    err_rows = pc.filter(qc.column("row"), pc.equal(qc.column("severity"), "error")).to_numpy() - 1
    qc_error = np.zeros(n, bool)
    qc_error[err_rows] = True
    qc_count = (
        np.bincount(qc.column("row").to_numpy() - 1, minlength=n) if qc.num_rows else np.zeros(n, np.int64)
    )

    group = _shared(text["group"])
    view = {"group": group, "grouped": cat["grouped"].astype(bool), "mdc": _shared(text["mdc"]),
            "adrg": _shared(text["adrg"]), "status": _shared(text["status"])}  # fmt: skip
    cost = cat["cost"]
    grouping.fit_weights(view["group"], view["grouped"], cost)
    if dip:
        weight = np.where(view["grouped"], cat["score"] / grouping.score_scale, np.nan)
    else:
        weight = np.where(view["grouped"], grouping.standard("rw", view["group"]), np.nan)
    hospital_id = _shared(text["hospital_id"])
    case_id = pa.chunked_array(text["case_id"], pa.string()).combine_chunks()

    notes: list[str] = []
    if policy is not None and hospitals is None:
        ids = pc.unique(pa.array(hospital_id, pa.string())).drop_null()
        hospitals = pa.table({"hospital_id": ids, "level": pa.array([level] * len(ids), pa.int8())})
    if policy is not None and pricing is None:  # RW from the run, or every hospital at --level: scan now
        pricing = ExpectedPayments(hospitals, policy, catalogue=catalogue, weights=grouping.weights)
        start("auditing: routes for the expected payment")
        parts.scan(setup, pricing)
    expected = np.full(n, np.nan)  # filled batch by batch in the last pass

    # risk classes (docs/audit.md §1.1): the run's grouped cases, or a reference table
    mode = cat["mode"]
    dead = mode == 5
    if risk_reference is not None:
        ref_group = np.asarray(risk_reference.column("group").cast(pa.string()).to_pylist(), dtype=object)
        ref_cases, ref_deaths = _np(risk_reference, "cases"), _np(risk_reference, "deaths")
    else:
        ok = view["grouped"]
        inv, ref_group = _factorize(view["group"][ok])
        ref_cases = np.bincount(inv, minlength=len(ref_group)).astype(np.float64)
        ref_deaths = np.bincount(inv, weights=dead[ok], minlength=len(ref_group))
    cls, _ = risk_classes(ref_cases, ref_deaths, min_cases=settings["risk.min_cases"],
                          zero_deaths=settings["risk.zero_deaths"], sd=settings["risk.sd"])  # fmt: skip
    risk_of = dict(zip([str(g) for g in ref_group], [RISK_CLASSES[k] for k in cls], strict=True))
    at = pc.index_in(
        pa.array(view["group"], pa.string()), value_set=pa.array(ref_group.astype(str))
    ).fill_null(-1)
    at = at.to_numpy(zero_copy_only=False)
    risk = np.where(view["grouped"] & (at >= 0), np.append(cls, 4)[np.maximum(at, 0)], 4).astype(np.int8)
    del at

    region_cost = _group_mean(view, cost)
    los = cat["los"]
    region_los = _group_mean(view, los)
    std_cost = grouping.standard("avg_cost", view["group"])
    std_los = grouping.standard("avg_los", view["group"])
    patient = pa.chunked_array(text["patient_id"], pa.string()).combine_chunks()
    c = {
        "case_id": case_id,
        "hospital_id": hospital_id,
        "los": los,
        "cost": cost,
        "mode": mode,
        "dead": dead,
        "group": view["group"],
        "grouped": view["grouped"],
        "mdc": view["mdc"],
        "adrg": view["adrg"],
        "status": view["status"],
        "weight": weight,
        "group_cost": np.where(np.isnan(std_cost), region_cost, std_cost),
        "group_los": np.where(np.isnan(std_los), region_los, std_los),
        "std_cost": std_cost,
        "std_los": std_los,
        "risk": risk,
        "low_risk": risk == 0,
        "expected": expected,
        "payment_method": _shared(text["payment_method"]),
        "low_standard_dx": cat["low_standard_dx"].astype(bool),
        "department": _shared(text["department"]),
        "qc_error": qc_error,
        "qc_count": qc_count,
    }
    del region_cost, region_los
    if fees_present:
        c["drug"], c["consumable"] = cat["drug"], cat["consumable"]
    # re-admissions: the one finding across cases, from the patient, dates and hospital of every case
    readmitted = readmissions(
        {**c, "patient_id": pc.dictionary_encode(patient).indices.fill_null(-1).to_numpy(zero_copy_only=False),
         "admission": cat["admission"], "discharge": cat["discharge"]}, settings
    )  # fmt: skip
    del (
        cat,
        text["group"],
        text["mdc"],
        text["adrg"],
        text["status"],
        text["hospital_id"],
        text["payment_method"],
    )
    del text["case_id"], text["patient_id"], text["department"]
    if patient.null_count == n:
        notes.append("无患者标识（patient_id）：未检查再入院 / no patient_id: readmissions not checked")
    if policy is None:
        notes.append(
            "未提供支付政策：无预计支付、盈亏与高低倍率 / no policy: no expected payment, 盈亏 or deviation flags"
        )
    del patient

    focus = np.ones(n, bool) if hospital is None else (c["hospital_id"] == hospital)
    if hospital is not None and not focus.any():
        raise InputError(f"hospital {hospital!r}: no case of the input has this hospital_id")

    # last pass: expected payment, the variants of the flags regrouped a slice of cases at a time, and the
    # per-case tables (cases, flags) batch by batch
    # the variants of the audited cases only (the others' flags are not reported)
    clean = view["grouped"] & ~qc_error & focus
    upcoding_rows = np.zeros(n, bool)
    if not dip and n:
        suffix = pc.utf8_slice_codeunits(pa.array(view["group"], pa.string()), 3, 4)
        upcoding_rows = clean & np.isin(suffix.to_numpy(zero_copy_only=False), ["1", "3"])
    ctx = {**c, "focus": focus, "upcoding_rows": upcoding_rows, "pdx_rows": clean, "readmitted": readmitted,
           "means": _GroupMeans(c["group"], c["grouped"], c["cost"], c["los"])}  # fmt: skip
    setup.price = functools.partial(_price_table, hospitals=hospitals, policy=policy, catalogue=catalogue,
                                    weights=grouping.weights)  # fmt: skip
    kept_cases = sink is None or insurer is not None  # the insurer comparison reads the cases table
    out_parts: dict[str, list[pa.Table]] = {"flags": [], "cases": []}
    flagged = {"cases": 0, "kinds": dict.fromkeys(FLAGS, 0)}
    start("auditing: expected payment, the flags' variants and the per-case tables")
    lo = 0
    for r in parts.last(setup, ctx, pricing):
        expected[lo : lo + r["rows"]] = r["expected"]
        lo += r["rows"]
        flagged["cases"] += r["flagged"]
        for kind, count in r["kinds"].items():
            flagged["kinds"][kind] += count
        for name in ("flags", "cases"):
            if sink is not None:
                sink(name, r[name])
            if sink is None or (name == "cases" and kept_cases):
                out_parts[name].append(r[name])
    if lo != n:
        raise InputError(f"the discharges changed between the passes ({n} rows, then {lo})")
    del ctx
    start("auditing: indicators", counted=False)

    ind = {"hospital_id": c["hospital_id"]}
    tables = {
        "hospitals": indicator_table(c, ind, focus, relative_cmi=dip),
        "departments": indicator_table(c, {**ind, "department": c["department"]}, focus, relative_cmi=dip),
    }
    if doctor_present:
        doctor = {**ind, DOCTOR_COLUMN: _shared(text[DOCTOR_COLUMN])}
        tables["doctors"] = indicator_table(c, doctor, focus, relative_cmi=dip)
    tables["groups"] = group_table(c, focus, risk_of)
    if sink is None:
        tables["flags"] = _concat_tables(out_parts["flags"], FLAG_SCHEMA)
    if hospital is not None:
        tables["qc"] = qc.filter(pc.is_in(qc.column("row"), value_set=pa.array(np.flatnonzero(focus) + 1)))
    else:
        tables["qc"] = qc
    cases = _concat_tables(out_parts["cases"], CASE_SCHEMA) if kept_cases else None
    if sink is None:
        tables["cases"] = cases
    if insurer is not None:
        known = (
            catalogue.table.column("dip_code") if dip else pa.array(np.asarray(codebook["drg_labels"], str))
        )
        principal = pa.table(
            {
                "principal_dx": pa.chunked_array(text["pdx"], pa.string()),
                "principal_proc": pa.chunked_array(text["pproc"], pa.string()),
            }
        )
        focus_table = principal.filter(pa.array(focus)) if hospital is not None else principal
        tables["insurer"], insurer_summary = compare_insurer(cases, insurer, known, focus_table, qc, dip)
    else:
        insurer_summary = None
    tables = {
        "summary": summary_table(
            tables, c, focus, qc_error, flagged, dip, hospital, settings, notes, insurer_summary
        ),
        **tables,
    }
    return Audit(tables, settings, scheme, notes)


CASE_SCHEMA = pa.schema(
    [("case_id", pa.string()), ("hospital_id", pa.string()), ("department", pa.string()), ("mdc", pa.string()),
     ("adrg", pa.string()), ("group", pa.string()), ("status", pa.string()), ("grouped", pa.bool_()),
     ("weight", pa.float64()), ("risk_class", pa.string()), ("total_cost", pa.float64()),
     ("los_days", pa.int32()), ("route", pa.string()), ("deviation", pa.string()), ("points", pa.float64()),
     ("expected_payment", pa.float64()), ("gain_loss", pa.float64()), ("qc_findings", pa.int64()),
     ("qc_error", pa.bool_()), ("flags", pa.int64())]
)  # fmt: skip


def _cases_table(batch: dict, lo: int, points: np.ndarray, flag_count: np.ndarray, dip: bool) -> pa.Table:
    """The ``cases`` rows of one batch (the run's rows from ``lo``)."""
    n = len(points)
    grouped = batch["grouped"]

    def labels(values: np.ndarray) -> pa.Array:
        return pa.array(np.where(grouped, values, None), pa.string())

    expected, cost = batch["expected"], batch["cost"]
    return pa.table(
        {
            "case_id": batch["case_id"],
            "hospital_id": pa.array(batch["hospital_id"], pa.string()),
            "department": pa.array(batch["department"], pa.string()),
            "mdc": labels(batch["mdc"]) if not dip else pa.nulls(n, pa.string()),
            "adrg": labels(batch["adrg"]) if not dip else pa.nulls(n, pa.string()),
            "group": labels(batch["group"]),
            "status": pa.array(batch["status"], pa.string()).fill_null(""),
            "grouped": pa.array(grouped),
            "weight": pa.array(batch["weight"], from_pandas=True),
            "risk_class": pa.array(np.array(RISK_CLASSES, dtype=object)[batch["risk"]], pa.string()),
            "total_cost": pa.array(cost, from_pandas=True),
            "los_days": pa.array(batch["los"], from_pandas=True).cast(pa.int32()),
            "route": pa.array(batch["route"], pa.string()),
            "deviation": pa.array(batch["deviation"], pa.string()),
            "points": pa.array(points, from_pandas=True),
            "expected_payment": pa.array(expected, from_pandas=True),
            "gain_loss": pa.array(expected - cost, from_pandas=True),
            "qc_findings": pa.array(batch["qc_count"].astype(np.int64)),
            "qc_error": pa.array(batch["qc_error"]),
            "flags": pa.array(flag_count.astype(np.int64)),
        },
        schema=CASE_SCHEMA,
    )


def _concat_tables(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not parts:
        return schema.empty_table()
    return pa.concat_tables(parts).combine_chunks()


def _payment_arrays(e: pa.Table | None, n: int) -> dict[str, np.ndarray]:
    if e is None or not e.num_rows:
        return {"route": np.full(n, "", object), "deviation": np.full(n, "", object),
                "points": np.full(n, np.nan), "expected": np.full(n, np.nan)}  # fmt: skip
    return {
        "route": _shared(e.column("route").chunks),
        "deviation": _shared(e.column("deviation").chunks),
        "points": _np(e, "points"),
        "expected": _np(e, "expected_payment"),
    }


def _price_table(t: pa.Table, *, hospitals, policy, catalogue, weights) -> np.ndarray:
    """Expected payment of a few variant cases priced on their own (NaN without a policy)."""
    if policy is None:
        return np.full(t.num_rows, np.nan)
    return _payment_arrays(
        pa.concat_tables(
            expected_payments(lambda: [t], hospitals, policy, catalogue=catalogue, weights=weights)
        ),
        t.num_rows,
    )["expected"]


def _concat(parts: list[dict]) -> dict | None:
    if not parts:
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _days(table: pa.Table, name: str) -> np.ndarray:
    col = pc.cast(pc.cast(table.column(name), pa.date32()), pa.int32())
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)


def _group_mean(view: dict, values: np.ndarray) -> np.ndarray:
    """Each case's group mean of ``values`` over the run's grouped cases (NaN when not grouped)."""
    ok = view["grouped"] & np.isfinite(values)
    inv, labels = _factorize(view["group"])
    s = np.bincount(inv, weights=np.where(ok, values, 0.0), minlength=len(labels))
    k = np.bincount(inv, weights=ok.astype(np.float64), minlength=len(labels))
    mean = np.divide(s, k, out=np.full(len(labels), np.nan), where=k > 0)
    return np.where(view["grouped"], mean[inv], np.nan)


def _regroup(grouping: Grouping, t: pa.Table, price) -> dict:
    """Group variant cases as the cases were grouped; ``price(rows)`` prices a few of them (the ones kept)."""
    o = grouping.group(t, np.zeros(t.num_rows, bool))
    v = grouping.view(o)
    weight = grouping.weight(v, o)
    return {**v, "weight": weight, "price": lambda rows: price(_priced(t, o).take(pa.array(rows)))}


def _upcoding(table, rows, offset, c, view, settings, grouping, price, means) -> dict | None:
    """POSSIBLE_UPCODING: removing one other diagnosis lowers the DRG within its ADRG, and the case's cost and
    LOS are within the lower group's (≤ cost_share × its mean over the run). ``rows``: of ``table``, which holds
    the run's rows ``offset`` …"""
    if not len(rows):
        return None
    case, pos, alt = alternatives(
        table, rows, "drop", settings["upcoding.max_tries"], lambda t: _regroup(grouping, t, price)
    )
    case = case + offset
    lower = alt["grouped"] & (alt["adrg"] == view["adrg"][case]) & (alt["weight"] < c["weight"][case])
    share = settings["upcoding.cost_share"]
    alt_cost, alt_los = means.of("cost", alt["group"]), means.of("los", alt["group"])
    lower &= (c["cost"][case] <= share * alt_cost) & (c["los"][case] <= share * alt_los)
    keep = np.flatnonzero(lower)
    _, first = np.unique(case[keep], return_index=True)  # the first such diagnosis of each case
    keep = keep[first]
    if not len(keep):
        return None
    r = case[keep]
    alt_pay = alt["price"](keep)
    detail = _text(
        "去掉其他诊断第",
        pos[keep],
        "个（并发症/合并症）后入",
        alt["group"][keep],
        "组，费用与住院日在该组均值以内",
    )
    return {"row": r, "detail": detail, "alt_group": alt["group"][keep].astype(object), "alt_weight": alt["weight"][keep],
            "alt_payment": alt_pay, "difference": c["expected"][r] - alt_pay}  # fmt: skip


def _pdx_choice(table, rows, offset, c, view, settings, grouping, price, means) -> dict | None:
    """PDX_CHOICE: another diagnosis of the case as the principal gives another regular group (information)."""
    if not len(rows):
        return None
    case, pos, alt = alternatives(
        table, rows, "pdx", settings["pdx_choice.max_tries"], lambda t: _regroup(grouping, t, price)
    )
    case = case + offset
    other = np.flatnonzero(alt["grouped"] & (alt["group"] != c["group"][case]))
    # at most max_alternatives per case, in the diagnoses' list order (never ranked)
    cs = case[other]
    start = np.r_[0, np.flatnonzero(cs[1:] != cs[:-1]) + 1] if len(cs) else np.zeros(0, np.int64)
    rank = np.arange(len(cs)) - np.repeat(start, np.diff(np.r_[start, len(cs)])) if len(cs) else cs
    keep = other[rank < settings["pdx_choice.max_alternatives"]]
    if not len(keep):
        return None
    r = case[keep]
    alt_pay = alt["price"](keep)
    detail = _text(
        "以其他诊断第", pos[keep], "个为主要诊断时入", alt["group"][keep], "组（仅供参考，非编码建议）"
    )
    return {"row": r, "detail": detail, "alt_group": alt["group"][keep].astype(object), "alt_weight": alt["weight"][keep],
            "alt_payment": alt_pay, "difference": alt_pay - c["expected"][r]}  # fmt: skip


def _factorize(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(code per value, distinct values): a hash pass, not the sort of ``np.unique`` on text."""
    codes, uniques = pd.factorize(labels)
    return codes, np.asarray(uniques, dtype=object)


def _text(*parts) -> np.ndarray:
    """Element-wise concatenation of text constants and arrays (numbers as integers), without a Python loop."""
    arrays = [
        p
        if isinstance(p, str)
        else pa.array(p.astype(np.int64) if p.dtype.kind in "iuf" else p, None).cast(pa.string())
        for p in parts
    ]
    return np.asarray(pc.binary_join_element_wise(*arrays, "").to_numpy(zero_copy_only=False), dtype=object)


class _GroupMeans:
    """The run's mean cost and LOS per group over its grouped cases (computed once: the lower group of
    POSSIBLE_UPCODING is looked up here batch by batch)."""

    def __init__(self, group: np.ndarray, grouped: np.ndarray, cost: np.ndarray, los: np.ndarray) -> None:
        self.means = {"cost": self._means(group, grouped, cost), "los": self._means(group, grouped, los)}

    @staticmethod
    def _means(group: np.ndarray, grouped: np.ndarray, values: np.ndarray) -> tuple[pa.Array, np.ndarray]:
        ok = grouped & np.isfinite(values)
        inv, labels = _factorize(group[ok])
        n = np.bincount(inv, minlength=len(labels))
        mean = np.bincount(inv, weights=values[ok], minlength=len(labels)) / np.maximum(n, 1)
        return pa.array(labels, pa.string()), np.append(mean, np.nan)

    def of(self, name: str, groups: np.ndarray) -> np.ndarray:
        """The mean ``name`` (``cost``, ``los``) of each group label of ``groups`` (NaN if none)."""
        labels, mean = self.means[name]
        at = pc.index_in(pa.array(groups, pa.string()), value_set=labels).fill_null(-1)
        at = at.to_numpy(zero_copy_only=False)
        return np.where(at >= 0, mean[np.maximum(at, 0)], np.nan)
