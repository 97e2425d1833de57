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
BATCH_SIZE = 1 << 18
#: Cases whose variants (another principal diagnosis, one CC/MCC removed) are regrouped at a time.
VARIANT_CASES = 1 << 15


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


class _Passes:
    """The per-case passes over the batches: canonical tables, and grouped ones with the duplicate-case mask of
    the first grouped pass (Q01: a case_id seen in an earlier row of the run)."""

    def __init__(self, batches: Callable[[], Iterable], grouping: Grouping, on_pass, on_batch, total) -> None:
        self.batches, self.grouping = batches, grouping
        self.on_pass, self.on_batch, self.total = on_pass, on_batch, total
        self.dup: list[np.ndarray] | None = None

    def start(self, label: str, counted: bool = True) -> None:
        """Report the next pass (``counted``: over the cases, else a step that reads none)."""
        if self.on_pass is not None:
            self.on_pass(label, self.total if counted else None)

    def canonical(self) -> Iterator[tuple[int, pa.Table]]:
        offset = 0
        for b in self.batches():
            t = _canonical(b)
            yield offset, t
            offset += t.num_rows
            if self.on_batch is not None:
                self.on_batch(t.num_rows)

    def grouped(self) -> Iterator[tuple[int, pa.Table, np.ndarray, pa.Table]]:
        first = self.dup is None
        tracker, masks = DuplicateTracker(), []
        for i, (offset, t) in enumerate(self.canonical()):
            dup = (
                tracker.flag(t.column("case_id").cast(pa.string()).combine_chunks()) if first else self.dup[i]
            )
            masks.append(dup)
            yield offset, t, dup, self.grouping.group(t, dup)
        if first:
            self.dup = masks


