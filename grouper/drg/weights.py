"""DRG relative weights (相对权重, RW) from past years of grouped cases: trimmed, year-weighted, ADRG fallback.

docs/drg.md §7.1: ``RW_g = mean_cost(DRG g, trimmed) / mean_cost(all cases, trimmed)``.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper import _history as hist
from grouper.errors import InputError
from grouper.estimator import Estimator
from grouper.settings import Num, Seq, Text
from grouper.version import drgdip_version

__all__ = ["WEIGHTS_SCHEMA", "DrgWeights"]

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
        self.check_settings()
        spec = hist.trim_of(self)
        h = hist.history_window(self, history, ("drg",))
        years, window, w, cost = h.years, h.window, h.weights, h.cost
        in_window, cost_ok = h.in_window, h.cost_ok
        drg_all = pc.utf8_trim_whitespace(history.column("drg").cast(pa.string())).fill_null("")
        excluded = pc.is_in(drg_all, value_set=pa.array([*self.exclude_drgs, ""], pa.string()))
        excluded = pc.or_(excluded, pc.ends_with(drg_all, "QY")).to_numpy(zero_copy_only=False)
        use = in_window & cost_ok & ~excluded
        self.n_excluded_ = {
            "year_outside": int((~in_window).sum()),
            "cost_invalid": int((in_window & ~cost_ok).sum()),
            "drg_excluded": int((in_window & cost_ok & excluded).sum()),
        }
        if not use.any():
            raise InputError(f"history: no usable case ({hist.describe_excluded(self.n_excluded_)})")
        rows = pa.array(np.flatnonzero(use))
        drg = pc.take(drg_all, rows)
        if "adrg" in history.column_names:
            adrg = pc.take(history.column("adrg").cast(pa.string()).fill_null(""), rows)
        else:
            adrg = pc.utf8_slice_codeunits(drg, 0, 3)
        cost = cost[use]
        yid = np.searchsorted(np.asarray(window), years[use]).astype(np.int64)
        los = hist.los_of(history)[use]

        denc = pc.dictionary_encode(drg).combine_chunks()
        gid, codes = denc.indices.to_numpy().astype(np.int64), denc.dictionary
        aenc = pc.dictionary_encode(adrg).combine_chunks()
        aid = aenc.indices.to_numpy().astype(np.int64)
        ng, na = len(codes), len(aenc.dictionary)
        kw = {"trim": spec, "mode": self.year_weighting, "ddof": self.cv_ddof}
        d, keep = hist.group_stats(cost, gid, yid, ng, w, **kw)
        a, _ = hist.group_stats(cost, aid, yid, na, w, **kw)
        drg_adrg = np.zeros(ng, dtype=np.int64)
        drg_adrg[gid] = aid
        thin = d.n < self.min_n
        mean = np.where(thin, a.mean[drg_adrg], d.mean)
        avg_los = hist.weighted_mean(los, gid, yid, keep & np.isfinite(los), ng, w, self.year_weighting)
        table = pa.table(
            {
                "drg": codes,
                "adrg": aenc.dictionary.take(pa.array(drg_adrg)),
                "rw": pa.array(mean / d.overall_mean, from_pandas=True),
                "basis": pa.array(np.where(thin, "adrg", "drg")),
                "avg_cost": pa.array(mean, from_pandas=True),
                "cv": pa.array(np.where(thin, a.cv[drg_adrg], d.cv), from_pandas=True),
                "n_cases": d.n,
                "n_trimmed": d.n - d.n_kept,
                "avg_los": pa.array(avg_los, from_pandas=True),
            },
            schema=WEIGHTS_SCHEMA,
        )
        self.weights_ = table.sort_by("drg")
        self.overall_mean_ = float(d.overall_mean)
        self.years_, self.year_weights_ = tuple(window), tuple(float(x) for x in w)
        self.n_cases_ = int(cost.size)
        self.n_trimmed_ = int((d.n - d.n_kept).sum())
        self.history_ = hist.fingerprint(
            history, ["year", "discharge_date", "drg", "adrg", "total_cost", "los_days"], years
        )
        self.warnings_ = []
        thin_adrg = int((thin & (a.n[drg_adrg] < self.min_n)).sum())
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
