"""The export-layout options on every command that reads discharges or past cases (issue 13 item 2): `drgdip audit`,
`catalog` and `weights` read an HIS export (GBK CSV or Excel, two title rows, a case-id header of another name, a
column drgdip does not read) as they read the plain file, with --header-row/--sheet/--rename; --show-mapping prints
what each header was read as, and the unrecognised column is warned about once."""

from __future__ import annotations

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.synth import generate
from payment.cli import app

runner = CliRunner()
TITLE = ["某某医院出院病例导出", "统计期间：2022—2024年"]
LAYOUT = ["--header-row", "3", "--rename", "住院流水号=结算ID"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("layouts")
    cases, _ = generate(600, [2022, 2023, 2024], 3, seed=21)
    cases = cases.drop(["synthetic_defect", "sex_text"])
    plain = pa.table(
        [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
        names=cases.column_names,
    )
    pq.write_table(plain, d / "plain.parquet")
    text_lists = [
        pc.binary_join(c.cast(pa.list_(pa.string())), "|") if pa.types.is_list(c.type) else c
        for c in plain.columns
    ]  # CSV: a|b
    frame = pa.table(text_lists, names=plain.column_names).to_pandas()
    for c in ("discharge_date", "admission_date"):
        if c in frame:
            frame[c] = frame[c].astype(str)
    frame.to_csv(d / "plain.csv", index=False)  # the same table, plainly laid out
    frame = frame.rename(columns={"case_id": "住院流水号"})
    frame["床号"] = "12"  # not read: warned about, listed by --show-mapping
    text = frame.to_csv(index=False)
    (d / "his.csv").write_bytes(("\n".join(TITLE) + "\n" + text).encode("gbk"))
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "说明"
    sheet.append(["本表由HIS导出"])
    data = book.create_sheet("病例")
    for line in TITLE:
        data.append([line])
    data.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        data.append([None if isinstance(v, float) and v != v else v for v in row])
    book.save(d / "his.xlsx")
    return d


def _run(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result


def test_audit_reads_the_export_as_the_plain_file(files, tmp_path):
    _run(["audit", str(files / "plain.csv"), "-o", str(tmp_path / "a"), "-q"])
    result = _run(
        ["audit", str(files / "his.csv"), "-o", str(tmp_path / "b"), "-q", *LAYOUT, "--show-mapping"]
    )
    for name in ("cases.parquet", "summary.parquet", "groups.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name)), name
    assert result.output.count("床号") == 2  # the warning once (not once per pass), the mapping once
    assert "  结算ID → case_id\n" in result.output  # 住院流水号, renamed


def test_catalog_and_weights_read_the_export_as_the_plain_file(files, tmp_path):
    for command, out in (("catalog", "c.csv"), ("weights", "w.csv")):
        extra = ["--no-aux"] if command == "catalog" else []
        _run(
            [
                command,
                "--history",
                str(files / "plain.parquet"),
                "-o",
                str(tmp_path / f"a-{out}"),
                "-q",
                *extra,
            ]
        )
        _run(
            [
                command,
                "--history",
                str(files / "his.csv"),
                "-o",
                str(tmp_path / f"b-{out}"),
                "-q",
                *extra,
                *LAYOUT,
            ]
        )
        _run([command, "--history", str(files / "his.xlsx"), "-o", str(tmp_path / f"x-{out}"), "-q", *extra,
              "--sheet", "病例", "--rename", "住院流水号=结算ID"])  # fmt: skip
        a = (tmp_path / f"a-{out}").read_bytes()
        assert a == (tmp_path / f"b-{out}").read_bytes() == (tmp_path / f"x-{out}").read_bytes(), command


def test_a_parquet_history_takes_renamed_headers_and_refuses_a_sheet(files, tmp_path):
    renamed = pq.read_table(files / "plain.parquet").rename_columns(
        [
            "住院总费用" if c == "total_cost" else c
            for c in pq.read_table(files / "plain.parquet").column_names
        ]
    )
    pq.write_table(renamed, tmp_path / "r.parquet")
    _run(["weights", "--history", str(files / "plain.parquet"), "-o", str(tmp_path / "a.csv"), "-q"])
    _run(["weights", "--history", str(tmp_path / "r.parquet"), "-o", str(tmp_path / "b.csv"), "-q",
          "--rename", "住院总费用=total_cost"])  # fmt: skip
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    result = runner.invoke(app, ["weights", "--history", str(tmp_path / "r.parquet"), "-o", str(tmp_path / "c.csv"),
                                 "--sheet", "x"])  # fmt: skip
    assert result.exit_code == 1 and "sheet" in result.output
