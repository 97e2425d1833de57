"""payment.pipeline.settle_files: the library behind `drgdip settle` — the join of grouped results with their
discharges by case_id, one normalisation whatever the format, the history folder format, all-or-nothing outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from grouper.errors import InputError, OutputError
from payment.history import read_history, write_history
from payment.pipeline import SETTLEMENT_FILES, settle_files
from tests.payment import payment_synth as synth

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "codebooks/policies/demo-2025.toml"
GROUPING = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]


def _plain(table: pa.Table) -> pa.Table:
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


@pytest.fixture(scope="module")
def region(tmp_path_factory) -> Path:
    """Discharges (Parquet, canonical), their grouped output in order, hospitals, and the base settlement."""
    d = tmp_path_factory.mktemp("files")
    cases, hospitals = synth.region(600, 4, seed=11, codes=True)
    plain = _plain(cases)
    pq.write_table(plain.drop_columns(GROUPING[1:]), d / "discharges.parquet")
    pq.write_table(plain.select(GROUPING), d / "grouped.parquet")
    pacsv.write_csv(hospitals, d / "hospitals.csv")
    settle_files(
        d / "grouped.parquet", d / "hospitals.csv", DEMO, d / "base", discharges=d / "discharges.parquet"
    )
    return d


def _same(a: Path, b: Path) -> None:
    assert (a / "hospitals.csv").read_bytes() == (b / "hospitals.csv").read_bytes()
    assert pq.read_table(a / "cases.parquet").equals(pq.read_table(b / "cases.parquet"))


def test_the_per_case_columns_every_case_has_are_written_not_null(region):
    """cases.parquet declares the columns every case has a value in not null (Parquet then encodes no definition
    levels for them); the others, which a case outside the scheme leaves empty, stay nullable."""
    schema = pq.read_schema(region / "base" / "cases.parquet")
    required = {f.name for f in schema if not f.nullable}
    assert required == {"route", "route_reason", "deviation", "special_case", "base_points", "points",
                        "standard_payment", "fund_payment"}  # fmt: skip
    table = pq.read_table(region / "base" / "cases.parquet")
    assert all(table.column(n).null_count == 0 for n in required)


def test_grouped_rows_in_another_order_are_joined_by_case_id(region):
    grouped = pq.read_table(region / "grouped.parquet")
    pq.write_table(grouped.take(pa.array(range(grouped.num_rows - 1, -1, -1))), region / "reversed.parquet")
    settle_files(
        region / "reversed.parquet",
        region / "hospitals.csv",
        DEMO,
        region / "rev",
        discharges=region / "discharges.parquet",
    )
    _same(region / "base", region / "rev")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.slice(1), "has no grouped row"),
        (lambda t: pa.concat_tables([t, t.slice(0, 1)]), "the same case_id more than once"),
        (lambda t: t.set_column(0, "case_id", pc.if_else(pc.equal(t.column(0), "C5"), "X5", t.column(0))),
         "has no grouped row"),
    ],
)  # fmt: skip
def test_a_missing_or_repeated_case_id_is_an_error_never_a_match_by_position(
    region, tmp_path, change, message
):
    grouped = change(pq.read_table(region / "grouped.parquet"))
    pq.write_table(grouped, tmp_path / "g.parquet")
    with pytest.raises(InputError, match=message) as info:
        settle_files(tmp_path / "g.parquet", region / "hospitals.csv", DEMO, tmp_path / "o",
                     discharges=region / "discharges.parquet")  # fmt: skip
    assert info.value.column == "case_id"
    assert not (tmp_path / "o").exists()


def test_a_canonical_parquet_file_gets_the_value_maps_and_trimming_of_csv(region, tmp_path):
    """issue 11 item 1: 险种 written 310/390 and ids with trailing spaces pay the same from Parquet and CSV."""
    table = _plain(synth.region(600, 4, seed=11, codes=True)[0])
    codes = pc.replace_substring(
        pc.replace_substring(table.column("insurance_type"), "employee", "310"), "resident", "390"
    )
    table = table.set_column(table.schema.get_field_index("insurance_type"), "insurance_type", codes)
    spaced = pc.binary_join_element_wise(table.column("hospital_id"), " ", "")
    table = table.set_column(table.schema.get_field_index("hospital_id"), "hospital_id", spaced)
    pq.write_table(table, tmp_path / "coded.parquet")
    frame = table.to_pandas()
    frame["discharge_date"] = frame["discharge_date"].astype(str)
    frame.to_csv(tmp_path / "coded.csv", index=False)
    for name in ("coded.parquet", "coded.csv"):
        settle_files(tmp_path / name, region / "hospitals.csv", DEMO, tmp_path / name.replace(".", "_"))
    a = json.loads((tmp_path / "coded_parquet" / "region.json").read_text(encoding="utf-8"))
    b = json.loads((tmp_path / "coded_csv" / "region.json").read_text(encoding="utf-8"))
    assert a["totals"] == b["totals"] and a["routes"] == b["routes"]
    assert a["routes"]["EXCLUDED"] < 100  # self-pay only, not every case
    assert (tmp_path / "coded_parquet" / "hospitals.csv").read_bytes() == (
        tmp_path / "coded_csv" / "hospitals.csv"
    ).read_bytes()


def test_the_history_folder_round_trips(tmp_path):
    region_years = pa.table({"pool": ["employee"] * 3 + ["resident"] * 3, "year": [2022, 2023, 2024] * 2,
                             "total_cost": [100.0, 110.0, 120.0, 80.0, 85.0, 90.5], "total_points": [10, 11, 12, 8, 9, 9]})  # fmt: skip
    hospital_years = pa.table({"pool": ["employee", "employee"], "hospital_id": ["H1", "H0"],
                               "total_cost": [5.0, 6.0], "total_points": [2.0, 3.0]})  # fmt: skip
    level_years = pa.table({"year": [2022, 2023, 2024] * 2, "level": [0, 0, 0, 3, 3, 3],
                            "mean_cost": [10.0, 11.0, 12.0, 15.0, 16.5, 18.0]})  # fmt: skip
    cases = pa.table({"pool": ["employee"] * 3, "year": [2022, 2023, 2024], "total_cost": [1.0, 2.0, 3.0],
                      "points": [1.0, 1.0, 1.0]})  # fmt: skip
    folder = write_history(tmp_path / "h", region_years=region_years.to_pandas(), hospital_years=hospital_years,
                           level_years=level_years, cases=cases)  # fmt: skip
    got = read_history(folder)
    assert got["pools"] == {
        "employee": ([100.0, 110.0, 120.0], [10, 11, 12]),
        "resident": ([80.0, 85.0, 90.5], [8, 9, 9]),
    }
    assert got["hospitals"] == {"employee": ([6.0, 5.0], [3.0, 2.0], None)}
    assert set(got["level_coefficients"]) == {3}
    assert got["cases"].column("points").to_pylist() == [1.0, 1.0, 1.0]
    with pytest.raises(OutputError, match="already exists"):
        write_history(folder, cases=cases)


def test_an_existing_settlement_is_kept_unless_replaced_and_a_failure_writes_nothing(region, tmp_path):
    args = (region / "grouped.parquet", region / "hospitals.csv", DEMO)
    with pytest.raises(OutputError, match="already exists"):
        settle_files(*args, region / "base", discharges=region / "discharges.parquet")
    bad = tmp_path / "d.csv"
    bad.write_text("hospital_id,month,amount\nH0000,2025-01,ten\n", encoding="utf-8")
    with pytest.raises(InputError, match="row 2, column amount"):
        settle_files(*args, tmp_path / "o", discharges=region / "discharges.parquet", deductions=bad)
    assert not (tmp_path / "o").exists()
    settle_files(*args, tmp_path / "o", discharges=region / "discharges.parquet")
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(SETTLEMENT_FILES)


def test_money_in_results_is_numeric_and_exact():
    from decimal import Decimal

    import numpy as np

    from payment.policy import Policy
    from payment.settle import settle

    cases, hospitals = synth.region(2_000, 5, seed=4)
    result = settle(cases.to_pandas(), hospitals.to_pandas(), Policy.load(DEMO))  # pandas in, Arrow out
    h = result.hospitals
    for name in ("allocated", "payment_due", "prepaid", "clearing", "audit_deduction"):
        assert h.schema.field(name).type == pa.decimal128(20, 2)
    assert sum(h.column("payment_due").to_pylist()) == Decimal(result.region["totals"]["payment_due"])
    fen = result.cases.column("fund_payment").to_numpy() * 100
    assert (
        result.cases.schema.field("fund_payment").type == pa.float64()
        and (np.round(fen) == np.round(fen, 6)).all()
    )


def test_a_case_file_is_read_for_the_settlement_columns_only(region, tmp_path):
    """Columns the settlement does not read are not read (nor normalised); the settlement is the same, byte for
    byte."""
    from payment.cases import CaseSource

    table = _plain(synth.region(600, 4, seed=11, codes=True)[0])
    extra = table.append_column("remark", pa.array(["x"] * table.num_rows))
    pq.write_table(table, tmp_path / "plain.parquet")
    pq.write_table(extra, tmp_path / "extra.parquet")
    source = CaseSource(tmp_path / "extra.parquet")
    assert "remark" not in next(iter(source())).column_names
    assert "patient_id" in next(iter(source())).column_names  # the bed-day episodes of pass 1
    for name in ("plain", "extra"):
        settle_files(tmp_path / f"{name}.parquet", region / "hospitals.csv", DEMO, tmp_path / name)
    for file in SETTLEMENT_FILES:
        assert (tmp_path / "plain" / file).read_bytes() == (tmp_path / "extra" / file).read_bytes()


def test_a_policy_without_bed_day_categories_reads_no_patient_id(region, tmp_path, monkeypatch):
    """patient_id serves the bed-day episodes only: under a policy without bed-day categories a Parquet case
    file is read without it, and the settlement is byte for byte the one of the file without that column."""
    import payment.cases
    from payment.policy import Policy

    policy = Policy.load(DEMO).replace({"bed_day.categories": None})  # the demo region without its bed days
    assert not policy.bed_day.categories
    table = _plain(synth.region(600, 4, seed=11, codes=True)[0])
    pq.write_table(table, tmp_path / "with.parquet")
    pq.write_table(table.drop_columns(["patient_id"]), tmp_path / "without.parquet")
    read: list[list[str]] = []
    normalised = payment.cases._normalise
    monkeypatch.setattr(payment.cases, "_normalise", lambda t: read.append(t.column_names) or normalised(t))
    for name in ("with", "without"):
        settle_files(tmp_path / f"{name}.parquet", region / "hospitals.csv", policy, tmp_path / name)
    assert read and not any("patient_id" in names for names in read)
    for file in SETTLEMENT_FILES:
        assert (tmp_path / "with" / file).read_bytes() == (tmp_path / "without" / file).read_bytes()
