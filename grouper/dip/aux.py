"""Auxiliary typing (辅助分型): subtype levels as data, coefficients fitted on last year's cases.

docs/dip.md §5. Each *family* (疾病严重程度, 恶性肿瘤严重程度, 年龄, 监护病房 days) sorts a case into at most
one subtype: the first row of ``codebooks/dip/aux/subtypes.csv`` (by ``order``) whose condition holds. A subtype of
a DIP group is admitted when the trigger conditions hold (group n > N, subtype n > n, the family's subtypes lower the
within-group CV by ≥ 20 %); its coefficient is ``subtype mean cost / group mean cost`` (last year). A case takes
the highest coefficient among its admitted subtypes; without one its coefficient is 1.

A fitted table is saved as CSV + ``<stem>.params.toml`` (or Parquet) and read back without refitting; beside a
catalogue ``<stem>.csv`` / ``<stem>.parquet`` it is ``<stem>.aux.csv`` (:func:`aux_path`), which ``drgdip
catalog`` writes and ``drgdip group`` picks up.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from numba import njit

from grouper import _reduction as red
from grouper._history import data_years, fingerprint, params_to_meta
from grouper.codebook import DEFAULT_SCHEME, Codebook
from grouper.codes import normalise_codes
from grouper.drg import _kernel
from grouper.errors import CodebookError, InputError, SettingsError
from grouper.estimator import Estimator
from grouper.resources import data_path
from grouper.schema import FEE_COLUMNS
from grouper.settings import Num, Seq, Text
from grouper.version import drgdip_version

__all__ = [
    "COEFFICIENTS_SCHEMA",
    "INPUT_COLUMNS",
    "SUBTYPE_KINDS",
    "AuxTyping",
    "aux_path",
    "charlson_index",
    "read_cci_table",
    "read_severity_dictionary",
    "read_subtypes",
    "subtype_admitted",
]

#: Closed set of subtype condition kinds (the ``kind`` column of subtypes.csv).
SUBTYPE_KINDS = (
    "death",
    "dx_flag",
    "proc_flag",
    "age_days",
    "age_years",
    "icu_days",
    "cci",
    "high_cost",
    "any",
)
#: Case flags a ``dx_flag`` / ``proc_flag`` row may name.
_DX_FLAGS = ("severe", "moderate", "metastasis")
_PROC_FLAGS = ("radiotherapy", "chemotherapy")
#: Levels of a 中/重度 dictionary (GX_ASSI ``DIP_ASSISTANT_CODE``, docs/dip.md §5.3) that this module reads.
_DICT_LEVELS = {1: "moderate", 2: "severe", 3: "metastasis"}
_DEATH = 5  # 离院方式 5 = 死亡
#: Canonical discharge columns (grouper.schema) the subtype conditions read, besides ``dip_group``/``dip_kind``;
#: the fee columns (``fee_01`` … ``fee_14``) of ``high_cost`` rows come from the subtype table
#: (:meth:`AuxTyping.input_columns`).
INPUT_COLUMNS = (
    "principal_dx",
    "other_dx",
    "principal_proc",
    "other_procs",
    "los_days",
    "discharge_mode",
    "age_years",
    "age_days",
    "icu_hours",
    "total_cost",
)

#: Columns of the fitted coefficient table (one row per admitted subtype of a DIP group).
COEFFICIENTS_SCHEMA = pa.schema(
    [
        pa.field("dip_group", pa.string()),
        pa.field("family", pa.string()),
        pa.field("subtype", pa.string()),
        pa.field("name", pa.string()),
        pa.field("coef", pa.float64()),
        pa.field("n_cases", pa.int64()),
        pa.field("avg_cost", pa.float64()),
        pa.field("group_n", pa.int64()),
        pa.field("group_avg_cost", pa.float64()),
        pa.field("group_cv", pa.float64()),
        pa.field("family_cv", pa.float64()),
        pa.field("cv_fall", pa.float64()),
    ]
)


def aux_path(catalogue: str | Path) -> Path:
    """The auxiliary-typing table that belongs to a catalogue file: ``<stem>.aux.csv`` beside it.

    ``cat.csv`` and ``cat.parquet`` → ``cat.aux.csv`` (settings in ``cat.aux.params.toml``); a folder holding
    ``catalogue.csv`` → ``catalogue.aux.csv`` in it.

    Examples
    --------
    >>> aux_path("out/region-2025.parquet").as_posix()
    'out/region-2025.aux.csv'
    """
    p = Path(catalogue)
    if p.is_dir():
        p = p / "catalogue.csv"
    return p.with_name(f"{p.stem}.aux.csv")


def read_subtypes(path: str | Path | None = None) -> pa.Table:
    """Read a subtype table (辅助分型目录): ``codebooks/dip/aux/subtypes.csv`` by default.

    Returns
    -------
    pa.Table
        Rows sorted by family (first appearance) and ``order``; checked: known kinds and flags, unique codes,
        and the ``arg`` of a ``high_cost`` row: fee columns ``fee_01`` … ``fee_14`` joined with ``+`` whose sum
        is the fee (``fee_05`` 治疗费; ``fee_09+fee_10+fee_11`` 药品费).
    """
    p = Path(path) if path else data_path("dip", "aux", "subtypes.csv")
    num = {c: pa.float64() for c in ("los_min", "los_max", "lo", "hi")}
    strings = {c: pa.string() for c in ("family", "subtype", "name", "kind", "arg", "principal", "source")}
    table = pacsv.read_csv(
        p, convert_options=pacsv.ConvertOptions(column_types={**num, **strings, "order": pa.int64()})
    )
    _require(
        p, table, ("family", "order", "subtype", "kind", "arg", "principal", "los_min", "los_max", "lo", "hi")
    )
    rows = table.to_pylist()
    for i, r in enumerate(rows, start=2):
        bad = functools.partial(_bad_row, p, i)
        if r["kind"] not in SUBTYPE_KINDS:
            raise bad("kind", f"kind {r['kind']!r} is not implemented (known: {', '.join(SUBTYPE_KINDS)})")
        flags = {"dx_flag": _DX_FLAGS, "proc_flag": _PROC_FLAGS}.get(r["kind"])
        if flags and r["arg"] not in flags:
            raise bad("arg", f"{r['kind']} {r['arg']!r} is not one of {', '.join(flags)}")
        if r["principal"] not in (None, "", "malignant", "non_malignant"):
            raise bad("principal", f"principal {r['principal']!r} is not one of malignant, non_malignant")
        if r["kind"] == "high_cost" and (r["lo"] is None or r["hi"] is None or not r["arg"]):
            raise bad(
                "arg",
                "high_cost needs arg (fee columns joined with +), lo (cost multiple) and hi (fee share)",
            )
        unknown = [c for c in _fee_parts(r) if c not in FEE_COLUMNS]
        if unknown:
            raise bad(
                "arg",
                f"{r['subtype']} arg {r['arg']!r}: {unknown[0]!r} is not a fee column "
                f"({FEE_COLUMNS[0]} … {FEE_COLUMNS[-1]}, joined with +)",
            )
    codes = table.column("subtype").to_pylist()
    if len(set(codes)) != len(codes):
        again = next(k for k, c in enumerate(codes) if c in codes[:k])
        raise CodebookError(
            f"{p}: line {again + 2}: subtype {codes[again]!r} occurs more than once",
            path=p,
            row=again + 2,
            column="subtype",
        )
    fam = table.column("family").to_pylist()
    rank = {f: i for i, f in enumerate(dict.fromkeys(fam))}
    table = table.append_column("_f", pa.array([rank[f] for f in fam], pa.int64()))
    return table.sort_by([("_f", "ascending"), ("order", "ascending")]).drop_columns(["_f"])


def read_severity_dictionary(path: str | Path) -> pa.Table:
    """Read a 中/重度 dictionary: CSV, Excel or Parquet, columns ``code,level`` or the GX_ASSI layout.

    GX_ASSI (docs/dip.md §5.3): the diagnosis code in ``ASSI_ITEM_ID``, the level in ``DIP_ASSISTANT_CODE``
    (1 中度, 2 重度, 3 转移; 4 放疗 and 5 化疗 are procedure lists and are not read here); the headers are aliases
    of ``code`` and ``level`` (``codebooks/records/table_aliases.csv``). Read as every small table is
    (:func:`grouper.io.tables.read_table`): in a workbook, the first sheet holding these two columns (a GX_ASSI
    sheet after a 说明 sheet is found) and the sheets after it with its header.

    Returns
    -------
    pa.Table
        Columns ``code`` (normalised) and ``flag`` (moderate, severe, metastasis).
    """
    from grouper.io.tables import read_table

    p = Path(path)
    table = read_table(p, kind="severity_dictionary", text=("code", "level"), sought=("code", "level"))
    missing = [c for c in ("code", "level") if c not in table.column_names]
    if missing:
        raise InputError(
            f"{p}: needs columns code,level (or GX_ASSI ASSI_ITEM_ID, DIP_ASSISTANT_CODE)",
            path=p,
            column=missing[0],
        )
    level = table.column("level").combine_chunks()
    keep = pc.is_in(level, value_set=pa.array([str(k) for k in _DICT_LEVELS], pa.string()))
    code = normalise_codes(table.column("code").combine_chunks(), "dx").filter(keep)
    flag = [_DICT_LEVELS[int(v)] for v in level.filter(keep).to_pylist()]
    return pa.table({"code": code, "flag": pa.array(flag, pa.string())}).filter(pc.is_valid(code))


def read_cci_table(path: str | Path | None = None) -> pa.Table:
    """Read a Charlson table (CCI 字典): ``category, prefix, weight, zeroed_if_present``.

    Default ``codebooks/dip/aux/cci_quan2005.csv``: the Quan-2005 ICD-10 prefixes with Charlson weights, a
    placeholder for the official 2,292-code DIP list (docs/dip.md §5.1), which can be given in the same
    columns (a full code is its own prefix).
    """
    p = Path(path) if path else data_path("dip", "aux", "cci_quan2005.csv")
    types = {
        "category": pa.string(),
        "prefix": pa.string(),
        "weight": pa.int64(),
        "zeroed_if_present": pa.string(),
    }
    table = pacsv.read_csv(
        p, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=False)
    )
    _require(p, table, tuple(types))
    return table.select(list(types))


def charlson_index(other_dx: pa.Array, table: pa.Table) -> np.ndarray:
    """Charlson comorbidity index (CCI 指数) per case over its other diagnoses (docs/dip.md §5.1).

    A diagnosis counts for a category when it starts with one of the category's prefixes; per category the
    highest weight counts once; a category is zeroed when its ``zeroed_if_present`` category is present
    (diab → diabwc, mld → msld, canc → metacanc); the index is the sum.

    Parameters
    ----------
    other_dx : list<string> array (normalised 医保版 codes)
    table : pa.Table from :func:`read_cci_table`

    Returns
    -------
    ndarray of int64

    Examples
    --------
    docs/dip.md §5.1 TEST VECTOR DIP-CCI: chf 1 + diabwc 2 + diab 0 (zeroed) + rend 2 = 5.

    >>> int(charlson_index(pa.array([["I50.900", "E11.200", "E11.900", "N18.500"]]), read_cci_table())[0])
    5
    """
    n = len(other_dx)
    cats = sorted(set(table.column("category").to_pylist()))
    k = len(cats)
    cat_of_row = np.array([cats.index(c) for c in table.column("category").to_pylist()], dtype=np.int64)
    weight = np.zeros(k, dtype=np.int64)
    np.maximum.at(weight, cat_of_row, table.column("weight").to_numpy())
    flat = pc.list_flatten(other_dx).fill_null("")
    row = pc.list_parent_indices(other_dx).to_numpy()
    enc = pc.dictionary_encode(flat)
    codes, distinct = enc.indices.to_numpy(zero_copy_only=False), enc.dictionary
    present = np.zeros(n * k, dtype=bool)
    prefixes = table.column("prefix")
    lengths = pc.utf8_length(prefixes).to_numpy()
    for length in np.unique(lengths):
        sel = np.flatnonzero(lengths == length)
        keys = prefixes.take(pa.array(sel))
        hit = pc.index_in(pc.utf8_slice_codeunits(distinct, 0, int(length)), value_set=keys)
        cat = np.where(
            hit.is_valid().to_numpy(zero_copy_only=False), cat_of_row[sel][hit.fill_null(0).to_numpy()], -1
        )
        matched = cat[codes] >= 0
        present[row[matched] * k + cat[codes][matched]] = True
    present = present.reshape(n, k)
    zeroed = present.copy()
    for c, higher in zip(
        table.column("category").to_pylist(), table.column("zeroed_if_present").to_pylist(), strict=True
    ):
        if higher:
            zeroed[:, cats.index(c)] &= ~present[:, cats.index(higher)]
    return zeroed.astype(np.int64) @ weight


def subtype_admitted(
    group_n, subtype_n, group_cv, family_cv, *, min_group_n=15, min_subtype_n=5, min_cv_fall=0.20
):
    """Trigger conditions of a subtype (辅助分型触发条件, docs/dip.md §5.2): all three must hold.

    ``group_n > min_group_n``, ``subtype_n > min_subtype_n`` and ``(group_cv − family_cv) / group_cv ≥
    min_cv_fall``, where ``family_cv`` is the case-weighted mean CV of the family's subtypes in the group.

    Examples
    --------
    docs/dip.md §5.2 TEST VECTORS DIP-AUX: n 400 > 15, subtype 60 > 5, CV 0.80 → 0.60 is a fall of 25 % ≥ 20 %.

    >>> bool(subtype_admitted(400, 60, 0.80, 0.60))
    True
    >>> bool(subtype_admitted(400, 60, 0.80, 0.65))     # 18.75 % < 20 %
    False
    """
    group_cv = np.asarray(group_cv, dtype=np.float64)
    fall = np.divide(group_cv - family_cv, group_cv, out=np.full(group_cv.shape, -np.inf), where=group_cv > 0)
    # a float fall computed from rounded CVs may land a few ulps under the limit it equals
    return (
        (np.asarray(group_n) > min_group_n)
        & (np.asarray(subtype_n) > min_subtype_n)
        & (fall >= min_cv_fall - 1e-12)
    )


def _severity_flags(tables, pdx, off, odx):
    """Per case: 2 = an MCC, 1 = a CC, 0 = neither, among the other diagnoses after the principal's 排除表."""
    out = np.zeros(pdx.size, np.int8)
    _severity_into(out, tables, pdx, off, odx)
    return out


