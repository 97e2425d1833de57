"""Supervision flags (智能监控疑点) per case, docs/audit.md §2: findings to review, never verdicts.

READMISSION_15 / READMISSION_31 (疑似分解住院, same hospital or another, with the linked earlier case),
LOW_STANDARD_ADMISSION (低标入院), LONG_STAY (超长住院), HIGH_DEVIATION / LOW_DEVIATION (高/低倍率, from the
payment's deviation class), LOW_RISK_DEATH (低风险组死亡), POSSIBLE_UPCODING (高套嫌疑, CHS-DRG: the one CC/MCC
that lifts the group, with the lower group and the payment difference) and PDX_CHOICE (主诊断选择: another
diagnosis as the principal gives another group; information only, never ranked). Thresholds: AuditSettings.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array

__all__ = ["FLAGS", "FLAG_SCHEMA", "alternatives", "case_flags", "readmissions"]

#: Flag → (中文, severity): ``review`` findings and ``info`` (PDX_CHOICE).
FLAGS = {
    "READMISSION_15": ("15天内再入院（疑似分解住院）", "review"),
    "READMISSION_31": ("16–31天内再入院", "review"),
    "LOW_STANDARD_ADMISSION": ("低标入院", "review"),
    "LONG_STAY": ("超长住院（挂床嫌疑）", "review"),
    "HIGH_DEVIATION": ("高倍率病例", "review"),
    "LOW_DEVIATION": ("低倍率病例", "review"),
    "LOW_RISK_DEATH": ("低风险组死亡", "review"),
    "POSSIBLE_UPCODING": ("高套嫌疑", "review"),
    "PDX_CHOICE": ("主诊断选择（信息）", "info"),
}

FLAG_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("hospital_id", pa.string()),
        ("row", pa.int64()),
        ("flag", pa.string()),
        ("flag_zh", pa.string()),
        ("severity", pa.string()),
        ("detail", pa.string()),
        ("linked_case_id", pa.string()),
        ("group", pa.string()),
        ("alt_group", pa.string()),
        ("alt_weight", pa.float64()),
        ("alt_expected_payment", pa.float64()),
        ("payment_difference", pa.float64()),
    ]
)


class _Found:
    def __init__(self) -> None:
        self.parts: list[dict] = []

    def add(self, flag: str, rows: np.ndarray, detail, **cols) -> None:
        rows = np.flatnonzero(rows) if rows.dtype == bool else np.asarray(rows, np.int64)
        if len(rows):
            detail = np.broadcast_to(np.asarray(detail, dtype=object), rows.shape)
            self.parts.append({"flag": flag, "rows": rows, "detail": detail, **cols})


def case_flags(
    c: dict[str, np.ndarray],
    settings,
    *,
    upcoding=None,
    pdx_choice=None,
    readmitted: list[dict] | None = None,
    offset: int = 0,
) -> pa.Table:
    """The flags of every case (one row per finding), in row then flag order.

    Parameters
    ----------
    c : dict of per-case arrays   ``case_id`` (object or Arrow), ``hospital_id``, ``patient_id`` (object, None
        when absent; or integer codes, -1 when absent),
        ``admission``, ``discharge`` (days, NaN missing), ``los``, ``cost``, ``mode``, ``group``, ``grouped``,
        ``mdc``, ``group_cost``, ``group_los`` (the group's mean cost / LOS: standard, else the run's), ``risk``
        (risk class code), ``deviation`` (names, "" without policy), ``route`` ("" without policy),
        ``payment_method`` (hi_paymtd hint), ``low_standard_dx`` (bool)
    settings : AuditSettings
    upcoding, pdx_choice : dict of arrays, optional   from :func:`alternatives` (rows of the run)
    readmitted : :func:`readmissions` of the whole run (default: of ``c``, then the whole run)
    offset : int   the run's row of the first case of ``c`` (a batch of the run: its cases only are flagged)
    """
    found = _Found()
    n = len(c["los"])
    for p in readmissions(c, settings) if readmitted is None else readmitted:
        mine = (p["rows"] >= offset) & (p["rows"] < offset + n)
        found.add(p["flag"], p["rows"][mine] - offset, p["detail"][mine], linked_case=p["linked_case"][mine])
    los, cost, mode = c["los"], c["cost"], c["mode"]
    grouped = c["grouped"]
    short = (los <= settings["low_standard.max_los"]) & ~np.isin(mode, settings["low_standard.exclude_modes"])
    cheap = cost < settings["low_standard.max_cost_share"] * c["group_cost"]
    low_std = grouped & short & (cheap | c["low_standard_dx"])
    found.add(
        "LOW_STANDARD_ADMISSION",
        low_std,
        _fmt("住院{0:.0f}天，费用为组均费用的{1:.0%}", los, cost / c["group_cost"], low_std),
    )
    bed_day = (c["route"] == "BED_DAY") | (
        (c["route"] == "") & np.isin(c["payment_method"], settings["long_stay.exclude_payment_methods"])
    )
    long_ = ~bed_day & (
        (grouped & (los >= settings["long_stay.los_ratio"] * c["group_los"]))
        | (los > settings["long_stay.max_los"])
    )
    found.add("LONG_STAY", long_, _fmt("住院{0:.0f}天，组均住院日{1:.1f}天", los, c["group_los"], long_))
    dev = c["deviation"]
    found.add("HIGH_DEVIATION", np.isin(dev, ["high", "extreme"]), "费用超过高倍率界值（按政策偏差规则）")
    found.add("LOW_DEVIATION", dev == "low", "费用低于低倍率界值（按政策偏差规则）")
    found.add("LOW_RISK_DEATH", grouped & (mode == 5) & (c["risk"] == 0), "死亡病例所在病组为低风险组")
    for flag, alt in (("POSSIBLE_UPCODING", upcoding), ("PDX_CHOICE", pdx_choice)):
        if alt is not None and len(alt["row"]):
            found.add(
                flag,
                alt["row"] - offset,
                alt["detail"],
                alt_group=alt["alt_group"],
                alt_weight=alt["alt_weight"],
                alt_expected_payment=alt["alt_payment"],
                payment_difference=alt["difference"],
            )
    return _assemble(found, c, offset)


def _fmt(template: str, a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Detail text of the flagged rows only (a few per cent of the cases)."""
    idx = np.flatnonzero(rows)
    return np.array([template.format(x, y) for x, y in zip(a[idx], b[idx], strict=True)], dtype=object)


