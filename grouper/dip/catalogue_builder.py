"""Build a local DIP catalogue (目录库测算) from past years of cases: keys, threshold, trimming, 1:2:7, scores.

docs/dip.md §4. The result is a :class:`grouper.dip.catalogue.Catalogue` (the same format as the shipped
平顶山 catalogue), carrying every setting and a fingerprint of the history in its metadata.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper import _reduction as red
from grouper._history import (
    TRIM_SETTINGS,
    YEAR_SETTINGS,
    add_year_counts,
    data_years,
    fit_summary,
    group_stats,
    los_of,
    params_from_meta,
    restore_summary,
    trim_of,
    trim_warnings,
    typed_history,
    year_counts,
    years_used,
)
from grouper.codebook import Codebook
from grouper.codes import normalise_codes
from grouper.dip.aux import AuxTyping
from grouper.dip.catalogue import (
    CATALOGUE_SCHEMA,
    TIERS,
    Catalogue,
    CatalogueError,
    read_catalogue,
    write_catalogue,
)
from grouper.dip.group import GroupingSettings, group_dip, tie_break_profiles
from grouper.dip.tiers import ProcedureTiers, read_procedure_tiers
from grouper.errors import InputError, SettingsError
from grouper.estimator import Estimator
from grouper.io.writer import IfExists
from grouper.settings import Choice, Flag, Num, Text
from grouper.version import drgdip_version

__all__ = ["SCORE_METHODS", "THRESHOLD_KINDS", "DipCatalog", "coverage_threshold"]

#: Closed set of score methods (docs/dip.md §4.6): 平均费用法, 基准病种费用法, 标准定额法.
SCORE_METHODS = ("average_cost", "reference_group", "standard_amount")
#: Closed set of core-threshold kinds (docs/dip.md §4.2): a fixed case count, or a coverage share.
THRESHOLD_KINDS = ("fixed", "coverage")

#: 综合病种 code suffix and name per tier, as in the 平顶山 catalogue (docs/dip.md §3.8, §6.1).
_TIER_SUFFIX = {"surgery": "SS", "therapeutic": "ZLXCZ", "diagnostic": "ZDXCZ", "conservative": "BSZL"}
_TIER_NAME = {
    "surgery": "相关手术组",
    "therapeutic": "治疗性操作组",
    "diagnostic": "诊断性操作组",
    "conservative": "内科诊疗组",
}
_CONSERVATIVE = TIERS.index("conservative")
_ICD10 = r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]+)?$"
_BLANK_CODE = "KBBZ"
#: The canonical columns DipCatalog.fit reads (readers may skip the others).
HISTORY_COLUMNS = (
    "year",
    "discharge_date",
    "total_cost",
    "los_days",
    "principal_dx",
    "principal_proc",
    "other_procs",
)
#: Separates the fields of a case's exact key (:meth:`DipCatalog.case_keys`).
_SEP = "\x1f"
# Row kinds while building: core conservative, core + main procedure, core + related set, 综合, 空白.
_K_CONS, _K_MAIN, _K_REL, _K_COMP, _K_BLANK = range(5)


def coverage_threshold(sizes, share: float) -> int:
    """The largest case count t such that groups with ``n ≥ t`` hold at least ``share`` of all cases (临界值).

    Parameters
    ----------
    sizes : array-like of int
        Cases per candidate group.
    share : float
        Target coverage, 0 < share ≤ 1 (e.g. 0.95).

    Returns
    -------
    int

    Examples
    --------
    docs/dip.md §4.2, TEST VECTOR DIP-THR: t = 120 covers 92 %, t = 40 covers 96 % → 40.

    >>> coverage_threshold([500, 300, 120, 40, 20, 10, 6, 4], 0.95)
    40
    """
    s = np.sort(np.asarray(sizes, dtype=np.int64))[::-1]
    if s.size == 0:
        return 1
    covered = np.cumsum(s)
    k = int(np.searchsorted(covered, share * covered[-1] - 1e-9 * covered[-1]))
    return int(s[min(k, s.size - 1)])


def _str(table: pa.Table, name: str, kind: str = "dx") -> pa.Array:
    """A code column normalised (grouper.codes) on its distinct values; missing → ``""``."""
    if name not in table.column_names:
        return pa.array([""] * table.num_rows, pa.string())
    return _clean(table.column(name).combine_chunks().cast(pa.string()), kind)


def _clean(codes: pa.Array, kind: str) -> pa.Array:
    return normalise_codes(codes, kind).fill_null("")


def _encode(arr: pa.Array) -> tuple[np.ndarray, pa.Array]:
    enc = (
        pc.dictionary_encode(arr).combine_chunks()
        if isinstance(arr, pa.ChunkedArray)
        else pc.dictionary_encode(arr)
    )
    return enc.indices.to_numpy().astype(np.int64), enc.dictionary


def _procs_list(table: pa.Table) -> pa.ListArray:
    n = table.num_rows
    if "other_procs" not in table.column_names:
        return pa.array([[]] * n, pa.list_(pa.string()))
    col = table.column("other_procs").combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = pc.split_pattern(col.cast(pa.string()).fill_null(""), "|")
    return col.cast(pa.list_(pa.string()))


def _is_count(v) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


class _Threshold:
    """Field kind of the core threshold: a case count, ``("fixed", n)`` or ``("coverage", share)``."""

    optional = False

    def problem(self, v) -> str | None:
        if _is_count(v):
            v = ("fixed", v)
        if not isinstance(v, tuple | list) or len(v) != 2:
            return f"expected a case count or (kind, value), got {v!r}"
        kind, value = v
        if kind not in THRESHOLD_KINDS:
            return f"unknown kind {kind!r} (known: {', '.join(THRESHOLD_KINDS)})"
        if kind == "fixed" and not (_is_count(value) and value >= 1):
            return f"a fixed threshold is a positive case count, got {value!r}"
        if kind == "coverage" and not (isinstance(value, int | float) and 0 < value <= 1):
            return f"a coverage share is in (0, 1], got {value!r}"
        return None


class _TieBreak:
    """Field kind of a tie-break: a profile of ``codebooks/dip/grouping.toml`` or a sequence of criteria."""

    optional = False

    def problem(self, v) -> str | None:
        if isinstance(v, str):
            known = tie_break_profiles()
            return None if v in known else f"unknown profile {v!r} (known: {', '.join(known)})"
        if isinstance(v, tuple | list) and v and all(isinstance(c, str) for c in v):
            return None
        return f"expected a profile name or a list of criteria, got {v!r}"


class DipCatalog(Estimator):
    """Local DIP catalogue (目录库) built from past years of cases (scikit-learn style: settings, fit, ``_``).

    Parameters
    ----------
    years : tuple of int or None
        Data years used, oldest first; ``None`` = the ``len(year_weights)`` years ending with the latest year seen.
        Cases of other years are not used (counted in ``n_excluded_``).
    year_weights : tuple of float
        Weight per year, oldest first (时间权重, default 1:2:7 = 0.1, 0.2, 0.7); renormalised over the years a
        group actually has (docs/dip.md §4.3).
    year_weighting : {"means", "cases"}
        Weights on yearly group means (default) or on cases.
    threshold : (str, number)
        Core threshold (临界值): ``("fixed", 15)`` (default; 省级 50) or ``("coverage", 0.95)`` = the largest t such
        that base core keys with ``n ≥ t`` cover the share (docs/dip.md §4.2). An int means ``("fixed", n)``.
    comprehensive_threshold : int
        Minimum cases of a 综合病种; smaller ones go to the blank group ``KBBZ`` (default 15).
    related_max : int
        Largest related-procedure set forming its own core group (default 5, as in 平顶山).
    related_min_uplift : float or None
        A related set forms its own group only if its mean cost is at least this share above the
        主诊断 + 主手术 group's (DIP 2.0: 0.10, the default); ``None`` = no such rule.
    tiers : str or None
        A region's procedure tier table (CSV ``code,tier``) overriding the shipped
        ``codebooks/dip/procedure_tiers.csv`` code by code (:func:`grouper.dip.tiers.read_procedure_tiers`).
    interventional_as : {"surgery", "therapeutic"}
        Which 综合 group interventional procedures join (docs/dip.md §3.8, P-1; default surgery).
    unknown_tier : str
        Tier of a procedure missing from the tier table (default conservative, the 宜昌 rule of §3.2).
    main_fallback : bool
        With no ``principal_proc``, the first other procedure is the main procedure (default True, as in
        :func:`grouper.dip.group_dip`).
    tie_break, related_match, tier_from
        The grouping choices of :func:`grouper.dip.group_dip` (defaults ``national``, ``subset``, ``main``) used
        to regroup the history. The catalogue records them with ``main_fallback``, the tier table and the 介入
        switch (``meta["grouping"]``), and grouping with it uses them.
    regroup : bool
        After the groups are chosen on exact keys, group the history into them with
        :func:`grouper.dip.group_dip` (subset rule for related procedures, tie-breaks) and compute the statistics
        over the cases the grouper puts in each group (default True). Groups left empty are dropped; cases the
        grouper cannot group are counted in ``n_excluded_["ungrouped"]``.
    codebook : str or None
        CHS-DRG codebook (e.g. ``"chs-drg-1.1"``) whose 医保版 dictionary checks and maps codes while regrouping,
        as ``group_dip(codebook=...)``; ``None`` (default): a principal is valid when it looks like an ICD-10 code.
    trim, trim_limits, trim_k, trim_min_n
        Trimming within each group: method ``percentile`` (default, P2.5/P97.5), ``iqr`` (k 1.5), ``log_sd``
        (k 3) or ``none``; groups under ``trim_min_n`` (default 25) are not trimmed (docs/dip.md §4.4).
    max_trim_rate : float
        ``warnings_`` notes an overall trimmed share above this (default 0.08).
    cv_ddof : {1, 0}
        SD divisor n − ddof for the CV (default 1, docs/dip.md §4.5).
    discuss_cv : float
        ``discuss_flag`` = 1 for groups with CV above this (default 1.0).
    score_method : {"average_cost", "reference_group", "standard_amount"}
        ``m_i / M × score_scale`` with M the mean of all cases (default), ``m_i / M_base × score_scale`` with
        M_base the mean of ``reference_group``, or ``m_i / point_amount`` (docs/dip.md §4.6).
    score_scale : int
        Default 1000.
    reference_group : str or None
        dip_code of the reference group for ``reference_group``.
    point_amount : float or None
        Yuan per point for ``standard_amount``.

    Attributes
    ----------
    groups_ : pa.Table
        One row per group: the catalogue columns plus ``n_kept`` and ``n_trimmed``.
    region_avg_cost_ : float
        Year-weighted mean cost of all kept cases (M), yuan.
    score_base_ : float
        The denominator of the score.
    threshold_ : int
        Core threshold in cases (resolved for ``coverage``).
    years_, weights_ : tuple
        Year window and normalised weights.
    n_cases_, n_excluded_, n_trimmed_ : int, dict, int
        Cases used; cases not used by reason; cases trimmed.
    history_ : dict
        Fingerprint of the history: years, rows, SHA-256.
    warnings_ : list of str

    Examples
    --------
    >>> cat = DipCatalog(threshold=("fixed", 15)).fit(history).to_catalogue()   # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        years: tuple[int, ...] | None = None,
        year_weights: tuple[float, ...] = (0.1, 0.2, 0.7),
        year_weighting: str = "means",
        threshold: tuple[str, float] | int = ("fixed", 15),
        comprehensive_threshold: int = 15,
        related_max: int = 5,
        related_min_uplift: float | None = 0.10,
        tiers: str | None = None,
        interventional_as: str = "surgery",
        unknown_tier: str = "conservative",
        main_fallback: bool = True,
        tie_break: str | tuple[str, ...] = "national",
        related_match: str = "subset",
        tier_from: str = "main",
        regroup: bool = True,
        codebook: str | None = None,
        trim: str = "percentile",
        trim_limits: tuple[float, float] = (0.025, 0.975),
        trim_k: float | None = None,
        trim_min_n: int = 25,
        max_trim_rate: float = 0.08,
        cv_ddof: int = 1,
        discuss_cv: float = 1.0,
        score_method: str = "average_cost",
        score_scale: int = 1000,
        reference_group: str | None = None,
        point_amount: float | None = None,
    ) -> None:
        self._keep(locals())

    SETTINGS = MappingProxyType(
        {
            **YEAR_SETTINGS,
            "threshold": _Threshold(),
            "comprehensive_threshold": Num(lo=1, integer=True),
            "related_max": Num(lo=0, integer=True),
            "related_min_uplift": Num(lo=0, optional=True),
            "tiers": Text(optional=True),
            "interventional_as": Choice(("surgery", "therapeutic")),
            "unknown_tier": Choice(TIERS),
            "main_fallback": Flag(),
            "tie_break": _TieBreak(),
            "related_match": Choice(("subset", "partial")),
            "tier_from": Choice(("main", "highest")),
            "regroup": Flag(),
            "codebook": Text(optional=True),
            **TRIM_SETTINGS,
            "discuss_cv": Num(lo=0),
            "score_method": Choice(SCORE_METHODS),
            "score_scale": Num(lo=1, integer=True),
            "reference_group": Text(optional=True),
            "point_amount": Num(lo=0, lo_open=True, optional=True),
        }
    )
    FITTED = "groups_"
    SCHEMA = CATALOGUE_SCHEMA

    # -- settings ---------------------------------------------------------------------------------------------
    @classmethod
    def from_policy(cls, policy, **settings) -> DipCatalog:
        """Settings from a DIP policy: ``[dip.grouping]``, ``[dip.catalogue]`` and ``scores.score_scale``.

        Parameters
        ----------
        policy : payment.policy.Policy
        **settings
            Settings the policy does not set (``years``, ``tiers``, ``codebook``, …); one the policy sets to
            another value is a :class:`SettingsError`.

        Notes
        -----
        The catalogue written records the policy (path, SHA-256), the settings it gave with their sources, and
        each setting left at this class's default as an assumption (``meta["assumptions"]``).
        """
        given, sources = _policy_settings(policy)
        for name, value in settings.items():
            if name in given and given[name] != value:
                raise SettingsError(
                    f"{name}: {value!r} conflicts with {given[name]!r} in the policy {policy.path}", key=name
                )
            given[name] = value
        est = cls(**given)
        defaults = {k: v for k, v in est.get_params().items() if k not in given}
        est._provenance = {
            "policy": policy.path,
            "policy_sha256": policy.sha256,
            "policy_settings": sources,
            "assumptions": [f"{k} = {v!r} (DipCatalog default)" for k, v in sorted(defaults.items())],
        }
        return est

    def _threshold_spec(self) -> tuple[str, float]:
        th = self.threshold
        return ("fixed", int(th)) if _is_count(th) else tuple(th)

    def _check_together(self) -> None:
        if self.score_method == "reference_group" and not self.reference_group:
            raise SettingsError(
                "reference_group: required by score_method 'reference_group'", key="reference_group"
            )
        if self.score_method == "standard_amount" and self.point_amount is None:
            raise SettingsError(
                "point_amount: a positive amount is required by score_method 'standard_amount'",
                key="point_amount",
            )
        trim_of(self)

    # -- fit ----------------------------------------------------------------------------------------------------
    def fit(self, history: pa.Table) -> DipCatalog:
        """Learn the catalogue from grouped or ungrouped history (one row per case).

        Parameters
        ----------
        history : pa.Table
            Columns ``year`` (or ``discharge_date``), ``total_cost`` (yuan), ``principal_dx``; optional
            ``principal_proc`` (the main procedure), ``other_procs`` (list<string> or ``|``-joined) and ``los_days``.

        Returns
        -------
        DipCatalog
            ``self``, with the ``_`` attributes set.
        """
        return self.fit_parts(red.LocalParts.of_table(typed_history(history, ("principal_dx",))))

    def fit_parts(self, parts: red.Parts) -> DipCatalog:
        """Learn the catalogue from a history in parts (:class:`grouper._reduction.Parts`: slices of a table here,
        files held by the workers of a Dask cluster) by exact reductions: the same catalogue however the history
        is cut.

        Passes over the parts: the years and the fingerprint; the cases and cost per exact key (the groups are
        chosen on them, docs/dip.md §4.1–§4.2); the trimming cuts and kept sums of the chosen groups (the draft);
        with ``regroup``, the parts grouped into the draft where they are, and the cuts and sums again.
        """
        self.check_settings()
        spec = trim_of(self)
        scan = parts.reduce(_scan_part, _combine_scans)
        seen, window, w, used = years_used(self, scan["years"], "pdx_invalid")
        found = parts.reduce(_keys_part, _combine_keys, self, window).sort_by("key")
        keys = found.column("key").combine_chunks()
        hi, lo = (found.column(c).to_numpy().astype(np.float64) for c in ("hi", "lo"))
        cost = (hi * 2.0**32 + lo) / red.UNIT  # from exact integer sums: the same float whatever the cut
        gid_of_key, desc = self._assign(keys, found.column("count").to_numpy(), cost)
        rows = _describe(desc)
        n_groups = len(rows["dip_code"])

        def stats_of(cases: red.Parts):
            try:
                return group_stats(cases, n_groups, w, trim=spec, mode=self.year_weighting, ddof=self.cv_ddof)
            finally:
                cases.release()

        stats = stats_of(parts.map(_keyed_cases, self, window, keys, gid_of_key, not self.regroup))
        if self.regroup:
            # the chosen groups' statistics over the cases group_dip will put there (subset rule, tie-breaks)
            draft = self._table(rows, stats, np.full(n_groups, np.nan))[0]
            draft = Catalogue(draft.select(CATALOGUE_SCHEMA.names), {})
            stats = stats_of(parts.map(_regrouped_cases, self, window, draft, rows["dip_code"]))
            self.n_excluded_["ungrouped"] = used - int(stats.n.sum())
        table, base = self._table(rows, stats, stats.los)
        self.groups_ = table.filter(pc.greater(table["n_cases"], 0))
        self.region_avg_cost_ = float(stats.overall_mean)
        self.score_base_ = float(base)
        self.years_, self.weights_ = tuple(window), tuple(float(x) for x in w)
        self.n_cases_ = int(stats.n.sum())
        self.n_trimmed_ = int((stats.n - stats.n_kept).sum())
        self.history_ = red.fingerprint_of(scan["fingerprint"], HISTORY_COLUMNS, seen)
        self.warnings_ = trim_warnings(self)
        return self

    def regroup_cases(self, h: pa.Table, draft: Catalogue, codes: list[str]) -> np.ndarray:
        """The regrouping pass of :meth:`fit` over some of its cases: per case of ``h``, the index in ``codes``
        of the group :func:`grouper.dip.group_dip` puts it in when grouping into the ``draft`` catalogue (−1:
        not grouped). Each case alone (no duplicates): the cases may be grouped in parts, anywhere."""
        cases = (
            h
            if "case_id" in h.column_names
            else h.append_column("case_id", pa.nulls(h.num_rows, pa.string()))
        )
        result = group_dip(
            cases,
            draft,
            codebook=Codebook.load(self.codebook) if self.codebook else None,
            duplicate=np.zeros(h.num_rows, dtype=bool),
            **self._grouping(),
        )
        pos = pc.index_in(result["dip_group"], value_set=pa.array(codes, pa.string()))
        return pos.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)

    def _grouping(self) -> dict:
        """The grouping settings as ``group_dip`` arguments (the tier table read with the 介入 switch)."""
        return {
            "tiers": read_procedure_tiers(self.tiers, interventional_as=self.interventional_as),
            "tie_break": self.tie_break,
            "related_match": self.related_match,
            "tier_from": self.tier_from,
            "main_fallback": self.main_fallback,
        }

    def _tier_ids(self, codes: pa.Array, tiers: ProcedureTiers) -> np.ndarray:
        """Tier index (into ``TIERS``) per procedure code; a code missing from the table gets ``unknown_tier``."""
        tier = tiers.lookup(codes).astype(np.int64)
        tier[tier < 0] = TIERS.index(self.unknown_tier)
        return tier

    def case_keys(self, h: pa.Table) -> pa.Array:
        """Per case its exact key, what the choice of groups reads of it (docs/dip.md §3.6, §3.8, §4.1): the
        sub-category (first five characters of the principal), the main procedure and its tier, the related
        procedures and the case's kind (``c`` no main procedure, ``b`` a main procedure alone, ``r`` with at most
        ``related_max`` related procedures, ``m`` with more), joined by U+001F."""
        tiers = read_procedure_tiers(self.tiers, interventional_as=self.interventional_as)
        pdx = _str(h, "principal_dx")
        sub = pc.utf8_slice_codeunits(pdx, 0, 5)
        main = _str(h, "principal_proc", "proc")
        if self.main_fallback:
            main = pc.if_else(pc.equal(main, ""), _first_other(h), main)
        main_tier = self._tier_ids(main, tiers)
        has_main = (pc.utf8_length(main).to_numpy(zero_copy_only=False) > 0) & (main_tier != _CONSERVATIVE)
        main_tier[~has_main] = _CONSERVATIVE
        main = pc.if_else(pa.array(has_main), main, "")
        rel, rel_n = self._related(h, main, tiers)
        kind = np.where(
            ~has_main, "c", np.where(rel_n == 0, "b", np.where(rel_n <= self.related_max, "r", "m"))
        )
        tier = pa.array(main_tier.astype(str))
        return pc.binary_join_element_wise(sub, main, tier, rel, pa.array(kind), _SEP)

    def _assign(self, keys: pa.Array, count: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, dict]:
        """The group of each exact key (:meth:`case_keys`: ``keys`` sorted, with their cases and cost sums) and
        one descriptor per group (docs/dip.md §3.6, §3.8, §4.1 steps 3–5)."""
        n = len(keys)
        fields = pc.split_pattern(keys, _SEP)
        sub, main, tier, rel, kind = (pc.list_element(fields, k) for k in range(5))
        cat = pc.utf8_slice_codeunits(sub, 0, 3)
        main_tier = pc.cast(tier, pa.int64()).to_numpy()
        kind = np.asarray(kind.to_numpy(zero_copy_only=False), dtype=str)
        has_main, base, is_rel = kind != "c", kind == "b", kind == "r"

        sub_i, _ = _encode(sub)
        cat_i, _ = _encode(cat)
        main_i, main_d = _encode(main)
        rel_i, rel_d = _encode(rel)
        key2 = sub_i * len(main_d) + main_i
        key3 = key2 * len(rel_d) + rel_i
        inv1, cnt1 = _uniq(sub_i, ~has_main, count)
        inv2, cnt2 = _uniq(key2, has_main, count)
        inv3, cnt3 = _uniq(key3, is_rel, count)

        kind_, value = self._threshold_spec()
        t = coverage_threshold(np.concatenate([cnt1, cnt2]), value) if kind_ == "coverage" else int(value)
        self.threshold_ = int(t)
        ok3 = cnt3 >= t
        if self.related_min_uplift is not None and cnt3.size:
            # the "original cost" is that of the 主诊断 + 主手术 cases without related procedures (3.0 draft example)
            # (or, when every case has some, of all its cases)
            n2 = np.bincount(inv2[base], count[base], minlength=cnt2.size)
            mean2 = np.bincount(inv2[base], cost[base], minlength=cnt2.size) / np.maximum(n2, 1)
            all2 = np.bincount(inv2[has_main], cost[has_main], minlength=cnt2.size) / np.maximum(cnt2, 1)
            mean2 = np.where(n2 > 0, mean2, all2)
            mean3 = np.bincount(inv3[is_rel], cost[is_rel], minlength=cnt3.size) / np.maximum(cnt3, 1)
            parent = np.zeros(cnt3.size, dtype=np.int64)
            parent[inv3[is_rel]] = inv2[is_rel]
            ok3 &= mean3 >= (1.0 + self.related_min_uplift) * mean2[parent]
        in3 = _member(inv3, ok3)
        rem2 = np.bincount(inv2[has_main & ~in3], count[has_main & ~in3], minlength=cnt2.size)
        in2 = ~in3 & _member(inv2, rem2 >= t)
        in1 = _member(inv1, cnt1 >= t)
        rest = ~(in1 | in2 | in3)
        invc, cntc = _uniq(cat_i * len(TIERS) + main_tier, rest, count)
        inc = _member(invc, cntc >= self.comprehensive_threshold)
        blank = rest & ~inc

        gid = np.full(n, -1, dtype=np.int64)
        firsts, kinds, offset = [], [], 0
        for k, mask, inv in (
            (_K_CONS, in1, inv1),
            (_K_MAIN, in2, inv2),
            (_K_REL, in3, inv3),
            (_K_COMP, inc, invc),
            (_K_BLANK, blank, np.zeros(n, dtype=np.int64)),
        ):
            rows = np.flatnonzero(mask)
            if rows.size == 0:
                continue
            _, first, local = np.unique(inv[rows], return_index=True, return_inverse=True)
            gid[rows] = offset + local
            offset += first.size
            firsts.append(rows[first])
            kinds.append(np.full(first.size, k, dtype=np.int64))
        first = np.concatenate(firsts) if firsts else np.zeros(0, dtype=np.int64)
        take = pa.array(first)
        desc = {
            "kind": np.concatenate(kinds) if kinds else np.zeros(0, dtype=np.int64),
            "sub": sub.take(take).to_pylist(),
            "cat": cat.take(take).to_pylist(),
            "main": main.take(take).to_pylist(),
            "rel": rel.take(take).to_pylist(),
            "tier": main_tier[first],
        }
        return gid, desc

    def _related(self, h: pa.Table, main: pa.Array, tiers: ProcedureTiers) -> tuple[pa.Array, np.ndarray]:
        """Per case: its related procedures (other procedures, not the main one, not conservative), sorted,
        distinct and ``+``-joined; and their number."""
        n = h.num_rows
        lst = _procs_list(h)
        flat = _clean(pc.list_flatten(lst), "proc")
        parent = pc.list_parent_indices(lst).to_numpy().astype(np.int64)
        main_of = main.take(pa.array(parent))
        ok = (
            (pc.utf8_length(flat).to_numpy(zero_copy_only=False) > 0)
            & ~pc.equal(flat, main_of).to_numpy(zero_copy_only=False)
            & (self._tier_ids(flat, tiers) != _CONSERVATIVE)
        )
        flat, parent = flat.filter(pa.array(ok)), parent[ok]
        codes, dictionary = _encode(flat)
        rank = np.empty(len(dictionary), dtype=np.int64)
        order = pc.sort_indices(dictionary).to_numpy()
        rank[order] = np.arange(len(dictionary))
        pairs = np.unique(parent * max(len(dictionary), 1) + rank[codes])
        row, code_rank = np.divmod(pairs, max(len(dictionary), 1))
        counts = np.bincount(row, minlength=n)
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
        values = dictionary.take(pa.array(order[code_rank])) if pairs.size else pa.array([], pa.string())
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), values), "+")
        return joined, counts

    def _table(self, rows: dict, stats, avg_los: np.ndarray) -> tuple[pa.Table, float]:
        """The catalogue rows with their statistics and scores, sorted core → 综合 → blank, then by code."""
        codes, mean = rows["dip_code"], stats.mean
        if self.score_method == "average_cost":
            base = stats.overall_mean
        elif self.score_method == "reference_group":
            if self.reference_group not in codes:
                raise SettingsError(
                    f"reference_group: {self.reference_group!r} is not a group of this history",
                    key="reference_group",
                )
            base = float(mean[codes.index(self.reference_group)])
        else:
            base = float(self.point_amount)
        scale = 1.0 if self.score_method == "standard_amount" else float(self.score_scale)
        table = pa.table(
            {
                **rows,
                "score": pa.array(mean / base * scale, from_pandas=True),
                "avg_cost": pa.array(mean, from_pandas=True),
                "cv": pa.array(stats.cv, from_pandas=True),
                "n_cases": stats.n,
                "avg_los": pa.array(avg_los, from_pandas=True),
                "discuss_flag": pa.array((np.nan_to_num(stats.cv) > self.discuss_cv).astype(np.int8)),
                "n_kept": stats.n_kept,
                "n_trimmed": stats.n - stats.n_kept,
            }
        )
        kind_order = pc.index_in(table.column("kind"), value_set=pa.array(["core", "comprehensive", "blank"]))
        table = table.append_column("_k", kind_order)
        return table.sort_by([("_k", "ascending"), ("dip_code", "ascending")]).drop_columns(["_k"]), base

    def apply(self, cases: pa.Table, **grouping) -> pa.Table:
        """Group cases into the fitted catalogue with :func:`grouper.dip.group_dip`; never refits.

        Parameters
        ----------
        cases : pa.Table
            Canonical discharges.
        **grouping
            Options of ``group_dip`` (``aux``, ``explain``, …); the grouping settings, the tier table and the
            codebook are this catalogue's (as when it was built): a different one is a ``SettingsError``.

        Returns
        -------
        pa.Table
            ``group_dip``'s result: one row per case.
        """
        codebook = Codebook.load(self.codebook) if self.codebook else None
        return group_dip(cases, self.to_catalogue(), codebook=codebook, **(self._grouping() | grouping))

    def fit_aux(
        self, history: pa.Table, aux: AuxTyping | None = None, *, groups: pa.Table | None = None
    ) -> AuxTyping:
        """Fit auxiliary typing (辅助分型) on the history grouped into this catalogue (docs/dip.md §5.2).

        Parameters
        ----------
        history : pa.Table
            Past cases, as for :meth:`fit` plus the columns :meth:`AuxTyping.input_columns` names.
        aux : AuxTyping, optional
            Its settings; default ``AuxTyping()`` (N 15, n 5, CV fall 20 %). Without a ``year`` its year is set to
            the last of the catalogue's years (``years_[-1]``), not a later year the history may hold.
        groups : pa.Table, optional
            The history already grouped into this catalogue (:meth:`apply`), row for row; grouped here if None.

        Returns
        -------
        AuxTyping
            Fitted.
        """
        aux = AuxTyping() if aux is None else aux
        if aux.year is None:
            aux.set_params(year=self.years_[-1])
        return aux.fit(history, self.apply(history) if groups is None else groups)

    def fit_aux_parts(self, parts: red.Parts, aux: AuxTyping) -> AuxTyping:
        """:meth:`fit_aux` on a history in parts (:meth:`fit_parts`): each part grouped into this catalogue where
        it is, then :meth:`AuxTyping.fit_parts`."""
        if aux.year is None:
            aux.set_params(year=self.years_[-1])
        grouped = parts.map(_aux_part, self)
        try:
            return aux.fit_parts(grouped)
        finally:
            grouped.release()

    # -- output -------------------------------------------------------------------------------------------------
    def to_catalogue(self, **meta) -> Catalogue:
        """The fitted catalogue in the shared format, with settings and history fingerprint in the metadata.

        Parameters
        ----------
        **meta
            Extra metadata (``name``, ``region``, …); ``year`` defaults to the year after the last data year.
        """
        self._require_fitted()
        info = {
            "year": self.years_[-1] + 1,
            "data_year": self.years_[-1],
            "score_scale": self.score_scale if self.score_method != "standard_amount" else 1,
            "score_method": self.score_method,
            "region_avg_cost": self.region_avg_cost_,
            "score_base": self.score_base_,
            "threshold_cases": self.threshold_,
            **fit_summary(self, self.weights_),
            "grouping": GroupingSettings(**self._grouping()).record(self.tiers),
            **getattr(self, "_provenance", {}),
            "builder": f"drgdip {drgdip_version()} grouper.dip.catalogue_builder.DipCatalog",
        }
        info.update(meta)
        return Catalogue(self.groups_.select(CATALOGUE_SCHEMA.names), info)

    def _write(self, path: Path, fmt: str, meta: dict, if_exists: IfExists) -> Path:
        """The catalogue format (:func:`write_catalogue`): Parquet, or CSV with a ``.toml`` beside it."""
        return write_catalogue(self.to_catalogue(**meta), path, fmt, if_exists=if_exists)

    @classmethod
    def _read(cls, path: Path, fmt: str) -> DipCatalog:
        return cls.from_catalogue(read_catalogue(path, fmt))

    @classmethod
    def from_catalogue(cls, catalogue: Catalogue | str | Path) -> DipCatalog:
        """Rebuild the settings and the fitted table from a catalogue this class wrote (no refit, no pickle)."""
        if not isinstance(catalogue, Catalogue):
            catalogue = read_catalogue(catalogue)
        meta = dict(catalogue.meta)
        if "params" not in meta:
            raise CatalogueError(
                f"{catalogue.name or 'catalogue'}: no recorded settings (not built by DipCatalog)"
            )
        est = cls(**params_from_meta(meta, cls.optional_settings()))
        est.check_settings()
        est.groups_ = catalogue.table
        est.region_avg_cost_ = float(meta["region_avg_cost"])
        est.score_base_ = float(meta["score_base"])
        est.threshold_ = int(meta["threshold_cases"])
        est.weights_ = restore_summary(est, meta)
        return est


