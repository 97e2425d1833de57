"""CHS-DRG grouping of a discharge table (DRG 分组): encode, check, run the kernel, label, explain."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.batch import duplicated
from grouper.codebook import Codebook
from grouper.drg import _kernel
from grouper.drg.rules import Check, NumberReading
from grouper.io.discharges import CODE, CODE_LIST, as_discharges
from grouper.io.readable import reason_words
from grouper.io.values import CodeReading, code_reading
from grouper.schema import AS_WRITTEN, DISCHARGE_SCHEMA
from grouper.status import UNGROUPED_ADRG, UNGROUPED_DRG, UNGROUPED_MDC, Status

__all__ = ["INPUT_COLUMNS", "EncodedCases", "encode_cases", "group_drg"]

#: The canonical columns the CHS-DRG grouper reads (readers may skip the others).
INPUT_COLUMNS = (
    "case_id",
    "sex",
    "sex_text",
    "age_years",
    "age_days",
    "birth_weight_g",
    "los_days",
    "discharge_mode",
    "admission_date",
    "discharge_date",
    "principal_dx",
    "other_dx",
    "principal_proc",
    "other_procs",
)
_AGE_MAX_YEARS = 150
_DISCHARGE_MODES = (1, 2, 3, 4, 5, 9)
#: Whether each int8 value (read as its byte) is a discharge mode.
_MODES = np.isin(np.arange(256, dtype=np.uint8).view(np.int8), _DISCHARGE_MODES)


def group_drg(
    table: pa.Table,
    codebook: Codebook,
    *,
    explain: bool = False,
    duplicate: np.ndarray | None = None,
    codes: CodeReading = "clean",
    lang: str = "en",
) -> pa.Table:
    """Group discharge records into CHS-DRG groups (DRG 分组); one output row per input row, in order.

    Parameters
    ----------
    table : pa.Table, pandas DataFrame or any Arrow-compatible table, or :class:`EncodedCases`
        Canonical discharge columns (grouper.schema; ``grouper.canonicalise`` maps an export's headers and
        values); absent optional columns count as null. Cases already encoded (:func:`encode_cases`) for this
        codebook and ``codes`` are grouped as they are.
    codebook : Codebook    e.g. ``Codebook.load("chs-drg-1.1")``
    explain : bool         add a ``reason`` column: one line saying why the case landed where it did
    duplicate : bool array, optional
        Rows whose case_id was already seen (by a streaming caller); by default duplicates within ``table``.
    codes : ``"clean"`` (default) or ``"verbatim"``
        How codes are matched (编码读取): ``clean`` reads ``j18.900``, ``" J18.900"`` and a 国临版 code as the
        医保版 code they stand for; ``verbatim`` matches codes exactly as written, as the reference does (they then
        match nothing). Read files with the same ``codes`` (``read_discharges``) so the reader keeps them as written.
    lang : str             language of the reasons, ``en`` or ``zh`` (``codebooks/records/reason_labels.csv``)

    Returns
    -------
    pa.Table with ``case_id, mdc, adrg, drg, drg_status`` (+ ``reason``). Ungrouped cases are
    ``0000 / 00 / 0000``; ``drg_status`` holds a ``Status`` name.

    Examples
    --------
    >>> cb = Codebook.load("chs-drg-1.1")
    >>> t = pa.table({"case_id": ["1"], "sex": pa.array([2], pa.int8()), "age_years": pa.array([88], pa.int16()),
    ...               "principal_dx": ["K22.301"], "other_dx": [["K11.901", "E11.900"]]})
    >>> group_drg(t, cb).column("drg").to_pylist()
    ['GZ13']
    """
    verbatim = code_reading(codes) == "verbatim"
    words = reason_words(lang) if explain else None  # the reasons' words, checked before any work
    cases = table if isinstance(table, EncodedCases) else None
    if cases is not None and (cases.codebook is not codebook or cases.verbatim != verbatim):
        raise ValueError("cases encoded for another codebook or code reading than this grouping's")
    col = cases.col if cases is not None else _columns(as_discharges(table))
    # duplicates (hash, sort) on the other core while the codes are encoded
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(duplicated, col["case_id"]) if duplicate is None else None
        if cases is None:
            cases = _encode(col, codebook, verbatim)
        return _group(cases, words, pending.result if pending else lambda: duplicate)


@dataclass(frozen=True)
class EncodedCases:
    """Discharges made ready for one codebook (编码后的病例): codes looked up, numbers read, and what the input
    alone decides (the blocking checks, the warnings). The first step of :func:`group_drg`, which a streaming
    caller takes beside its reading (:func:`encode_cases`) while the last batch groups."""

    col: dict[str, pa.Array]  #: the canonical columns the grouper reads (``_columns``)
    codebook: Codebook
    verbatim: bool
    pdx: np.ndarray
    pproc: np.ndarray
    odx: tuple[np.ndarray, np.ndarray]  #: (CSR offsets, ids)
    oprocs: tuple[np.ndarray, np.ndarray]
    sex: np.ndarray  #: int8, -128 when empty
    nums: np.ndarray  #: age_years, age_days and birth_weight_g as the kernel compares them
    status: np.ndarray  #: the blocking checks' statuses (codebook.toml [engine] checks, in its order)
    skip: np.ndarray  #: the cases a blocking check stops (not grouped)
    pdx_given: np.ndarray  #: a principal diagnosis written that is not a code of the codebook
    warning: np.ndarray  #: the most severe warning of a grouped case that its input alone decides (0: none)
    no_id: np.ndarray  #: the case_id is missing

    @property
    def num_rows(self) -> int:
        return len(self.pdx)


def encode_cases(table: pa.Table, codebook: Codebook, *, codes: CodeReading = "clean") -> EncodedCases:
    """The codes of a discharge table looked up in ``codebook`` (``codes`` as :func:`group_drg` takes it), for
    ``group_drg(encode_cases(table, cb), cb)``: the same result as ``group_drg(table, cb)``."""
    return _encode(_columns(as_discharges(table)), codebook, code_reading(codes) == "verbatim")


def _encode(col: dict[str, pa.Array], codebook: Codebook, verbatim: bool) -> EncodedCases:
    pdx = codebook.encode_dx(col["principal_dx"], verbatim=verbatim)
    pproc = codebook.encode_proc(col["principal_proc"], verbatim=verbatim)
    odx_off, odx, odx_unknown = _encode_list(col["other_dx"], partial(codebook.encode_dx, verbatim=verbatim))
    oproc_off, oproc, oproc_unknown = _encode_list(
        col["other_procs"], partial(codebook.encode_proc, verbatim=verbatim)
    )
    n = len(pdx)
    sex = _ints(col["sex"], -128, np.int8)
    age_years = _ints(col["age_years"], -32768, np.int16)
    age_days = _ints(col["age_days"], 0, np.int32)
    weight = _ints(col["birth_weight_g"], 0, np.int32)
    settings = codebook.settings
    years = _ints(col["age_years"], 0, np.int16) if col["age_years"].null_count else age_years  # empty: 0
    nums = _kernel.case_numbers(years, age_days, weight, settings.numbers == NumberReading.ECMASCRIPT)
    pdx_given = _present(col["principal_dx"], pdx < 0)  # written but not a code of the codebook

    # blocking checks of the scheme (codebook.toml [engine] checks), in its order: each sets a status, skips grouping
    status = np.zeros(n, np.int8)
    skip = np.zeros(n, np.bool_)
    for check in settings.checks:
        mask, code = _check(check, col, sex, age_years, age_days, weight, settings, (pdx < 0) & ~pdx_given)
        _raise(status, mask & ~skip, code)
        skip |= mask

    # the warnings a grouped case may carry that its input alone decides: the most severe one (a case keeps it)
    warning = np.zeros(n, np.int8)
    _raise(warning, (sex != 1) & (sex != 2), Status.SEX_UNKNOWN)
    pproc_unknown = _present(col["principal_proc"], pproc < 0)
    _raise(warning, odx_unknown | oproc_unknown | pproc_unknown, Status.CODE_UNKNOWN)
    _raise(warning, _los_invalid(col), Status.LOS_INVALID)
    _raise(warning, _mode_unknown(col["discharge_mode"]), Status.DISCHARGE_MODE_UNKNOWN)
    no_id = pc.fill_null(pc.equal(pc.binary_length(col["case_id"]), 0), True)  # readers make blank ids null
    return EncodedCases(
        col,
        codebook,
        verbatim,
        pdx,
        pproc,
        (odx_off, odx),
        (oproc_off, oproc),
        sex,
        nums,
        status,
        skip,
        pdx_given,
        warning,
        no_id.to_numpy(zero_copy_only=False),
    )


def _group(cases: EncodedCases, words, duplicates) -> pa.Table:
    """Group encoded cases; ``words`` (``reason_labels.csv`` in one language): add the reasons."""
    col, codebook, pdx, sex, skip = cases.col, cases.codebook, cases.pdx, cases.sex, cases.skip
    mdc, adrg, drg, severity, severity_dx, first_gate = _kernel.group_cases(
        _kernel.tables(codebook), pdx, *cases.odx, cases.pproc, *cases.oprocs, sex, cases.nums, skip
    )

    status = cases.status.copy()  # (the encoded cases may be grouped again)
    grouped = mdc >= 0
    ungrouped = ~grouped & ~skip
    _raise(status, ungrouped & (first_gate >= 0), Status.NO_ADRG)
    _raise(status, ungrouped & (first_gate < 0), Status.NO_MDC)
    _raise(status, _sex_conflict(codebook, ungrouped, pdx, sex), Status.SEX_CONFLICT)
    _raise(status, cases.pdx_given & ~skip, Status.PDX_UNKNOWN)
    _raise(status, (pdx < 0) & ~cases.pdx_given & ~skip, Status.PDX_MISSING)
    warn = grouped & (status < Status.NO_ADRG)
    _raise(status, warn, cases.warning)
    duplicate = duplicates()
    grouping_status = status.copy()  # why the group is what it is, before the run-level statuses
    _raise(status, duplicate, Status.DUPLICATE_CASE)
    _raise(status, cases.no_id, Status.CASE_ID_MISSING)

    mdc_labels, adrg_labels, drg_labels, status_labels, status_position = _dictionaries(codebook)
    at = _kernel.label_positions(
        mdc, adrg, drg, status, *(len(codebook[k]) for k in _LABELS), status_position
    )
    out = {
        "case_id": col["case_id"].cast(pa.string()),
        "mdc": pa.DictionaryArray.from_arrays(pa.array(at[0]), mdc_labels),
        "adrg": pa.DictionaryArray.from_arrays(pa.array(at[1]), adrg_labels),
        "drg": pa.DictionaryArray.from_arrays(pa.array(at[2]), drg_labels),
        "drg_status": pa.DictionaryArray.from_arrays(pa.array(at[3]), status_labels),
    }
    if words is not None:
        out["reason"] = _reasons(
            codebook,
            col,
            out,
            grouping_status,
            pdx,
            first_gate,
            adrg,
            severity,
            severity_dx,
            words,
        )
    return pa.table(out)


def _ints(arr: pa.Array, empty: int, dtype) -> np.ndarray:
    """An int column as numpy ``dtype``, an empty value as ``empty``."""
    return arr.fill_null(empty).to_numpy(zero_copy_only=False).astype(dtype)


def _check(
    check: Check, col, sex, age_years, age_days, weight, settings, no_pdx
) -> tuple[np.ndarray, Status]:
    """Cases a blocking check stops, and their status."""
    if check == Check.SEX_MISSING:
        return sex == -128, Status.SEX_MISSING
    if check == Check.SEX_INVALID:
        return _sex_misspelt(col, sex, settings.sex_spellings), Status.SEX_INVALID
    if check == Check.DX_MISSING:
        no_odx = pc.list_value_length(col["other_dx"]).fill_null(0).to_numpy(zero_copy_only=False) == 0
        return no_pdx & no_odx, Status.PDX_MISSING
    if check == Check.NEWBORN_DATA_MISSING:
        # weight 0 = empty (the reference's default); -1 = present but unreadable, which the reference rejects too
        return (age_years == 0) & (age_days <= 28) & (weight <= 0), Status.NEWBORN_DATA_MISSING
    if check == Check.AGE_MISSING:
        return age_years == -32768, Status.AGE_MISSING
    missing = age_years == -32768
    return ~missing & ((age_years < 0) | (age_years > _AGE_MAX_YEARS) | (age_days < 0)), Status.AGE_INVALID


def _sex_misspelt(col: dict[str, pa.Array], sex: np.ndarray, spellings: tuple[str, ...]) -> np.ndarray:
    """Sex not written as one of ``spellings``: the text as written when the source was text (``男``, ``1.0``,
    ``" 1"`` fail under chs-drg-2.0), else the number read (a numeric column holds no spelling: 1 is "1")."""
    numbers = [int(v) for v in spellings if v.isascii() and v.isdigit() and str(int(v)) == v and int(v) < 128]
    ok = np.isin(sex, np.array(numbers, np.int8))
    text = col["sex_text"]
    if text.null_count < len(text):
        written = pc.is_in(text, value_set=pa.array(spellings, pa.string())).to_numpy(zero_copy_only=False)
        ok = np.where(text.is_valid().to_numpy(zero_copy_only=False), written, ok)
    return ~ok


def _present(arr: pa.Array, rows: np.ndarray) -> np.ndarray:
    """Which of the ``rows`` (a mask) hold a value that is not null or blank; only those rows' strings are read."""
    out = np.zeros(len(arr), np.bool_)
    at = np.flatnonzero(rows & arr.is_valid().to_numpy(zero_copy_only=False))
    if len(at):
        out[at] = pc.is_valid(_strings(_decoded(arr.take(pa.array(at))))).to_numpy(zero_copy_only=False)
    return out


