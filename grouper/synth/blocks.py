"""One block of synthetic discharges: vectorized draws from a :class:`~grouper.synth.plan.Plan`.

Block ``b`` holds global rows ``b × block_size …`` and draws from its own generator seeded with
``(seed, 1, b)``, so a block's content depends only on the seed and its number: the output is the same whatever
the write chunking, and blocks can be generated in any order or in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.schema import DISCHARGE_SCHEMA, FEE_COLUMNS
from grouper.synth.casemix import SEX_ANY
from grouper.synth.plan import Plan
from grouper.synth.region import DEFECT_KINDS

__all__ = ["FEE_FIELDS", "SYNTH_SCHEMA", "TRUTH_FIELD", "generate_block", "output_schema"]

#: Output schema: the canonical discharge columns plus ``synthetic_defect`` (null for a clean row).
SYNTH_SCHEMA = DISCHARGE_SCHEMA.append(pa.field("synthetic_defect", pa.string()))
#: Extra column with the DIP group a row was generated for (null for bed-day rows), on request only.
TRUTH_FIELD = pa.field("synthetic_dip_group", pa.string())
#: The canonical fee breakdown ``fee_01`` … ``fee_14`` (医疗收费项目类别, yuan): filled on request (they then sum to
#: total_cost to the fen), else null.
FEE_FIELDS = tuple(DISCHARGE_SCHEMA.field(name) for name in FEE_COLUMNS)
_NONE = -1


def output_schema(truth: bool = False) -> pa.Schema:
    """:data:`SYNTH_SCHEMA`, plus the truth column when asked for."""
    return SYNTH_SCHEMA.append(TRUTH_FIELD) if truth else SYNTH_SCHEMA


def _lognormal(mean: np.ndarray, sigma: np.ndarray | float, z: np.ndarray) -> np.ndarray:
    """Log-normal values with the given arithmetic mean and log-scale sigma."""
    return mean * np.exp(sigma * z - np.square(sigma) / 2)


def _gather(off: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR gather: the value lists of ``rows`` (-1 = empty list) as (offsets, flat values)."""
    valid = rows >= 0
    r = np.where(valid, rows, 0)
    counts = np.where(valid, off[r + 1] - off[r], 0)
    out_off = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=out_off[1:])
    pos = np.repeat(off[r] - out_off[:-1], counts) + np.arange(out_off[-1])
    return out_off, values[pos]


def generate_block(plan: Plan, b: int, truth: bool = False, fees: bool = False) -> pa.RecordBatch:
    """Generate block ``b`` of the plan.

    Parameters
    ----------
    plan : Plan
    b : int
        Block number, ``0 … plan.n_blocks - 1``.
    truth : bool
        Add :data:`TRUTH_FIELD` (the intended DIP group) for tests and benchmarks.
    fees : bool
        Fill :data:`FEE_FIELDS` (else null), drawn from a generator of their own (the other columns do not change).

    Returns
    -------
    pa.RecordBatch
        Rows of :func:`output_schema`.
    """
    start = b * plan.block_size
    n = min(plan.block_size, plan.n_cases - start)
    rng = np.random.default_rng([plan.seed, 1, b])
    blk = _Block(
        plan, rng, rng.random((22, n)), rng.standard_normal((4, n)), start + np.arange(n, dtype=np.int64)
    )
    _draw_cases(blk)
    _readmit(blk)
    _draw_stay(blk)
    _draw_money(blk)
    return _to_batch(blk, b, truth, fees)


@dataclass(eq=False)
class _Block:
    """The arrays of one block while it is drawn, one entry per row; each step adds its arrays as attributes."""

    plan: Plan
    rng: np.random.Generator
    u: np.ndarray  # uniform streams, one row per use
    z: np.ndarray  # standard normal streams
    gidx: np.ndarray  # global row number

    def set(self, **arrays: np.ndarray) -> None:
        vars(self).update(arrays)