def _priced(t: pa.Table, out: pa.Table) -> pa.Table:
    """A canonical batch with the grouper's columns: what the payment engine prices."""
    for name in out.column_names:
        if name != "case_id":
            t = t.append_column(name, out.column(name))
    return t


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
    batches: Callable[[], Iterable],
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
    ``insurer`` the cases are also kept for the comparison). Other options as for :func:`audit`.
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
    passes = _Passes(batches, grouping, on_pass, on_batch, total)
    # pricing scans in pass 1 when its inputs are known up front (else in a pass of its own) and prices in the last
    early = policy is not None and hospitals is not None and (dip or weights is not None)
    pricing = ExpectedPayments(hospitals, policy, catalogue=catalogue, weights=weights) if early else None

    # pass 1: grouping, QC edits and the per-case numbers
    text = {k: [] for k in ("case_id", "hospital_id", "patient_id", "department", DOCTOR_COLUMN,
                            "payment_method", "group", "mdc", "adrg", "status", "pdx", "pproc")}  # fmt: skip
    nums = {k: [] for k in ("admission", "discharge", "los", "cost", "mode", "grouped", "score",
                            "low_standard_dx", "drug", "consumable")}  # fmt: skip
    qc_parts: list[pa.Table] = []
    fees_present = doctor_present = False
    n = 0
    passes.start("auditing: grouping and QC edits")
    for offset, t, dup, out in passes.grouped():
        view = grouping.view(out)
        for k in ("case_id", "hospital_id", "patient_id", "department", DOCTOR_COLUMN, "payment_method"):
            column = t.column(k).cast(pa.string()).combine_chunks()
            text[k].append(column if k in ("case_id", "patient_id") else pc.dictionary_encode(column))
        for k in ("group", "mdc", "adrg", "status"):
            text[k].append(pc.dictionary_encode(pa.array(view[k].astype(object), pa.string())))
        if insurer is not None:
            text["pdx"].append(t.column("principal_dx").combine_chunks())
            text["pproc"].append(t.column("principal_proc").combine_chunks())
        nums["admission"].append(_days(t, "admission_date"))
        nums["discharge"].append(_days(t, "discharge_date"))
        nums["los"].append(_np(t, "los_days"))
        nums["cost"].append(_np(t, "total_cost"))
        nums["mode"].append(np.nan_to_num(_np(t, "discharge_mode"), nan=-1).astype(np.int64))
        nums["grouped"].append(view["grouped"])
        nums["score"].append(_np(out, "dip_score") if dip else np.full(t.num_rows, np.nan))
        nums["low_standard_dx"].append(lists["low_standard_dx"].find(t.column("principal_dx")) >= 0)
        fee = {f: _np(t, f) for f in ("fee_08", "fee_09", "fee_10", "fee_11")}
        fees_present |= any(not np.isnan(v).all() for v in fee.values())
        fee = {f: np.nan_to_num(v) for f, v in fee.items()}
        nums["drug"].append(fee["fee_09"] + fee["fee_10"] + fee["fee_11"])
        nums["consumable"].append(fee["fee_08"])
        doctor_present |= t.column(DOCTOR_COLUMN).null_count < t.num_rows
        qc = qc_edits(t, codebook, lists, duplicate=dup)
        qc_parts.append(qc.set_column(2, "row", pc.add(qc.column("row"), offset)))
        if pricing is not None:
            pricing.scan(_priced(t, out))
        n = offset + t.num_rows
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in nums.items()}
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
        passes.start("auditing: routes for the expected payment")
        for _, t, _, out in passes.grouped():
            pricing.scan(_priced(t, out))
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
    }
    if fees_present:
        c["drug"], c["consumable"] = cat["drug"], cat["consumable"]
    # re-admissions: the one finding across cases, from the patient, dates and hospital of every case
    readmitted = readmissions(
        {**c, "patient_id": pc.dictionary_encode(patient).indices.fill_null(-1).to_numpy(zero_copy_only=False),
         "admission": cat["admission"], "discharge": cat["discharge"]}, settings
    )  # fmt: skip
    department = _shared(text["department"])
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
    kept_cases = sink is None or insurer is not None  # the insurer comparison reads the cases table
    out_parts: dict[str, list[pa.Table]] = {"flags": [], "cases": []}
    emit = sink if sink is not None else (lambda name, part: out_parts[name].append(part))
    flagged = {"cases": 0, "kinds": dict.fromkeys(FLAGS, 0)}

    # last pass: expected payment, the variants of the flags regrouped a slice of cases at a time, and the
    # per-case tables (cases, flags) batch by batch
    clean = view["grouped"] & ~qc_error
    kept = set(aux.input_columns()) if dip and aux is not None else set()
    up_rows = np.zeros(0, np.int64)
    if not dip and n:
        suffix = pc.utf8_slice_codeunits(pa.array(view["group"], pa.string()), 3, 4)
        up_rows = np.flatnonzero(clean & np.isin(suffix.to_numpy(zero_copy_only=False), ["1", "3"]))
    pdx_rows = np.flatnonzero(clean)
    means = _GroupMeans(c["group"], c["grouped"], c["cost"], c["los"])
    price = functools.partial(_price_table, hospitals=hospitals, policy=policy, catalogue=catalogue,
                              weights=grouping.weights)  # fmt: skip
    passes.start("auditing: expected payment, the flags' variants and the per-case tables")
    last = passes.grouped() if pricing is not None else ((o, t, None, None) for o, t in passes.canonical())
    for offset, t, _, out in last:
        lo, hi = offset, offset + t.num_rows
        batch = {k: v[lo:hi] for k, v in c.items() if k != "case_id"}
        batch["case_id"] = case_id.slice(lo, hi - lo)
        if pricing is not None:
            part = _payment_arrays(pricing.price(_priced(t, out)), t.num_rows)
            err = qc_error[lo:hi]  # a QC error: not paid by points as it is
            expected[lo:hi] = np.where(err, np.nan, part["expected"])
            points, batch["deviation"] = part["points"], part["deviation"]
            batch["route"] = np.where(err & (part["route"] != ""), "QC_ERROR", part["route"])
        else:
            points = np.full(t.num_rows, np.nan)
            batch["deviation"] = batch["route"] = np.full(t.num_rows, "", object)
        # the variants need no fee breakdown, unless the auxiliary typing reads it
        slim = t.drop_columns([f for f in FEE_COLUMNS if f not in kept])
        found = {}
        for rows, key, fn in ((up_rows, "upcoding", _upcoding), (pdx_rows, "pdx_choice", _pdx_choice)):
            mine = rows[(rows >= lo) & (rows < hi)] - lo
            parts = []
            for i in range(0, len(mine), VARIANT_CASES):
                hit = fn(slim, mine[i : i + VARIANT_CASES], offset, c, view, settings, grouping, price, means)
                if hit is not None:
                    parts.append(hit)
            found[key] = _concat(parts)
        if dip:
            found["upcoding"] = None
        flags = case_flags(batch, settings, readmitted=readmitted, offset=lo, **found)
        flag_count = (
            np.bincount(flags.column("row").to_numpy() - 1 - lo, minlength=t.num_rows)
            if flags.num_rows
            else np.zeros(t.num_rows, np.int64)
        )
        cases = _cases_table(
            batch, department[lo:hi], view, lo, hi, points, qc_count, qc_error, flag_count, dip
        )
        mine = focus[lo:hi]
        if hospital is not None:
            flags = flags.filter(
                pc.is_in(flags.column("row"), value_set=pa.array(np.flatnonzero(mine) + lo + 1))
            )
            cases = cases.filter(pa.array(mine))
        review = pc.equal(flags.column("severity"), "review")
        flagged["cases"] += pc.count_distinct(pc.filter(flags.column("row"), review)).as_py()
        for kind, count in zip(*[flags.column("flag").value_counts().field(i).to_pylist() for i in (0, 1)],
                               strict=True):  # fmt: skip
            flagged["kinds"][kind] += count
        emit("flags", flags)
        emit("cases", cases)
        if kept_cases and sink is not None:
            out_parts["cases"].append(cases)
    passes.start("auditing: indicators", counted=False)

    keep_rows = lambda t: t.filter(pc.is_in(t.column("row"), value_set=pa.array(np.flatnonzero(focus) + 1)))  # noqa: E731
    ind = {"hospital_id": c["hospital_id"]}
    tables = {
        "hospitals": indicator_table(c, ind, focus, relative_cmi=dip),
        "departments": indicator_table(c, {**ind, "department": department}, focus, relative_cmi=dip),
    }
    if doctor_present:
        doctor = {**ind, DOCTOR_COLUMN: _shared(text[DOCTOR_COLUMN])}
        tables["doctors"] = indicator_table(c, doctor, focus, relative_cmi=dip)
    tables["groups"] = group_table(c, focus, risk_of)
    if sink is None:
        tables["flags"] = _concat_tables(out_parts["flags"], FLAG_SCHEMA)
    tables["qc"] = keep_rows(qc) if hospital is not None else qc
    cases = _concat_tables(out_parts["cases"], None) if kept_cases else None
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


