"""DRG relative weights (相对权重, RW) from past years of grouped cases: trimmed, year-weighted, ADRG fallback.

docs/drg.md §7.1: ``RW_g = mean_cost(DRG g, trimmed) / mean_cost(all cases, trimmed)``.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper import _history as hist
from grouper import _reduction as red
from grouper.errors import InputError
from grouper.estimator import Estimator
from grouper.settings import Num, Seq, Text
from grouper.version import drgdip_version

__all__ = ["HISTORY_COLUMNS", "WEIGHTS_SCHEMA", "DrgWeights"]

#: The columns of a grouped history that the weights fit reads (and fingerprints).
HISTORY_COLUMNS = ("year", "discharge_date", "drg", "adrg", "total_cost", "los_days")

#: Columns of a weights table, in file order.
WEIGHTS_SCHEMA = pa.schema(
    [
        pa.field("drg", pa.string(), nullable=False),
        pa.field("adrg", pa.string(), nullable=False),
        pa.field("rw", pa.float64()),
        pa.field("basis", pa.string(), nullable=False),  # "drg", or "adrg" for a thin DRG
        pa.field("avg_cost", pa.float64()),
        pa.field("cv", pa.float64()),
        pa.field("n_cases", pa.int64()),
        pa.field("n_trimmed", pa.int64()),
        pa.field("avg_los", pa.float64()),
    ]
)


class DrgWeights(Estimator):
    """DRG relative weights (相对权重) fitted on grouped history (scikit-learn style: settings, fit, ``_``).

    Parameters
    ----------
    years : tuple of int or None
        Data years used, oldest first; ``None`` = the ``len(year_weights)`` years ending with the latest year seen.
    year_weights : tuple of float
        Weight per year, oldest first (default 1:2:7), renormalised over the years a DRG has.
    year_weighting : {"means", "cases"}
        Weights on yearly means (default) or on cases (docs/dip.md §4.3).
    min_n : int
        A DRG with fewer cases takes the weight of its ADRG (all the ADRG's cases pooled; default 10 — an
        assumption, no official figure).
    exclude_drgs : tuple of str
        DRG codes never weighted and left out of the all-case mean (default the ungroupable ``0000``); codes ending
        in ``QY`` (歧义组) are always left out.
    trim, trim_limits, trim_k, trim_min_n
        Trimming within each DRG (and each ADRG for the fallback): ``percentile`` P2.5/P97.5 (default), ``iqr``,
        ``log_sd`` or ``none``; groups under ``trim_min_n`` (25) are not trimmed (docs/drg.md §7.1).
    max_trim_rate : float
        ``warnings_`` notes an overall trimmed share above this (default 0.08).
    cv_ddof : {1, 0}
        SD divisor for the CV (default 1).

    Attributes
    ----------
    weights_ : pa.Table
        One row per DRG, columns of :data:`WEIGHTS_SCHEMA`, sorted by ``drg``.
    overall_mean_ : float
        Year-weighted trimmed mean cost of all cases (the RW denominator), yuan.
    years_, year_weights_ : tuple
    n_cases_, n_excluded_, n_trimmed_ : int, dict, int
    history_ : dict
        Fingerprint of the history (years, rows, SHA-256).
    warnings_ : list of str

    Examples
    --------
    docs/drg.md §7.1 (TEST VECTOR DRG-RW): trimmed DRG mean 20,500 over an all-case trimmed mean 10,250 →
    RW 2.0; see tests/grouper/drg/data_weights/vectors.toml.
    """

    def __init__(
        self,
        *,
        years: tuple[int, ...] | None = None,
        year_weights: tuple[float, ...] = (0.1, 0.2, 0.7),
        year_weighting: str = "means",
        min_n: int = 10,
        exclude_drgs: tuple[str, ...] = ("0000",),
        trim: str = "percentile",
        trim_limits: tuple[float, float] = (0.025, 0.975),
        trim_k: float | None = None,
        trim_min_n: int = 25,
        max_trim_rate: float = 0.08,
        cv_ddof: int = 1,
    ) -> None:
        self._keep(locals())

    SETTINGS = MappingProxyType(
        {
            **hist.YEAR_SETTINGS,
            "min_n": Num(lo=1, integer=True),
            "exclude_drgs": Seq(Text()),
            **hist.TRIM_SETTINGS,
        }
    )
    FITTED = "weights_"
    SCHEMA = WEIGHTS_SCHEMA
    META_KEY = "drgdip.weights"

    def _check_together(self) -> None:
        hist.trim_of(self)

    def fit(self, history: pa.Table) -> DrgWeights:
        """Learn the weights.

        Parameters
        ----------
        history : pa.Table
            Grouped cases: ``drg``, ``total_cost`` (yuan), ``year`` or ``discharge_date``; optional ``adrg``
            (default: the first three characters of ``drg``) and ``los_days``.

        Returns
        -------
        DrgWeights
            ``self``.
        """
        return self.fit_parts(red.LocalParts.of_table(hist.typed_history(history, ("drg",))))

    def fit_parts(self, parts: red.Parts) -> DrgWeights:
        """Learn the weights from a history in parts (:class:`grouper._reduction.Parts`: slices of a table
        here, or files held by the workers of a Dask cluster) by exact reductions: every figure is the same
        however the history is cut.

        Passes over the parts: the years, the (DRG, ADRG) pairs and the fingerprint; the trimming cuts of each
        DRG and each ADRG (one pass, two for quantile cuts); the kept cases' counts and sums per group and year.
        """
        self.check_settings()
        spec = hist.trim_of(self)
        scan = parts.reduce(_scan_part, _combine_scans, tuple(self.exclude_drgs))
        seen, window, w, used = hist.years_used(self, scan["years"], "drg_excluded")
        pairs = {k: v for k, v in scan["pairs"].items() if k[2] in window}
        codes = sorted({d for d, _, _ in pairs})
        adrgs = sorted({a for _, a, _ in pairs})
        ng, na = len(codes), len(adrgs)
        args = (tuple(self.exclude_drgs), window, pa.array(codes, pa.string()), pa.array(adrgs, pa.string()))
        cut = red.cuts(parts, _weights_cases, args, ng + na, spec)
        sums = red.kept_sums(parts, _weights_cases, args, cut, len(window))
        drgs, families = slice(0, ng), slice(ng, ng + na)
        d = hist.stats_of(cut.take(drgs), sums.take(drgs), w, self.year_weighting, self.cv_ddof)
        a = hist.stats_of(cut.take(families), sums.take(families), w, self.year_weighting, self.cv_ddof)
        drg_adrg = _adrg_of(pairs, codes, adrgs)
        thin = d.n < self.min_n
        mean = np.where(thin, a.mean[drg_adrg], d.mean)
        table = pa.table(
            {
                "drg": pa.array(codes, pa.string()),
                "adrg": pa.array(adrgs, pa.string()).take(pa.array(drg_adrg)),
                "rw": pa.array(mean / d.overall_mean, from_pandas=True),
                "basis": pa.array(np.where(thin, "adrg", "drg")),
                "avg_cost": pa.array(mean, from_pandas=True),
                "cv": pa.array(np.where(thin, a.cv[drg_adrg], d.cv), from_pandas=True),
                "n_cases": d.n,
                "n_trimmed": d.n - d.n_kept,
                "avg_los": pa.array(d.los, from_pandas=True),
            },
            schema=WEIGHTS_SCHEMA,
        )
        self.weights_ = table.filter(pc.greater(table["n_cases"], 0)).sort_by("drg")
        self.overall_mean_ = float(d.overall_mean)
        self.years_, self.year_weights_ = tuple(window), tuple(float(x) for x in w)
        self.n_cases_ = used
        self.n_trimmed_ = int((d.n - d.n_kept).sum())
        self.history_ = red.fingerprint_of(scan["fingerprint"], HISTORY_COLUMNS, seen)
        self.warnings_ = []
        thin_adrg = int((thin & (d.n > 0) & (a.n[drg_adrg] < self.min_n)).sum())
        if thin_adrg:
            self.warnings_.append(f"{thin_adrg} DRG(s) below min_n whose ADRG is also below min_n")
        self.warnings_ += hist.trim_warnings(self)
        return self

    def apply(self, cases: pa.Table) -> pa.Table:
        """RW per case from its ``drg``; never refits.

        Returns
        -------
        pa.Table
            One column ``rw`` (float64, null for a DRG without a weight), row for row.
        """
        self._require_fitted()
        idx = pc.index_in(cases.column("drg").cast(pa.string()), value_set=self.weights_.column("drg"))
        rw = self.weights_.column("rw").combine_chunks().fill_null(np.nan).to_numpy()
        pos = idx.fill_null(-1).to_numpy()
        out = np.where(pos >= 0, np.append(rw, np.nan)[pos], np.nan)
        return pa.table({"rw": pa.array(out, pa.float64(), from_pandas=True)})

    def metadata(self, **meta) -> dict:
        """Settings, history fingerprint and summary figures, as written beside the table."""
        self._require_fitted()
        return {
            **meta,
            "overall_mean": self.overall_mean_,
            **hist.fit_summary(self, self.year_weights_),
            "builder": f"drgdip {drgdip_version()} grouper.drg.weights.DrgWeights",
        }

    def _saved(self, meta: dict) -> tuple[pa.Table, dict]:
        return self.weights_, self.metadata(**meta)

    def _restore(self, table: pa.Table, meta: dict) -> None:
        self.weights_ = table
        self.overall_mean_ = float(meta["overall_mean"])
        self.year_weights_ = hist.restore_summary(self, meta)


# -- the passes over the parts of a history (module level: run by the workers of a cluster too) ----------------


def _drgs(
    part: pa.Table, exclude: tuple[str, ...]
) -> tuple[pa.Array, pa.Array, np.ndarray, np.ndarray, np.ndarray]:
    """Per case of a part: its DRG and ADRG, its cost (yuan), whether the cost is usable, whether its DRG is
    left out."""
    for col in ("total_cost", "drg"):
        if col not in part.column_names:
            raise InputError(f"history: missing column {col!r}", column=col)
    drg = pc.utf8_trim_whitespace(part.column("drg").cast(pa.string())).fill_null("").combine_chunks()
    if "adrg" in part.column_names:
        adrg = part.column("adrg").cast(pa.string()).fill_null("").combine_chunks()
    else:
        adrg = pc.utf8_slice_codeunits(drg, 0, 3)
    out = pc.is_in(drg, value_set=pa.array([*exclude, ""], pa.string()))
    out = pc.or_(out, pc.ends_with(drg, "QY")).to_numpy(zero_copy_only=False)
    cost = hist.costs_of(part)
    return drg, adrg, cost, np.isfinite(cost) & (cost > 0), out


def _scan_part(part: pa.Table, exclude: tuple[str, ...]) -> dict:
    """Pass 1 over a part: per data year its cases, those without a usable cost, those of a DRG left out; the
    used cases per (DRG, ADRG, year); its share of the fingerprint."""
    years = hist.data_years(part)
    drg, adrg, _, cost_ok, out = _drgs(part, exclude)
    ok = pa.array(cost_ok & ~out)
    used = pa.table({"drg": drg.filter(ok), "adrg": adrg.filter(ok), "year": pa.array(years).filter(ok)})
    counted = used.group_by(["drg", "adrg", "year"]).aggregate([([], "count_all")]).to_pydict()
    pairs = {
        (d, a, y): n
        for d, a, y, n in zip(
            counted["drg"], counted["adrg"], counted["year"], counted["count_all"], strict=True
        )
    }
    return {
        "years": hist.year_counts(years, cost_ok, out),
        "pairs": pairs,
        "fingerprint": red.fingerprint_part(part, HISTORY_COLUMNS),
    }


def _combine_scans(results: list[dict]) -> dict:
    pairs: dict = {}
    for r in results:
        for k, n in r["pairs"].items():
            pairs[k] = pairs.get(k, 0) + n
    return {
        "years": hist.add_year_counts([r["years"] for r in results]),
        "pairs": pairs,
        "fingerprint": red.combine_fingerprints([r["fingerprint"] for r in results]),
    }


def _weights_cases(
    part: pa.Table, exclude: tuple[str, ...], window: tuple[int, ...], codes: pa.Array, adrgs: pa.Array
) -> red.Cases:
    """The used cases of a part twice: once in their DRG's group (0 … n_drg − 1), once in their ADRG's
    (n_drg …), for the cuts and sums of both (the stays with the DRGs only)."""
    years = hist.data_years(part)
    drg, adrg, cost, cost_ok, out = _drgs(part, exclude)
    use = np.isin(years, window) & cost_ok & ~out
    rows = pa.array(np.flatnonzero(use))
    cost = cost[use]
    gid = pc.index_in(drg.take(rows), value_set=codes).to_numpy(zero_copy_only=False).astype(np.int64)
    aid = pc.index_in(adrg.take(rows), value_set=adrgs).to_numpy(zero_copy_only=False).astype(np.int64)
    yid = np.searchsorted(np.asarray(window), years[use]).astype(np.int64)
    los = hist.los_of(part)[use]
    return red.Cases(
        np.concatenate([cost, cost]),
        np.concatenate([gid, len(codes) + aid]),
        np.concatenate([yid, yid]),
        np.concatenate([los, np.full(los.size, np.nan)]),
    )


def _adrg_of(pairs: dict, codes: list[str], adrgs: list[str]) -> np.ndarray:
    """The ADRG of each DRG: the one most of its used cases carry (the first in code order on a tie)."""
    count: dict = {}
    for (d, a, _), n in pairs.items():
        count[d, a] = count.get((d, a), 0) + n
    best: dict = {}
    for (d, a), n in sorted(count.items()):
        if d not in best or n > best[d][1]:
            best[d] = (a, n)
    at = {a: i for i, a in enumerate(adrgs)}
    return np.array([at[best[d][0]] for d in codes], dtype=np.int64)
