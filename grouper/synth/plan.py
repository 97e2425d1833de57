"""Run plan of a synthetic region: case mix × hospitals × years, reduced to the arrays each block draws from."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from grouper.errors import SettingsError
from grouper.synth.casemix import CaseMix
from grouper.synth.hospitals import Hospitals, _largest_remainder
from grouper.synth.region import Region

__all__ = ["Plan", "make_plan"]

_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything a block needs; blocks are independent, so any block can be generated on its own.

    Attributes
    ----------
    region, casemix, hospitals : Region, CaseMix, Hospitals
    seed, n_cases : int
    years : np.ndarray
        Discharge years, ascending; ``year_bounds[k]`` is the first global row of ``years[k + 1]``.
    year_start, year_days : np.ndarray
        First day (days since 1970-01-01) and number of days of each year.
    group_cum : np.ndarray
        Cumulative catalogue case counts (draw a group by case count).
    level_cum : np.ndarray
        (groups, 3) cumulative P(level | group): volume of each level tilted towards procedures and severity.
    base_cost : np.ndarray
        Per group: mean cost at a 3rd-level hospital in the base year, so that the region mean is avg_cost.
    death_p : np.ndarray
        Per group: probability of death (离院方式 5).
    hosp_by_level, hosp_cum_by_level : list[np.ndarray]
        Per level 1–3: hospital indices and cumulative ordinary volume.
    bed_day_hosp, bed_day_cum : list[np.ndarray]
        Per bed-day category: hospital indices and cumulative weights.
    """

    region: Region
    casemix: CaseMix
    hospitals: Hospitals
    seed: int
    n_cases: int
    years: np.ndarray
    year_bounds: np.ndarray
    year_start: np.ndarray
    year_days: np.ndarray
    group_cum: np.ndarray
    level_cum: np.ndarray
    base_cost: np.ndarray
    death_p: np.ndarray
    hosp_by_level: list
    hosp_cum_by_level: list
    bed_day_hosp: list
    bed_day_cum: list

    @property
    def block_size(self) -> int:
        return int(self.region["block_size"])

    @property
    def n_blocks(self) -> int:
        return -(-self.n_cases // self.block_size)


def make_plan(
    region: Region, casemix: CaseMix, hospitals: Hospitals, n_cases: int, years: list[int], seed: int
) -> Plan:
    """Spread ``n_cases`` over years (volume growth), levels and hospitals; fix per-group cost and death rates.

    Parameters
    ----------
    region, casemix, hospitals
        From :func:`load_region`, :func:`build_casemix`, :func:`make_hospitals`.
    n_cases : int
        Total number of cases over all years.
    years : list of int
        Discharge years.
    seed : int

    Returns
    -------
    Plan
    """
    if n_cases < 0:
        raise SettingsError("the number of cases must not be negative", key="cases")
    if not years:
        raise SettingsError("at least one year is needed", key="years")
    years_arr = np.array(sorted(set(years)), dtype=np.int64)
    growth = (1 + region.get("growth.volume")) ** (years_arr - years_arr[0])
    counts = _largest_remainder(n_cases, list(growth / growth.sum()))
    starts = np.array([(dt.date(int(y), 1, 1) - _EPOCH).days for y in years_arr], dtype=np.int64)
    ends = np.array([(dt.date(int(y) + 1, 1, 1) - _EPOCH).days for y in years_arr], dtype=np.int64)

    level_cum = _level_cum(region, casemix, hospitals)
    p_level = np.diff(np.concatenate([np.zeros((len(level_cum), 1)), level_cum], axis=1), axis=1)
    factor = np.asarray(region.get("levels.cost_factor"), dtype=float)
    death_p = _death_rates(region, casemix)
    death_norm = 1 + death_p * (region.get("cost.death_factor") - 1)
    base_cost = casemix.avg_cost / (p_level @ factor) / death_norm

    hosp_by_level, hosp_cum_by_level = [], []
    for level in (1, 2, 3):
        idx = np.flatnonzero(hospitals.level == level)
        hosp_by_level.append(idx)
        hosp_cum_by_level.append(np.cumsum(hospitals.volume[idx]))
    bed_day_hosp, bed_day_cum = _bed_day_hospitals(region, hospitals)
    return Plan(
        region=region,
        casemix=casemix,
        hospitals=hospitals,
        seed=int(seed),
        n_cases=int(n_cases),
        years=years_arr,
        year_bounds=np.cumsum(counts)[:-1],
        year_start=starts,
        year_days=ends - starts,
        group_cum=np.cumsum(casemix.weight),
        level_cum=level_cum,
        base_cost=base_cost,
        death_p=death_p,
        hosp_by_level=hosp_by_level,
        hosp_cum_by_level=hosp_cum_by_level,
        bed_day_hosp=bed_day_hosp,
        bed_day_cum=bed_day_cum,
    )


def _level_cum(region: Region, casemix: CaseMix, hospitals: Hospitals) -> np.ndarray:
    volume = np.array([hospitals.volume[hospitals.level == lv].sum() for lv in (1, 2, 3)])
    severity = np.log(casemix.score / np.median(casemix.score))
    tilt = (
        np.asarray(region.get("levels.procedure_tilt"))[None, :] * casemix.surgical[:, None]
        + np.asarray(region.get("levels.severity_tilt"))[None, :] * severity[:, None]
    )
    w = volume[None, :] * np.exp(tilt - tilt.max(axis=1, keepdims=True))
    cum = np.cumsum(w, axis=1)
    cum /= cum[:, -1:]
    cum[:, -1] = 1.0
    return cum


def _death_rates(region: Region, casemix: CaseMix) -> np.ndarray:
    out = region["outcome"]
    rel = (casemix.score / np.median(casemix.score)) ** out["death_severity_power"]
    low = casemix.score < np.quantile(casemix.score, out["low_risk_quantile"])
    w = casemix.weight / casemix.weight.sum()

    def rate(c: float) -> np.ndarray:
        return np.where(low, out["death_low_risk"], np.minimum(c * rel, out["death_cap"]))

    lo, hi = 0.0, 1.0
    while (w * rate(hi)).sum() < out["death_rate"] and hi < 1e6:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (w * rate(mid)).sum() < out["death_rate"] else (lo, mid)
    return rate(hi)


def _bed_day_hospitals(region: Region, hospitals: Hospitals) -> tuple[list, list]:
    share = region.get("bed_day.specialist_share")
    types = np.array(hospitals.table.column("type").to_pylist())
    general = np.flatnonzero((hospitals.level >= 2) & (types != "specialist"))
    if not len(general):
        general = np.arange(len(hospitals))
    idx_out, cum_out = [], []
    for c in range(len(region.get("bed_day.categories"))):
        special = np.flatnonzero(hospitals.bed_day == c)
        w_gen = hospitals.size[general] / hospitals.size[general].sum()
        if len(special):
            w_spec = hospitals.size[special] / hospitals.size[special].sum()
            idx = np.concatenate([special, general])
            w = np.concatenate([share * w_spec, (1 - share) * w_gen])
        else:
            idx, w = general, w_gen
        idx_out.append(idx)
        cum_out.append(np.cumsum(w))
    return idx_out, cum_out
