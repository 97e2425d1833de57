"""男/女 under chs-drg-2.0 (issue 13): the scheme stops a sex not written 1/2 (SEX_INVALID, as its reference does); a
clerk whose HIS writes 男/女 is told once, in Chinese and English, with the count and the remedy, and
``--value-map sex:男=1,女=2`` reads her file as the one written 1/2."""

from __future__ import annotations

from typer.testing import CliRunner

from payment.cli import app

runner = CliRunner()
HEADER = "结算ID,性别,年龄,主要诊断编码,其他诊断编码,主要手术操作编码,住院天数,离院方式,总费用\n"
ROWS = [
    "S1,{m},88,K22.301,K11.901,,5,1,12345.6",
    "S2,{f},40,K35.800,,47.0901,4,1,8000",
    "S3,{m},60,I10.x05,,,3,1,3000",
]


def _file(tmp_path, name: str, male: str, female: str):
    path = tmp_path / name
    path.write_bytes((HEADER + "\n".join(r.format(m=male, f=female) for r in ROWS) + "\n").encode("gbk"))
    return path


def test_male_female_is_one_warning_with_the_count_and_the_remedy(tmp_path):
    result = runner.invoke(
        app, ["group", str(_file(tmp_path, "his.csv", "男", "女")), "-o", str(tmp_path / "g.csv")]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.output
    assert "3 例性别写法不符未入组" in warnings[0] and "3 cases stopped with SEX_INVALID" in warnings[0]
    assert warnings[0].count("--value-map sex:男=1,女=2") == 2  # the remedy, in both languages
    assert "SEX_INVALID 3" in " ".join(result.output.split())  # (the summary wraps where the console ends)


def test_value_map_reads_the_file_as_the_one_written_1_2(tmp_path):
    coded = tmp_path / "coded.csv"
    assert (
        runner.invoke(
            app, ["group", str(_file(tmp_path, "c.csv", "1", "2")), "-o", str(coded), "-q"]
        ).exit_code
        == 0
    )
    for key in ("sex", "性别"):  # the canonical column or the file's header
        out = tmp_path / f"{key}.csv"
        args = ["group", str(_file(tmp_path, "his.csv", "男", "女")), "-o", str(out), "-q"]
        result = runner.invoke(app, [*args, "--value-map", f"{key}:男=1，女=2"])
        assert result.exit_code == 0 and "warning" not in result.output, result.output
        assert out.read_bytes() == coded.read_bytes()


def test_a_value_map_of_no_column_or_of_no_pairs_is_refused(tmp_path):
    his = str(_file(tmp_path, "his.csv", "男", "女"))
    result = runner.invoke(app, ["group", his, "-o", str(tmp_path / "x.csv"), "--value-map", "床号:1=2"])
    assert result.exit_code == 1 and "no column '床号' whose values to map" in result.output
    assert "(--value-map)" in result.output and not (tmp_path / "x.csv").exists()
    result = runner.invoke(app, ["group", his, "-o", str(tmp_path / "x.csv"), "--value-map", "sex"])
    assert result.exit_code == 2
