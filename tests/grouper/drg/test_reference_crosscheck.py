"""Cross-check of ``grouper.group_drg`` against the plain reference grouper (``reference_grouper.py``).

Cases are generated deterministically from the CHS-DRG 1.1 tables so that every ADRG path and every DRG
suffix is exercised (codebooks/chs-drg-1.1/RULES.md §2–§4): for each ADRG a base case is built from its own lists until the
reference lands in that ADRG, then varied in severity (MCC, CC, excluded MCC/CC, none) and, where it
matters, in sex (MDCM/MDCN/MDCO), newborn age and birth weight (PS band edges), trauma body parts (MDCZ),
procedure positions (two-list rules) and procedure groups (NA1/JA1/JA2). On top: every dictionary and list
code once as principal diagnosis and once as principal procedure, random mixtures, and a few missing or
empty values (Java semantics: an empty number is 0, codebooks/chs-drg-1.1/RULES.md §1). Only clean 医保版 codes are used, so the
project's normalisation leaves them unchanged. All 628 DRGs are reached (the list codes that cannot reach
their ADRG, codebooks/chs-drg-1.1/RULES.md §2, never empty a whole DRG).
"""

from __future__ import annotations

import csv
import itertools
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import grouper
from tests.grouper.drg.reference_grouper import ReferenceGrouper

FOLDER = Path(__file__).resolve().parents[3] / "codebooks" / "chs-drg-1.1"
KINDS = Path(__file__).with_name("data") / "kinds_1_1"
SEED = 20261123
N_RANDOM = 1500
ATTEMPTS = 60
PS_EDGES = (1499, 1500, 1999, 2000, 2499, 2500)


@dataclass
class Case:
    """One record; ``None`` is a missing value (principal dx/procedure, sex, numbers)."""

    tag: str  # the path the case was built for, e.g. "GZ1:excluded-mcc", "trauma:2parts:none"
    sex: int | None
    age_years: int | None
    age_days: int | None
    weight: int | None
    dx: list[str | None]  # [principal, others...]
    procs: list[str | None] = field(default_factory=list)  # [principal, others...]

    def reference(self, ref: ReferenceGrouper) -> tuple[str, str, str]:
        dx, procs = [d or "" for d in self.dx], [p or "" for p in self.procs]
        return ref.group(self.sex, self.age_years, self.age_days, self.weight, dx, procs)


def _column(name: str, key: str) -> list[str]:
    with open(FOLDER / name, encoding="utf-8", newline="") as handle:
        return sorted({row[key] for row in csv.DictReader(handle)})


