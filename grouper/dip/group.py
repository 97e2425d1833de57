"""Vectorized DIP grouper (DIP 分组): cases → 先期分组 / 核心病种 / 综合病种 / 空白病种 of a catalogue.

Layers (docs/dip.md §3.1): clean + exclusion lists (``codebooks/dip/exclusions.csv``, grouper.dip.exclusions:
principal diagnoses that cannot be grouped, procedures that cannot be the main one) → 先期分组 (rules in
``codebooks/dip/priority_rules.csv``, active only for groups the catalogue lists with kind ``priority``) → core
groups on (亚目, main procedure, related-procedure set) → 综合 on (类目, treatment tier) → the blank group
``KBBZ`` if the catalogue has one → unmatched; then, with a fitted :class:`grouper.dip.aux.AuxTyping`, each
case's auxiliary subtype (辅助分型) and coefficient.

Strings are handled once per distinct value (dictionary encoding); cases become integer keys and CSR procedure
arrays, and the per-case set matching runs in a numba kernel (``grouper.dip._kernel``).
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper._chunks import one_array
from grouper.batch import duplicated
from grouper.codes import encode_values, normalise_codes
from grouper.dip import _kernel
from grouper.dip.aux import INPUT_COLUMNS as AUX_COLUMNS
from grouper.dip.aux import AuxTyping
from grouper.dip.catalogue import TIERS, Catalogue, CatalogueError, read_catalogue
from grouper.dip.exclusions import Exclusions, read_exclusions
from grouper.dip.tiers import ProcedureTiers, read_procedure_tiers
from grouper.errors import SettingsError
from grouper.io.discharges import CODE, CODE_LIST, as_discharges
from grouper.io.readable import reason_words
from grouper.resources import data_path
from grouper.status import Status
from grouper.strings import Remembered

__all__ = [
    "DIP_RESULT_SCHEMA",
    "GROUPING_DEFAULTS",
    "EncodedDipCases",
    "GroupingSettings",
    "encode_dip_cases",
    "group_dip",
    "grouping_settings",
    "tie_break_profiles",
]

_CONSERVATIVE, _SURGERY = TIERS.index("conservative"), TIERS.index("surgery")


#: Columns of the grouping result, in order (``reason`` only with ``explain=True``).
#: A result column of labels (groups, kinds, statuses): dictionary-encoded text, as the CHS-DRG results are.
LABEL = pa.dictionary(pa.int32(), pa.string())
DIP_RESULT_SCHEMA = pa.schema(
    [
        ("case_id", pa.string()),
        ("dip_group", LABEL),
        ("dip_kind", LABEL),
        ("dip_score", pa.float64()),
        ("aux_type", LABEL),
        ("aux_coef", pa.float64()),
        ("dip_status", LABEL),
    ]
)

# layer of each case (its words: ``dip.layer.<code>`` in codebooks/records/reason_labels.csv)
(_L_PDX_MISSING, _L_PDX_UNKNOWN, _L_PDX_INVALID, _L_NEWBORN, _L_PRIORITY, _L_CORE, _L_CONS, _L_COMP, _L_BLANK,
 _L_NONE) = range(10)  # fmt: skip


#: The canonical columns the DIP grouper reads, with auxiliary typing (readers may skip the others).
INPUT_COLUMNS = tuple(
    dict.fromkeys(
        (
            "case_id",
            "principal_dx",
            "principal_proc",
            "other_procs",
            "age_years",
            "age_days",
            "birth_weight_g",
            "total_cost",
            *AUX_COLUMNS,
        )
    )
)


def tie_break_profiles() -> dict[str, tuple[str, ...]]:
    """Tie-break profiles of ``codebooks/dip/grouping.toml``: name → criterion kinds, in order."""
    path = data_path("dip", "grouping.toml")
    return dict(_profiles(path, path.stat().st_mtime_ns))


@cache
def _profiles(path: Path, mtime_ns: int) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The profiles of one version of ``grouping.toml`` (read once, not once per batch)."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple((name, tuple(crit)) for name, crit in data["tie_break"].items())


def _criteria(tie_break: str | Sequence[str]) -> np.ndarray:
    if isinstance(tie_break, str):
        profiles = tie_break_profiles()
        if tie_break not in profiles:
            raise CatalogueError(f"tie_break: unknown profile {tie_break!r} (known: {', '.join(profiles)})")
        tie_break = profiles[tie_break]
    bad = [c for c in tie_break if c not in _kernel.CRITERIA]
    if bad:
        raise CatalogueError(
            f"tie_break: unknown criterion {bad[0]!r} (known: {', '.join(_kernel.CRITERIA)})"
        )
    return np.array([_kernel.CRITERIA[c] for c in tie_break], np.int8)


@dataclass(frozen=True)
class _PriorityRule:
    row: int  # catalogue row
    kind: str
    procs: tuple[str, ...]
    pdx_category: tuple[str, ...]
    max_age_days: int
    bw_range: tuple[int, int]


@dataclass(frozen=True)
class _Compiled:
    """A catalogue compiled to integer keys for one tier table."""

    subs: pa.Array  # core 亚目 keys, upper case
    cats: pa.Array  # 类目 keys of 综合 groups and low-birth-weight rules, upper case
    pvocab: pa.Array  # procedure codes of core groups and priority rules
    stride: int
    u_key: np.ndarray
    u_start: np.ndarray
    u_end: np.ndarray
    g_row: np.ndarray
    g_score: np.ndarray
    g_cost: np.ndarray
    rel_off: np.ndarray
    rel_pid: np.ndarray
    comp: np.ndarray  # [n_cats, n_tiers] → catalogue row or -1
    blank_row: int
    rules: tuple[_PriorityRule, ...]
    prio_of_pid: np.ndarray  # lowest proc_any rule index per procedure id, len(rules) = none
    dip_code: pa.DictionaryArray  # each row's code, then "" (no group): the results' labels
    kind: pa.DictionaryArray  # each row's kind, then ""
    score: pa.Array
    #: the code lookups already made with this catalogue, per (kind, codebook, exclusions): :func:`_remembered`
    looked_up: dict[tuple, Remembered] = field(default_factory=dict, repr=False, compare=False)


_CACHE: dict[tuple[str, str], _Compiled] = {}


def _floats(column: pa.ChunkedArray, rows: np.ndarray) -> np.ndarray:
    return column.combine_chunks().take(pa.array(rows)).to_numpy(zero_copy_only=False).astype(np.float64)


def _read_priority_rules() -> list[dict]:
    with data_path("dip", "priority_rules.csv").open(encoding="utf-8", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["order"]))
    for r in rows:
        if r["kind"] not in ("proc_any", "low_birth_weight"):
            raise CatalogueError(f"priority_rules.csv: {r['dip_code']}: unknown kind {r['kind']!r}")
    return rows


def _compile(cat: Catalogue, tiers: ProcedureTiers) -> _Compiled:
    key = (cat.fingerprint, tiers.fingerprint)
    if key in _CACHE:
        return _CACHE[key]
    t = cat.table
    kind = t["kind"].combine_chunks()
    rows_of = {
        k: np.flatnonzero(pc.equal(kind, k).to_numpy(zero_copy_only=False)) for k in ("core", "comprehensive")
    }
    sub_all = pc.utf8_upper(t["subcategory"].combine_chunks())
    code_row = {c: i for i, c in enumerate(t["dip_code"].to_pylist())}
    priority_rows = set(np.flatnonzero(pc.equal(kind, "priority").to_numpy(zero_copy_only=False)).tolist())
    rules = tuple(
        _PriorityRule(
            row=code_row[r["dip_code"]],
            kind=r["kind"],
            procs=tuple(filter(None, r["procs"].split("|"))),
            pdx_category=tuple(c.upper() for c in filter(None, r["pdx_category"].split("|"))),
            max_age_days=int(r["max_age_days"] or 0),
            bw_range=(int(r["min_birth_weight_g"] or 0), int(r["max_birth_weight_g"] or 0)),
        )
        for r in _read_priority_rules()
        if code_row.get(r["dip_code"], -1) in priority_rows
    )
    core = rows_of["core"]
    core_sub = sub_all.take(core)
    if pc.any(pc.equal(core_sub, "")).as_py():
        raise CatalogueError(f"{cat.name}: a core row has no subcategory")
    main = t["main_proc"].combine_chunks().take(core)
    related = pc.split_pattern(t["related_procs"].combine_chunks().take(core), "+")
    related_flat = related.flatten()
    prio_procs = pa.array([p for r in rules for p in r.procs], pa.string())
    every = pa.concat_arrays([main, related_flat, prio_procs])
    pvocab = pc.unique(every.filter(pc.not_equal(every, "")))
    subs = pc.unique(core_sub)
    stride = len(pvocab) + 1
    sub_id = pc.index_in(core_sub, value_set=subs).to_numpy(zero_copy_only=False).astype(np.int64)
    main_pid = (
        pc.index_in(main, value_set=pvocab).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    )
    g_key = sub_id * stride + main_pid + 1
    codes = t["dip_code"].combine_chunks().take(core)
    order = np.lexsort((pc.rank(codes, sort_keys="ascending").to_numpy(), g_key))
    g_key = g_key[order]
    present = pc.not_equal(related_flat, "")
    parent = pc.list_parent_indices(related).to_numpy(zero_copy_only=False)
    rel_len = np.bincount(parent[present.to_numpy(zero_copy_only=False)], minlength=len(core))
    rel_vals = pc.index_in(related_flat.filter(present), value_set=pvocab).to_numpy(zero_copy_only=False)
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    rel_pid = rel_vals[np.argsort(rank[np.repeat(np.arange(len(core)), rel_len)], kind="stable")].astype(
        np.int32
    )
    rel_off = np.zeros(len(core) + 1, np.int64)
    rel_off[1:] = np.cumsum(rel_len[order])
    u_key, u_start = np.unique(g_key, return_index=True)
    u_end = np.append(u_start[1:], len(g_key))

    comp_rows = rows_of["comprehensive"]
    comp_cat = sub_all.take(comp_rows)
    lbw_cats = [c for r in rules for c in r.pdx_category]
    cats = pc.unique(pa.concat_arrays([comp_cat, pa.array(lbw_cats, pa.string())]))
    comp = np.full((len(cats), len(TIERS)), -1, np.int32)
    tier_idx = pc.index_in(t["tier"].combine_chunks().take(comp_rows), value_set=pa.array(TIERS))
    if tier_idx.null_count:
        raise CatalogueError(f"{cat.name}: a comprehensive row has no tier")
    cat_idx = pc.index_in(comp_cat, value_set=cats).to_numpy(zero_copy_only=False)
    cell = cat_idx * len(TIERS) + tier_idx.to_numpy(zero_copy_only=False)
    by_code = pc.rank(t["dip_code"].combine_chunks().take(comp_rows), sort_keys="ascending").to_numpy()
    cell_sorted = np.lexsort((by_code, cell))  # the smallest dip_code of a (类目, tier) cell wins
    first = cell_sorted[np.unique(cell[cell_sorted], return_index=True)[1]]
    comp.reshape(-1)[cell[first]] = comp_rows[first]

    blank = np.flatnonzero(pc.equal(kind, "blank").to_numpy(zero_copy_only=False))
    prio_of_pid = np.full(len(pvocab), len(rules), np.int32)
    for k in range(len(rules) - 1, -1, -1):
        if rules[k].kind == "proc_any":
            ids = pc.index_in(pa.array(rules[k].procs, pa.string()), value_set=pvocab).to_numpy()
            prio_of_pid[ids] = k
    compiled = _Compiled(
        subs=subs,
        cats=cats,
        pvocab=pvocab,
        stride=stride,
        u_key=u_key,
        u_start=u_start.astype(np.int64),
        u_end=u_end.astype(np.int64),
        g_row=core[order].astype(np.int32),
        g_score=_floats(t["score"], core[order]),
        g_cost=_floats(t["avg_cost"], core[order]),
        rel_off=rel_off,
        rel_pid=rel_pid,
        comp=comp,
        blank_row=int(blank.min()) if len(blank) else -1,
        rules=rules,
        prio_of_pid=prio_of_pid,
        dip_code=pc.dictionary_encode(_appended(t["dip_code"].combine_chunks(), "")),
        kind=pc.dictionary_encode(_appended(kind, "")),
        score=t["score"].combine_chunks(),
    )
    if len(_CACHE) > 8:
        _CACHE.clear()
    # two threads that built the same pair at once (Grouping.warm beside the first batch's encoding) keep one
    # object: cases encoded by one are grouped by the other (_against compares ids)
    return _CACHE.setdefault(key, compiled)


def _column(table: pa.Table, name: str, type_: pa.DataType) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, type_)
    col = table.column(name)
    return one_array(col).cast(type_)


def _codes(table: pa.Table, name: str) -> pa.Array:
    """A code column as text; one kept dictionary-encoded (字典编码) stays so (it is looked up per distinct
    spelling)."""
    if name in table.column_names and table.schema.field(name).type == CODE:
        return one_array(table.column(name))
    return _column(table, name, pa.string())


def _plain(table: pa.Table) -> pa.Table:
    """``table`` with its dictionary-encoded code columns as plain text (for the auxiliary typing)."""
    for k, column in enumerate(table.schema):
        if column.type in (CODE, CODE_LIST):
            plain = pa.string() if column.type == CODE else pa.list_(pa.string())
            table = table.set_column(k, column.name, table.column(k).cast(plain))
    return table


def _principal(table: pa.Table, comp: _Compiled, codebook, exclusions: Exclusions):
    """Principal diagnosis of each case: ``(dx, dx_row, in_scope)``.

    ``dx`` is packed ``(cat + 1) * (n_subs + 1) + sub + 1``, -1 empty, -2 unknown, -3 on the exclusion list
    (``PDX_INVALID``, also when the dictionary lacks the code: a lone asterisk code is one); ``in_scope[dx_row]``
    tells which ``main_in_scope`` prefix lists of the exclusions hold the case's principal.
    """
    encoded = pc.dictionary_encode(_codes(table, "principal_dx"))
    distinct = encoded.dictionary
    dx_row = encoded.indices.fill_null(len(distinct)).to_numpy(zero_copy_only=False)
    looked = _remembered(comp, "dx", codebook, exclusions, lambda: _dx_lookup(comp, codebook, exclusions))(
        distinct
    )
    dx, in_scope = looked[:, 0], looked[:, 1:].astype(bool)
    return np.append(dx, -1)[dx_row], dx_row, np.vstack([in_scope, np.zeros((1, in_scope.shape[1]), bool)])


def _dx_lookup(comp: _Compiled, codebook, exclusions: Exclusions):
    """Distinct principal diagnoses → rows ``(dx, *in_scope)`` of :func:`_principal`."""

    def lookup(distinct: pa.Array) -> np.ndarray:
        clean = normalise_codes(distinct, "dx")
        if codebook is not None:
            ids = codebook.encode_dx(distinct)
            canon = pa.array(codebook["dx_codes"]).take(pa.array(np.where(ids >= 0, ids, 0)))
            known = ids >= 0
        else:
            canon = pc.replace_substring_regex(clean, r"\+.*$", "")
            known = pc.match_substring_regex(canon, r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]+)?$").to_numpy(
                zero_copy_only=False
            )
            known = np.asarray(known, dtype=bool) & ~np.asarray(
                pc.is_null(canon).to_numpy(zero_copy_only=False)
            )
        # the dagger code of a dagger/asterisk pair is the principal; it is what the exclusion lists see
        code = pc.replace_substring_regex(pc.if_else(pa.array(known), canon, clean), r"\+.*$", "")
        sub = pc.index_in(pc.utf8_upper(pc.utf8_slice_codeunits(canon, 0, 5)), value_set=comp.subs).fill_null(
            -1
        )
        cat = pc.index_in(pc.utf8_upper(pc.utf8_slice_codeunits(canon, 0, 3)), value_set=comp.cats).fill_null(
            -1
        )
        packed = (cat.to_numpy(zero_copy_only=False).astype(np.int64) + 1) * (len(comp.subs) + 1) + (
            sub.to_numpy(zero_copy_only=False) + 1
        )
        empty = pc.is_null(clean).to_numpy(zero_copy_only=False)
        invalid = exclusions.invalid_principal(code)
        dx = np.where(empty, -1, np.where(invalid, -3, np.where(known, packed, -2)))
        return np.column_stack([dx, exclusions.in_scope(code)])

    return lookup


def _remembered(comp: _Compiled, kind: str, codebook, exclusions: Exclusions, lookup) -> Remembered:
    """The lookup ``lookup()`` of distinct codes of ``kind`` with this catalogue, codebook and exclusions,
    remembering its results for the process (a batch repeats most of the codes of the batches before it)."""
    key = (kind, codebook.fingerprint if codebook is not None else None, exclusions.fingerprint)
    found = comp.looked_up.get(key)
    return found if found is not None else comp.looked_up.setdefault(key, Remembered(lookup()))


def _proc_lookup(comp: _Compiled, tiers: ProcedureTiers, codebook, exclusions: Exclusions):
    """Distinct procedures → packed ``(main_scope * stride + pid + 1) * 8 + tier``; -2 unknown, -1 empty.

    A code is known when the dictionary (codebook, else the tier table) or the catalogue lists it. A known
    code without a tier is conservative, unless the catalogue lists it (then it is surgery, so that it can
    head its group). A code listed 按保守治疗入组 gets the tier ``conservative``, as a tier-table override
    would; ``main_scope`` is :meth:`grouper.dip.exclusions.Exclusions.procedure_rules`'s.
    """

    def lookup(distinct: pa.Array) -> np.ndarray:
        clean = normalise_codes(distinct, "proc")
        if codebook is not None:
            ids = codebook.encode_proc(distinct)
            canon = pc.if_else(
                pa.array(ids >= 0), pa.array(codebook["proc_codes"]).take(pa.array(np.maximum(ids, 0))), clean
            )
            in_dictionary = ids >= 0
        else:
            canon = clean
            in_dictionary = tiers.lookup(canon) >= 0
        tier = tiers.lookup(canon)
        pid = pc.index_in(canon, value_set=comp.pvocab).fill_null(-1).to_numpy(zero_copy_only=False)
        tier = np.where(tier >= 0, tier, np.where(pid >= 0, _SURGERY, _CONSERVATIVE))
        conservative, main_scope = exclusions.procedure_rules(canon)
        tier = np.where(conservative, _CONSERVATIVE, tier)
        packed = (main_scope * comp.stride + pid.astype(np.int64) + 1) * 8 + tier
        empty = pc.is_null(clean).to_numpy(zero_copy_only=False)
        return np.where(empty, -1, np.where(in_dictionary | (pid >= 0), packed, -2))

    return lookup


def _procedures(table: pa.Table, lookup) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CSR of each case's known procedures, principal first: (offsets, packed codes, has_principal, unknown)."""
    n = table.num_rows
    principal = encode_values(_codes(table, "principal_proc"), lookup).astype(np.int64)
    o_off = np.zeros(n + 1, np.int64)
    o_code = np.empty(0, np.int64)
    if "other_procs" in table.column_names:
        others = one_array(table.column("other_procs"))
        if pa.types.is_string(others.type) or pa.types.is_large_string(others.type):
            others = pc.split_pattern(others, "|")
        o_off = np.asarray(others.offsets.to_numpy(zero_copy_only=False), np.int64)
        values = others.values.slice(o_off[0], o_off[-1] - o_off[0])
        o_off = o_off - o_off[0]
        o_code = encode_values(values, lookup).astype(np.int64)
    off, flat, unknown = _kernel.procedure_lists(principal, o_off, o_code)
    has_p = principal >= 0
    return off, flat, has_p, unknown