#: Policy key (``dip.grouping.*``, ``dip.catalogue.*``) → DipCatalog setting.
_FROM_POLICY = {
    "dip.grouping.tie_break": "tie_break",
    "dip.grouping.related_match": "related_match",
    "dip.grouping.tier_from": "tier_from",
    "dip.grouping.main_fallback": "main_fallback",
    "dip.grouping.interventional_as": "interventional_as",
    "dip.catalogue.year_weights": "year_weights",
    "dip.catalogue.year_weighting": "year_weighting",
    "dip.catalogue.comprehensive_threshold": "comprehensive_threshold",
    "dip.catalogue.related_max": "related_max",
    "dip.catalogue.related_min_uplift": "related_min_uplift",
    "dip.catalogue.trim": "trim",
    "dip.catalogue.trim_k": "trim_k",
    "dip.catalogue.trim_min_n": "trim_min_n",
    "dip.catalogue.max_trim_rate": "max_trim_rate",
    "dip.catalogue.cv_ddof": "cv_ddof",
    "dip.catalogue.discuss_cv": "discuss_cv",
    "dip.catalogue.score_method": "score_method",
    "dip.catalogue.point_amount": "point_amount",
    "scores.score_scale": "score_scale",
}


def _policy_settings(policy) -> tuple[dict, dict]:
    """DipCatalog settings a policy gives, and the source of each (``setting: "key: citation"``)."""
    if policy.scheme != "dip":
        raise SettingsError(f"{policy.path}: a DIP catalogue needs a DIP policy, not {policy.scheme!r}")
    given, sources = {}, {}

    def put(name: str, value, *keys: str) -> None:
        given[name] = value
        sources[name] = "; ".join(f"{k}: {policy.source_of(k)}" for k in keys)

    for key, name in _FROM_POLICY.items():
        section, *rest = key.split(".")
        value = policy.values[section]
        for part in rest:
            value = value[part]
        if value is not None and value != ():
            put(name, value, key)
    cat = policy.dip.catalogue
    if cat.core_threshold is not None:
        put("threshold", ("fixed", cat.core_threshold), "dip.catalogue.core_threshold")
    if cat.core_coverage is not None:
        put("threshold", ("coverage", cat.core_coverage), "dip.catalogue.core_coverage")
    if cat.trim_lower is not None:
        put(
            "trim_limits",
            (cat.trim_lower, cat.trim_upper),
            "dip.catalogue.trim_lower",
            "dip.catalogue.trim_upper",
        )
    return given, sources