def _columns(table: pa.Table) -> dict[str, pa.Array]:
    """The canonical columns the grouper reads, each one chunk, typed; absent columns are all-null. Codes kept
    dictionary-encoded (``read_discharges_keeping(encoded=True)``) stay so: they are looked up per distinct
    spelling."""
    out = {}
    for name in INPUT_COLUMNS:
        typ = DISCHARGE_SCHEMA.field(name).type
        if name in table.column_names:
            arr = one_array(table.column(name))
            out[name] = arr if arr.type == typ or arr.type == ENCODED.get(name) else arr.cast(typ)
        else:
            out[name] = pa.nulls(table.num_rows, typ)
    return out


#: The dictionary-encoded types a column may have: the codes (:data:`grouper.io.discharges.ENCODED_CODES`) and
#: the sex as written, as ``read_discharges_keeping(encoded=True)`` keeps them.
ENCODED = {
    "principal_dx": CODE,
    "principal_proc": CODE,
    "other_dx": CODE_LIST,
    "other_procs": CODE_LIST,
    "sex_text": CODE,
}


def _decoded(arr: pa.Array) -> pa.Array:
    """Codes as plain strings (a dictionary-encoded array decoded)."""
    return arr.cast(pa.string()) if pa.types.is_dictionary(arr.type) else arr


