"""Risk classes of groups for the low-risk mortality (低风险组死亡率), docs/audit.md §1.1.

For each group over the reference population: mortality m = deaths / cases; z = (ln m − mean) / sd over the
groups with m > 0 and enough cases; z < −1 low, −1 ≤ z < 0 mid-low, 0 ≤ z < 1 mid-high, z ≥ 1 high. A group with
no death is ``zero_deaths`` (default low); one with fewer than ``min_cases`` reference cases is unclassed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RISK_CLASSES", "risk_classes"]

#: Class labels, index = class code; the last one is "unclassed".
RISK_CLASSES = ("low", "mid_low", "mid_high", "high", "unclassed")
_UNCLASSED = 4


def risk_classes(
    cases: np.ndarray,
    deaths: np.ndarray,
    *,
    min_cases: int = 30,
    zero_deaths: str = "low",
    sd: str = "population",
) -> tuple[np.ndarray, np.ndarray]:
    """Risk class code per group (index into :data:`RISK_CLASSES`) and the z score (NaN when none).

    Parameters
    ----------
    cases, deaths : ndarray of int    per group, over the reference population
    min_cases : int                   fewer reference cases → unclassed
    zero_deaths : {"low", "unclassed"}   the class of a group with no death
    sd : {"population", "sample"}     divisor n or n − 1 of the standard deviation

    Examples
    --------
    docs/audit.md §1.1: mortality 0.001, 0.002, 0.01, 0.05, 0.2 (1000 cases each):

    >>> c, z = risk_classes(np.full(5, 1000), np.array([1, 2, 10, 50, 200]))
    >>> [RISK_CLASSES[i] for i in c], np.round(z, 3).tolist()
    (['low', 'mid_low', 'mid_low', 'mid_high', 'high'], [-1.241, -0.888, -0.07, 0.747, 1.452])
    """
    cases = np.asarray(cases, np.float64)
    deaths = np.asarray(deaths, np.float64)
    enough = cases >= min_cases
    m = np.divide(deaths, cases, out=np.zeros_like(cases), where=cases > 0)
    use = enough & (m > 0)
    z = np.full(len(cases), np.nan)
    if use.any():
        ln = np.log(m[use])
        spread = ln.std(ddof=1 if sd == "sample" else 0) if use.sum() > (1 if sd == "sample" else 0) else 0.0
        z[use] = (ln - ln.mean()) / spread if spread > 0 else 0.0
    cls = np.full(len(cases), _UNCLASSED, np.int8)
    cls[use] = np.digitize(z[use], [-1.0, 0.0, 1.0]).astype(np.int8)
    if zero_deaths == "low":
        cls[enough & (m == 0)] = 0
    return cls, z
