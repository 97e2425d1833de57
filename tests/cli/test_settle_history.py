"""`drgdip history` (issue 13 item 4): the --history folder of `drgdip settle` written from three past settled years,
read back by `drgdip settle --history` for the 1:2:7 budget point value."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from payment.cli import app
from payment.history import read_history
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"
runner = CliRunner()


@pytest.fixture(scope="module")
def years(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("history")
    text = DEMO.read_text(encoding="utf-8")
    for y, n in ((2022, 300), (2023, 280), (2024, 320)):
        cases, hospitals = synth.region(n, 3, seed=y, codes=True)
        shifted = pc.cast(cases.column("discharge_date"), pa.timestamp("s"))  # the synthetic year is 2025
        shifted = pc.add(shifted, pa.scalar((y - 2025) * 365 * 86400, pa.duration("s"))).cast(pa.date32())
        cases = cases.set_column(cases.schema.get_field_index("discharge_date"), "discharge_date", shifted)
        pq.write_table(cases, d / f"cases{y}.parquet")
        pacsv.write_csv(hospitals, d / f"hospitals{y}.csv")
        policy = text.replace("year        = 2025", f"year        = {y}").replace("2025-01-01", f"{y}-01-01")
        (d / f"policy{y}.toml").write_text(policy.replace("2025-12-31", f"{y}-12-31"), encoding="utf-8")
        args = ["settle", "--cases", str(d / f"cases{y}.parquet"), "--hospitals", str(d / f"hospitals{y}.csv"),
                "--policy", str(d / f"policy{y}.toml"), "-o", str(d / f"s{y}"), "-q"]  # fmt: skip
        assert runner.invoke(app, args).exit_code == 0
    return d


def test_history_folder_from_three_settled_years_feeds_the_budget_point_value(years, tmp_path):
    d = years
    order = (2024, 2022, 2023)  # any order: the years come from region.json
    args = ["history", *(str(d / f"s{y}") for y in order), "-o", str(tmp_path / "h"), "-q"]
    for y in order:
        args += ["--cases", str(d / f"cases{y}.parquet")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "level_years.csv leaves them out" in result.output  # three hospitals: not every level every year
    history = read_history(tmp_path / "h")
    costs, points = history["pools"]["employee"]
    assert len(costs) == 3 and all(p > 0 for p in points)
    cases = pq.read_table(tmp_path / "h/history_cases.parquet")
    assert sorted(set(cases.column("year").to_pylist())) == [2022, 2023, 2024]
    settle = ["settle", "--cases", str(d / "cases2024.parquet"), "--hospitals", str(d / "hospitals2024.csv"),
              "--policy", str(DEMO), "--history", str(tmp_path / "h"), "--set", "point_value.budget_method=history",
              "-o", str(tmp_path / "s"), "-q"]  # fmt: skip
    assert runner.invoke(app, settle).exit_code == 0
    region = json.loads((tmp_path / "s/region.json").read_text(encoding="utf-8"))
    w = (Fraction(1, 10), Fraction(2, 10), Fraction(7, 10))
    expected = sum(a * Fraction(str(c)) for a, c in zip(w, costs, strict=True)) / sum(
        a * Fraction(str(p)) for a, p in zip(w, points, strict=True)
    )
    got = Fraction(region["pools"]["employee"]["budget_point_value"])
    assert abs(float(got - expected)) < 1e-6


def test_history_refuses_other_than_three_years_or_foreign_cases(years, tmp_path):
    d = years
    two = ["history", str(d / "s2022"), str(d / "s2023"), "--cases", str(d / "cases2022.parquet"),
           "--cases", str(d / "cases2023.parquet"), "-o", str(tmp_path / "h")]  # fmt: skip
    result = runner.invoke(app, two)
    assert result.exit_code == 1 and "three settled years" in result.output
    swapped = ["history", str(d / "s2022"), str(d / "s2023"), str(d / "s2024"), "--cases", str(d / "cases2023.parquet"),
               "--cases", str(d / "cases2022.parquet"), "--cases", str(d / "cases2024.parquet"), "-o", str(tmp_path / "h")]  # fmt: skip
    result = runner.invoke(app, swapped)
    assert result.exit_code == 1 and "not the cases settled in" in result.output
    assert not (tmp_path / "h").exists()


def test_history_reads_cases_exported_with_a_title_and_other_headers(years, tmp_path):
    """The cases of each year as a clerk exports them (GBK CSV, two title lines, 住院流水号 for the case id) give the
    history of the Parquet files, with --header-row and --rename as for `drgdip settle`."""
    d = years
    plain = ["history", *(str(d / f"s{y}") for y in (2022, 2023, 2024)), "-o", str(tmp_path / "a"), "-q"]
    his = ["history", *(str(d / f"s{y}") for y in (2022, 2023, 2024)), "-o", str(tmp_path / "b"), "-q",
           "--header-row", "3", "--rename", "住院流水号=结算ID"]  # fmt: skip
    for y in (2022, 2023, 2024):
        table = pq.read_table(d / f"cases{y}.parquet")
        frame = pa.table(
            [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns],
            names=table.column_names,
        ).to_pandas()
        frame["discharge_date"] = frame["discharge_date"].astype(str)
        text = frame.rename(columns={"case_id": "住院流水号"}).to_csv(index=False)
        (tmp_path / f"his{y}.csv").write_bytes(f"出院病例导出\n{y}年度\n{text}".encode("gbk"))
        plain += ["--cases", str(d / f"cases{y}.parquet")]
        his += ["--cases", str(tmp_path / f"his{y}.csv")]
    for args in (plain, his):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    for name in ("region_years.csv", "hospital_years.csv", "level_years.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
