"""Round trip: a catalogue built from synthetic history drawn around the 平顶山 2025 catalogue recovers its scores.

Each group of the shipped catalogue (codebooks/dip/pingdingshan-2025) gets ``round(n_cases × 200,000 / N)`` cases
over three years, costs log-normal with the group's ``avg_cost`` and ``cv``. Core groups keep their keys; 综合
cases get a unique main procedure of the group's tier (so no core key reaches the threshold); KBBZ cases get a
类目 absent from the catalogue, at most 4 per 类目 (so no 综合 group forms). 综合 conservative (BSZL) groups are
left out: a conservative case is keyed on its 亚目 alone, which cannot be kept below the threshold without
changing the group. Target: median absolute relative score error < 5 % over groups with ≥ 100 cases; and the
DIP grouper, given the built catalogue, puts every case back in the group it was drawn from.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from grouper.dip.catalogue import read_catalogue
from grouper.dip.catalogue_builder import DipCatalog

N_TARGET = 200_000
THRESHOLD = 5


def synthetic_history(catalogue: pa.Table, tmp_path, seed: int = 20250101):
    """Cases drawn from a catalogue; returns (history, tier table path, truth table of generated groups)."""
    rng = np.random.default_rng(seed)
    t = catalogue.filter(pc.is_in(catalogue["kind"], pa.array(["core", "comprehensive", "blank"])))
    t = t.filter(
        pc.invert(pc.and_(pc.equal(t["kind"], "comprehensive"), pc.equal(t["tier"], "conservative")))
    )
    t = t.filter(pc.is_valid(t["cv"]))
    scale = N_TARGET / pc.sum(t["n_cases"]).as_py()
    n = np.round(t["n_cases"].to_numpy() * scale).astype(np.int64)
    keep = n >= THRESHOLD
    t, n = t.filter(pa.array(keep)), n[keep]
    kind = np.array(t["kind"].to_pylist())
    g = np.repeat(np.arange(t.num_rows), n)  # group of each case
    total = g.size
    mean, cv = t["avg_cost"].to_numpy(), t["cv"].to_numpy()
    sigma2 = np.log1p(cv**2)
    cost = rng.lognormal((np.log(mean) - sigma2 / 2)[g], np.sqrt(sigma2)[g])

    sub = np.array(t["subcategory"].to_pylist(), dtype=object)
    pdx = (sub + "00")[g]  # 亚目 K35.8 → principal K35.800
    main = np.array(t["main_proc"].to_pylist(), dtype=object)[g]
    related = [r.split("+") if r else [] for r in t["related_procs"].to_pylist()]
    other = [related[i] for i in g]
    case_kind = kind[g]
    comp = np.flatnonzero(case_kind == "comprehensive")
    pdx[comp] = (sub[g[comp]] + ".Z00").astype(object)  # 亚目 K35.Z: no core key of the catalogue
    fake = np.array([f"F{i:06d}" for i in range(comp.size)], dtype=object)
    main[comp] = fake
    blank = np.flatnonzero(case_kind == "blank")
    used = {c[:3].upper() for c in t["subcategory"].to_pylist() if c}
    free = [f"{chr(65 + i)}{j:02d}" for i in range(26) for j in range(100)]
    free = np.array([c for c in free if c not in used], dtype=object)
    per_cat = THRESHOLD - 1  # neither the 亚目 key nor the 类目 × conservative key reaches the threshold
    assert free.size * per_cat >= blank.size
    pdx[blank] = free[np.arange(blank.size) // per_cat] + ".Z00"
    main[blank] = ""

    real = sorted({c for c in t["main_proc"].to_pylist() if c} | {c for r in related for c in r})
    tiers = pa.table(
        {
            "code": [*real, *fake],
            "tier": ["surgery"] * len(real) + list(np.array(t["tier"].to_pylist())[g[comp]]),
        }
    )
    tier_path = tmp_path / "tiers.csv"
    pacsv.write_csv(tiers, tier_path)
    history = pa.table(
        {
            "truth": pa.array(g),
            "year": rng.choice(np.array([2022, 2023, 2024], dtype=np.int32), total),
            "total_cost": cost,
            "los_days": rng.integers(1, 15, total).astype(np.int32),
            "principal_dx": pa.array(pdx, pa.string()),
            "principal_proc": pa.array(main, pa.string()),
            "other_procs": pa.array(other, pa.list_(pa.string())),
        }
    )
    return history, str(tier_path), t.append_column("n_generated", pa.array(n))


def _codes(truth: pa.Table) -> list[str]:
    # the builder normalises codes: the one 平顶山 key written with a capital X (C56.X, docs/dip.md §6.1) comes back as C56.x
    return [c.replace(".X", ".x") for c in truth["dip_code"].to_pylist()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cat = read_catalogue("pingdingshan-2025").table
    history, tiers, truth = synthetic_history(cat, tmp_path_factory.mktemp("syn"))
    est = DipCatalog(
        tiers=tiers,
        threshold=("fixed", THRESHOLD),
        comprehensive_threshold=THRESHOLD,
        related_min_uplift=None,
    ).fit(history)
    return est, truth, history


def test_every_generated_group_is_rebuilt_with_its_cases(built):
    est, truth, history = built
    got = dict(zip(est.groups_["dip_code"].to_pylist(), est.groups_["n_cases"].to_pylist(), strict=True))
    want = dict(zip(_codes(truth), truth["n_generated"].to_pylist(), strict=True))
    assert got == want
    assert est.n_cases_ == history.num_rows


def test_scores_are_recovered(built):
    est, truth, _ = built
    got = dict(zip(est.groups_["dip_code"].to_pylist(), est.groups_["score"].to_pylist(), strict=True))
    n = truth["n_generated"].to_numpy()
    avg = truth["avg_cost"].to_numpy()
    true_m = (n * avg).sum() / n.sum()  # all-case mean of the generated population
    big = n >= 100
    codes = np.array(_codes(truth))[big]
    want = avg[big] / true_m * 1000
    err = np.abs(np.array([got[c] for c in codes]) / want - 1)
    median = float(np.median(err))
    print(
        f"round trip: {big.sum()} groups with ≥ 100 cases, median |rel. error| {median:.2%}, P90 {np.quantile(err, 0.9):.2%}"
    )
    assert median < 0.05


def test_the_grouper_puts_each_case_back_in_its_group(built):
    est, truth, history = built
    sample = history.slice(0, 50_000)
    sample = sample.append_column("case_id", pa.array([str(i) for i in range(sample.num_rows)]))
    got = est.apply(sample)
    assert got.num_rows == sample.num_rows
    want = pa.array(_codes(truth)).take(sample["truth"])
    same = pc.equal(got["dip_group"], want).fill_null(False).to_numpy(zero_copy_only=False)
    assert same.all(), got.filter(pa.array(~same)).slice(0, 5).to_pylist()
