"""先期分组 (priority groups) and the final dip_code tie-break, on the 平顶山 catalogue plus synthetic rows.

The 平顶山 2025 catalogue has no 先期分组; the rows AA2 and AI1–AI5 are added here with made-up scores to test the
rules of codebooks/dip/priority_rules.csv against the band edges of docs/dip.md §3.3 (data/group_priority.csv).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from grouper.dip import CATALOGUE_SCHEMA, Catalogue, group_dip, read_catalogue

DATA = Path(__file__).parent / "data"
with (DATA / "group_priority.csv").open(encoding="utf-8", newline="") as f:
    CASES = list(csv.DictReader(f))


def _rows(codes: list[str], kind: str, score: float, **over) -> pa.Table:
    n = len(codes)
    base = {"kind": kind, "subcategory": "", "main_proc": "", "related_procs": "", "tier": "", "name": "test"}
    base.update(over)
    cols = {"dip_code": codes, **{k: [v] * n for k, v in base.items()}}
    cols.update(score=[score] * n, avg_cost=[score * 5.718153489] * n, cv=[None] * n, n_cases=[None] * n,
                avg_los=[None] * n, discuss_flag=[0] * n)  # fmt: skip
    return pa.table(cols).cast(CATALOGUE_SCHEMA)


@pytest.fixture(scope="module")
def with_priority() -> Catalogue:
    pds = read_catalogue("pingdingshan-2025")
    extra = _rows(["AA2", "AI1", "AI2", "AI3", "AI4", "AI5"], "priority", 9000.0)
    return Catalogue(pa.concat_tables([pds.table, extra]), {**pds.meta, "name": "pds+priority"})


def _num(v: str, t):
    return t(v) if v else None


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_priority_rules(with_priority, case):
    other = ["37.5100x001"] if case["name"] == "heart transplant as another procedure" else []
    table = pa.table(
        {
            "case_id": ["1"],
            "principal_dx": [case["principal_dx"]],
            "principal_proc": [case["principal_proc"] or None],
            "other_procs": pa.array([other], pa.list_(pa.string())),
            "age_years": pa.array([_num(case["age_years"], int)], pa.int16()),
            "age_days": pa.array([_num(case["age_days"], int)], pa.int32()),
            "birth_weight_g": pa.array([_num(case["birth_weight_g"], int)], pa.int32()),
        }
    )
    got = group_dip(table, with_priority).to_pylist()[0]
    assert (got["dip_group"], got["dip_status"]) == (case["expect_group"], case["expect_status"]), case["why"]
    if got["dip_group"] in ("AA2", "AI1", "AI2", "AI3", "AI4", "AI5"):
        assert (got["dip_kind"], got["dip_score"]) == ("priority", 9000.0)


def test_priority_rules_inactive_without_catalogue_rows():
    # 平顶山 lists no AI groups: a P07 newborn groups ordinarily and needs no birth weight
    table = pa.table({"case_id": ["1"], "principal_dx": ["P07.100"], "age_years": pa.array([0], pa.int16()),
                      "age_days": pa.array([5], pa.int32())})  # fmt: skip
    got = group_dip(table, "pingdingshan-2025").to_pylist()[0]
    assert (got["dip_group"], got["dip_status"]) == ("P07.1", "OK")


def test_full_tie_goes_to_the_smallest_dip_code():
    pds = read_catalogue("pingdingshan-2025")
    # two core groups with the same key, no related procedures and the same score: only dip_code tells them apart
    twins = _rows(["Z98.8:99.9999", "Z98.8:99.9998"], "core", 500.0, subcategory="Z98.8", main_proc="47.0100")
    cat = Catalogue(pa.concat_tables([pds.table, twins]), dict(pds.meta))
    table = pa.table({"case_id": ["1"], "principal_dx": ["Z98.800"], "principal_proc": ["47.0100"]})
    assert group_dip(table, cat)["dip_group"].to_pylist() == ["Z98.8:99.9998"]
    assert pc.sum(pc.equal(cat.table["subcategory"], "Z98.8")).as_py() >= 2