def _main_procedure(off, main_scope, ptier, dx_row, in_scope) -> tuple[np.ndarray, np.ndarray]:
    """Position of each case's main procedure in the CSR (``len(flat)`` = none) and the tiers that count.

    The main procedure is the first listed one (principal first) that may be main: ``main_scope`` 0, or
    ``2 + j`` with the case's principal in scope ``j`` (限范围可作主要手术操作); 1 never (不可作为主要手术操作).
    A procedure that may not be main sets no tier either (it counts as conservative).
    """
    n_flat = len(main_scope)
    if not main_scope.any():  # no procedure rule: the first listed procedure is the main one
        return np.where(np.diff(off) > 0, off[:-1], n_flat), ptier
    case = np.repeat(np.arange(len(off) - 1), np.diff(off))
    allowed = (main_scope == 0) | ((main_scope >= 2) & in_scope[dx_row[case], np.maximum(main_scope - 2, 0)])
    at = _kernel.segment_min(off, np.where(allowed, np.arange(n_flat), n_flat), n_flat)
    return at, np.where(allowed, ptier, _CONSERVATIVE).astype(np.int8)


#: Grouping settings (分组规则设置) and their defaults when neither the caller nor the catalogue sets them.
GROUPING_DEFAULTS = {
    "tie_break": "national",
    "related_match": "subset",
    "tier_from": "main",
    "main_fallback": True,
    "interventional_as": "surgery",
    "tiers": None,
}