def _draw_cases(blk: _Block) -> None:
    """Population (bed-day category or DIP group), hospital, codes, sex, age, insurance, outcome, day."""
    plan, u, z = blk.plan, blk.u, blk.z
    rg, cm = plan.region, plan.casemix
    year = np.searchsorted(plan.year_bounds, blk.gidx, side="right")
    cats = rg.get("bed_day.categories")
    pop = np.searchsorted(np.cumsum([c["share"] for c in cats]), u[0], side="right")
    regular = pop == len(cats)
    g = np.minimum(np.searchsorted(plan.group_cum, u[1] * plan.group_cum[-1], side="right"), cm.n_groups - 1)
    g = np.where(regular, g, _NONE)
    gg = np.maximum(g, 0)
    hosp = _hospitals(plan, regular, pop, gg, u[2], u[3])
    k = cm.pair_off[gg] + (np.diff(cm.pair_off)[gg] * np.square(u[4])).astype(np.int64)
    pdx = cm.pair_dx[k]
    main = np.where(regular, cm.pair_proc[k], _NONE)
    for c in range(len(cats)):
        rows = pop == c
        pool = cm.bed_day_pool[c]
        pdx[rows] = pool[(u[4][rows] * len(pool)).astype(np.int64)]
    sex = np.where(u[5] < rg.get("age.female_share"), 2, 1).astype(np.int8)
    sex = np.where(cm.dx_sex[pdx] != SEX_ANY, cm.dx_sex[pdx], sex).astype(np.int8)
    age, age_days, bw = _ages(plan, pdx, u[6], u[7], u[8], z[2])
    n_types = len(rg.get("insurance.types"))
    ins = np.searchsorted(np.cumsum(rg.get("insurance.share")), u[9], side="right").clip(max=n_types - 1)
    day = plan.year_start[year] + (u[12] * plan.year_days[year]).astype(np.int64)
    blk.set(
        year=year,
        pop=pop,
        regular=regular,
        g=g,
        hosp=hosp,
        pdx=pdx,
        main=main,
        sex=sex,
        age=age,
        age_days=age_days,
        bw=bw,
        ins=ins,
        day=day,
        dead=regular & (u[10] < plan.death_p[gg]),
        newborn=cm.dx_newborn[pdx],
        patient=blk.gidx.copy(),
    )


def _readmit(blk: _Block) -> None:
    """Re-admissions: copy the patient (and the disease) of an earlier surviving index case of the block."""
    plan, u = blk.plan, blk.u
    rg, hs = plan.region, plan.hospitals
    max_gap = rg.get("readmission.max_gap_days")
    readmit = blk.regular & ~blk.newborn & (u[13] < rg.get("readmission.share"))
    year_end = plan.year_start[blk.year] + plan.year_days[blk.year]
    ok = blk.regular & ~blk.newborn & ~blk.dead & ~readmit & (blk.day < year_end - 2 * max_gap)
    eligible = np.flatnonzero(ok)
    if not len(eligible):
        readmit[:] = False
    rows = np.flatnonzero(readmit)
    index = eligible[(u[14][rows] * len(eligible)).astype(np.int64)] if len(eligible) else rows
    for name in ("g", "pdx", "main", "sex", "age", "ins", "year", "patient", "hosp"):
        arr = getattr(blk, name)
        arr[rows] = arr[index]
    moved = rows[u[15][rows] >= rg.get("readmission.same_hospital")]
    blk.hosp[moved] = _pick(
        plan.hosp_by_level, plan.hosp_cum_by_level, hs.level[blk.hosp[moved]] - 1, u[16][moved]
    )
    gg = np.maximum(blk.g, 0)
    blk.set(readmit=readmit, rows=rows, index=index, dead=blk.regular & (u[10] < plan.death_p[gg]))