def _strings(arr: pa.Array) -> pa.Array:
    """Trimmed strings with empty ones as null."""
    s = pc.utf8_trim_whitespace(arr)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _encode_list(arr: pa.Array, encode) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (offsets, ids) of a list<string> column and, per case, whether a non-empty code was unknown."""
    if arr.null_count:  # (a null list may own values, which flattening leaves out)
        lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = np.zeros(len(arr) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
    else:  # the list's own offsets
        offsets = arr.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
        offsets -= offsets[0]
    flat = pc.list_flatten(arr)
    ids = encode(flat)
    missing = np.flatnonzero(ids < 0)  # few: only these strings are inspected (empty items are not unknown)
    present = pc.is_valid(_strings(_decoded(flat.take(pa.array(missing))))).to_numpy(zero_copy_only=False)
    owner = np.searchsorted(offsets, missing[present], side="right") - 1
    unknown = np.zeros(len(arr), np.bool_)
    unknown[owner] = True
    return offsets, ids, unknown


def _raise(status: np.ndarray, mask: np.ndarray, code: Status | np.ndarray) -> None:
    """A case keeps its most severe status (the highest code); ``code``: one status, or one per case. (The mask as
    0/1 times the code: ten times faster than ``np.where``, and the codes are not negative.)"""
    np.maximum(status, mask.view(np.int8) * np.asarray(code, np.int8), out=status)


def _sex_conflict(codebook: Codebook, rows: np.ndarray, pdx: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """Of ``rows`` (a mask, the ungrouped cases), those whose principal's MDC lists are all sex-gated and none
    admits this sex (codebooks/chs-drg-2.0/RULES.md §2, project SEX_CONFLICT)."""
    at = np.flatnonzero(rows & (pdx >= 0))
    mask_of_pdx = codebook["dx_mdc_mask"][pdx[at]]
    gated = np.uint32(0)
    refused = np.zeros(len(at), np.uint32)
    for m, need in enumerate(codebook["mdc_gate_sex"]):
        if need:  # a top-level sex == "n" in the MDC's gate
            bit = np.uint32(1) << np.uint32(m)
            gated |= bit
            refused |= np.where(sex[at] != need, bit, np.uint32(0))
    out = np.zeros(len(pdx), np.bool_)
    out[at] = (mask_of_pdx != 0) & (mask_of_pdx & ~gated == 0) & (mask_of_pdx & ~refused == 0)
    return out


def _los_invalid(col: dict[str, pa.Array]) -> np.ndarray:
    """LOS negative, discharge before admission, or LOS not matching the dates (a same-day stay counts as 1);
    a check whose values are missing does not fail."""
    los, admitted, discharged = (
        _whole(col[name]) for name in ("los_days", "admission_date", "discharge_date")
    )
    return _kernel.los_invalid(los, admitted, discharged, _EMPTY)


#: A missing value among the int32 numbers and days widened to int64 (:func:`_whole`): no int32 is this.
_EMPTY = -(2**40)


def _whole(arr: pa.Array) -> np.ndarray:
    """An int32 or date32 column as int64 (days since 1970 for dates), missing values as ``_EMPTY``."""
    values = arr.view(pa.int32()) if pa.types.is_date32(arr.type) else arr
    return values.cast(pa.int64()).fill_null(_EMPTY).to_numpy(zero_copy_only=False)


def _mode_unknown(mode: pa.Array) -> np.ndarray:
    """A discharge mode written but not one of the codes (1-5, 9)."""
    return ~_MODES[mode.fill_null(_DISCHARGE_MODES[0]).to_numpy(zero_copy_only=False).view(np.uint8)]


#: Statuses the DRG grouper reports (the dictionary of ``drg_status``).
_STATUSES = Status.of_scheme("drg")


#: The codebook's label arrays, in the order ``_kernel.label_positions`` takes their lengths.
_LABELS = ("mdc_labels", "adrg_labels", "drg_labels", "qy_labels")


def _dictionaries(codebook: Codebook) -> tuple[pa.Array, ...]:
    """The dictionaries of the mdc, adrg, drg and drg_status columns, each ending with its ungrouped label, and
    the position of each status code in the last; made once per codebook."""

    def made():
        mdc, adrg, drg, qy = (codebook[k].tolist() for k in _LABELS)
        position = np.full(max(Status) + 1, len(_STATUSES), np.int32)
        position[[int(s) for s in _STATUSES]] = np.arange(len(_STATUSES))
        return (
            pa.array([*mdc, UNGROUPED_MDC]),
            pa.array([*adrg, "QY", UNGROUPED_ADRG]),
            pa.array([*drg, *qy, UNGROUPED_DRG]),
            pa.array([*(s.name for s in _STATUSES), ""]),
            position,
        )

    return codebook.cached("drg/dictionaries", made)


#: The field each failure names, with its value: (statuses, reason_labels key, column).
_NAMED_FIELDS = (
    ((Status.PDX_UNKNOWN, Status.SEX_CONFLICT, Status.NO_MDC, Status.NO_ADRG), "drg.pdx", "principal_dx"),
    ((Status.SEX_MISSING, Status.SEX_INVALID, Status.SEX_CONFLICT), "drg.sex", "sex"),
    ((Status.AGE_INVALID,), "drg.age", "age_years"),
    ((Status.NEWBORN_DATA_MISSING,), "drg.age_days", "age_days"),
)


def _text(values: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=str).tolist(), pa.string())


#: The text as written (``sex_text``) of a field that a reason names (``sex``).
_WRITTEN = {source: written for written, source in AS_WRITTEN.items()}


def _shown(col: dict[str, pa.Array], name: str, n: int) -> pa.Array:
    """The value of the field ``name`` that a reason names: as the file wrote it where the reader kept its text
    (the sex ``男``, ``1.0`` stopped by SEX_INVALID, not the 1 read from it), else as read; ``—`` when empty."""
    if name not in col:
        return pa.nulls(n, pa.string())
    value, written = col[name].cast(pa.string()), _WRITTEN.get(name)
    if written in col:
        value = pc.coalesce(_strings(_decoded(col[written])), value)
    return pc.fill_null(value, "—")


def _reasons(codebook, col, out, status, pdx, first_gate, adrg, severity, severity_dx, words) -> pa.Array:
    """One line per case: the MDC and rule that took it, the CC/MCC code that set the suffix, or why it failed
    and the value of the field that decided it; words from ``reason_labels.csv``."""
    rule_text = np.append(codebook["adrg_condition"], words["drg.qy"])
    a = np.where(adrg == _kernel.QY_ADRG, len(rule_text) - 1, np.maximum(adrg, 0))
    dx_codes = np.append(codebook["dx_codes"], "")
    sev_text = np.array([words["drg.no_cc"], words["drg.cc"], words["drg.mcc"]])[severity]
    sev = pc.binary_join_element_wise(_text(sev_text), _text(dx_codes[severity_dx]), "")
    mdc_s, adrg_s, drg_s = (out[k].cast(pa.string()) for k in ("mdc", "adrg", "drg"))
    grouped_text = pc.binary_join_element_wise(
        mdc_s, " > ", adrg_s, " (", _text(rule_text[a]), "); ", sev, " → ", drg_s, ""
    )
    fail = np.full(max(Status) + 1, "", dtype=object)
    for code in Status:
        fail[code] = words.get(f"drg.status.{code.name}", "")
    fail[Status.SEX_INVALID] = fail[Status.SEX_INVALID].format(" or ".join(codebook.settings.sex_spellings))
    gated = np.append(codebook["mdc_labels"], "")[first_gate]
    gated_text = np.where(
        status == Status.NO_ADRG,
        np.char.add(words["drg.first_gate"], np.char.add(gated, words["drg.first_gate_end"])),
        "",
    )
    parts = [words["drg.fail_prefix"], _text(fail[status]), _text(gated_text)]
    for statuses, key, name in _NAMED_FIELDS:
        value = _shown(col, name, len(status))
        named = pa.array(np.isin(status, [int(s) for s in statuses]))
        parts.append(pc.if_else(named, pc.binary_join_element_wise(words[key], value, ""), ""))
    fail_text = pc.binary_join_element_wise(*parts, "")
    return pc.if_else(pa.array(adrg != -1), grouped_text, fail_text)
