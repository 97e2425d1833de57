"""The self-audit run (医院自查): grouping, QC edits, flags, indicators, 盈亏 and the insurer comparison of one
discharge table, as Arrow tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper.batch import duplicated
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.dip import read_catalogue
from grouper.errors import InputError
from grouper.io.discharges import as_discharges
from grouper.schema import DISCHARGE_SCHEMA, FEE_COLUMNS
from payment.audit.flags import alternatives, case_flags
from payment.audit.grouping import Grouping
from payment.audit.indicators import group_table, indicator_table
from payment.audit.insurer import compare_insurer
from payment.audit.lists import QcLists
from payment.audit.qc import qc_edits
from payment.audit.risk import RISK_CLASSES, risk_classes
from payment.audit.settings import AuditSettings
from payment.audit.summary import summary_table
from payment.settle import expected_payments

__all__ = ["Audit", "audit"]

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


def audit(
    discharges,
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
) -> Audit:
    """Hospital self-audit (医院自查) of a discharge table: QC edits, supervision flags, indicators and 盈亏.

    Parameters
    ----------
    discharges : pa.Table or pandas.DataFrame
        Canonical discharges (``grouper.schema``) of the region or of one hospital; an ``attending_doctor``
        column adds the per-doctor indicators.
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

    Returns
    -------
    Audit
    """
    settings = settings or AuditSettings.load()
    lists = lists or QcLists.load()
    table = _canonical(discharges)
    n = table.num_rows
    dip = scheme == "dip"
    codebook = Codebook.load("chs-drg-1.1" if dip else scheme)
    if dip:
        if catalogue is None and policy is not None:
            catalogue = policy.header.get("catalogue")
        if catalogue is None:
            raise InputError("the DIP scheme needs a catalogue (目录库)")
        if isinstance(catalogue, str | Path):
            catalogue = read_catalogue(catalogue)
    scale = float(policy.scores.score_scale) if policy is not None else 1000.0
    grouping = Grouping(
        scheme, codebook, catalogue, weights, scale, {"aux": aux} if dip and aux is not None else {}
    )
    case_id = table.column("case_id").cast(pa.string())
    dup = duplicated(case_id.combine_chunks())
    out = grouping.group(table, dup)
    view = grouping.view(out)
    cost = _np(table, "total_cost")
    grouping.fit_weights(view["group"], view["grouped"], cost)
    weight = grouping.weight(view, out)
    qc = qc_edits(table, codebook, lists, duplicate=dup)
    err_rows = pc.filter(qc.column("row"), pc.equal(qc.column("severity"), "error")).to_numpy() - 1
    qc_error = np.zeros(n, bool)
    qc_error[err_rows] = True
    qc_count = (
        np.bincount(qc.column("row").to_numpy() - 1, minlength=n) if qc.num_rows else np.zeros(n, np.int64)
    )

    notes: list[str] = []
    priced = table
    for name in out.column_names:
        if name != "case_id":
            priced = priced.append_column(name, out.column(name))

    def price(t: pa.Table) -> dict[str, np.ndarray]:
        if policy is None:
            return {"route": np.full(t.num_rows, "", object), "deviation": np.full(t.num_rows, "", object),
                    "points": np.full(t.num_rows, np.nan), "expected": np.full(t.num_rows, np.nan)}  # fmt: skip
        e = pa.concat_tables(
            expected_payments(lambda: [t], hospitals, policy, catalogue=catalogue, weights=grouping.weights)
        )
        return {
            "route": _np(e, "route", object),
            "deviation": _np(e, "deviation", object),
            "points": _np(e, "points"),
            "expected": _np(e, "expected_payment"),
        }

    if policy is not None and hospitals is None and level is not None:
        ids = pc.unique(table.column("hospital_id").cast(pa.string()).combine_chunks().drop_null())
        hospitals = pa.table({"hospital_id": ids, "level": pa.array([level] * len(ids), pa.int8())})
    if policy is not None and hospitals is None:
        raise InputError("expected payment needs the hospitals table (hospital_id, level) with the policy")
    pay = price(priced)
    pay["expected"] = np.where(qc_error, np.nan, pay["expected"])  # a QC error: not paid by points as it is
    pay["route"] = np.where(qc_error & (pay["route"] != ""), "QC_ERROR", pay["route"])

    # risk classes (audit.md §1.1): the run's grouped cases, or a reference table
    mode = np.nan_to_num(_np(table, "discharge_mode"), nan=-1).astype(np.int64)
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
    los = _np(table, "los_days")
    region_los = _group_mean(view, los)
    std_cost = grouping.standard("avg_cost", view["group"])
    std_los = grouping.standard("avg_los", view["group"])
    adm = _days(table, "admission_date")
    dis = _days(table, "discharge_date")
    patient = _np(table, "patient_id", object)
    c = {
        "case_id": _np(table, "case_id", object),
        "hospital_id": _np(table, "hospital_id", object),
        "patient_id": patient,
        "admission": adm,
        "discharge": dis,
        "los": los,
        "cost": cost,
        "mode": mode,
        "dead": dead,
        "group": view["group"].astype(object),
        "grouped": view["grouped"],
        "mdc": view["mdc"],
        "weight": weight,
        "group_cost": np.where(np.isnan(std_cost), region_cost, std_cost),
        "group_los": np.where(np.isnan(std_los), region_los, std_los),
        "std_cost": std_cost,
        "std_los": std_los,
        "risk": risk,
        "low_risk": risk == 0,
        "deviation": pay["deviation"],
        "route": pay["route"],
        "expected": pay["expected"],
        "payment_method": _np(table, "payment_method", object),
        "low_standard_dx": lists["low_standard_dx"].find(table.column("principal_dx")) >= 0,
    }
    present = [f for f in ("fee_08", "fee_09", "fee_10", "fee_11") if table.column(f).null_count < n]
    if present:
        fee = {f: np.nan_to_num(_np(table, f)) for f in ("fee_08", "fee_09", "fee_10", "fee_11")}
        c["drug"] = fee["fee_09"] + fee["fee_10"] + fee["fee_11"]
        c["consumable"] = fee["fee_08"]
    if table.column("patient_id").null_count == n:
        notes.append("无患者标识（patient_id）：未检查再入院 / no patient_id: readmissions not checked")
    if policy is None:
        notes.append(
            "未提供支付政策：无预计支付、盈亏与高低倍率 / no policy: no expected payment, 盈亏 or deviation flags"
        )

    def regroup(t: pa.Table) -> dict[str, np.ndarray]:
        o = grouping.group(t, np.zeros(t.num_rows, bool))
        v = grouping.view(o)
        priced_t = t
        for name in o.column_names:
            if name != "case_id":
                priced_t = priced_t.append_column(name, o.column(name))
        # priced later, only for the variants kept (a few of them): pricing runs the settlement's routing
        return {
            **v,
            "weight": grouping.weight(v, o),
            "price": lambda rows: price(priced_t.take(pa.array(rows)))["expected"],
        }

    clean = view["grouped"] & ~qc_error
    # the variants regrouped need no fee breakdown, unless the auxiliary typing reads it
    kept = set(aux.input_columns()) if dip and aux is not None else set()
    slim = table.drop_columns([f for f in FEE_COLUMNS if f not in kept])
    upcoding = None
    if not dip:
        suffix = pc.utf8_slice_codeunits(pa.array(view["group"], pa.string()), 3, 4).to_numpy(
            zero_copy_only=False
        )
        rows = np.flatnonzero(clean & np.isin(suffix, ["1", "3"]))
        upcoding = _upcoding(slim, rows, c, view, settings, regroup)
    pdx_rows = np.flatnonzero(clean)
    pdx_choice = _pdx_choice(slim, pdx_rows, c, settings, regroup)
    flags = case_flags(c, settings, upcoding=upcoding, pdx_choice=pdx_choice)

    focus = np.ones(n, bool) if hospital is None else (c["hospital_id"] == hospital)
    if hospital is not None and not focus.any():
        raise InputError(f"hospital {hospital!r}: no case of the input has this hospital_id")
    keep_rows = lambda t: t.filter(pc.is_in(t.column("row"), value_set=pa.array(np.flatnonzero(focus) + 1)))  # noqa: E731
    ind = {"hospital_id": c["hospital_id"]}
    tables = {
        "hospitals": indicator_table(c, ind, focus, relative_cmi=dip),
        "departments": indicator_table(
            c, {**ind, "department": _np(table, "department", object)}, focus, relative_cmi=dip
        ),
    }
    if DOCTOR_COLUMN in table.column_names and table.column(DOCTOR_COLUMN).null_count < table.num_rows:
        doctor = {**ind, DOCTOR_COLUMN: _np(table, DOCTOR_COLUMN, object)}
        tables["doctors"] = indicator_table(c, doctor, focus, relative_cmi=dip)
    tables["groups"] = group_table(c, focus, risk_of)
    tables["flags"] = keep_rows(flags) if hospital is not None else flags
    tables["qc"] = keep_rows(qc) if hospital is not None else qc
    flag_count = (
        np.bincount(flags.column("row").to_numpy() - 1, minlength=n)
        if flags.num_rows
        else np.zeros(n, np.int64)
    )
    cases = pa.table(
        {
            "case_id": case_id,
            "hospital_id": table.column("hospital_id"),
            "department": table.column("department"),
            "mdc": pa.array(np.where(view["grouped"], view["mdc"], None).astype(object), pa.string())
            if not dip
            else pa.nulls(n, pa.string()),
            "adrg": pa.array(np.where(view["grouped"], view["adrg"], None).astype(object), pa.string())
            if not dip
            else pa.nulls(n, pa.string()),
            "group": pa.array(np.where(view["grouped"], view["group"], None).astype(object), pa.string()),
            "status": pa.array(view["status"].astype(str)),
            "grouped": pa.array(view["grouped"]),
            "weight": pa.array(weight, from_pandas=True),
            "risk_class": pa.array(np.array(RISK_CLASSES)[risk]),
            "total_cost": table.column("total_cost"),
            "los_days": table.column("los_days"),
            "route": pa.array(pay["route"].astype(str)),
            "deviation": pa.array(pay["deviation"].astype(str)),
            "points": pa.array(pay["points"], from_pandas=True),
            "expected_payment": pa.array(pay["expected"], from_pandas=True),
            "gain_loss": pa.array(pay["expected"] - cost, from_pandas=True),
            "qc_findings": pa.array(qc_count.astype(np.int64)),
            "qc_error": pa.array(qc_error),
            "flags": pa.array(flag_count.astype(np.int64)),
        }
    )
    tables["cases"] = cases.filter(pa.array(focus)) if hospital is not None else cases
    if insurer is not None:
        known = (
            catalogue.table.column("dip_code") if dip else pa.array(np.asarray(codebook["drg_labels"], str))
        )
        focus_table = table.filter(pa.array(focus)) if hospital is not None else table
        tables["insurer"], insurer_summary = compare_insurer(
            tables["cases"], insurer, known, focus_table, qc, dip
        )
    else:
        insurer_summary = None
    tables = {
        "summary": summary_table(
            tables, c, focus, qc_error, flags, dip, hospital, settings, notes, insurer_summary
        ),
        **tables,
    }
    return Audit(tables, settings, scheme, notes)


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


def _upcoding(table, rows, c, view, settings, regroup) -> dict | None:
    """POSSIBLE_UPCODING: removing one other diagnosis lowers the DRG within its ADRG, and the case's cost and
    LOS are within the lower group's (≤ cost_share × its mean over the run)."""
    if not len(rows):
        return None
    case, pos, alt = alternatives(table, rows, "drop", settings["upcoding.max_tries"], regroup)
    lower = alt["grouped"] & (alt["adrg"] == view["adrg"][case]) & (alt["weight"] < c["weight"][case])
    share = settings["upcoding.cost_share"]
    alt_cost = _mean_of(c["group"], c["grouped"], c["cost"], alt["group"])
    alt_los = _mean_of(c["group"], c["grouped"], c["los"], alt["group"])
    lower &= (c["cost"][case] <= share * alt_cost) & (c["los"][case] <= share * alt_los)
    keep = np.flatnonzero(lower)
    _, first = np.unique(case[keep], return_index=True)  # the first such diagnosis of each case
    keep = keep[first]
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