@njit(cache=True, nogil=True, _nrt=False)  # no reference counting: see grouper/drg/_kernel.py
def _severity_into(out, tables, pdx, off, odx):
    for i in range(pdx.size):
        out[i] = _kernel._severity(tables, pdx[i], odx[off[i] : off[i + 1]])[0]


#: The settings that name the rule tables of :class:`_Rules`.
_RULE_SETTINGS = ("subtypes", "code_flags", "severity_source", "cci_source", "codebook")


@dataclass(frozen=True)
class _Rules:
    """The rule tables an auxiliary typing reads, once a fit (a fit's pass takes them with its other arguments,
    sent once to a cluster's workers), not once a part, and kept for the applies after it, not read once a batch:
    the subtype table (:func:`read_subtypes`), the code flags' rows, the severity source (the CHS-DRG codebook,
    else the 中/重度 dictionary) and the Charlson table when a row reads it."""

    subtypes: pa.Table
    flags: list[dict]
    codebook: Codebook | None
    severity: pa.Table | None
    cci: pa.Table | None


class AuxTyping(Estimator):
    """Auxiliary typing (辅助分型): fit subtype coefficients per DIP group, apply the highest one per case.

    Parameters
    ----------
    subtypes : str or None
        Subtype table; ``None`` = ``codebooks/dip/aux/subtypes.csv`` (宜昌 severity, 3.0 tumour order, age, ICU).
    code_flags : str or None
        Code prefixes of the malignant / metastasis / radiotherapy / chemotherapy flags;
        ``None`` = ``codebooks/dip/aux/code_flags.csv``.
    severity_source : str
        ``"cc_mcc"`` (default): 重度 = an MCC, 中度 = a CC of the CHS-DRG codebook with its 排除表 (宜昌);
        otherwise the path of a 中/重度 dictionary (:func:`read_severity_dictionary`).
    cci_source : str or None
        Charlson table for ``cci`` rows (:func:`read_cci_table`); ``None`` = the Quan-2005 fallback.
    codebook : str
        CHS-DRG codebook whose CC/MCC lists and 排除表 give ``cc_mcc`` (default the scheme in force,
        ``"chs-drg-2.0"``; ``"chs-drg-1.1"`` selectable). A table read back keeps the codebook it was fitted with.
    year : int or None
        The year the coefficients are fitted on ("last year"); ``None`` = the latest year of the history.
    min_group_n, min_subtype_n, min_cv_fall
        Trigger conditions N = 15, n = 5, CV fall 0.20 (docs/dip.md §5.2 [impl] defaults).
    kinds : tuple of str
        Catalogue kinds eligible when the input has a ``dip_kind`` column (default core only; docs/dip.md §5.2).

    Attributes
    ----------
    coefficients_ : pa.Table
        One row per admitted subtype of a group (:data:`COEFFICIENTS_SCHEMA`).
    year_, n_cases_ : int
    history_ : dict
    meta_ : dict
        Extra metadata saved with the table (e.g. the catalogue it was fitted against).
    warnings_ : list of str

    Notes
    -----
    Input columns: ``dip_group``, ``total_cost``, ``year`` or ``discharge_date``; as the subtype table needs:
    ``principal_dx``, ``other_dx`` (list<string>), ``other_procs``, ``principal_proc``, ``los_days``,
    ``discharge_mode``, ``age_years``, ``age_days``, ``icu_hours`` (ICU days = ⌈hours / 24⌉), the fee columns
    named by ``high_cost`` rows (``fee_05`` 治疗费; ``fee_09`` + ``fee_10`` + ``fee_11`` 药品费, docs/dip.md §5.2; the fee
    is their sum, a null part counting 0, null when all are; "group standard" = the group's mean cost). A missing
    column makes its condition false and is reported in ``warnings_``.
    """

    def __init__(
        self,
        *,
        subtypes: str | None = None,
        code_flags: str | None = None,
        severity_source: str = "cc_mcc",
        cci_source: str | None = None,
        codebook: str = DEFAULT_SCHEME,
        year: int | None = None,
        min_group_n: int = 15,
        min_subtype_n: int = 5,
        min_cv_fall: float = 0.20,
        kinds: tuple[str, ...] = ("core",),
    ) -> None:
        self._keep(locals())

    SETTINGS = MappingProxyType(
        {
            "subtypes": Text(optional=True),
            "code_flags": Text(optional=True),
            "severity_source": Text(),
            "cci_source": Text(optional=True),
            "codebook": Text(),
            "year": Num(integer=True, optional=True),
            "min_group_n": Num(lo=1, integer=True),
            "min_subtype_n": Num(lo=1, integer=True),
            "min_cv_fall": Num(share=True),
            "kinds": Seq(Text(), min_length=1),
        }
    )
    FITTED = "coefficients_"
    SCHEMA = COEFFICIENTS_SCHEMA
    META_KEY = "drgdip.aux"

    def _check_together(self) -> None:
        if not self.min_cv_fall < 1:
            raise SettingsError(
                f"AuxTyping: min_cv_fall: a share in [0, 1), got {self.min_cv_fall!r}", key="min_cv_fall"
            )

    def input_columns(self) -> tuple[str, ...]:
        """Case columns the subtype table reads: :data:`INPUT_COLUMNS` and the fee columns of ``high_cost`` rows."""
        rows = read_subtypes(self.subtypes).to_pylist()
        return tuple(dict.fromkeys((*INPUT_COLUMNS, *(c for r in rows for c in _fee_parts(r)))))

    def __getstate__(self) -> dict:
        """A copy (pickling, to a cluster's worker) leaves the rule tables kept by :meth:`_rules` behind."""
        return {k: v for k, v in self.__dict__.items() if k != "_rules_kept"}

    def _rules(self, *, anew: bool = False) -> _Rules:
        """The rule tables of this typing's settings: read by a fit (``anew``), and kept for the ``apply`` and
        ``classify`` calls after it (a grouping applies a typing to each of its batches) while the settings that
        name them stay; a typing read from its file reads them at its first call."""
        key = tuple(getattr(self, k) for k in _RULE_SETTINGS)
        kept = self.__dict__.get("_rules_kept")
        if anew or kept is None or kept[0] != key:
            rows = read_subtypes(self.subtypes)
            by_codebook = self.severity_source == "cc_mcc"
            rules = _Rules(
                subtypes=rows,
                flags=_read_flags(self.code_flags).to_pylist(),
                codebook=Codebook.load(self.codebook) if by_codebook else None,
                severity=None if by_codebook else read_severity_dictionary(self.severity_source),
                cci=read_cci_table(self.cci_source) if "cci" in rows.column("kind").to_pylist() else None,
            )
            kept = self._rules_kept = (key, rules)
        return kept[1]

    # -- case flags and cells --------------------------------------------------------------------------------------
    def _flags(self, t: pa.Table, odx: pa.Array, missing: set[str], rules: _Rules) -> dict[str, np.ndarray]:
        n = t.num_rows
        pdx = _codes(t, "principal_dx", "dx", missing)
        procs = _code_list(t, "other_procs", "proc", missing)
        pproc = _codes(t, "principal_proc", "proc", set())
        flags = {f: np.zeros(n, bool) for f in (*_DX_FLAGS, *_PROC_FLAGS, "malignant")}
        odx_flat = pc.list_flatten(odx).fill_null("")
        odx_row = pc.list_parent_indices(odx).to_numpy()
        proc_flat = pc.list_flatten(procs).fill_null("")
        proc_row = pc.list_parent_indices(procs).to_numpy()
        for r in rules.flags:
            prefix = r["prefix"]
            if r["field"] == "principal_dx":
                hit = pc.starts_with(pdx, prefix).to_numpy(zero_copy_only=False)
            elif r["field"] == "procedure":
                hit = pc.starts_with(pproc, prefix).to_numpy(zero_copy_only=False)
                rows = proc_row[pc.starts_with(proc_flat, prefix).to_numpy(zero_copy_only=False)]
                hit = hit | (np.bincount(rows, minlength=n) > 0)
            else:
                sel = pc.starts_with(odx_flat, prefix).to_numpy(zero_copy_only=False)
                if (
                    r["flag"] == "metastasis"
                ):  # only in a different 类目 than the principal (docs/dip.md §5.3)
                    other_cat = pc.utf8_slice_codeunits(odx_flat, 0, 3)
                    own_cat = pc.utf8_slice_codeunits(pdx, 0, 3).take(pa.array(odx_row))
                    sel &= pc.not_equal(other_cat, own_cat).to_numpy(zero_copy_only=False)
                hit = np.bincount(odx_row[sel], minlength=n) > 0
            flags[r["flag"]] |= hit
        if rules.codebook is not None:
            cb = rules.codebook
            tables = _kernel.tables(cb, severity_includes_principal=False)
            off = np.zeros(n + 1, dtype=np.int64)
            np.cumsum(pc.list_value_length(odx).fill_null(0).to_numpy(zero_copy_only=False), out=off[1:])
            ids = cb.encode_dx(pc.list_flatten(odx)).astype(np.int64)
            sev = _severity_flags(tables, cb.encode_dx(pdx).astype(np.int64), off, ids)
            flags["severe"] |= sev == _kernel.SEV_MCC
            flags["moderate"] |= sev == _kernel.SEV_CC
        else:
            d = rules.severity
            for flag in _DICT_LEVELS.values():
                codes = d.filter(pc.equal(d["flag"], flag)).column("code")
                sel = pc.is_in(odx_flat, value_set=codes.combine_chunks()).to_numpy(zero_copy_only=False)
                flags[flag] |= np.bincount(odx_row[sel], minlength=n) > 0
        return flags

    def _cells(
        self, t: pa.Table, group_mean: np.ndarray, rules: _Rules
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        """Per family: the index (into that family's rows of the subtype table ``rules.subtypes``) of each case's
        subtype, −1 for none."""
        missing: set[str] = set()
        n = t.num_rows
        rows = rules.subtypes
        odx = _code_list(t, "other_dx", "dx", missing)
        flags = self._flags(t, odx, missing, rules)
        los = _num(t, "los_days", missing)
        # a stay the reader could not read (-1) meets no LOS bound (docs/records.md §4)
        los = np.where(los < 0, np.nan, los)
        mode = _num(t, "discharge_mode", missing)
        age_years = _num(t, "age_years", missing)
        age_days = _num(t, "age_days", set())
        age_days = np.where(
            np.isfinite(age_days), age_days, np.where(age_years >= 1, age_years * 365, np.nan)
        )
        icu_days = np.ceil(_num(t, "icu_hours", missing) / 24.0)
        cci = None
        cost = _num(t, "total_cost", missing)
        cells: dict[str, np.ndarray] = {}
        for fam in dict.fromkeys(rows.column("family").to_pylist()):
            cell = np.full(n, -1, dtype=np.int64)
            for j, r in enumerate(rows.filter(pc.equal(rows["family"], fam)).to_pylist()):
                kind, arg = r["kind"], r["arg"]
                if kind == "death":
                    cond = mode == _DEATH
                elif kind == "dx_flag" or kind == "proc_flag":
                    cond = flags[arg]
                elif kind in ("age_days", "age_years", "icu_days"):
                    v = {"age_days": age_days, "age_years": age_years, "icu_days": icu_days}[kind]
                    cond = _between(v, r["lo"], r["hi"])
                elif kind == "cci":
                    if cci is None:
                        cci = charlson_index(odx, rules.cci).astype(np.float64)
                    cond = _between(cci, r["lo"], r["hi"])
                elif kind == "high_cost":
                    fee = _fee_sum(t, _fee_parts(r), missing)
                    cond = (cost >= r["lo"] * group_mean) & (fee >= r["hi"] * cost)
                else:
                    cond = np.ones(n, bool)
                if r["principal"] == "malignant":
                    cond = cond & flags["malignant"]
                elif r["principal"] == "non_malignant":
                    cond = cond & ~flags["malignant"]
                if r["los_min"] is not None or r["los_max"] is not None:
                    cond = cond & _between(los, r["los_min"], r["los_max"])
                cell[(cell < 0) & cond] = j
            cells[fam] = cell
        return cells, sorted(missing)

    # -- fit / apply ---------------------------------------------------------------------------------------------
    def fit(self, history: pa.Table, groups: pa.Table | None = None) -> AuxTyping:
        """Fit the coefficients of admitted subtypes on the cases of ``year`` (last year by default).

        Parameters
        ----------
        history : pa.Table
            Past cases (columns in the class notes).
        groups : pa.Table, optional
            Their grouping (``group_dip`` result: ``dip_group``, ``dip_kind``), when ``history`` has none.

        Returns
        -------
        AuxTyping
            ``self``.
        """
        history = _with_groups(history, groups)
        for col in ("dip_group", "total_cost"):
            if col not in history.column_names:
                raise InputError(f"history: missing column {col!r}", column=col)
        return self.fit_parts(red.LocalParts.of_table(history))

    def fit_parts(self, parts: red.Parts) -> AuxTyping:
        """Fit on a history in parts, each with its grouping (:class:`grouper._reduction.Parts`: slices of a
        table here, files held by the workers of a Dask cluster), by exact reductions: the years and the
        fingerprint; per group its cases, Σ cost and Σ cost²; per group and subtype of each family the same."""
        self.check_settings()
        scan = parts.reduce(_scan_part, _combine_scans)
        year = int(self.year if self.year is not None else max(scan["years"]))
        found = parts.reduce(_groups_part, _combine_groups, self, year)
        groups = pa.array(found[0], pa.string())
        ng = len(groups)
        g_n, g_mean, g_cv = _stats(*found[1:])
        rules = self._rules(anew=True)
        rows = rules.subtypes
        cells = parts.reduce(_cells_part, red.add, self, year, groups, g_mean, rules)
        missing = sorted(set().union(*cells.pop("missing")))
        out = []
        for fam, (n, s1, s2) in cells.items():
            fam_rows = rows.filter(pc.equal(rows["family"], fam)).to_pylist()
            k = len(fam_rows) + 1  # last slot = no subtype in this family
            c_n, c_mean, c_cv = (x.reshape(ng, k) for x in _stats(n, s1, s2))
            w = np.where(c_n >= 2, c_n, 0)
            fam_cv = np.divide(
                (w * np.nan_to_num(c_cv)).sum(1), w.sum(1), out=np.full(ng, np.nan), where=w.sum(1) > 0
            )
            ok = subtype_admitted(
                g_n[:, None],
                c_n,
                g_cv[:, None],
                fam_cv[:, None],
                min_group_n=self.min_group_n,
                min_subtype_n=self.min_subtype_n,
                min_cv_fall=self.min_cv_fall,
            )
            ok[:, -1] = False
            g, j = np.nonzero(ok)
            out.append(
                pa.table(
                    {
                        "dip_group": groups.take(pa.array(g, pa.int64())),
                        "family": pa.array([fam] * g.size, pa.string()),
                        "subtype": pa.array([fam_rows[x]["subtype"] for x in j], pa.string()),
                        "name": pa.array([fam_rows[x]["name"] or "" for x in j], pa.string()),
                        "coef": c_mean[g, j] / g_mean[g],
                        "n_cases": c_n[g, j],
                        "avg_cost": c_mean[g, j],
                        "group_n": g_n[g],
                        "group_avg_cost": g_mean[g],
                        "group_cv": g_cv[g],
                        "family_cv": fam_cv[g],
                        "cv_fall": (g_cv[g] - fam_cv[g]) / g_cv[g],
                    },
                    schema=COEFFICIENTS_SCHEMA,
                )
            )
        table = pa.concat_tables(out) if out else COEFFICIENTS_SCHEMA.empty_table()
        self.coefficients_ = table.sort_by([("dip_group", "ascending"), ("subtype", "ascending")])
        self.year_, self.n_cases_ = year, int(g_n.sum())
        self.history_ = red.fingerprint_of(
            scan["fingerprint"], _HISTORY_COLUMNS, np.array(sorted(scan["years"]))
        )
        self.meta_ = {}
        self.warnings_ = [f"column {c!r} missing: its subtype conditions are false" for c in missing]
        return self

    def _used(self, part: pa.Table, year: int) -> tuple[pa.Table, np.ndarray]:
        """The cases of a part the fit uses (of ``year``, with a usable cost, in a kind typed) and their cost."""
        for col in ("dip_group", "total_cost"):
            if col not in part.column_names:
                raise InputError(f"history: missing column {col!r}", column=col)
        cost = _num(part, "total_cost", set())
        use = (data_years(part) == year) & np.isfinite(cost) & (cost > 0) & self._eligible(part)
        return part.filter(pa.array(use)), cost[use]

    def _eligible(self, t: pa.Table) -> np.ndarray:
        ok = pc.is_valid(t.column("dip_group")).to_numpy(zero_copy_only=False)
        if "dip_kind" in t.column_names:
            kinds = pc.is_in(
                t.column("dip_kind").cast(pa.string()), value_set=pa.array(list(self.kinds), pa.string())
            )
            ok &= kinds.fill_null(False).to_numpy(zero_copy_only=False)
        return ok

    def apply(self, cases: pa.Table, groups: pa.Table | None = None) -> pa.Table:
        """The subtype and coefficient of each case; never refits.

        Parameters
        ----------
        cases : pa.Table
            Cases with ``dip_group`` (and ``dip_kind``), or without them and ``groups`` given.
        groups : pa.Table, optional
            The cases' grouping (``dip_group``, ``dip_kind``), row for row; replaces those columns of ``cases``.

        Returns
        -------
        pa.Table
            ``aux_type`` (string): the winning subtype code, null when no admitted subtype applies;
            ``aux_coef`` (float64): its coefficient, 1.0 when none; several subtypes → the highest (docs/dip.md §5.2).
        """
        cases = _with_groups(cases, groups)
        coefs = self.coefficients_
        n = cases.num_rows
        rules = self._rules()
        rows = rules.subtypes
        fitted, gpos, cells = self._locate(cases, rules)
        best = np.full(n, -np.inf)
        best_type = np.full(n, -1, dtype=np.int64)
        all_types = rows.column("subtype").to_pylist()
        for fam, cell in cells.items():
            fam_types = rows.filter(pc.equal(rows["family"], fam)).column("subtype").to_pylist()
            lut = np.full((len(fitted) + 1, len(fam_types) + 1), np.nan)
            sel = coefs.filter(pc.equal(coefs["family"], fam))
            gi = pc.index_in(sel.column("dip_group"), value_set=fitted).to_numpy(zero_copy_only=False)
            ti = np.array([fam_types.index(s) for s in sel.column("subtype").to_pylist()], dtype=np.int64)
            lut[gi.astype(np.int64), ti] = sel.column("coef").to_numpy()
            coef = lut[gpos, np.where(cell < 0, len(fam_types), cell)]
            better = np.isfinite(coef) & (coef > best)  # ties keep the earlier family
            best = np.where(better, coef, best)
            type_index = np.array([all_types.index(s) for s in fam_types] + [-1], dtype=np.int64)
            best_type = np.where(better, type_index[np.where(cell < 0, len(fam_types), cell)], best_type)
        labels = pa.array([*all_types, None], pa.string())
        aux_type = labels.take(pa.array(np.where(best_type < 0, len(all_types), best_type)))
        aux_coef = pa.array(np.where(np.isfinite(best), best, 1.0), pa.float64())
        return pa.table({"aux_type": aux_type, "aux_coef": aux_coef})

    def _locate(self, cases: pa.Table, rules: _Rules) -> tuple[pa.Array, np.ndarray, dict[str, np.ndarray]]:
        """Fitted groups, each case's position among them (−1 none or not eligible), and its cells (subtypes of
        ``rules.subtypes``)."""
        self._require_fitted()
        coefs = self.coefficients_
        groups = pc.unique(coefs.column("dip_group").combine_chunks())
        gpos = pc.index_in(cases.column("dip_group").cast(pa.string()), value_set=groups)
        gpos = gpos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        gpos[~self._eligible(cases)] = -1
        first = pc.index_in(groups, value_set=coefs.column("dip_group").combine_chunks()).to_numpy()
        group_mean = np.append(coefs.column("group_avg_cost").to_numpy()[first], np.nan)[gpos]
        cells, _ = self._cells(cases, group_mean, rules)
        return groups, gpos, cells

    def classify(self, cases: pa.Table) -> pa.Table:
        """Each case's subtype in every family (null for none), whether admitted or not — to explain ``apply``.

        ``high_cost`` conditions use the fitted group mean, so they hold only for groups in ``coefficients_``.

        Returns
        -------
        pa.Table
            One string column per family of the subtype table.
        """
        rules = self._rules()
        rows = rules.subtypes
        _, _, cells = self._locate(cases, rules)
        out = {}
        for fam, cell in cells.items():
            codes = rows.filter(pc.equal(rows["family"], fam)).column("subtype").to_pylist()
            labels = pa.array([*codes, None], pa.string())
            out[fam] = labels.take(pa.array(np.where(cell < 0, len(codes), cell)))
        return pa.table(out)

    # -- saving ----------------------------------------------------------------------------------------------------
    def _meta(self, extra: dict) -> dict:
        return {
            **extra,
            "year": self.year_,
            "n_cases": self.n_cases_,
            "history": self.history_,
            "params": params_to_meta(self.get_params()),
            "builder": f"drgdip {drgdip_version()} grouper.dip.aux.AuxTyping",
        }

    def _saved(self, meta: dict) -> tuple[pa.Table, dict]:
        return self.coefficients_, self._meta({**self.meta_, **meta})

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the coefficient table, its year and the settings that apply it (unchanged by saving)."""
        table = self.coefficients_.combine_chunks()
        rows = fingerprint(table, COEFFICIENTS_SCHEMA.names, np.array([self.year_]))["sha256"]
        settings = {"params": params_to_meta(self.get_params()), "year": self.year_, "rows": rows}
        return hashlib.sha256(json.dumps(settings, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _restore(self, table: pa.Table, meta: dict) -> None:
        self.coefficients_ = table
        self.year_, self.n_cases_ = int(meta["year"]), int(meta["n_cases"])
        self.history_ = dict(meta["history"])
        own = ("year", "n_cases", "history", "params", "builder")
        self.meta_ = {k: v for k, v in meta.items() if k not in own}
        self.warnings_ = []


def _with_groups(t: pa.Table, groups: pa.Table | None) -> pa.Table:
    """``t`` with the ``dip_group`` / ``dip_kind`` columns of ``groups`` (row for row) in place of its own."""
    if groups is None:
        return t
    cols = [c for c in ("dip_group", "dip_kind") if c in groups.column_names]
    t = t.drop_columns([c for c in cols if c in t.column_names])
    for c in cols:
        t = t.append_column(c, groups.column(c))
    return t


def _stats(n: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n, mean and CV (sample SD) per key from the exact Σ cost and Σ cost² of its cases
    (:data:`grouper._reduction.UNIT`)."""
    mean = np.array(
        [float(Fraction(int(s), red.UNIT * int(k))) if k else np.nan for s, k in zip(s1, n, strict=True)]
    )
    return n.astype(np.int64), mean, red.cv_of(s1, s2, n, 1)


# -- the passes over the parts of a history (module level: run by the workers of a cluster too) ----------------

#: The columns of a history the fit fingerprints.
_HISTORY_COLUMNS = [
    "year",
    "discharge_date",
    "dip_group",
    "total_cost",
    "principal_dx",
    "other_dx",
    "los_days",
]


def _scan_part(part: pa.Table) -> dict:
    years = data_years(part)
    return {
        "years": set(np.unique(years).tolist()),
        "fingerprint": red.fingerprint_part(part, _HISTORY_COLUMNS),
    }


def _combine_scans(results: list[dict]) -> dict:
    return {
        "years": set().union(*(r["years"] for r in results)),
        "fingerprint": red.combine_fingerprints([r["fingerprint"] for r in results]),
    }


def _groups_part(part: pa.Table, est: AuxTyping, year: int) -> tuple:
    """Per group of a part's used cases: its code, cases, Σ cost and Σ cost²."""
    t, cost = est._used(part, year)
    enc = pc.dictionary_encode(t.column("dip_group").cast(pa.string()).combine_chunks())
    gid = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n = len(enc.dictionary)
    s1, s2 = red.sums(red.units(cost), gid, n)
    return np.array(enc.dictionary.to_pylist(), dtype=object), np.bincount(gid, minlength=n), s1, s2


def _combine_groups(results: list[tuple]) -> tuple:
    codes, inv = np.unique(np.concatenate([r[0] for r in results]).astype(str), return_inverse=True)
    out = [np.zeros(codes.size, np.int64), np.zeros(codes.size, object), np.zeros(codes.size, object)]
    for k in range(3):
        np.add.at(out[k], inv, np.concatenate([r[k + 1] for r in results]))
    return (codes.astype(object), *out)


def _cells_part(
    part: pa.Table, est: AuxTyping, year: int, groups: pa.Array, g_mean: np.ndarray, rules: _Rules
) -> dict:
    """Per family: the cases, Σ cost and Σ cost² of each (group, subtype of ``rules.subtypes``) of a part's used
    cases."""
    t, cost = est._used(part, year)
    gid = pc.index_in(t.column("dip_group").cast(pa.string()), value_set=groups)
    gid = gid.to_numpy(zero_copy_only=False).astype(np.int64)
    cells, missing = est._cells(t, g_mean[gid], rules)
    rows = rules.subtypes
    out: dict = {"missing": [set(missing)]}
    x = red.units(cost)
    for fam, cell in cells.items():
        k = int(pc.sum(pc.equal(rows["family"], fam)).as_py()) + 1  # last slot = no subtype in this family
        key = gid * k + np.where(cell < 0, k - 1, cell)
        s1, s2 = red.sums(x, key, len(groups) * k)
        out[fam] = (np.bincount(key, minlength=len(groups) * k).astype(np.int64), s1, s2)
    return out


def _between(v: np.ndarray, lo, hi) -> np.ndarray:
    ok = np.isfinite(v)
    if lo is not None:
        ok &= v >= lo
    if hi is not None:
        ok &= v <= hi
    return ok


def _num(t: pa.Table, name: str, missing: set[str]) -> np.ndarray:
    if name not in t.column_names:
        missing.add(name)
        return np.full(t.num_rows, np.nan)
    return t.column(name).cast(pa.float64()).fill_null(np.nan).to_numpy()


def _fee_parts(row: dict) -> list[str]:
    """The fee columns a ``high_cost`` subtype row sums (``fee_09+fee_10+fee_11``); none for other kinds."""
    if row["kind"] != "high_cost" or not row["arg"]:
        return []
    return [c.strip() for c in row["arg"].split("+")]


def _fee_sum(t: pa.Table, names: list[str], missing: set[str]) -> np.ndarray:
    """Row sums of fee columns, a null part counting 0; NaN when every part is null or a column is absent."""
    parts = np.column_stack([_num(t, c, missing) for c in names])
    known = np.isfinite(parts).any(axis=1) & all(c in t.column_names for c in names)
    return np.where(known, np.nansum(parts, axis=1), np.nan)


def _codes(t: pa.Table, name: str, kind: str, missing: set[str]) -> pa.Array:
    if name not in t.column_names:
        missing.add(name)
        return pa.array([""] * t.num_rows, pa.string())
    return normalise_codes(t.column(name).combine_chunks().cast(pa.string()), kind).fill_null("")


def _code_list(t: pa.Table, name: str, kind: str, missing: set[str]) -> pa.Array:
    if name not in t.column_names:
        missing.add(name)
        return pa.array([[]] * t.num_rows, pa.list_(pa.string()))
    col = t.column(name).combine_chunks()
    if pa.types.is_string(col.type):
        col = pc.split_pattern(col.fill_null(""), "|")
    col = col.cast(pa.list_(pa.string())).fill_null(pa.scalar([], pa.list_(pa.string())))
    offsets = pc.subtract(col.offsets, col.offsets[0])
    return pa.ListArray.from_arrays(offsets, normalise_codes(pc.list_flatten(col), kind))


def _read_flags(path: str | None) -> pa.Table:
    p = Path(path) if path else data_path("dip", "aux", "code_flags.csv")
    table = pacsv.read_csv(p, convert_options=pacsv.ConvertOptions(column_types={"prefix": pa.string()}))
    for i, r in enumerate(table.to_pylist(), start=2):
        if r["flag"] not in (*_DX_FLAGS, *_PROC_FLAGS, "malignant"):
            raise CodebookError(f"{p}: line {i}: unknown flag {r['flag']!r}", path=p, row=i, column="flag")
        if r["field"] not in ("principal_dx", "other_dx", "procedure"):
            raise CodebookError(
                f"{p}: line {i}: field {r['field']!r} is not one of principal_dx, other_dx, procedure",
                path=p,
                row=i,
                column="field",
            )
    return table


def _bad_row(path: Path, row: int, column: str, message: str) -> CodebookError:
    """The error of a rule table's row (``row`` counted as the file's lines, header 1)."""
    return CodebookError(f"{path}: line {row}: {message}", path=path, row=row, column=column)


def _require(path: Path, table: pa.Table, columns: tuple[str, ...]) -> None:
    """A rule table (subtypes, CCI) missing one of its columns is a :class:`CodebookError` naming it."""
    for col in columns:
        if col not in table.column_names:
            raise CodebookError(f"{path}: missing column {col!r}", path=path, column=col)