def _draw_stay(blk: _Block) -> None:
    """Other diagnoses and procedures, LOS (correlated with cost), dates, ICU and ventilation hours."""
    plan, u, z = blk.plan, blk.u, blk.z
    rg, cm = plan.region, plan.casemix
    gg = np.maximum(blk.g, 0)
    other_off, other_dx, sev = _other_dx(plan, blk.rng, blk.pdx, blk.age)
    rel_off, rel = _gather(cm.rel_off, cm.rel_proc, blk.g)
    rules = rg["cost"]
    rho = rules["los_cost_rho"]
    z_los = rho * z[0] + np.sqrt(1 - rho**2) * z[1]
    los = np.rint(_lognormal(cm.avg_los[gg], rules["los_sigma"], z_los))
    los = np.where(blk.dead, los * rules["death_los_factor"], los)
    max_gap, rows, index = rg.get("readmission.max_gap_days"), blk.rows, blk.index
    los[rows] = np.minimum(los[rows], max_gap)
    for c, cat in enumerate(rg.get("bed_day.categories")):
        r = blk.pop == c
        med = np.log(cat["los_median"]) + rg.get("bed_day.los_sigma") * z_los[r]
        los[r] = np.clip(np.rint(np.exp(med)), *cat["los"])
    los = np.maximum(los, 1).astype(np.int64)
    discharge = blk.day.copy()
    discharge[rows] = blk.day[index] + 1 + (u[17][rows] * max_gap).astype(np.int64) + los[rows]
    out = rg["outcome"]
    icu = blk.regular & ((cm.score[gg] > out["icu_score"]) | blk.dead) & (u[18] < out["icu_share"])
    icu_hours = out["icu_hours_median"] * np.exp(out["icu_hours_sigma"] * z[3])
    icu_hours = np.where(icu, np.minimum(icu_hours, los * 24.0), 0.0)
    vent_hours = np.where(icu & (u[19] < out["vent_share"]), icu_hours * (0.2 + 0.8 * u[20]), 0.0)
    modes = np.asarray(out["modes"], dtype=np.int8)
    mode = modes[np.searchsorted(np.cumsum(out["mode_share"]), u[11], side="right").clip(max=len(modes) - 1)]
    blk.set(
        other_off=other_off,
        other_dx=other_dx,
        sev=sev,
        rel_off=rel_off,
        rel=rel,
        los=los,
        discharge=discharge,
        admission=discharge - los,
        icu_hours=icu_hours,
        vent_hours=vent_hours,
        mode=np.where(blk.dead, 5, mode).astype(np.int8),
    )


def _draw_money(blk: _Block) -> None:
    """Total cost (group mean × level × hospital × growth × severity × death), fund share, payment hint."""
    plan, u, z = blk.plan, blk.u, blk.z
    rg, cm, hs = plan.region, plan.casemix, plan.hospitals
    gg, regular, level = np.maximum(blk.g, 0), blk.regular, hs.level[blk.hosp].astype(np.int64)
    rules = rg["cost"]
    growth = (1 + rg.get("growth.cost")) ** (plan.years[blk.year] - rg["base_year"]).astype(float)
    factor = np.asarray(rg.get("levels.cost_factor"))[level - 1] * hs.cost_factor[blk.hosp] * growth
    sigma = np.sqrt(np.log1p(np.square(cm.cv[gg])))
    sev_factor = 1 + rules["cc_factor"] * (blk.sev == 1) + rules["mcc_factor"] * (blk.sev == 2)
    sev_factor /= sev_factor[regular].mean() if regular.any() else 1.0
    death_factor = np.where(blk.dead, rules["death_factor"], 1.0)
    cost = _lognormal(plan.base_cost[gg], sigma, z[0]) * factor * sev_factor * death_factor
    for c, cat in enumerate(rg.get("bed_day.categories")):
        r = blk.pop == c
        cost[r] = _lognormal(cat["per_day"] * blk.los[r], rg.get("bed_day.cost_sigma"), z[3][r]) * factor[r]
    total = np.maximum(np.rint(cost * 100), 100).astype(np.int64)
    money = rg["insurance"]
    in_scope = np.maximum(total * money["in_scope"] - np.asarray(money["deductible"])[level - 1] * 100, 0)
    fund = np.rint(np.asarray(money["ratio"])[blk.ins] * in_scope).astype(np.int64)
    hint = np.where(regular, np.where(cm.per_case[gg] & (u[21] < rg.get("per_case.take")), 1, 0), 2)
    hint = np.where(np.asarray(money["types"])[blk.ins] == "self_pay", 3, hint)
    blk.set(total=total, fund=np.where(hint == 3, 0, fund), hint=hint)