def _cases_table(batch, department, view, lo, hi, points, qc_count, qc_error, flag_count, dip) -> pa.Table:
    """The ``cases`` rows of one batch (the run's rows ``lo`` … ``hi``)."""
    n = hi - lo
    grouped = batch["grouped"]

    def labels(values: np.ndarray) -> pa.Array:
        return pa.array(np.where(grouped, values, None), pa.string())

    expected, cost = batch["expected"], batch["cost"]
    return pa.table(
        {
            "case_id": batch["case_id"],
            "hospital_id": pa.array(batch["hospital_id"], pa.string()),
            "department": pa.array(department, pa.string()),
            "mdc": labels(view["mdc"][lo:hi]) if not dip else pa.nulls(n, pa.string()),
            "adrg": labels(view["adrg"][lo:hi]) if not dip else pa.nulls(n, pa.string()),
            "group": labels(batch["group"]),
            "status": pa.array(view["status"][lo:hi], pa.string()).fill_null(""),
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
            "qc_findings": pa.array(qc_count[lo:hi].astype(np.int64)),
            "qc_error": pa.array(qc_error[lo:hi]),
            "flags": pa.array(flag_count.astype(np.int64)),
        }
    )


def _concat_tables(parts: list[pa.Table], schema) -> pa.Table:
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
        return pa.array(labels), np.append(mean, np.nan)

    def of(self, name: str, groups: np.ndarray) -> np.ndarray:
        """The mean ``name`` (``cost``, ``los``) of each group label of ``groups`` (NaN if none)."""
        labels, mean = self.means[name]
        at = pc.index_in(pa.array(groups, pa.string()), value_set=labels).fill_null(-1)
        at = at.to_numpy(zero_copy_only=False)
        return np.where(at >= 0, mean[np.maximum(at, 0)], np.nan)