def _describe(desc: dict) -> dict[str, list[str]]:
    """Catalogue columns ``dip_code … name`` of each group (docs/dip.md §6.1 key format); a blank group
    ``KBBZ`` is always present (possibly empty) so that regrouping has somewhere to put unmatched cases."""
    out: dict[str, list[str]] = {c: [] for c in CATALOGUE_SCHEMA.names[:7]}
    for k, sub, cat, main, rel, tier in zip(
        desc["kind"], desc["sub"], desc["cat"], desc["main"], desc["rel"], desc["tier"], strict=True
    ):
        tier_name = TIERS[tier]
        if k == _K_CONS:
            row = (sub, "core", sub, "", "", "", "")
        elif k == _K_MAIN:
            row = (f"{sub}:{main}", "core", sub, main, "", "", "")
        elif k == _K_REL:
            row = (f"{sub}:{main}_{rel}", "core", sub, main, rel, "", "")
        elif k == _K_COMP:
            suffix, label = _TIER_SUFFIX[tier_name], _TIER_NAME[tier_name]
            row = (f"{cat}:{suffix}", "comprehensive", cat, "", "", tier_name, f"{cat}-{label}")
        else:
            continue
        for col, v in zip(out, row, strict=True):
            out[col].append(v)
    for col, v in zip(out, (_BLANK_CODE, "blank", "", "", "", "", "空白病种"), strict=True):
        out[col].append(v)
    return out


