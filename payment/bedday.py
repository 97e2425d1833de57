"""Bed-day payment (按床日付费): daily rates by category × hospital level, LOS bands with falling factors.

docs/formulas.md §10, vectors D-1…D-6. Day indices continue across merged re-admissions (a stay that
starts within ``readmit_merge_days`` of the previous discharge of the same patient and category); each
episode pays rate × Σ factor(day index) for the days up to ``max_days``; a patient's yearly total is capped.
"""

from __future__ import annotations

import numpy as np

from payment.bands import Bands

__all__ = ["band_day_sum", "bed_day_amounts", "merged_prior_days"]


def band_day_sum(day: np.ndarray, bands: Bands) -> np.ndarray:
    """Σ factor(d) for d = 1 … day: the integral of the day bands over elapsed days ``[0, day)``.

    Examples
    --------
    >>> rows = [{"from": 0, "to": 60, "factor": 1.0}, {"from": 60, "to": 90, "factor": 0.9}, {"from": 90, "factor": 0.8}]
    >>> band_day_sum(np.array([100, 61]), Bands.from_rows(rows, "factor")).tolist()
    [95.0, 60.9]
    """
    return bands.integral(0.0, np.asarray(day, dtype=np.float64))[0]


def merged_prior_days(
    patient: np.ndarray,
    category: np.ndarray,
    admit: np.ndarray,
    discharge: np.ndarray,
    los: np.ndarray,
    merge_days: int,
) -> np.ndarray:
    """Days already counted in the same merged stay before each episode (0 for a fresh stay).

    Episodes of one patient and category are taken in admission order; one that starts at most
    ``merge_days`` days after the previous discharge continues its day count (vector D-5).

    Examples
    --------
    >>> merged_prior_days(np.array([1, 1]), np.array([0, 0]), np.array([0, 60]), np.array([50, 80]),
    ...                   np.array([50, 20]), 15).tolist()
    [0, 50]
    """
    n = len(los)
    if n == 0 or merge_days <= 0:
        return np.zeros(n, dtype=np.int64)
    order = np.lexsort((admit, category, patient))
    p, c, a, d, s = (
        patient[order],
        category[order],
        admit[order],
        discharge[order],
        los[order].astype(np.int64),
    )
    same = np.r_[False, (p[1:] == p[:-1]) & (c[1:] == c[:-1]) & (a[1:] - d[:-1] <= merge_days)]
    chain = np.cumsum(~same)
    cum = np.cumsum(s)
    start_cum = np.zeros(chain[-1] + 1, dtype=np.int64)
    first = np.flatnonzero(~same)
    start_cum[chain[first]] = cum[first] - s[first]
    prior = cum - s - start_cum[chain]
    out = np.empty(n, dtype=np.int64)
    out[order] = prior
    return out


def bed_day_amounts(
    los: np.ndarray,
    rate: np.ndarray,
    bands: Bands,
    *,
    prior_days: np.ndarray | None = None,
    max_days: int | None = None,
    patient: np.ndarray | None = None,
    annual_cap: float | None = None,
) -> np.ndarray:
    """Bed-day amounts (床日费用), float64 yuan, one per episode in input order.

    Parameters
    ----------
    los : ndarray of int, days            length of stay of the episode
    rate : ndarray of float64, yuan/day   daily rate of the case's category at its hospital's level
    bands : Bands                         day bands (``factor``) over elapsed days, :mod:`payment.bands`
    prior_days : ndarray of int, optional days already counted in a merged stay (:func:`merged_prior_days`)
    max_days : int, optional              day index beyond which nothing is paid
    patient : ndarray, optional           with ``annual_cap``: a patient's episodes (in input order) share the cap

    Examples
    --------
    >>> rows = [{"from": 0, "to": 60, "factor": 1.0}, {"from": 60, "to": 90, "factor": 0.9}, {"from": 90, "factor": 0.8}]
    >>> bands = Bands.from_rows(rows, "factor")
    >>> bed_day_amounts(np.array([100, 100]), np.array([300.0, 300.0]), bands, max_days=90).tolist()
    [26100.0, 26100.0]
    """
    los = np.asarray(los, dtype=np.int64)
    prior = np.zeros_like(los) if prior_days is None else np.asarray(prior_days, dtype=np.int64)
    end, start = prior + np.maximum(los, 0), prior
    if max_days is not None:
        end, start = np.minimum(end, max_days), np.minimum(start, max_days)
    amount = rate * (band_day_sum(end, bands) - band_day_sum(start, bands))
    if annual_cap is not None and patient is not None and len(amount):
        order = np.argsort(patient, kind="stable")
        p, a = patient[order], amount[order]
        first = np.r_[True, p[1:] != p[:-1]]
        cum = np.cumsum(a)
        base = np.maximum.accumulate(np.where(first, cum - a, 0.0))
        capped = np.minimum(cum - base, annual_cap)
        paid = np.diff(np.r_[0.0, capped])
        paid[first] = capped[first]
        amount = np.empty_like(amount)
        amount[order] = paid
    return amount