def _to_batch(blk: _Block, b: int, truth: bool, fees: bool) -> pa.RecordBatch:
    """Apply the defects and build the Arrow columns."""
    plan = blk.plan
    rg, cm, hs = plan.region, plan.casemix, plan.hospitals
    n = len(blk.gidx)
    defect, case_num, pdx_text, sex, los, admission = _defects(blk)
    dept_codes, dept = _departments(plan, blk.pdx, blk.main, blk.age, blk.pop)
    hints = rg["payment_method"]
    hint_codes = [hints["dip"], hints["per_case"], hints["bed_day"], hints["self_pay"]]
    dx_dict = pa.concat_arrays([cm.dx_codes, cm.invalid_dx])
    age, age_days, bw, newborn, main = blk.age, blk.age_days, blk.bw, blk.newborn, blk.main
    total, fund = blk.total, blk.fund
    columns = {
        "case_id": _ids("S", case_num),
        "patient_id": _ids("P", blk.patient),
        "hospital_id": hs.table.column("hospital_id").take(pa.array(blk.hosp)).combine_chunks(),
        "insurance_type": pa.array(rg.get("insurance.types"), pa.string()).take(pa.array(blk.ins)),
        "sex": pa.array(sex, pa.int8()),
        "age_years": pa.array(age, pa.int16()),
        "age_days": pa.array(age_days, pa.int32(), mask=age != 0),
        "birth_weight_g": pa.array(bw, pa.int32(), mask=~newborn),
        "admission_weight_g": pa.array(
            bw + rg.get("newborn.weight_gain_per_day") * age_days, pa.int32(), mask=~newborn
        ),
        "admission_date": pa.array(admission.astype(np.int32), pa.date32()),
        "discharge_date": pa.array(blk.discharge.astype(np.int32), pa.date32()),
        "los_days": pa.array(los, pa.int32()),
        "discharge_mode": pa.array(blk.mode, pa.int8()),
        "department": dept_codes.take(pa.array(dept)),
        "principal_dx": dx_dict.take(pa.array(pdx_text, mask=pdx_text < 0)),
        "other_dx": pa.ListArray.from_arrays(
            pa.array(blk.other_off, pa.int32()), cm.dx_codes.take(pa.array(blk.other_dx))
        ),
        "principal_proc": cm.proc_codes.take(pa.array(np.maximum(main, 0), mask=main < 0)),
        "other_procs": pa.ListArray.from_arrays(
            pa.array(blk.rel_off, pa.int32()), cm.proc_codes.take(pa.array(blk.rel))
        ),
        "icu_hours": pa.array(np.round(blk.icu_hours, 1)),
        "vent_hours": pa.array(np.round(blk.vent_hours, 1)),
        "total_cost": pa.array(total / 100),
        "fund_paid": pa.array(fund / 100),
        "patient_paid": pa.array((total - fund) / 100),
        "payment_method": pa.array(hint_codes).take(pa.array(blk.hint)),
        "synthetic_defect": pa.array(DEFECT_KINDS).take(pa.array(defect, mask=defect < 0)),
    }
    if fees:
        profile = np.where(blk.regular, (main >= 0).astype(np.int64), 2)
        split = _fees(plan, b, total, profile)
        for k, f in enumerate(FEE_FIELDS):
            columns[f.name] = pa.array(split[:, k] / 100)
    if truth:
        columns[TRUTH_FIELD.name] = cm.group_code.take(pa.array(np.maximum(blk.g, 0), mask=blk.g < 0))
    schema = output_schema(truth)
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _pick(idx_by: list, cum_by: list, which: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Draw one member per row from set ``which[row]`` (CSR-free: one searchsorted per set)."""
    out = np.zeros(len(u), dtype=np.int64)
    for s, (idx, cum) in enumerate(zip(idx_by, cum_by, strict=True)):
        rows = which == s
        if rows.any() and len(idx):
            out[rows] = idx[np.minimum(np.searchsorted(cum, u[rows] * cum[-1], side="right"), len(idx) - 1)]
    return out


def _hospitals(plan: Plan, regular, pop, g, u_level, u_hosp) -> np.ndarray:
    level = (u_level[:, None] > plan.level_cum[g]).sum(axis=1).clip(max=2)
    which = np.where(regular, level, 3 + pop)
    return _pick(
        [*plan.hosp_by_level, *plan.bed_day_hosp], [*plan.hosp_cum_by_level, *plan.bed_day_cum], which, u_hosp
    )


def _ages(plan: Plan, pdx, u_child, u_age, u_weight, z):
    rg, cm = plan.region, plan.casemix
    a = rg["age"]
    adult = np.clip(np.rint(a["adult_mean"] + a["adult_sd"] * z), 15, a["max_age"])
    child = 1 + (u_age * 14).astype(np.int64)
    age = np.where(u_child < a["child_share"], child, adult)
    obstetric = np.clip(np.rint(a["obstetric_mean"] + a["obstetric_sd"] * z), *a["obstetric"])
    age = np.where(cm.dx_obstetric[pdx], obstetric, age)
    newborn = cm.dx_newborn[pdx]
    age = np.where(newborn, 0, age).astype(np.int16)
    days = np.where(newborn, (u_age * (rg.get("newborn.age_days_max") + 1)).astype(np.int64), 0)
    low, high = cm.dx_bw_low[pdx], cm.dx_bw_high[pdx]
    weight = low + (u_weight * (high - low + 1)).astype(np.int64)
    return age, days, weight


def _other_dx(plan: Plan, rng: np.random.Generator, pdx, age):
    """Other diagnoses: count by age, class MCC / CC / ordinary, some from the principal's exclusion table.

    Returns CSR offsets, dx indices and the effective severity per row (0, 1 CC, 2 MCC; excluded codes count 0).
    """
    cm, sd = plan.casemix, plan.region["secondary_dx"]
    lam = sd["base"] + sd["per_year"] * np.maximum(age - 40, 0)
    count = np.minimum(rng.poisson(lam), sd["max_count"])
    off = np.zeros(len(pdx) + 1, dtype=np.int64)
    np.cumsum(count, out=off[1:])
    owner = np.repeat(np.arange(len(pdx)), count)
    v = rng.random((3, len(owner)))
    cls = np.where(v[0] < sd["mcc_share"], 2, np.where(v[0] < sd["mcc_share"] + sd["cc_share"], 1, 0))
    code = cm.common_pool[(v[1] * len(cm.common_pool)).astype(np.int64)]
    code = np.where(cls == 1, cm.cc_pool[(v[1] * len(cm.cc_pool)).astype(np.int64)], code)
    code = np.where(cls == 2, cm.mcc_pool[(v[1] * len(cm.mcc_pool)).astype(np.int64)], code)
    t = cm.dx_excl[pdx[owner]]
    tt = np.maximum(t, 0)
    t_off = cm.table_off[np.minimum(tt, len(cm.table_off) - 2)]
    t_cnt = np.where(t >= 0, cm.table_off[np.minimum(tt + 1, len(cm.table_off) - 1)] - t_off, 0)
    same = (cls > 0) & (v[2] < sd["same_table_share"]) & (t_cnt > 0)
    code = np.where(
        same, cm.table_dx[np.minimum(t_off + (v[1] * t_cnt).astype(np.int64), len(cm.table_dx) - 1)], code
    )
    level = cm.dx_level[code]
    counted = (t < 0) | (cm.dx_table[code] != t)
    has_mcc = np.bincount(owner[(level == 2) & counted], minlength=len(pdx)) > 0
    has_cc = np.bincount(owner[(level == 1) & counted], minlength=len(pdx)) > 0
    sev = np.where(has_mcc, 2, np.where(has_cc, 1, 0))
    return off, code, sev


def _departments(plan: Plan, pdx, main, age, pop):
    rg, cm = plan.region, plan.casemix
    d = rg["department"]
    cats = rg.get("bed_day.categories")
    codes = sorted(
        {
            *d["default"],
            d["child"],
            *(v for pair in d["chapter"].values() for v in pair),
            *(c["department"] for c in cats),
        }
    )
    pos = {c: i for i, c in enumerate(codes)}
    table = np.array([[pos[d["default"][0]], pos[d["default"][1]]]] * 256, dtype=np.int64)
    for letter, pair in d["chapter"].items():
        table[ord(letter)] = [pos[pair[0]], pos[pair[1]]]
    dept = table[cm.dx_chapter[pdx], (main >= 0).astype(np.int64)]
    dept = np.where((age < 14) & ~cm.dx_newborn[pdx], pos[d["child"]], dept)
    for c, cat in enumerate(cats):
        dept = np.where(pop == c, pos[cat["department"]], dept)
    return pa.array(codes, pa.string()), dept


def _defects(blk: _Block):
    """Dirty rows: choose rows per defect kind (never a re-admission or its index case), apply the defect.

    Returns the kind index per row (-1 clean) and the changed case number, principal dx index (-1 missing,
    ≥ dictionary size = invalid code), sex, LOS and admission day.
    """
    plan, rng = blk.plan, blk.rng
    rg, cm = plan.region, plan.casemix
    pdx, gidx, discharge = blk.pdx, blk.gidx, blk.discharge
    n = len(pdx)
    kinds = rg.get("defects.kinds")
    counts = rng.multinomial(rng.binomial(n, rg.get("defects.share")), rg.get("defects.kind_share"))
    order = rng.permutation(n)
    v = rng.random(n)
    free = ~blk.readmit
    free[blk.index] = False
    defect = np.full(n, -1, dtype=np.int64)
    pdx_text = pdx.astype(np.int64)
    case_num = gidx.copy()
    sex, los, admission = blk.sex.copy(), blk.los.copy(), blk.admission.copy()
    for kind, count in zip(kinds, counts, strict=True):
        pool = free & (defect < 0)
        if kind == "sex_conflict":
            pool &= cm.dx_sex_gated[pdx]
        elif kind == "duplicate_case_id":
            pool[0] = False
        rows = order[pool[order]][:count]
        defect[rows] = DEFECT_KINDS.index(kind)
        if kind == "invalid_code":
            pdx_text[rows] = len(cm.dx_codes) + (v[rows] * len(cm.invalid_dx)).astype(np.int64)
        elif kind == "missing_pdx":
            pdx_text[rows] = -1
        elif kind == "sex_conflict":
            sex[rows] = 3 - sex[rows]
        elif kind == "los_negative":
            los[rows] = -(1 + (v[rows] * 5).astype(np.int64))
            admission[rows] = discharge[rows] - los[rows]
        elif kind == "duplicate_case_id":
            case_num[rows] = gidx[(v[rows] * rows).astype(np.int64)]
    return defect, case_num, pdx_text, sex, los, admission


def _fees(plan: Plan, b: int, total: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Split each total (fen) over the 14 fee categories: Dirichlet shares, then the largest-remainder rule."""
    rule = plan.region["fees"]
    rng = np.random.default_rng([plan.seed, 2, b])
    shares = np.array([rule["conservative"], rule["procedure"], rule["bed_day"]])[profile]
    draw = rng.standard_gamma(rule["concentration"] * shares)
    exact = total[:, None] * (draw / draw.sum(axis=1, keepdims=True))
    fen = np.floor(exact).astype(np.int64)
    order = np.argsort(fen - exact, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(len(order), axis=0), axis=1)
    return fen + (rank < (total - fen.sum(axis=1))[:, None])


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), 10, "0")
    return pc.binary_join_element_wise(prefix, text, "")
