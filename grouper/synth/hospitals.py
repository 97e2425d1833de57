"""Hospitals (定点医疗机构) of the synthetic region: level, type, county, size and cost factor."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from grouper.errors import SettingsError
from grouper.synth.region import Region

__all__ = ["HOSPITAL_SCHEMA", "HOSPITAL_TYPES", "Hospitals", "make_hospitals"]

#: Columns of ``hospitals.csv``.
HOSPITAL_SCHEMA = pa.schema(
    [
        pa.field("hospital_id", pa.string()),
        pa.field("name", pa.string()),
        pa.field("level", pa.int8()),
        pa.field("region", pa.string()),
        pa.field("type", pa.string()),
    ]
)
#: Hospital types, in the order of ``hospitals.type_share`` in the region file.
HOSPITAL_TYPES = ("general", "tcm", "specialist", "primary-care")
_NUMERALS = "零一二三四五六七八九"


@dataclass(frozen=True, eq=False)
class Hospitals:
    """The hospital table plus the per-hospital arrays the case generator draws from.

    Attributes
    ----------
    table : pa.Table
        ``hospital_id, name, level, region, type`` (:data:`HOSPITAL_SCHEMA`).
    level : np.ndarray of int8
        1, 2 or 3.
    volume : np.ndarray of float64
        Relative volume of ordinary (DIP) cases.
    size : np.ndarray of float64
        Relative size (all cases).
    cost_factor : np.ndarray of float64
        The hospital's own cost factor (mean 1), on top of the level factor.
    bed_day : np.ndarray of int8
        Index of the bed-day category a specialist hospital mainly serves, -1 otherwise.
    """

    table: pa.Table
    level: np.ndarray
    volume: np.ndarray
    size: np.ndarray
    cost_factor: np.ndarray
    bed_day: np.ndarray

    def __len__(self) -> int:
        return self.table.num_rows


def _largest_remainder(total: int, shares: list[float]) -> np.ndarray:
    exact = np.asarray(shares, dtype=float) * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _ordinal(n: int) -> str:
    """'' for the first hospital of a name, 第二 … 第九十九 after it."""
    if n == 1:
        return ""
    tens, ones = divmod(n, 10)
    text = ("" if tens < 2 else _NUMERALS[tens]) + ("十" if tens else "") + (_NUMERALS[ones] if ones else "")
    return "第" + text


def make_hospitals(region: Region, n: int, seed: int) -> Hospitals:
    """Draw ``n`` hospitals: counts per level and type by the region's shares, county, size and cost factor.

    Parameters
    ----------
    region : Region
    n : int
        Number of hospitals (≥ 1).
    seed : int
        Random seed; the same seed gives the same hospitals.

    Returns
    -------
    Hospitals
    """
    if n < 1:
        raise SettingsError("at least one hospital is needed", key="hospitals")
    rng = np.random.default_rng([seed, 0])
    hp = region["hospitals"]
    regions = region["regions"]
    weights = np.array([r["weight"] for r in regions], dtype=float)
    urban = np.array([r["urban"] for r in regions], dtype=bool)
    specialties = hp["specialties"]
    bed_day_names = [c["name"] for c in region.get("bed_day.categories")]

    levels: list[int] = []
    types: list[str] = []
    for level, count in zip((3, 2, 1), _largest_remainder(n, hp["level_share"])[::-1], strict=True):
        for t, k in zip(
            HOSPITAL_TYPES, _largest_remainder(int(count), hp["type_share"][str(level)]), strict=True
        ):
            levels += [level] * int(k)
            types += [t] * int(k)
    level = np.array(levels, dtype=np.int8)
    w = np.where(urban[None, :] | (level[:, None] < 3), weights[None, :], 0.0)
    w = np.where(w.sum(axis=1, keepdims=True) > 0, w, weights[None, :])
    cum = np.cumsum(w, axis=1)
    where = (rng.random(n)[:, None] * cum[:, -1:] >= cum).sum(axis=1)
    size = np.exp(
        np.log(np.asarray(hp["size_median"], dtype=float)[level - 1]) + hp["size_sigma"] * rng.normal(size=n)
    )
    sigma = hp["cost_sigma"]
    cost_factor = np.exp(sigma * rng.normal(size=n))
    for lv in (1, 2, 3):  # volume-weighted mean 1 within each level, so the level factors hold exactly
        at = level == lv
        if at.any():
            cost_factor[at] /= np.average(cost_factor[at], weights=size[at])

    seen: Counter = Counter()
    per_region: Counter = Counter()
    ids, names, bed_day = [], [], []
    n_specialist = 0
    for t, r in zip(types, where, strict=True):
        reg = regions[r]
        if t == "specialist":
            spec = specialties[n_specialist % len(specialties)]
            n_specialist += 1
            template = spec["name"]
            bed_day.append(bed_day_names.index(spec["bed_day"]) if spec["bed_day"] in bed_day_names else -1)
        else:
            template = hp["names"][t]
            bed_day.append(-1)
        seen[(reg["code"], template)] += 1
        per_region[reg["code"]] += 1
        names.append(template.format(region=reg["name"], n=_ordinal(seen[(reg["code"], template)])))
        ids.append(f"H{reg['code']}{per_region[reg['code']]:05d}")
    specialist = np.array([t == "specialist" for t in types])
    table = pa.table(
        [
            pa.array(ids, pa.string()),
            pa.array(names, pa.string()),
            pa.array(level, pa.int8()),
            pa.array([regions[r]["name"] for r in where], pa.string()),
            pa.array(types, pa.string()),
        ],
        schema=HOSPITAL_SCHEMA,
    )
    return Hospitals(
        table=table,
        level=level,
        volume=size * np.where(specialist, hp["specialist_volume"], 1.0),
        size=size,
        cost_factor=cost_factor,
        bed_day=np.array(bed_day, dtype=np.int8),
    )
