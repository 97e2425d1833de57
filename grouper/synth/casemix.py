"""Case mix (病种结构) of the synthetic region: catalogue groups and code dictionaries turned into index arrays.

Built once per run from the real DIP catalogue and the CHS-DRG 1.1 医保版 dictionaries, so that the block
generator only draws integers. Every drawable group carries a list of (principal diagnosis, main procedure)
pairs that make a case land back in that group under the default DIP reading (docs/dip.md §3.6–3.8):

* core group ``K35.8`` — a 医保版 code with prefix ``K35.8`` and no procedure;
* core group ``K35.8:47.0100_54.5101`` — such a code, main procedure ``47.0100``, other procedures the related set;
* comprehensive ``K35:SS`` — a code of 类目 ``K35`` whose 亚目 has no core group with the chosen main procedure, and
  a main procedure of the group's tier (by preference one that core groups of the same 类目 use);
* comprehensive ``K35:BSZL`` — a code of a 亚目 without a conservative core group, no procedure.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from grouper.dip import read_catalogue
from grouper.resources import data_path
from grouper.synth.region import Region, RegionError

__all__ = ["SEX_ANY", "SEX_FEMALE", "SEX_MALE", "CaseMix", "build_casemix"]

#: Sex a principal diagnosis allows (from the sex-gated CHS-DRG MDCs M, N and the obstetric MDC O).
SEX_ANY, SEX_MALE, SEX_FEMALE = 0, 1, 2
#: Largest number of (diagnosis, procedure) pairs kept per comprehensive group.
_MAX_PAIRS = 256
#: Tier of a comprehensive group → procedure tiers that make a case land in it (interventional excluded so that
#: either setting of ``interventional_as`` gives the same group).
_TIER_PROCS = {"surgery": ("surgery",), "therapeutic": ("therapeutic",), "diagnostic": ("diagnostic",)}


@dataclass(frozen=True, eq=False)
class CaseMix:
    """Index arrays for vectorized case draws (``g`` = drawable group, ``d`` = dx code, ``p`` = procedure code).

    Attributes
    ----------
    dx_codes, proc_codes : pa.Array
        The 医保版 diagnosis and procedure dictionaries (string); ``d`` and ``p`` index them.
    group_code : pa.Array
        dip_code of each drawable group.
    weight, avg_cost, cv, avg_los, score : np.ndarray
        Per group: catalogue n_cases, avg_cost, cv, avg_los, score.
    surgical : np.ndarray of bool
        Group has a surgical main procedure (core) or is a 相关手术 comprehensive group.
    per_case : np.ndarray of bool
        Group qualifies for the region's per-case (单病种) list.
    pair_off, pair_dx, pair_proc : np.ndarray
        CSR per group of (principal dx, main procedure or -1) pairs that regroup into the group.
    rel_off, rel_proc : np.ndarray
        CSR per group of related procedures (all required).
    dx_sex, dx_sex_gated, dx_obstetric, dx_chapter, dx_excl, dx_table, dx_level, dx_newborn, dx_bw_low, dx_bw_high : np.ndarray
        Per dx code: allowed sex, sex-gated MDC (M/N) only, obstetric, chapter letter (byte), principal's exclusion table (-1 none), CC/MCC table
        (-1 none), 0 / 1 CC / 2 MCC, newborn principal, birth-weight range (g).
    cc_pool, mcc_pool, common_pool : np.ndarray
        dx codes drawn as other diagnoses (CC, MCC, ordinary comorbidities).
    table_off, table_dx : np.ndarray
        CSR per exclusion table of its CC/MCC codes (for draws that the principal's table excludes).
    bed_day_pool : list[np.ndarray]
        Per bed-day category (region order): its principal diagnoses.
    invalid_dx : pa.Array
        Well-formed codes absent from the dictionary (for ``invalid_code`` defects).
    skipped : tuple[str, ...]
        Catalogue groups no generated case can reach (reported, given weight 0).
    """

    dx_codes: pa.Array
    proc_codes: pa.Array
    group_code: pa.Array
    weight: np.ndarray
    avg_cost: np.ndarray
    cv: np.ndarray
    avg_los: np.ndarray
    score: np.ndarray
    surgical: np.ndarray
    per_case: np.ndarray
    pair_off: np.ndarray
    pair_dx: np.ndarray
    pair_proc: np.ndarray
    rel_off: np.ndarray
    rel_proc: np.ndarray
    dx_sex: np.ndarray
    dx_sex_gated: np.ndarray
    dx_obstetric: np.ndarray
    dx_chapter: np.ndarray
    dx_excl: np.ndarray
    dx_table: np.ndarray
    dx_level: np.ndarray
    dx_newborn: np.ndarray
    dx_bw_low: np.ndarray
    dx_bw_high: np.ndarray
    cc_pool: np.ndarray
    mcc_pool: np.ndarray
    common_pool: np.ndarray
    table_off: np.ndarray
    table_dx: np.ndarray
    bed_day_pool: list
    invalid_dx: pa.Array
    skipped: tuple = field(default=())

    @property
    def n_groups(self) -> int:
        """Number of drawable groups."""
        return len(self.weight)


def _csv(path: Path) -> dict[str, list[str]]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {name: frame[name].tolist() for name in frame.columns}


def _offsets(lengths: list[int]) -> np.ndarray:
    off = np.zeros(len(lengths) + 1, dtype=np.int64)
    off[1:] = np.cumsum(lengths)
    return off


def build_casemix(region: Region) -> CaseMix:
    """Compile the region's catalogue and code dictionaries into a :class:`CaseMix`.

    Parameters
    ----------
    region : Region
        Names the DIP catalogue (``catalogue``) and the code dictionaries (``codebook``).

    Returns
    -------
    CaseMix
    """
    book = data_path(region["codebook"])
    dx = _csv(book / "dx.csv")["code"]
    proc = _csv(book / "proc.csv")["code"]
    dx_id = {c: i for i, c in enumerate(dx)}
    proc_id = {c: i for i, c in enumerate(proc)}
    tiers = _csv(data_path("dip", "procedure_tiers.csv"))
    proc_tier = dict(zip(tiers["code"], tiers["tier"], strict=True))

    # Principal diagnoses: by preference codes that open a CHS-DRG MDC (a 亚目 whose codes open none keeps all).
    in_mdc = set(_csv(book / "mdc_dx.csv")["code"])
    by_sub: dict[str, list[int]] = defaultdict(list)
    for i, c in enumerate(dx):
        by_sub[c[:5].lower()].append(i)
    for sub, ids in by_sub.items():
        by_sub[sub] = [i for i in ids if dx[i] in in_mdc] or ids

    dx_arrays = _dx_arrays(region, book, dx, dx_id)
    groups = _groups(region, proc_id, proc_tier, by_sub)
    pools = _pools(region, dx, dx_arrays["dx_level"], dx_arrays["dx_sex"], in_mdc)
    return CaseMix(
        dx_codes=pa.array(dx, pa.string()),
        proc_codes=pa.array(proc, pa.string()),
        **groups,
        **dx_arrays,
        **pools,
    )


def _dx_arrays(region: Region, book: Path, dx: list[str], dx_id: dict[str, int]) -> dict:
    """Per dx code: sex, chapter, CC/MCC level and tables, newborn birth-weight range."""
    n = len(dx)
    sex = np.zeros(n, dtype=np.int8)
    mdc = _csv(book / "mdc_dx.csv")
    male, female, gated = set(), set(), set()
    for m, c in zip(mdc["mdc"], mdc["code"], strict=True):
        (male if m == "MDCM" else female if m in ("MDCN", "MDCO") else set()).add(c)
        if m in ("MDCM", "MDCN"):
            gated.add(c)
    for c in male - female:
        if c in dx_id:
            sex[dx_id[c]] = SEX_MALE
    for c in female - male:
        if c in dx_id:
            sex[dx_id[c]] = SEX_FEMALE
    obstetric = np.array([c.startswith(tuple(region.get("age.obstetric_prefixes"))) for c in dx])
    sex[obstetric] = SEX_FEMALE
    sex_gated = np.zeros(n, dtype=bool)
    sex_gated[[dx_id[c] for c in gated if c in dx_id]] = True
    sex_gated &= sex != SEX_ANY

    excl = np.full(n, -1, dtype=np.int32)
    ex = _csv(book / "cc_exclusion.csv")
    for c, t in zip(ex["principal_code"], ex["table"], strict=True):
        if c in dx_id:
            excl[dx_id[c]] = int(t)
    table = np.full(n, -1, dtype=np.int32)
    level = np.zeros(n, dtype=np.int8)
    for name, lv in (("cc.csv", 1), ("mcc.csv", 2)):
        rows = _csv(book / name)
        for c, t in zip(rows["code"], rows["table"], strict=True):
            if c in dx_id:
                table[dx_id[c]] = int(t)
                level[dx_id[c]] = lv

    newborn = np.zeros(n, dtype=bool)
    bw_low = np.zeros(n, dtype=np.int32)
    bw_high = np.zeros(n, dtype=np.int32)
    prefixes = tuple(region.get("newborn.prefixes"))
    bands = region.get("newborn.weight")
    for i, c in enumerate(dx):
        if c.startswith(prefixes):
            newborn[i] = True
            band = next(b for b in bands if c.startswith(b["prefix"]))
            bw_low[i], bw_high[i] = band["low"], band["high"]
    chapter = np.frombuffer("".join(c[0] for c in dx).encode("ascii"), dtype=np.uint8).copy()
    table_off, table_dx = _tables_csr(table, level)
    return {
        "table_off": table_off,
        "table_dx": table_dx,
        "dx_sex": sex,
        "dx_sex_gated": sex_gated,
        "dx_obstetric": obstetric,
        "dx_chapter": chapter,
        "dx_excl": excl,
        "dx_table": table,
        "dx_level": level,
        "dx_newborn": newborn,
        "dx_bw_low": bw_low,
        "dx_bw_high": bw_high,
    }


def _pools(region: Region, dx: list[str], level: np.ndarray, sex: np.ndarray, in_mdc: set[str]) -> dict:
    """Code pools: other diagnoses (CC, MCC, common), bed-day principals, invalid codes for defects."""
    # Other diagnoses: no sex-specific codes, none of the excluded chapters (obstetric, perinatal, external causes).
    banned = tuple(region.get("secondary_dx.exclude_chapters"))
    usable = (sex == SEX_ANY) & np.array([not c.startswith(banned) for c in dx])
    cc_pool = np.flatnonzero((level == 1) & usable).astype(np.int32)
    mcc_pool = np.flatnonzero((level == 2) & usable).astype(np.int32)
    common = tuple(region.get("secondary_dx.common"))
    common_pool = np.array([i for i, c in enumerate(dx) if c.startswith(common) and level[i] == 0], np.int32)
    if not len(common_pool):
        common_pool = np.flatnonzero((level == 0) & usable).astype(np.int32)
    bed_day_pool = []
    for cat in region.get("bed_day.categories"):
        ids = [i for i, c in enumerate(dx) if c.startswith(tuple(cat["dx"]))]
        pool = np.array([i for i in ids if dx[i] in in_mdc] or ids, np.int32)
        if not len(pool):
            raise RegionError(
                f"{region.path}: bed_day.categories {cat['name']}: no diagnosis code starts with {cat['dx']}"
            )
        bed_day_pool.append(pool)
    known = set(dx)
    invalid = sorted({c[:7] + "x999" for c in dx[:: max(1, len(dx) // 97)]} - known)
    return {
        "cc_pool": cc_pool,
        "mcc_pool": mcc_pool,
        "common_pool": common_pool,
        "bed_day_pool": bed_day_pool,
        "invalid_dx": pa.array(invalid, pa.string()),
    }


def _tables_csr(table: np.ndarray, level: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR by exclusion-table number of the CC/MCC codes in that table."""
    codes = np.flatnonzero((level > 0) & (table >= 0))
    order = np.argsort(table[codes], kind="stable")
    codes = codes[order]
    counts = np.bincount(table[codes], minlength=int(table.max()) + 2)
    off = np.zeros(len(counts) + 1, dtype=np.int64)
    off[1:] = np.cumsum(counts)
    return off, codes.astype(np.int32)


def _groups(region: Region, proc_id: dict, proc_tier: dict, by_sub: dict) -> dict:
    """Drawable groups (core and 综合 with cases) and their (principal dx, main procedure) pairs."""
    cat = read_catalogue(region["catalogue"]).table.to_pydict()
    core_keys: set[tuple[str, str]] = set()
    core_mains_by_cat: dict[str, set[str]] = defaultdict(set)
    for kind, sub, main in zip(cat["kind"], cat["subcategory"], cat["main_proc"], strict=True):
        if kind == "core":
            core_keys.add((sub.lower(), main))
            if main:
                core_mains_by_cat[sub[:3].upper()].add(main)
    mains_by_chapter: dict[str, set[str]] = defaultdict(set)
    for c, mains in core_mains_by_cat.items():
        mains_by_chapter[c[0]] |= mains
    per_case = [(tuple(e["dx"]), set(e["procs"])) for e in region.get("per_case.list")]

    rows: dict[str, list] = defaultdict(list)
    pairs: list[list[tuple[int, int]]] = []
    related: list[list[int]] = []
    skipped = []
    for i, kind in enumerate(cat["kind"]):
        if kind not in ("core", "comprehensive") or not cat["n_cases"][i]:
            continue
        sub, main, tier = cat["subcategory"][i], cat["main_proc"][i], cat["tier"][i]
        if kind == "core":
            rel = [proc_id[p] for p in cat["related_procs"][i].split("+") if p]
            cand = [(d, proc_id[main] if main else -1) for d in by_sub.get(sub.lower(), [])]
            surgical = bool(main) and proc_tier.get(main) in ("surgery", "interventional")
        else:
            rel = []
            pools = (
                core_mains_by_cat.get(sub.upper(), ()),
                mains_by_chapter.get(sub[0].upper(), ()),
                proc_tier,
            )
            cand = _comprehensive_pairs(sub, tier, pools, proc_id, proc_tier, by_sub, core_keys)
            surgical = tier == "surgery"
        if not cand:
            skipped.append(cat["dip_code"][i])
            continue
        pairs.append(cand)
        related.append(rel)
        rows["group_code"].append(cat["dip_code"][i])
        rows["weight"].append(float(cat["n_cases"][i]))
        for key, src in (("avg_cost", "avg_cost"), ("cv", "cv"), ("avg_los", "avg_los"), ("score", "score")):
            rows[key].append(float(cat[src][i]))
        rows["surgical"].append(surgical)
        rows["per_case"].append(
            kind == "core" and any(sub.upper().startswith(d) and main in ps for d, ps in per_case)
        )
    pair_off = _offsets([len(p) for p in pairs])
    pair_dx = np.array([d for p in pairs for d, _ in p], dtype=np.int32)
    pair_proc = np.array([q for p in pairs for _, q in p], dtype=np.int32)
    rel_off = _offsets([len(r) for r in related])
    rel_proc = np.array([q for r in related for q in r], dtype=np.int32)
    return {
        "group_code": pa.array(rows["group_code"], pa.string()),
        "weight": np.array(rows["weight"]),
        "avg_cost": np.array(rows["avg_cost"]),
        "cv": np.nan_to_num(np.array(rows["cv"])),
        "avg_los": np.array(rows["avg_los"]),
        "score": np.array(rows["score"]),
        "surgical": np.array(rows["surgical"], dtype=bool),
        "per_case": np.array(rows["per_case"], dtype=bool),
        "pair_off": pair_off,
        "pair_dx": pair_dx,
        "pair_proc": pair_proc,
        "rel_off": rel_off,
        "rel_proc": rel_proc,
        "skipped": tuple(skipped),
    }


def _comprehensive_pairs(
    category, tier, pools, proc_id, proc_tier, by_sub, core_keys
) -> list[tuple[int, int]]:
    """Pairs for a 综合 group: a 亚目 of the 类目 × a procedure of the tier that no core group of that 亚目 uses.

    Procedures come from the first non-empty pool: main procedures of core groups of the same 类目, of the same
    chapter, then any procedure of the tier.
    """
    subs = sorted({c for c in by_sub if c[:3].upper() == category.upper()})
    if tier == "conservative":
        return [(d, -1) for s in subs if (s, "") not in core_keys for d in by_sub[s]][:_MAX_PAIRS]
    wanted = _TIER_PROCS.get(tier, ())
    out: list[tuple[int, int]] = []
    for pool in pools:
        procs = sorted(p for p in pool if proc_tier.get(p) in wanted)[:64]
        for s in subs:
            free = [p for p in procs if (s, p) not in core_keys]
            for d in by_sub[s][:3]:
                out.extend((d, proc_id[p]) for p in free)
        if out:
            break
    if len(out) > _MAX_PAIRS:
        step = len(out) / _MAX_PAIRS
        out = [out[int(k * step)] for k in range(_MAX_PAIRS)]
    return out