def _pdx_choice(table, rows, c, settings, regroup) -> dict | None:
    """PDX_CHOICE: another diagnosis of the case as the principal gives another regular group (information)."""
    if not len(rows):
        return None
    case, pos, alt = alternatives(table, rows, "pdx", settings["pdx_choice.max_tries"], regroup)
    other = np.flatnonzero(alt["grouped"] & (alt["group"] != c["group"][case]))
    # at most max_alternatives per case, in the diagnoses' list order (never ranked)
    cs = case[other]
    start = np.r_[0, np.flatnonzero(cs[1:] != cs[:-1]) + 1] if len(cs) else np.zeros(0, np.int64)
    rank = np.arange(len(cs)) - np.repeat(start, np.diff(np.r_[start, len(cs)])) if len(cs) else cs
    keep = other[rank < settings["pdx_choice.max_alternatives"]]
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


def _mean_of(group: np.ndarray, grouped: np.ndarray, values: np.ndarray, of: np.ndarray) -> np.ndarray:
    """The run's mean of ``values`` over the grouped cases of each group label in ``of`` (NaN if none)."""
    ok = grouped & np.isfinite(values)
    inv, labels = _factorize(group[ok])
    n = np.bincount(inv, minlength=len(labels))
    mean = np.bincount(inv, weights=values[ok], minlength=len(labels)) / np.maximum(n, 1)
    at = pc.index_in(pa.array(of, pa.string()), value_set=pa.array(labels)).fill_null(-1)
    at = at.to_numpy(zero_copy_only=False)
    return np.where(at >= 0, np.append(mean, np.nan)[np.maximum(at, 0)], np.nan)