@dataclass(frozen=True)
class GroupingSettings:
    """The DIP grouping settings a run uses: the caller's, else the catalogue's, else :data:`GROUPING_DEFAULTS`."""

    tie_break: str | tuple[str, ...]
    related_match: str
    tier_from: str
    main_fallback: bool
    tiers: ProcedureTiers

    def record(self, tiers_path: str | None) -> dict:
        """What a catalogue records (``meta["grouping"]``): the settings, the tier table path and fingerprint."""
        return {
            "tie_break": _criteria_names(self.tie_break),
            "related_match": self.related_match,
            "tier_from": self.tier_from,
            "main_fallback": self.main_fallback,
            "interventional_as": self.tiers.interventional_as,
            "tiers": tiers_path or "",
            "tiers_sha256": self.tiers.fingerprint,
        }


def _criteria_names(tie_break: str | Sequence[str]) -> list[str]:
    """A tie-break as its list of criteria (a profile name of ``codebooks/dip/grouping.toml`` resolved)."""
    if isinstance(tie_break, str):
        profiles = tie_break_profiles()
        if tie_break not in profiles:
            raise CatalogueError(f"tie_break: unknown profile {tie_break!r} (known: {', '.join(profiles)})")
        return list(profiles[tie_break])
    return list(tie_break)


