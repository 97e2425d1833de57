"""`drgdip settle` reads an HIS export laid out as a clerk gets it (issue 13 item 2): title rows above the header
and a header of another name (--header-row, --rename) give the settlement of the plain file, byte for byte, and
--show-mapping reports the headers once."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from typer.testing import CliRunner

from payment.cli import app
from tests.payment import payment_synth as synth

DEMO = Path(__file__).resolve().parents[2] / "codebooks/policies/demo-2025.toml"
GROUPING = ["case_id", "dip_group", "dip_kind", "dip_score", "aux_coef", "dip_avg_cost"]
runner = CliRunner()


def test_title_rows_and_a_renamed_header_settle_as_the_plain_file(tmp_path):
    cases, hospitals = synth.region(300, 3, seed=11, codes=True)
    plain = pa.table([c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns],
                     names=cases.column_names)  # fmt: skip
    frame = plain.drop_columns(GROUPING[1:]).to_pandas()
    frame["discharge_date"] = frame["discharge_date"].astype(str)
    frame.to_csv(tmp_path / "plain.csv", index=False)
    his = frame.rename(columns={"case_id": "住院流水号"}).to_csv(index=False)
    (tmp_path / "his.csv").write_bytes(("出院病例导出\n2025年度\n" + his).encode("gbk"))
    pacsv.write_csv(plain.select(GROUPING), tmp_path / "grouped.csv")
    pacsv.write_csv(hospitals, tmp_path / "hospitals.csv")
    base = ["settle", "--cases", str(tmp_path / "grouped.csv"), "--hospitals", str(tmp_path / "hospitals.csv"),
            "--policy", str(DEMO), "-q"]  # fmt: skip
    assert (
        runner.invoke(
            app, [*base, "--discharges", str(tmp_path / "plain.csv"), "-o", str(tmp_path / "a")]
        ).exit_code
        == 0
    )
    args = [*base, "--discharges", str(tmp_path / "his.csv"), "-o", str(tmp_path / "b"), "--header-row", "3",
            "--rename", "住院流水号=结算ID", "--show-mapping"]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("  结算ID → case_id\n") == 1  # the header report once, not once per pass
    for name in ("cases.parquet", "hospitals.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
