"""A Parquet history with an export's headers (病案号, 总费用, 其他诊断编码1…n) is read as the discharges reader
reads them, as its CSV twin is: the same catalogue and weights as from the canonical Parquet (issue 11)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.errors import InputError
from grouper.fitting import catalogue_to_file, weights_to_file
from grouper.io import read_cases
from grouper.synth import generate
from payment.cli import app

#: Canonical column → the export header written for it (codebooks/records/column_aliases.csv).
EXPORT = {
    "case_id": "病案号",
    "hospital_id": "医疗机构代码",
    "admission_date": "入院日期",
    "discharge_date": "出院日期",
    "total_cost": "总费用",
    "principal_dx": "主要诊断编码",
    "los_days": "实际住院天数",
    "age_years": "年龄",
}


@pytest.fixture(scope="module")
def histories(tmp_path_factory):
    return write_histories(tmp_path_factory.mktemp("histories"))


def write_histories(folder):
    """A synthetic history as canonical Parquet, and as an export writes it in Parquet and in CSV: its headers,
    dates and costs as text, ``other_dx`` as numbered columns (CSV: code lists joined by ``|``)."""
    table, _ = generate(1200, [2023, 2024], 4, seed=3)
    table = table.drop_columns(["proc_dates"])
    pq.write_table(table, folder / "canonical.parquet")
    export = {EXPORT.get(c, c): table.column(c) for c in table.column_names if c != "other_dx"}
    for c in ("admission_date", "discharge_date", "total_cost"):
        export[EXPORT[c]] = table.column(c).cast(pa.string())
    dx = table.column("other_dx").to_pylist()
    for k in range(max(map(len, dx))):
        export[f"其他诊断编码{k + 1}"] = pa.array([v[k] if len(v) > k else "" for v in dx])
    export = pa.table(export)
    pq.write_table(export, folder / "export.parquet")
    procs = pc.binary_join(export.column("other_procs"), "|")
    pacsv.write_csv(export.set_column(export.schema.get_field_index("other_procs"), "other_procs", procs),
                    folder / "export.csv")  # fmt: skip
    return folder


def test_an_export_header_parquet_history_reads_as_its_canonical_twin(histories):
    columns = [
        "case_id",
        "discharge_date",
        "total_cost",
        "los_days",
        "principal_dx",
        "other_dx",
        "other_procs",
    ]
    got = read_cases(histories / "export.parquet", columns=columns)
    want = read_cases(histories / "canonical.parquet", columns=columns)
    assert got.column_names == columns
    for c in columns:
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c


def test_catalog_and_weights_from_an_export_header_parquet_history_are_the_canonical_ones(
    histories, tmp_path
):
    """The commands refused it ("missing column 'total_cost'"; weights pointed at canonicalise())."""
    for name in ("export.parquet", "canonical.parquet", "export.csv"):
        stem = name.replace(".", "-")
        for command in ("catalog", "weights"):
            out = str(tmp_path / f"{command}-{stem}.csv")
            result = CliRunner().invoke(
                app, [command, "--history", str(histories / name), "--out", out, "-q"]
            )
            assert result.exit_code == 0, (name, command, result.output)
    for suffix in (".csv", ".aux.csv"):
        want = (tmp_path / f"catalog-canonical-parquet{suffix}").read_bytes()
        assert (tmp_path / f"catalog-export-parquet{suffix}").read_bytes() == want, suffix
        assert (tmp_path / f"catalog-export-csv{suffix}").read_bytes() == want, suffix
    want = (tmp_path / "weights-canonical-parquet.csv").read_bytes()
    assert (tmp_path / "weights-export-parquet.csv").read_bytes() == want
    assert (tmp_path / "weights-export-csv.csv").read_bytes() == want


@pytest.mark.parametrize("name", ["h.parquet", "h.csv"])
def test_a_history_without_a_cost_column_is_named_by_its_file(histories, tmp_path, name):
    table = pq.read_table(histories / "export.parquet").drop_columns(["总费用", "other_procs"])
    (pq.write_table if name.endswith(".parquet") else pacsv.write_csv)(table, tmp_path / name)
    for fit in (catalogue_to_file, weights_to_file):
        with pytest.raises(
            InputError, match=rf"h\.{name[2:]}: required column 'total_cost' is missing"
        ) as err:
            fit(tmp_path / name, tmp_path / "out.csv")
        assert err.value.column == "total_cost" and "总费用" in str(err.value)


@pytest.mark.parametrize("name", ["h.parquet", "h.csv"])
def test_an_error_about_a_column_names_the_files_own_header_too(histories, tmp_path, name):
    """A date not read and a cost outside its range: ``column 出院日期 (discharge_date)``, not only the
    canonical name the user never wrote."""
    table = pq.read_table(histories / "export.parquet").drop_columns(["other_procs"])
    write = pq.write_table if name.endswith(".parquet") else pacsv.write_csv
    row = (
        3 if name.endswith(".parquet") else 4
    )  # the file's row as the user counts it (CSV: under the header)
    dates = table.column("出院日期").to_pylist()
    dates[2] = "30/06/2024"
    write(
        table.set_column(table.schema.get_field_index("出院日期"), "出院日期", pa.array(dates)),
        tmp_path / name,
    )
    with pytest.raises(InputError, match=rf"row {row}, column 出院日期 \(discharge_date\): not a date"):
        read_cases(tmp_path / name)
    cost = table.column("总费用").to_pylist()
    cost[2] = "1e15"
    write(table.set_column(table.schema.get_field_index("总费用"), "总费用", pa.array(cost)), tmp_path / name)
    with pytest.raises(
        InputError, match=rf"row {row}, column 总费用 \(total_cost\): outside its plausible range"
    ):
        read_cases(tmp_path / name)