def grouping_settings(
    catalogue: Catalogue,
    *,
    tiers: ProcedureTiers | None = None,
    tie_break: str | Sequence[str] | None = None,
    related_match: str | None = None,
    tier_from: str | None = None,
    main_fallback: bool | None = None,
) -> GroupingSettings:
    """Resolve the grouping settings of a run against those ``catalogue`` records it was built with.

    A setting given (not None) that differs from the catalogue's raises :class:`SettingsError`; a setting not
    given takes the catalogue's, else its default. The tier table recorded by path is read again (with the
    recorded 介入 switch) and must still have the recorded fingerprint.
    """
    rec = dict(catalogue.meta.get("grouping") or {})
    where = catalogue.name or "the catalogue"
    given = {
        "tie_break": None if tie_break is None else _criteria_names(tie_break),
        "related_match": related_match,
        "tier_from": tier_from,
        "main_fallback": main_fallback,
    }
    out = {}
    for key, value in given.items():
        recorded = rec.get(key)
        if value is not None and recorded is not None and value != recorded:
            shown = tie_break if key == "tie_break" else value
            raise SettingsError(
                f"{key}: {shown!r} conflicts with {recorded!r}, the setting {where} was built with", key=key
            )
        out[key] = (
            value if value is not None else recorded if recorded is not None else GROUPING_DEFAULTS[key]
        )
    if isinstance(out["tie_break"], list):
        out["tie_break"] = tuple(out["tie_break"])
    recorded_sha = rec.get("tiers_sha256")
    if tiers is None:
        path = rec.get("tiers") or None
        tiers = read_procedure_tiers(path, interventional_as=rec.get("interventional_as", "surgery"))
        if recorded_sha and tiers.fingerprint != recorded_sha:
            raise CatalogueError(
                f"{where} was built with the tier table {path or '(shipped)'} as it was then; it has changed since"
            )
    elif recorded_sha and tiers.fingerprint != recorded_sha:
        raise SettingsError(
            f"tiers: this procedure tier table (or its 介入 switch) differs from the one {where} was built with",
            key="tiers",
        )
    return GroupingSettings(tiers=tiers, **out)