class _Generator:
    """Builds the cases; every choice comes from one seeded ``numpy`` generator and sorted lists."""

    def __init__(self, ref: ReferenceGrouper) -> None:
        self.ref, self.rng = ref, np.random.default_rng(SEED)
        self.all_dx, self.all_proc = _column("dx.csv", "code"), _column("proc.csv", "code")
        self.valid = sorted(ref.proc_valid)
        self.not_valid = sorted(set(self.all_proc) - ref.proc_valid)
        self.mdc_list = {mdc: sorted(codes) for mdc, codes in ref.mdc_dx.items()}
        self.by_part: dict[str, list[str]] = defaultdict(list)
        for code, part in sorted(ref.part.items()):
            self.by_part[part].append(code)
        anydx = set(ref.mdc_dx["MDCZ"]) | ref.mdc_dx["MDCY"] | ref.lists["YC1", "zd"] | ref.lists["PS1", "zd"]
        self.mcc = sorted(set(ref.mcc) - anydx)  # "neutral" other dx: cannot change MDC or ADRG
        self.cc = sorted(set(ref.cc) - anydx)
        self.mcc_of: dict[str, list[str]] = defaultdict(list)
        self.cc_of: dict[str, list[str]] = defaultdict(list)
        for code in self.mcc:
            self.mcc_of[ref.mcc[code]].append(code)
        for code in self.cc:
            self.cc_of[ref.cc[code]].append(code)
        self.cases: list[Case] = []
        self.base: dict[str, Case] = {}  # ADRG -> a case the reference groups there

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def sorted_list(self, adrg: str, name: str) -> list[str]:
        return sorted(self.ref.lists[adrg, name])

    # -- demographics -----------------------------------------------------------------------------
    def person(self, mdc: str, adrg: str) -> tuple[int, int, int, int]:
        sex = {"MDCM": 1, "MDCN": 2}.get(mdc) or self.pick((1, 2, 9))
        if mdc == "MDCP":
            days = self.pick((29, 120, 364)) if adrg == "PV1" else self.pick((0, 1, 14, 28))
            return sex, 0, days, self.pick((*PS_EDGES, 900, 3300))
        age = int(self.rng.integers(1, 95))
        return sex, age, age * 365 + int(self.rng.integers(365)), 0

    # -- one candidate for an ADRG, built from its own lists ---------------------------------------
    def candidate(self, row: dict[str, str]) -> Case:
        mdc, adrg, rule = row["mdc"], row["adrg"], row["rule"]
        zd, ss, ss1 = (self.sorted_list(adrg, name) for name in ("zd", "ss", "ss1"))
        own = [c for c in zd if c in self.ref.mdc_dx[mdc]] or zd
        mdc_codes = self.mdc_list.get(mdc, self.all_dx)
        sex, age, days, weight = self.person(mdc, adrg)
        pdx = self.pick(own) if own and rule != "ANYDX_PPROC_VALID" else self.pick(mdc_codes)
        dx = [pdx]
        if rule in ("ANYDX_PPROC_VALID", "NEWBORN_ANYDX_BW") and self.rng.random() < 0.5:
            dx = [self.pick(mdc_codes), self.pick(zd)]  # the listed dx as an other diagnosis
        if mdc == "MDCZ":
            dx.append(self.other_part(pdx))
        procs: list[str] = []
        if rule in ("PPROC", "PDX_PPROC", "NEWBORN_PPROC"):
            procs = [self.pick(ss)] + ([self.pick(self.all_proc)] if self.rng.random() < 0.3 else [])
        elif rule in ("ANYPROC_BOTH", "PDX_ANYPROC_BOTH"):
            a, b = self.pick(ss), self.pick(ss1)
            lead = self.pick(self.valid) if mdc == "MDCA" else self.pick(self.all_proc)
            procs = self.pick(([a, b], [b, a], [lead, a, b], [lead, b, a]))
        elif rule == "PDX_PROC_GROUPS":
            clause = self.pick(row["params"].split("=", 1)[1].split("|")).split("&")
            procs = [self.pick([c for c in ss if self.ref.group_of[adrg, c] == g]) for g in clause]
            procs = [procs[i] for i in self.rng.permutation(len(procs))]
        elif rule in ("PPROC_VALID", "ANYDX_PPROC_VALID"):
            procs = [self.pick(self.valid)]
        elif rule == "NO_VALID_PROC" and self.rng.random() < 0.5:
            procs = [self.pick(self.not_valid)]
        return Case(f"{adrg}:base", sex, age, days, weight, dx, procs)

    def other_part(self, code: str) -> str:
        parts = sorted(set(self.by_part) - {self.ref.part.get(code)})
        return self.pick(self.by_part[self.pick(parts)])

    # -- variants of a case ------------------------------------------------------------------------
    def severities(self, base: Case, adrg: str) -> None:
        table = self.ref.cce.get(base.dx[0], "")
        mcc = [c for c in self.mcc if self.ref.mcc[c] != table]
        cc = [c for c in self.cc if self.ref.cc[c] != table]
        extras = {"none": [], "mcc": [self.pick(mcc)], "cc": [self.pick(cc)]}
        extras["mcc+cc"] = [self.pick(cc), self.pick(mcc)]
        extras["pdx-repeat"] = [base.dx[0]]
        extras["unknown+cc"] = ["XXX.999", self.pick(cc)]
        if table and self.mcc_of[table]:
            extras["excluded-mcc"] = [self.pick(self.mcc_of[table])]
            extras["excluded-mcc+cc"] = [self.pick(self.mcc_of[table]), self.pick(cc)]
        if table and self.cc_of[table]:
            extras["excluded-cc"] = [self.pick(self.cc_of[table])]
            extras["excluded-cc+mcc"] = [self.pick(self.cc_of[table]), self.pick(mcc)]
        for name, extra in extras.items():
            self.add(base, f"{adrg}:{name}", dx=base.dx + extra)

    def add(self, base: Case, tag: str, **changes) -> None:
        values = {**base.__dict__, "tag": tag, **changes}
        self.cases.append(Case(**{k: list(v) if isinstance(v, list) else v for k, v in values.items()}))

    # -- the whole set -----------------------------------------------------------------------------
    def build(self) -> list[Case]:
        for mdc in self.ref.mdcs:
            for row in self.ref.adrgs[mdc["mdc"]]:
                self.adrg_cases(row)
        self.newborn_grid()
        self.trauma()
        self.hiv()
        self.two_mdc_codes()
        self.edges()
        self.repeated_principal()
        for _ in range(N_RANDOM):
            self.cases.append(self.random_case())
        self.dx_sweep()
        self.proc_sweep()
        return self.cases

    def adrg_cases(self, row: dict[str, str]) -> None:
        adrg = row["adrg"]
        for attempt in range(ATTEMPTS):
            case = self.candidate(row)
            if case.reference(self.ref)[1] == adrg:
                break
            if attempt < 3:
                self.add(case, f"{adrg}:miss")  # a few near misses: fall-through paths
        else:
            return
        self.base[adrg] = case
        self.severities(case, adrg)
        if row["mdc"] in ("MDCM", "MDCN", "MDCO"):
            for sex in (1, 2, 9):
                self.add(case, f"{adrg}:sex{sex}", sex=sex)
        if row["rule"] in ("ANYPROC_BOTH", "PDX_ANYPROC_BOTH") and len(case.procs) >= 2:
            self.add(case, f"{adrg}:one-list-only", procs=case.procs[:1])
        if row["rule"] == "PDX_PROC_GROUPS":
            self.proc_groups(case, row)

    def proc_groups(self, case: Case, row: dict[str, str]) -> None:
        adrg, ss = row["adrg"], self.sorted_list(row["adrg"], "ss")
        groups = sorted({self.ref.group_of[adrg, c] for c in ss})
        for size in range(len(groups) + 1):
            for subset in itertools.combinations(groups, size):
                procs = [self.pick([c for c in ss if self.ref.group_of[adrg, c] == g]) for g in subset]
                procs = [procs[i] for i in self.rng.permutation(len(procs))]
                self.add(case, f"{adrg}:groups{''.join(subset) or '-'}", procs=procs)

    def severity_extra(self, i: int, pdx: str) -> list[str]:
        return [[], [self.pick(self.mcc)], [self.pick(self.cc)], [pdx]][i % 4]

    def dx_sweep(self) -> None:
        """Every code of the dictionary and of the MDC and ADRG lists once as principal diagnosis."""
        in_zd: dict[str, list[str]] = defaultdict(list)
        for (adrg, name), codes in sorted(self.ref.lists.items()):
            for code in codes if name == "zd" else ():
                in_zd[code].append(adrg)
        codes = sorted(set(self.all_dx) | set(self.ref.part) | set(in_zd).union(*self.ref.mdc_dx.values()))
        for i, code in enumerate(codes):
            hosts = [a for a in in_zd.get(code, ()) if a in self.base]
            if hosts:
                base = self.base[self.pick(hosts)]
            elif code in self.ref.mdc_dx["MDCP"]:
                base = Case("", 1, 0, self.pick((0, 14, 28, 29, 200)), self.pick(PS_EDGES), [code])
            else:
                base = Case("", 1, 50, 18300, 0, [code])
            others = [self.other_part(code)] if code in self.ref.part and i % 2 else base.dx[1:]
            dx = [code, *others, *self.severity_extra(i, code)]
            self.add(base, "sweep:dx", sex=(1, 2, 9)[i % 3], dx=dx)

    def proc_sweep(self) -> None:
        """Every code of the dictionary and of the ADRG lists once as principal procedure."""
        in_ss: dict[str, list[str]] = defaultdict(list)
        for (adrg, name), codes in sorted(self.ref.lists.items()):
            for code in codes if name in ("ss", "ss1") else ():
                in_ss[code].append(adrg)
        mdc_codes = sorted(set().union(*self.ref.mdc_dx.values()))
        for i, code in enumerate(sorted(set(self.all_proc) | set(in_ss) | self.ref.proc_valid)):
            hosts = [a for a in in_ss.get(code, ()) if a in self.base]
            base = self.base[self.pick(hosts)] if hosts else Case("", 1, 50, 18300, 0, [self.pick(mdc_codes)])
            procs = [code, *base.procs[1:]] if i % 2 else [code]
            dx = base.dx + self.severity_extra(i, base.dx[0])
            self.add(base, "sweep:proc", sex=base.sex if i % 3 else 9, dx=dx, procs=procs)

    def repeated_principal(self) -> None:
        """A principal that is an MCC/CC outside its own exclusion table, repeated as other dx (§4)."""
        ref, ah1 = self.ref, self.base["AH1"]
        for code in sorted(set(ref.mcc) | set(ref.cc)):
            if ref.cce.get(code, "") not in (ref.mcc.get(code), ref.cc.get(code)):
                self.add(ah1, "repeat:AH1", dx=[code, code])
        for code in ("S06.500x005", "S06.500x007"):  # MDCZ only, MCC, not in its own table
            self.add(self.base["ZZ1"], "repeat:ZZ1", dx=[code, self.other_part(code), code], procs=[])

    def edges(self) -> None:
        """Empty and missing values, duplicates and long lists (null numbers count as 0, codebooks/chs-drg-1.1/RULES.md §1)."""
        ac1, ac1b = self.sorted_list("AC1", "ss"), self.sorted_list("AC1", "ss1")
        gz = "K22.301"
        rows = [
            Case("edge:empty-pdx", 1, 60, 21900, 0, [""], ["37.5100"]),
            Case("edge:null-pdx", 1, 60, 21900, 0, [None], ["37.5100"]),
            Case("edge:null-pdx-no-proc", 2, 60, 21900, 0, [None, "K11.901"]),
            Case("edge:empty-odx", 2, 60, 21900, 0, [gz, "", "K11.901", ""]),
            Case("edge:null-weight-29d", 1, 0, 29, None, ["P07.200"]),
            Case("edge:null-weight-10d", 1, 0, 10, None, ["P07.200"]),
            Case("edge:null-days", 1, 0, None, 1200, ["P07.200"]),
            Case("edge:null-age", 1, None, None, None, [gz]),
            Case("edge:null-sex", None, 60, 21900, 0, [gz]),
            Case("edge:ac1-others-null-lead", 1, 50, 18300, 0, [gz], [None, ac1[0], ac1b[0]]),
            Case("edge:ac1-others-empty-lead", 1, 50, 18300, 0, [gz], ["", ac1[0], ac1b[0]]),
            Case("edge:ac1-others-invalid-lead", 1, 50, 18300, 0, [gz], [self.not_valid[0], ac1[0], ac1b[0]]),
        ]
        self.cases.extend(rows)
        for adrg, base in sorted(self.base.items()):
            if adrg[1] < "K" and base.procs:  # surgical: duplicated procedures and a long tail
                tail = [self.pick(self.all_proc) for _ in range(9)]
                self.add(base, "edge:dup-procs", procs=base.procs * 2 + tail)
            self.add(base, "edge:long-dx", dx=base.dx + [self.pick(self.all_dx) for _ in range(20)])

    def newborn_grid(self) -> None:
        ps = self.sorted_list("PS1", "zd")
        plist = self.mdc_list["MDCP"]
        for days, weight in itertools.product((0, 28, 29), PS_EDGES):
            pdx = self.pick(ps)
            self.cases.append(Case("newborn:ps-pdx", 1, 0, days, weight, [pdx]))
            self.cases.append(Case("newborn:ps-odx", 2, 0, days, weight, [self.pick(plist), pdx]))
            for adrg in ("PR1", "PU1"):
                self.cases.append(
                    Case(f"newborn:{adrg}", 9, 0, days, weight, [self.pick(self.newborn_pdx(adrg))])
                )
            for adrg in ("PB1", "PC1", "PJ1", "PK1"):
                proc = self.pick(self.sorted_list(adrg, "ss"))
                self.cases.append(Case(f"newborn:{adrg}", 1, 0, days, weight, [self.pick(plist)], [proc]))
        for days in (0, 28, 29, 200):
            self.cases.append(Case("newborn:weight0", 1, 0, days, 0, [self.pick(ps)]))
        self.cases.append(Case("newborn:adult-p-code", 1, 3, 1100, 0, [self.pick(plist)]))

    def newborn_pdx(self, adrg: str) -> list[str]:
        """Principal codes of a newborn PDX ADRG that are in the MDCP list and not in the PS list."""
        ps = self.ref.lists["PS1", "zd"]
        return [c for c in self.sorted_list(adrg, "zd") if c in self.ref.mdc_dx["MDCP"] and c not in ps]

    def trauma(self) -> None:
        parts = sorted(self.by_part)
        for _ in range(60):
            first = self.pick(self.by_part[self.pick(parts)])
            same = self.pick(self.by_part[self.ref.part[first]])
            two, three = self.other_part(first), self.other_part(first)
            procs_options = {
                "none": [],
                "not-valid": [self.pick(self.not_valid)],
                "valid": [self.pick(self.valid)],
                "not-valid+valid": [self.pick(self.not_valid), self.pick(self.valid)],
                "zb1": [self.pick(self.sorted_list("ZB1", "ss"))],
            }
            for name, procs in procs_options.items():
                self.cases.append(Case(f"trauma:1part:{name}", 1, 40, 14700, 0, [first, same], procs))
                self.cases.append(Case(f"trauma:2parts:{name}", 2, 40, 14700, 0, [first, two], procs))
            self.cases.append(
                Case("trauma:3parts", 9, 40, 14700, 0, [first, two, three, self.pick(self.mcc)])
            )
            self.cases.append(Case("trauma:odx-only", 1, 40, 14700, 0, [self.pick(self.mcc), first, two]))

    def hiv(self) -> None:
        hiv, yc1 = self.mdc_list["MDCY"], self.sorted_list("YC1", "zd")
        for _ in range(40):
            procs = self.pick(([self.pick(self.valid)], [self.pick(self.not_valid)], []))
            self.cases.append(Case("hiv:odx", 1, 35, 12800, 0, [self.pick(hiv), self.pick(yc1)], procs))
            self.cases.append(Case("hiv:pdx", 2, 35, 12800, 0, [self.pick(yc1)], procs))
            self.cases.append(
                Case("hiv:odx-only", 9, 35, 12800, 0, [self.pick(self.mcc), self.pick(hiv)], procs)
            )

    def two_mdc_codes(self) -> None:
        shared = [
            *sorted(self.ref.mdc_dx["MDCM"] & self.ref.mdc_dx["MDCN"]),
            "C45.100",
            "T28.800x001",
            "Z20.600",
        ]
        for code, sex in itertools.product(shared, (1, 2, 9)):
            self.cases.append(Case("two-mdc", sex, 50, 18300, 0, [code, self.pick(self.cc)]))

    def random_case(self) -> Case:
        rng = self.rng
        infant = rng.random() < 0.15
        age = 0 if infant else int(rng.integers(1, 100))
        days = int(rng.integers(0, 365)) if infant else age * 365 + int(rng.integers(365))
        weight = self.pick((0, *PS_EDGES, 800, 3400)) if infant else 0
        if infant and days <= 28 and weight == 0:
            weight = 2800
        pools = [self.all_dx, self.mcc, self.cc, self.mdc_list["MDCZ"], self.mdc_list["MDCP"]]
        dx = [self.pick(self.pick([self.all_dx, self.mdc_list[self.pick(sorted(self.mdc_list))]]))]
        dx += [self.pick(self.pick(pools)) for _ in range(int(rng.integers(0, 5)))]
        ss_pool = self.sorted_list(self.pick(sorted(self.ref.lists))[0], "ss") or self.valid
        proc_pools = [self.all_proc, self.valid, ss_pool]
        procs = [self.pick(self.pick(proc_pools)) for _ in range(int(rng.integers(0, 4)))]
        return Case("random", self.pick((1, 2, 9)), age, days, weight, dx, procs)