def _first_other(h: pa.Table) -> pa.Array:
    """The first other procedure of each case (normalised), ``""`` when none."""
    lst = _procs_list(h)
    flat = _clean(pc.list_flatten(lst), "proc")
    parent = pc.list_parent_indices(lst).to_numpy()
    rows, first = np.unique(parent, return_index=True)
    src = np.full(h.num_rows, len(flat), dtype=np.int64)
    src[rows] = first
    return pa.concat_arrays([flat, pa.array([""], pa.string())]).take(pa.array(src))


def _uniq(key: np.ndarray, mask: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense ids of ``key`` over the rows in ``mask`` (−1 elsewhere) and the cases per id (rows weighing
    ``count``)."""
    inv = np.full(key.size, -1, dtype=np.int64)
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return inv, np.zeros(0, dtype=np.int64)
    _, local = np.unique(key[rows], return_inverse=True)
    inv[rows] = local
    return inv, np.bincount(local, count[rows]).astype(np.int64)


def _member(inv: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Rows whose id (−1 = none) is one of the ``ok`` ids."""
    return np.append(ok, False)[inv]


# -- the passes over the parts of a history (module level: run by the workers of a cluster too) ----------------


def _checks(part: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per case of a part: its data year, its cost (yuan), whether the cost is usable, whether its principal is."""
    for col in ("total_cost", "principal_dx"):
        if col not in part.column_names:
            raise InputError(f"history: missing column {col!r}", column=col)
    years = data_years(part)
    cost = part.column("total_cost").cast(pa.float64()).fill_null(np.nan).to_numpy()
    # a principal is usable when it looks like an ICD-10 code, as group_dip reads it without a codebook
    dagger = pc.replace_substring_regex(_str(part, "principal_dx"), r"\+.*$", "")
    pdx_ok = pc.match_substring_regex(dagger, _ICD10).to_numpy(zero_copy_only=False)
    return years, cost, np.isfinite(cost) & (cost > 0), pdx_ok


def _scan_part(part: pa.Table) -> dict:
    """Pass 1 over a part: per data year its cases, those without a usable cost and those without a usable
    principal; its share of the fingerprint."""
    years, _, cost_ok, pdx_ok = _checks(part)
    return {
        "years": year_counts(years, cost_ok, ~pdx_ok),
        "fingerprint": red.fingerprint_part(part, HISTORY_COLUMNS),
    }


def _combine_scans(results: list[dict]) -> dict:
    return {
        "years": add_year_counts([r["years"] for r in results]),
        "fingerprint": red.combine_fingerprints([r["fingerprint"] for r in results]),
    }


def _used(part: pa.Table, window: tuple[int, ...]) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """The cases of a part the fit uses, their cost and the index of their year in the window."""
    years, cost, cost_ok, pdx_ok = _checks(part)
    use = np.isin(years, window) & cost_ok & pdx_ok
    yid = np.searchsorted(np.asarray(window), years[use]).astype(np.int64)
    return part.filter(pa.array(use)), cost[use], yid


def _keys_part(part: pa.Table, est: DipCatalog, window: tuple[int, ...]) -> pa.Table:
    """Pass 2: the used cases of a part per exact key (:meth:`DipCatalog.case_keys`), with their cost summed in
    :data:`grouper._reduction.UNIT` (as two int64 halves: exact sums in any order)."""
    h, cost, _ = _used(part, window)
    enc = pc.dictionary_encode(est.case_keys(h))
    idx = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n = len(enc.dictionary)
    total, _ = red.sums(red.units(cost), idx, n, squares=False)
    return pa.table(
        {
            "key": enc.dictionary.cast(pa.string()),
            "count": np.bincount(idx, minlength=n).astype(np.int64),
            "hi": np.array([int(x) >> 32 for x in total], np.int64),
            "lo": np.array([int(x) & 0xFFFFFFFF for x in total], np.int64),
        }
    )


def _combine_keys(results: list[pa.Table]) -> pa.Table:
    summed = pa.concat_tables(results).group_by("key").aggregate([(c, "sum") for c in ("count", "hi", "lo")])
    return summed.rename_columns({f"{c}_sum": c for c in ("count", "hi", "lo")})


def _keyed_cases(
    part: pa.Table,
    est: DipCatalog,
    window: tuple[int, ...],
    keys: pa.Array,
    gid_of_key: np.ndarray,
    los: bool,
) -> red.Cases:
    """The used cases of a part in the group of their exact key."""
    h, cost, yid = _used(part, window)
    at = pc.index_in(est.case_keys(h), value_set=keys).to_numpy(zero_copy_only=False).astype(np.int64)
    return red.Cases(cost, gid_of_key[at], yid, los_of(h) if los else None)


def _regrouped_cases(
    part: pa.Table, est: DipCatalog, window: tuple[int, ...], draft: Catalogue, codes: list[str]
) -> red.Cases:
    """The used cases of a part in the group :func:`grouper.dip.group_dip` puts them in when grouping into the
    ``draft`` catalogue; the cases it cannot group are left out."""
    h, cost, yid = _used(part, window)
    gid = est.regroup_cases(h, draft, codes)
    ok = gid >= 0  # an error status of group_dip (e.g. a principal the codebook does not know)
    return red.Cases(cost[ok], gid[ok], yid[ok], los_of(h)[ok])


def _aux_part(part: pa.Table, est: DipCatalog) -> pa.Table:
    """A part of a history with the group and kind of each case in the fitted catalogue ``est``."""
    from grouper.fitting import catalogue_groups

    if part.num_rows == 0:  # nothing to group
        empty = pa.array([], pa.string())
        groups = pa.table({"dip_group": empty, "dip_kind": empty})
    else:
        groups = catalogue_groups(est, part, None)
    part = part.drop_columns([c for c in groups.column_names if c in part.column_names])
    for name in groups.column_names:
        part = part.append_column(name, groups.column(name))
    return part