def _setup(catalogue, tiers, tie_break, related_match, tier_from, main_fallback, exclusions):
    """(the catalogue's grouping settings, the exclusions, the compiled lookups) of a grouping, checked."""
    cat = catalogue if isinstance(catalogue, Catalogue) else read_catalogue(catalogue)
    g = grouping_settings(
        cat, tiers=tiers, tie_break=tie_break, related_match=related_match, tier_from=tier_from,
        main_fallback=main_fallback,
    )  # fmt: skip
    if not isinstance(exclusions, Exclusions):
        exclusions = read_exclusions(exclusions)
    if g.related_match not in ("subset", "partial"):
        raise CatalogueError(f"related_match: {g.related_match!r} is not one of subset, partial")
    if g.tier_from not in ("main", "highest"):
        raise CatalogueError(f"tier_from: {g.tier_from!r} is not one of main, highest")
    comp = _compile(cat, g.tiers)
    if (len(exclusions.scopes) + 2) * comp.stride * 8 >= 2**31:
        raise CatalogueError("exclusions: too many distinct pdx_scope lists for this catalogue")
    return g, exclusions, comp


@dataclass(frozen=True)
class EncodedDipCases:
    """Discharges with their principal diagnosis and procedures looked up for one DIP grouping (编码后的病例): the
    first step of :func:`group_dip`, which a streaming caller takes beside its reading
    (:func:`encode_dip_cases`) while the last batch groups."""

    table: pa.Table
    against: tuple  #: what the codes were looked up in (``_against``)
    principal: tuple[np.ndarray, np.ndarray, np.ndarray]  #: ``_principal``'s (dx, dx_row, in_scope)
    procedures: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  #: ``_procedures``' CSR

    @property
    def num_rows(self) -> int:
        return self.table.num_rows


def encode_dip_cases(
    table: pa.Table,
    catalogue: Catalogue | str | Path,
    *,
    tiers: ProcedureTiers | None = None,
    codebook=None,
    exclusions: Exclusions | str | Path | None = None,
) -> EncodedDipCases:
    """The principal diagnoses and procedures of a discharge table looked up as :func:`group_dip` looks them up
    with the same arguments: ``group_dip(encode_dip_cases(t, cat, ...), cat, ...)`` is ``group_dip(t, cat, ...)``."""
    g, exclusions, comp = _setup(catalogue, tiers, None, None, None, None, exclusions)
    return _encode(as_discharges(table), comp, g.tiers, codebook, exclusions)


def _encode(table: pa.Table, comp: _Compiled, tiers, codebook, exclusions: Exclusions) -> EncodedDipCases:
    principal = _principal(table, comp, codebook, exclusions)
    lookup = _remembered(
        comp, "proc", codebook, exclusions, lambda: _proc_lookup(comp, tiers, codebook, exclusions)
    )
    procedures = _procedures(table, lookup)
    return EncodedDipCases(table, _against(comp, codebook, exclusions), principal, procedures)