def _table(cases: list[Case]) -> pa.Table:
    return pa.table(
        {
            "case_id": pa.array([f"X{i:06d}" for i in range(len(cases))], pa.string()),
            "sex": pa.array([c.sex for c in cases], pa.int8()),
            "age_years": pa.array([c.age_years for c in cases], pa.int16()),
            "age_days": pa.array([c.age_days for c in cases], pa.int32()),
            "birth_weight_g": pa.array([c.weight for c in cases], pa.int32()),
            "principal_dx": pa.array([c.dx[0] for c in cases], pa.string()),
            "other_dx": pa.array([c.dx[1:] for c in cases], pa.list_(pa.string())),
            "principal_proc": pa.array([c.procs[0] if c.procs else None for c in cases], pa.string()),
            "other_procs": pa.array([c.procs[1:] for c in cases], pa.list_(pa.string())),
        }
    )


@pytest.fixture(scope="module")
def crosscheck(codebook):
    ref = ReferenceGrouper(FOLDER, KINDS)
    cases = _Generator(ref).build()
    expected = [case.reference(ref) for case in cases]
    out = grouper.group_drg(_table(cases), codebook)
    got = list(zip(*(out.column(name).to_pylist() for name in ("mdc", "adrg", "drg")), strict=True))
    return ref, cases, expected, got