def readmissions(c: dict, settings) -> list[dict]:
    """The re-admission findings of the run ``c`` (a cross-case finding: computed once, before the cases are
    flagged batch by batch): parts of :func:`case_flags`' ``readmitted``, rows of the run.

    Same patient, admitted ≤ short (READMISSION_15, an overlapping stay included) or ≤ long (READMISSION_31)
    days after the previous stay's discharge; the same hospital first, then the previous stay at another hospital."""
    found = _Found()
    ids = c["case_id"] if isinstance(c["case_id"], pa.Array) else pa.array(c["case_id"], pa.string())
    patient = c["patient_id"]
    if patient.dtype == object:  # text (None: no patient id) → codes
        patient = pc.dictionary_encode(pa.array(patient, pa.string())).indices.fill_null(-1)
        patient = patient.to_numpy(zero_copy_only=False)
    adm, dis = c["admission"], c["discharge"]
    rows = np.flatnonzero((patient >= 0) & ~np.isnan(adm) & ~np.isnan(dis))
    if len(rows) < 2:
        return found.parts
    pid = patient[rows]
    hid = (
        pc.dictionary_encode(pa.array(c["hospital_id"][rows], pa.string()))
        .indices.fill_null(-1)
        .to_numpy(zero_copy_only=False)
    )
    short, long_ = settings["readmission.short_days"], settings["readmission.long_days"]
    for scope, keys in (("same", (adm[rows], dis[rows], hid, pid)), ("any", (adm[rows], dis[rows], pid))):
        order = np.lexsort(keys)
        r = rows[order]
        same_patient = pid[order][1:] == pid[order][:-1]
        same_hosp = hid[order][1:] == hid[order][:-1]
        link = same_patient & (same_hosp if scope == "same" else ~same_hosp)
        gap = adm[r[1:]] - dis[r[:-1]]
        # an admission before the previous discharge (overlapping stays) is the most suspicious of all
        for flag, lo, hi in (("READMISSION_15", -np.inf, short), ("READMISSION_31", short + 1, long_)):
            hit = link & (gap >= lo) & (gap <= hi)
            if not hit.any():
                continue
            cur, prev = r[1:][hit], r[:-1][hit]
            same_group = c["group"][cur] == c["group"][prev]
            where = "同一医院" if scope == "same" else "其他医院"
            after = pa.array(gap[hit] >= 0)
            detail = pc.binary_join_element_wise(
                pc.if_else(after, "出院后", "与前次住院重叠"),
                pa.array(np.abs(gap[hit]).astype(np.int64)).cast(pa.string()),
                pc.if_else(after, f"天再入院（{where}）", f"天（{where}）"),
                pc.if_else(pa.array(same_group.astype(bool)), "，同一病组", ""),
                "",
            )
            linked = np.asarray(ids.take(pa.array(prev)).to_numpy(zero_copy_only=False), dtype=object)
            found.add(
                flag, cur, np.asarray(detail.to_numpy(zero_copy_only=False), object), linked_case=linked
            )
    return found.parts