def _against(comp: _Compiled, codebook, exclusions: Exclusions) -> tuple:
    """What cases are looked up in: the compiled catalogue and tiers (one object per pair of fingerprints, kept
    for the process in ``_CACHE``), the codebook's and the exclusions' fingerprints."""
    return id(comp), codebook.fingerprint if codebook is not None else None, exclusions.fingerprint


def group_dip(
    table: pa.Table,
    catalogue: Catalogue | str | Path,
    *,
    tiers: ProcedureTiers | None = None,
    codebook=None,
    tie_break: str | Sequence[str] | None = None,
    related_match: str | None = None,
    tier_from: str | None = None,
    main_fallback: bool | None = None,
    exclusions: Exclusions | str | Path | None = None,
    explain: bool = False,
    duplicate: np.ndarray | None = None,
    aux: AuxTyping | None = None,
    lang: str = "en",
) -> pa.Table:
    """Group discharge records into the DIP groups (病种) of a catalogue; one output row per input row.

    Parameters
    ----------
    table : pa.Table, pandas DataFrame or any Arrow-compatible table, or :class:`EncodedDipCases`
        Canonical discharges (``grouper.schema.DISCHARGE_SCHEMA``; ``grouper.canonicalise`` maps an export's
        headers and values). Used: ``case_id``, ``principal_dx``, ``principal_proc``, ``other_procs``
        (list<string> or ``|``-joined), ``age_years``, ``age_days``, ``birth_weight_g``, ``total_cost`` (yuan,
        for ``closest_cost``); missing columns read as empty. Cases looked up ahead (:func:`encode_dip_cases`)
        with the same arguments are grouped as they are.
    catalogue : Catalogue, path or shipped name (``"pingdingshan-2025"``)
    tiers : ProcedureTiers, optional
        Procedure treatment tiers; default the catalogue's (:func:`grouping_settings`), else
        ``read_procedure_tiers()`` (介入 → 手术).
    codebook : grouper.codebook.Codebook, optional
        医保版 2.0 dictionary (``Codebook.load("chs-drg-2.0")``; 1.1 holds the same diagnoses and 81 fewer
        procedures): validates codes, maps 国临版 codes.
        Without it a principal is known when it looks like an ICD-10 code, a procedure when ``tiers`` has it.
    tie_break : profile name or sequence of criteria
        Order among qualifying core groups (``codebooks/dip/grouping.toml``); default ``national``: most
        related procedures matched, then highest score, then smallest dip_code.
    related_match : {"subset", "partial"}
        ``subset``: all related procedures of a group required (default); ``partial``: at least one.
    tier_from : {"main", "highest"}
        The main procedure's tier (default) or the highest over all procedures picks the 综合 group.
    main_fallback : bool
        With no ``principal_proc``, the first other procedure is the main procedure (default True). A
        flagged principal that may not be main (exclusion list) always passes to the next listed procedure.

        These four grouping settings and the tier table default to the ones a catalogue records it was built
        with (``meta["grouping"]``, written by ``DipCatalog``), else to the defaults above; a setting given
        here that differs from the catalogue's is a :class:`~grouper.errors.SettingsError`.
    exclusions : Exclusions or path, optional
        Exclusion lists (排除表, :mod:`grouper.dip.exclusions`); default the shipped
        ``codebooks/dip/exclusions.csv`` (asterisk principal codes only); a path is a region's table added to it.
    explain : bool
        Add a ``reason`` column: the layer that decided and the keys it used.
    duplicate : bool array, optional
        Rows whose case_id was already seen (from a streaming caller's ``grouper.batch.DuplicateTracker``);
        by default the repeats within ``table``.
    aux : AuxTyping, optional
        Fitted auxiliary typing (辅助分型, docs/dip.md §5): ``aux_type`` / ``aux_coef`` are each case's
        highest admitted subtype and its coefficient (it reads ``other_dx``, ``los_days``, ``discharge_mode``,
        ``icu_hours``, … :data:`grouper.dip.aux.INPUT_COLUMNS`). Without it ``""`` and 1.0.
    lang : str
        Language of the reasons, ``en`` or ``zh`` (``codebooks/records/reason_labels.csv``).

    Returns
    -------
    pa.Table
        :data:`DIP_RESULT_SCHEMA`: ``case_id, dip_group, dip_kind, dip_score, aux_type, aux_coef,
        dip_status`` (+ ``reason``), in input order; ``dip_status`` is a :class:`Status` name.

    Notes
    -----
    docs/dip.md §3. Core: the case's 亚目 (``K35.800x001`` → ``K35.8``, compared case-insensitively)
    and main procedure select the candidate groups; no main procedure, or one of tier ``conservative``,
    selects the 亚目's conservative group. 综合: the 类目 (``K35``) × the case's tier, that tier only
    (docs/dip.md §6.5 P7). Exclusion lists (docs/dip.md §3.2): a principal on the ``dx`` list (or an asterisk code) ends
    in ``PDX_INVALID`` without a group; the main procedure is the first listed procedure that may be main
    (``not_main`` never, ``main_in_scope`` only for its principal diagnoses), none → conservative; a code
    listed ``conservative`` (按保守治疗入组) has that tier.

    Examples
    --------
    >>> cases = pa.table({"case_id": ["P2", "P6"], "principal_dx": ["K35.800x001"] * 2,
    ...                   "principal_proc": ["47.0100", "47.2x01"]})
    >>> group_dip(cases, "pingdingshan-2025")["dip_group"].to_pylist()
    ['K35.8:47.0100', 'K35:SS']
    """
    g, exclusions, comp = _setup(
        catalogue, tiers, tie_break, related_match, tier_from, main_fallback, exclusions
    )
    tiers, tie_break, related_match, tier_from = g.tiers, g.tie_break, g.related_match, g.tier_from
    main_fallback = g.main_fallback
    crit = _criteria(tie_break)
    cases = table if isinstance(table, EncodedDipCases) else None
    if cases is not None and cases.against != _against(comp, codebook, exclusions):
        raise ValueError(
            "cases encoded against another catalogue, tiers, codebook or exclusions than this grouping's"
        )
    if cases is None:
        cases = _encode(as_discharges(table), comp, tiers, codebook, exclusions)
    table = cases.table
    n = table.num_rows

    # principal diagnosis → 亚目 id, 类目 id (or an error code)
    dx, dx_row, in_scope = cases.principal
    width = len(comp.subs) + 1
    known, (cat_at, sub_at) = dx >= 0, np.divmod(dx, width)
    sub_id = np.where(known, sub_at - 1, -1)
    cat_id = np.where(known, cat_at - 1, -1)

    # procedures → CSR of catalogue procedure ids and tiers; the main procedure is listed first
    off, flat, has_p, unknown = cases.procedures
    pid = (flat // 8 % comp.stride - 1).astype(np.int32)
    ptier = (flat % 8).astype(np.int8)
    main_at, ptier = _main_procedure(off, flat // 8 // comp.stride, ptier, dx_row, in_scope)
    found = main_at < len(flat)
    at = np.minimum(main_at, max(len(flat) - 1, 0))
    main_tier = np.where(found, ptier[at] if len(flat) else 0, _CONSERVATIVE)
    has_main = found & (has_p | main_fallback) & (main_tier != _CONSERVATIVE)
    main_pid = np.where(has_main, pid[at] if len(flat) else -1, -1).astype(np.int32)
    if tier_from == "main":
        case_tier = np.where(has_main, main_tier, _CONSERVATIVE).astype(np.int8)
    else:
        case_tier = _kernel.segment_max(off, ptier, np.int8(_CONSERVATIVE))

    row = np.full(n, -1, np.int32)
    layer = np.full(n, _L_NONE, np.int8)
    prio, newborn_missing = _priority(table, comp, off, pid, cat_id)
    has_prio = prio < len(comp.rules)
    if has_prio.any():
        row[has_prio] = np.array([r.row for r in comp.rules], np.int32)[prio[has_prio]]
        layer[has_prio] = _L_PRIORITY

    # core: 亚目 + main procedure + related set
    cost = _column(table, "total_cost", pa.float64()).to_numpy(zero_copy_only=False)
    core = _kernel.core_rows(
        np.where(has_prio, -1, sub_id), has_main, main_pid, off, pid, cost,
        comp.u_key, comp.u_start, comp.u_end, comp.g_row, comp.g_score, comp.g_cost, comp.rel_off,
        comp.rel_pid, comp.stride, crit, related_match == "partial",
    )  # fmt: skip
    is_core = core >= 0
    row[is_core] = core[is_core]
    layer[is_core] = np.where(has_main[is_core], _L_CORE, _L_CONS)

    # 综合: 类目 × treatment tier
    free = (row < 0) & (cat_id >= 0)
    comp_row = np.full(n, -1, np.int32)
    comp_row[free] = comp.comp[cat_id[free], case_tier[free]]
    is_comp = comp_row >= 0
    row[is_comp] = comp_row[is_comp]
    layer[is_comp] = _L_COMP

    # the rest → KBBZ when the catalogue has one; errors take no group
    rest = row < 0
    row[rest] = comp.blank_row
    layer[rest] = _L_BLANK if comp.blank_row >= 0 else _L_NONE
    errors = (
        (dx == -1, _L_PDX_MISSING),
        (dx == -2, _L_PDX_UNKNOWN),
        (dx == -3, _L_PDX_INVALID),
        (newborn_missing, _L_NEWBORN),
    )
    for mask, code in errors:
        row[mask] = -1
        layer[mask] = code

    case_id = _column(table, "case_id", pa.string())
    status = _STATUS_OF_LAYER[layer]
    if duplicate is None:
        duplicate = duplicated(case_id)
    no_id = pc.fill_null(pc.equal(pc.binary_length(case_id), 0), True).to_numpy(zero_copy_only=False)
    for mask, code in (
        (unknown, Status.CODE_UNKNOWN),
        (duplicate, Status.DUPLICATE_CASE),
        (no_id, Status.CASE_ID_MISSING),
    ):
        np.maximum(status, int(code), out=status, where=np.asarray(mask, np.bool_))  # the most severe status

    at = pa.array(np.where(row >= 0, row, len(comp.score)))  # the row past the catalogue's: no group
    group, kind = (_taken(labels, at) for labels in (comp.dip_code, comp.kind))
    if aux is None:
        aux_type, aux_coef = pa.repeat(pa.scalar("", pa.string()), n), np.ones(n)
    else:
        groups = pa.table({"dip_group": group.cast(pa.string()), "dip_kind": kind.cast(pa.string())})
        applied = aux.apply(_plain(table), groups)
        aux_type = applied.column("aux_type").combine_chunks().fill_null("")
        aux_coef = applied.column("aux_coef").to_numpy()
    columns = {
        "case_id": case_id,
        "dip_group": group,
        "dip_kind": kind,
        "dip_score": _appended(comp.score, None).take(at),
        "aux_type": pc.dictionary_encode(aux_type)
        if aux is not None
        else _NO_AUX.take(np.zeros(n, np.int32)),
        "aux_coef": pa.array(aux_coef, pa.float64()),
        "dip_status": pa.DictionaryArray.from_arrays(pa.array(_STATUS_POSITION[status]), _STATUS_NAMES),
    }
    if explain:
        promoted = found & (main_at != off[:-1])
        columns["reason"] = _reasons(
            table, layer, has_main, promoted, case_tier, aux_type, aux_coef, reason_words(lang)
        )
    return pa.table(columns, schema=_schema(explain))


def _taken(labels: pa.DictionaryArray, at: pa.Array) -> pa.DictionaryArray:
    """The labels of rows ``at``, still dictionary-encoded (the writer stores indices, not each case's text)."""
    return pa.DictionaryArray.from_arrays(labels.indices.take(at), labels.dictionary)


#: No auxiliary type, as a label.
_NO_AUX = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), pa.array([""]))