def _summary(expected: list[tuple], bad: set[int]) -> str:
    """Per reference ADRG: cases and disagreements; then the ADRGs reached."""
    count: Counter = Counter(exp[1] for exp in expected)
    wrong: Counter = Counter(expected[i][1] for i in bad)
    lines = [f"{adrg}: {count[adrg]} cases, {wrong[adrg]} disagree" for adrg in sorted(wrong)]
    reached = " ".join(f"{adrg}={n}" for adrg, n in sorted(count.items()))
    return "\n".join(["disagreements by reference ADRG:", *lines, f"cases per ADRG: {reached}"])


def test_project_agrees_with_reference(crosscheck):
    _, cases, expected, got = crosscheck
    assert len(cases) > 50_000
    bad = [i for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    detail = [
        f"{cases[i].tag} sex={cases[i].sex} age={cases[i].age_years}/{cases[i].age_days}d "
        f"bw={cases[i].weight} dx={cases[i].dx} procs={cases[i].procs}: reference {expected[i]} project {got[i]}"
        for i in bad[:30]
    ]
    assert not bad, (
        f"{len(bad)} of {len(cases)} disagree\n" + "\n".join(detail) + "\n" + _summary(expected, set(bad))
    )


def test_every_drg_is_produced(crosscheck):
    ref, _, expected, got = crosscheck
    all_drgs = {row["drg"] for rows in ref.drgs.values() for row in rows}
    assert len(all_drgs) == 628
    for source, results in (("reference", expected), ("project", got)):
        missing = sorted(all_drgs - {r[2] for r in results})
        assert not missing, f"{source} never produced: {missing}"