def alternatives(
    table: pa.Table,
    rows: np.ndarray,
    kind: str,
    max_tries: int,
    regroup: Callable[[pa.Table], dict[str, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Regroup variants of the cases ``rows``: ``kind`` ``"pdx"`` swaps the k-th other diagnosis in as the
    principal (the principal takes its place), ``"drop"`` removes it. Returns the case row and the position k
    (1-based) of each variant and ``regroup``'s output for them."""
    other = table.column("other_dx")
    other = one_array(other).take(pa.array(rows))
    if other.offset:
        other = pa.concat_arrays([other])
    offsets = other.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    length = np.minimum(np.diff(offsets), max_tries)
    case = np.repeat(np.arange(len(rows)), length)
    pos = np.arange(len(case)) - np.repeat(np.cumsum(length) - length, length)  # 0-based position tried
    full = np.diff(offsets)[case]
    keep = full - 1  # the list without the k-th code
    count = keep + (1 if kind == "pdx" else 0)  # "pdx": the old principal appended
    starts = np.cumsum(count) - count
    item_case = np.repeat(np.arange(len(case)), keep)
    j = np.arange(len(item_case)) - np.repeat(np.cumsum(keep) - keep, keep)
    idx = np.empty(int(count.sum()), np.int64)
    idx[starts[item_case] + j] = offsets[case[item_case]] + j + (j >= pos[item_case])
    base = table.take(pa.array(rows[case]))
    values = other.values
    if kind == "pdx":
        idx[starts + keep] = len(values) + np.arange(len(case))
        pdx = base.column("principal_dx").combine_chunks().cast(values.type)
        values = pa.concat_arrays([values, pdx])
        swapped = other.values.take(pa.array(offsets[case] + pos))
        base = base.set_column(base.schema.get_field_index("principal_dx"), "principal_dx", swapped)
    new_off = pa.array(np.concatenate([[0], np.cumsum(count)]).astype(np.int32))
    new_lists = pa.ListArray.from_arrays(new_off, values.take(pa.array(idx)))
    base = base.set_column(base.schema.get_field_index("other_dx"), "other_dx", new_lists)
    return rows[case], pos + 1, regroup(base)


def _assemble(found: _Found, c: dict, offset: int) -> pa.Table:
    if not found.parts:
        return FLAG_SCHEMA.empty_table()
    order_flag = list(FLAGS)
    rows = np.concatenate([p["rows"] for p in found.parts])
    rank = np.concatenate([np.full(len(p["rows"]), order_flag.index(p["flag"])) for p in found.parts])
    seq = np.arange(len(rows))
    order = np.lexsort((seq, rank, rows))

    def cat(key, fill):
        return np.concatenate(
            [
                p.get(key, np.full(len(p["rows"]), fill, dtype=object if fill is None else float))
                for p in found.parts
            ]
        )[order]

    rows_o = rows[order]
    code = rank[order]
    ids = c["case_id"] if isinstance(c["case_id"], pa.Array) else pa.array(c["case_id"], pa.string())
    names = pa.array(order_flag)
    zh = pa.array([FLAGS[f][0] for f in order_flag])
    severity = pa.array([FLAGS[f][1] for f in order_flag])
    take = pa.array(code)
    return pa.table(
        {
            "case_id": ids.take(pa.array(rows_o)),
            "hospital_id": pa.array(c["hospital_id"][rows_o], pa.string()),
            "row": pa.array(rows_o + offset + 1, pa.int64()),
            "flag": names.take(take),
            "flag_zh": zh.take(take),
            "severity": severity.take(take),
            "detail": pa.array(cat("detail", None), pa.string()),
            "linked_case_id": pa.array(cat("linked_case", None), pa.string()),
            "group": pa.array(np.where(c["group"][rows_o] == "", None, c["group"][rows_o]), pa.string()),
            "alt_group": pa.array(cat("alt_group", None), pa.string()),
            "alt_weight": pa.array(cat("alt_weight", np.nan).astype(float), from_pandas=True),
            "alt_expected_payment": pa.array(
                cat("alt_expected_payment", np.nan).astype(float), from_pandas=True
            ),
            "payment_difference": pa.array(cat("payment_difference", np.nan).astype(float), from_pandas=True),
        },
        schema=FLAG_SCHEMA,
    )