def _appended(values: pa.Array, last) -> pa.Array:
    """``values`` with ``last`` after them (what a case without a group gets, taken by one index)."""
    return pa.concat_arrays([values, pa.array([last], values.type)])


_STATUS_CODES = np.array(sorted(int(s) for s in Status.of_scheme("dip")))
_STATUS_NAMES = pa.array([Status(c).name for c in _STATUS_CODES])
#: The position of each status code in ``_STATUS_NAMES``.
_STATUS_POSITION = np.zeros(_STATUS_CODES.max() + 1, np.int32)
_STATUS_POSITION[_STATUS_CODES] = np.arange(len(_STATUS_CODES))
_STATUS_OF_LAYER = np.array(
    [
        Status.PDX_MISSING,
        Status.PDX_UNKNOWN,
        Status.PDX_INVALID,
        Status.NEWBORN_DATA_MISSING,
        Status.OK,
        Status.OK,
        Status.OK,
        Status.COMPREHENSIVE,
        Status.BLANK,
        Status.UNMATCHED,
    ],
    np.int16,
)


def _schema(explain: bool) -> pa.Schema:
    return DIP_RESULT_SCHEMA.append(pa.field("reason", pa.string())) if explain else DIP_RESULT_SCHEMA


def _priority(table, comp, off, pid, cat_id) -> tuple[np.ndarray, np.ndarray]:
    """先期分组 rule index per case (``len(rules)`` = none) and the newborn-data-missing flag."""
    n_rules = len(comp.rules)
    n = len(cat_id)
    if not n_rules:
        return np.zeros(n, np.int32), np.zeros(n, bool)
    prio = _kernel.segment_min(
        off, np.where(pid >= 0, comp.prio_of_pid[np.maximum(pid, 0)], n_rules), n_rules
    )
    prio = prio.astype(np.int32)
    age_days = _column(table, "age_days", pa.float64()).to_numpy(zero_copy_only=False)
    age_years = _column(table, "age_years", pa.float64()).to_numpy(zero_copy_only=False)
    bw = _column(table, "birth_weight_g", pa.float64()).to_numpy(zero_copy_only=False)
    cats = comp.cats
    missing = np.zeros(n, bool)
    for k in range(n_rules - 1, -1, -1):  # a loop over rules, not records
        rule = comp.rules[k]
        if rule.kind != "low_birth_weight":
            continue
        wanted = pc.index_in(pa.array(rule.pdx_category, pa.string()), value_set=cats).to_numpy()
        in_cat = np.isin(cat_id, wanted)
        # 天龄 < 29 (docs/dip.md §3.3): a case with age in years ≥ 1 and no age_days is not a newborn
        newborn = age_days <= rule.max_age_days
        unknown_age = np.isnan(age_days) & ~(age_years >= 1)
        missing |= in_cat & ((newborn & np.isnan(bw)) | unknown_age)
        hit = in_cat & newborn & (bw >= rule.bw_range[0]) & (bw <= rule.bw_range[1])
        prio = np.where(hit & (k < prio), k, prio)
    return prio, missing & (prio >= n_rules)


