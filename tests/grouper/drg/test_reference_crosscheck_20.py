"""Cross-check of ``grouper.group_drg`` on chs-drg-2.0 against the plain reference grouper (reference_grouper_20.py).

Cases are generated deterministically: every row of ``data20/conformance_visible.csv`` with verbatim codes (so that
the project's code cleaning leaves it unchanged; sex written as ``男`` or ``1.0`` is kept, as the reader keeps it), and for each such row variants that move it along the
paths of codebooks/chs-drg-2.0/RULES.md: severity (an MCC, a CC, one of the principal's own exclusion table, the principal repeated, no
other diagnosis), the other sex, newborn ages and birth-weight band edges, empty or unreadable ages, procedures
dropped, moved out of the principal position or replaced by a valid one; plus random mixtures of list codes. The
reference and the kernel must agree on every case, and together the cases reach all 409 ADRGs, 634 DRGs and 20 QY
groups.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import grouper
from tests.grouper.drg.reference_grouper_20 import Record, ReferenceGrouper20

FOLDER = Path(__file__).resolve().parents[3] / "codebooks" / "chs-drg-2.0"
DATA = Path(__file__).with_name("data20")
SEED = 20240701
N_RANDOM = 3000
NOISE = (
    "noise=lowercase",
    "noise=pad",
    "noise=old_code",
    "noise=uppercase_proc",
)
AGES = (
    ("0", "0", "1499"),
    ("0", "10", "1500"),
    ("0", "28", "2499"),
    ("0", "29", "2500"),
    ("0", "40", "3000"),
    ("", "", ""),
    ("0", "abc", "3000"),
    ("1", "400", ""),
    ("45", "", ""),
)


def _number(text: str) -> int | None:
    """What the record reader makes of a number field: empty → null, unreadable → -1."""
    text = text.strip()
    if not text:
        return None
    try:
        return int(float(text))
    except ValueError:
        return -1


class Case:
    def __init__(self, sex: str, ages: tuple[str, str, str], dx: list[str], procs: list[str]) -> None:
        self.sex, self.ages, self.dx, self.procs = sex, ages, dx, procs

    def record(self) -> Record:
        return Record(self.sex, *self.ages, self.dx or [""], self.procs)


def _build(ref: ReferenceGrouper20) -> list[Case]:
    rng = np.random.default_rng(SEED)

    def pick(seq):
        return seq[int(rng.integers(len(seq)))]

    mcc, cc = sorted(ref.mcc), sorted(ref.cc)
    valid = sorted(ref.proc_valid)
    dx_lists = sorted({c for (o, n), codes in ref.lists.items() if n.startswith("zd") for c in codes})
    proc_lists = sorted({c for (o, n), codes in ref.lists.items() if n.startswith("ss") for c in codes})
    # DE2's glued code+name item (codebooks/chs-drg-2.0/RULES.md §9, quirk 9)
    proc_lists = [c for c in proc_lists if "耳" not in c]
    cases: list[Case] = []
    with open(DATA / "conformance_visible.csv", encoding="utf-8", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if not r["gen_note"].startswith(NOISE)]
    for i, r in enumerate(rows):
        dx = [r["principal_dx"], *filter(None, r["other_dx"].split("|"))]
        procs = [p for p in [r["principal_proc"], *r["other_procs"].split("|")] if p]
        ages = (r["age_years"], r["age_days"], r["birth_weight_g"])
        base = Case(r["sex"], ages, dx, procs)
        cases.append(base)
        own = ref.cce.get(dx[0])
        excluded = [c for c in mcc + cc if own and ref.mcc.get(c, ref.cc.get(c)) == own]
        extra = [[pick(mcc)], [pick(cc)], [pick(excluded)] if excluded else [], [dx[0]], []][i % 5]
        cases.append(Case(r["sex"], ages, dx[:1] + extra, procs))
        cases.append(Case({"1": "2", "2": "1"}.get(r["sex"], "1"), ages, dx, procs))
        cases.append(Case(r["sex"], AGES[i % len(AGES)], dx, procs))
        variant = [procs[1:], procs[1:] + procs[:1], [pick(valid), *procs[1:]], []][i % 4]
        cases.append(Case(r["sex"], ages, dx, variant))
    for _ in range(N_RANDOM):
        dx = [pick(dx_lists) for _ in range(int(rng.integers(1, 5)))]
        procs = [pick(pick((valid, proc_lists))) for _ in range(int(rng.integers(0, 4)))]
        cases.append(Case(pick(("1", "2")), pick(AGES[:5] + (("60", "22000", ""),) * 5), dx, procs))
    return cases


def _table(cases: list[Case]) -> pa.Table:
    return pa.table(
        {
            "case_id": pa.array([f"G{i:06d}" for i in range(len(cases))], pa.string()),
            "sex": pa.array([_number(c.sex) for c in cases], pa.int8()),
            "sex_text": pa.array([c.sex for c in cases], pa.string()),
            "age_years": pa.array([_number(c.ages[0]) for c in cases], pa.int16()),
            "age_days": pa.array([_number(c.ages[1]) for c in cases], pa.int32()),
            "birth_weight_g": pa.array([_number(c.ages[2]) for c in cases], pa.int32()),
            "principal_dx": pa.array([c.dx[0] if c.dx and c.dx[0] else None for c in cases], pa.string()),
            "other_dx": pa.array([c.dx[1:] for c in cases], pa.list_(pa.string())),
            "principal_proc": pa.array([c.procs[0] if c.procs else None for c in cases], pa.string()),
            "other_procs": pa.array([c.procs[1:] for c in cases], pa.list_(pa.string())),
        }
    )


@pytest.fixture(scope="module")
def crosscheck():
    ref = ReferenceGrouper20(FOLDER)
    cases = _build(ref)
    expected = [ref.group(case.record())[0] for case in cases]
    out = grouper.group_drg(_table(cases), grouper.Codebook.load("chs-drg-2.0"))
    got = list(zip(*(out.column(name).to_pylist() for name in ("mdc", "adrg", "drg")), strict=True))
    return ref, cases, expected, got


def test_kernel_agrees_with_the_reference_on_every_case(crosscheck):
    _, cases, expected, got = crosscheck
    assert len(cases) > 25_000
    bad = [i for i, (e, g) in enumerate(zip(expected, got, strict=True)) if e != g]
    detail = [
        f"sex={cases[i].sex!r} ages={cases[i].ages} dx={cases[i].dx} procs={cases[i].procs}: "
        f"reference {expected[i]} kernel {got[i]}"
        for i in bad[:20]
    ]
    assert not bad, f"{len(bad)} of {len(cases)} disagree\n" + "\n".join(detail)


def test_every_adrg_drg_and_qy_group_is_reached(crosscheck):
    ref, _, expected, got = crosscheck
    all_drgs = {row["drg"] for rows in ref.drgs.values() for row in rows}
    assert len(all_drgs) == 634 and len(ref.drgs) == 409
    for results in (expected, got):
        assert {r[1] for r in results} - {"QY", "00"} == set(ref.drgs)
        assert {r[2] for r in results if r[1] != "QY"} - {"0000"} == all_drgs
        assert len({r[2] for r in results if r[1] == "QY"}) == 20


def _items(first: str, rest: str) -> list[str]:
    """The oracle's list (codebooks/chs-drg-2.0/RULES.md §1.2): principal then the ``|``-separated others; both empty → no item."""
    if not first and not rest:
        return []
    return [first, *rest.split("|")] if rest else [first]


@pytest.mark.parametrize(
    "name", ["conformance_examples.csv", "conformance_published.csv", "conformance_visible.csv"]
)
def test_the_reference_itself_reproduces_the_oracle_on_every_row(crosscheck, name):
    """Taking codes, sex and numbers verbatim, the reference agrees with OpenDRG on all rows, noise included."""
    ref = crosscheck[0]
    with open(DATA / name, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for r in rows:
        dx, procs = _items(r["principal_dx"], r["other_dx"]), _items(r["principal_proc"], r["other_procs"])
        result, status = ref.group(
            Record(r["sex"], r["age_years"], r["age_days"], r["birth_weight_g"], dx, procs)
        )
        assert (result, status) == (
            (r["expected_mdc"], r["expected_adrg"], r["expected_drg"]),
            r["expected_status"],
        ), r