def _reasons(table, layer, has_main, promoted, case_tier, aux_type, aux_coef, words) -> pa.Array:
    """The layer that decided, the principal's 亚目, the main procedure and the tier; words from
    ``reason_labels.csv``."""
    dx = normalise_codes(_column(table, "principal_dx", pa.string()), "dx")
    main = normalise_codes(_column(table, "principal_proc", pa.string()), "proc")
    coef = pc.cast(pc.round(pa.array(aux_coef, pa.float64()), 4), pa.string())
    aux = pc.if_else(
        pc.equal(aux_type, ""), "", pc.binary_join_element_wise(words["dip.aux"], aux_type, " × ", coef, "")
    )
    layers = pa.array([words[f"dip.layer.{k}"] for k in range(_L_NONE + 1)])
    tiers = pa.array([words[f"dip.tier.{t}"] for t in TIERS])
    return pc.binary_join_element_wise(
        layers.take(pa.array(layer)),
        words["dip.subcategory"],
        pc.fill_null(pc.utf8_slice_codeunits(dx, 0, 5), "-"),
        words["dip.main"],
        pc.if_else(
            pa.array(has_main),
            pc.if_else(
                pa.array(promoted), words["dip.promoted"], pc.fill_null(main, words["dip.first_other"])
            ),
            "-",
        ),
        words["dip.tier"],
        tiers.take(pa.array(case_tier)),
        aux,
        "",
    )
