"""The two sessions of issue 13's closing note, command for command as typed (the worked paths of docs/用户指南.md):
a hospital clerk's (HIS exports → group → audit) and a bureau analyst's (past settlements → history → catalogue →
policy → settle → what-if → compare → statement). Each command runs from the session's folder and must succeed; its output is
checked where the session relies on it."""

from __future__ import annotations

import shlex

import openpyxl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.synth import generate
from payment.cli import app

runner = CliRunner()

CLERK = [
    "drgdip group 出院病例.xlsx -o 分组结果.xlsx --keep 病案号,科室,总费用",
    "drgdip group 出院病例.xlsx -o 分组结果.xlsx --keep 病案号,科室,总费用 --value-map sex:男=1,女=2 --force",
    "drgdip group 出院病例.csv -o 分组结果.csv --value-map sex:男=1,女=2 --explain --show-mapping",
    "drgdip audit 出院病例.csv -o 自查 --value-map sex:男=1,女=2",
]
PAST = (2022, 2023, 2024)
ANALYST = [
    *(
        line
        for y in PAST
        for line in (
            f"drgdip policy init --scheme dip --region 示例市 --year {y} -o 政策{y}.toml",
            f"drgdip group 数据{y}/discharges.parquet --scheme dip --catalogue pingdingshan-2025 -o 分组{y}.parquet -q",
            f"drgdip settle --cases 分组{y}.parquet --discharges 数据{y}/discharges.parquet --hospitals "
            f"数据{y}/hospitals.csv --policy 政策{y}.toml --catalogue pingdingshan-2025 -o 结算/{y} -q",
        )
    ),
    "drgdip history 结算/2022 结算/2023 结算/2024 --cases 分组2022.parquet --cases 分组2023.parquet --cases "
    "分组2024.parquet --discharges 数据2022/discharges.parquet --discharges 数据2023/discharges.parquet "
    "--discharges 数据2024/discharges.parquet -o 历史",
    "drgdip catalog --history 数据2022/discharges.parquet --history 数据2023/discharges.parquet --history "
    "数据2024/discharges.parquet -o 目录库.csv --name 示例市-2025",
    "drgdip policy init --scheme dip --region 示例市 --year 2025 -o 政策2025.toml",
    "drgdip policy check 政策2025.toml",
    "drgdip group 数据2025/discharges.parquet --scheme dip --catalogue 目录库.csv -o 分组2025.parquet",
    "drgdip settle --cases 分组2025.parquet --discharges 数据2025/discharges.parquet --hospitals 数据2025/hospitals.csv "
    "--policy 政策2025.toml --catalogue 目录库.csv --history 历史 --set point_value.budget_method=history -o 结算/2025",
    "drgdip settle --cases 分组2025.parquet --discharges 数据2025/discharges.parquet --hospitals 数据2025/hospitals.csv "
    "--policy 政策2025.toml --catalogue 目录库.csv --history 历史 --set point_value.budget_method=history "
    "--set deviation.high.ratio=2.5 -o 结算/2025-高倍率2.5",
    "drgdip compare 结算/2025 结算/2025-高倍率2.5 -o 对比.xlsx",
    "drgdip statement 结算/2025 --policy 政策2025.toml --set point_value.budget_method=history -o 对账单",
]
#: The HIS export's headers (Chinese, as exported), from the canonical columns; 床号 is not read by drgdip.
HIS = {"case_id": "结算ID", "patient_id": "病案号", "hospital_id": "定点医药机构编号", "sex": "性别",
       "age_years": "年龄", "admission_date": "入院日期", "discharge_date": "出院日期", "los_days": "住院天数",
       "department": "科室", "principal_dx": "主要诊断编码", "other_dx": "其他诊断编码",
       "principal_proc": "主要手术操作编码", "discharge_mode": "离院方式", "total_cost": "总费用"}  # fmt: skip


def _run(line: str):
    result = runner.invoke(app, shlex.split(line)[1:])
    assert result.exit_code == 0, f"{line}\n{result.output}"
    return result.output


def his_export(folder, cases: int = 300, seed: int = 2025) -> None:
    """出院病例.xlsx (a 说明 sheet, then the table under a title row) and 出院病例.csv (GBK, the same title row) as an
    HIS writes them: Chinese headers, sex as 男/女, codes of other diagnoses joined by |, a 床号 column."""
    table, _ = generate(cases, [2025], 6, seed=seed)
    cols = {}
    for name, header in HIS.items():
        col = table.column(name)
        if pa.types.is_list(col.type):
            col = pc.binary_join(col.cast(pa.list_(pa.string())), "|")
        cols[header] = col.cast(pa.string())
    cols["性别"] = pc.if_else(pc.equal(cols["性别"], "1"), "男", "女")
    cols["床号"] = pa.array([str(k % 40 + 1) for k in range(cases)])
    frame = pa.table(cols).to_pandas()
    title = "某某市人民医院 2025年出院病例导出（病案统计室）"
    (folder / "出院病例.csv").write_bytes((title + "\n" + frame.to_csv(index=False)).encode("gbk"))
    book = openpyxl.Workbook()
    book.active.title = "说明"
    book.active.append(["本表由HIS导出，金额单位：元"])
    sheet = book.create_sheet("出院病例")
    sheet.append([title])
    sheet.append(list(frame.columns))
    for row in frame.itertuples(index=False):
        sheet.append([None if v is None else v for v in row])
    book.save(folder / "出院病例.xlsx")


def test_the_clerks_session(tmp_path, monkeypatch):
    his_export(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = _run(CLERK[0])
    assert "例性别写法不符未入组" in first and "--value-map sex:男=1,女=2" in first
    assert "sheet '说明' holds no table; not read" in first and "床号" in first
    assert "SEX_INVALID" not in _run(CLERK[1])
    sheet = openpyxl.load_workbook(tmp_path / "分组结果.xlsx").active
    header = next(sheet.iter_rows(max_row=1, values_only=True))
    assert header[:4] == ("case_id", "病案号", "科室", "总费用") and "drg_name" in header
    assert sheet.title == "分组结果" and sheet.freeze_panes == "A2"
    mapping = _run(CLERK[2])
    assert "  性别 → sex\n" in mapping and "  床号 → (not recognised)\n" in mapping
    assert (tmp_path / "分组结果.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    audit = _run(CLERK[3])
    assert "cases audited" in audit and (tmp_path / "自查/audit.xlsx").is_file()


@pytest.fixture()
def region(tmp_path):
    for y in (*PAST, 2025):
        _run(f"drgdip synth -o {tmp_path}/数据{y} --years {y} --cases 300 --hospitals 6 --seed {y} -q")
    return tmp_path


def test_the_analysts_session(region, monkeypatch):
    monkeypatch.chdir(region)
    out = {line: _run(line) for line in ANALYST}
    assert sorted(
        pq.read_table(region / "历史/history_cases.parquet").column("year").unique().to_pylist()
    ) == list(PAST)
    said = {line.split()[1]: text for line, text in out.items()}  # the last command of each kind
    assert said["policy"].rstrip().splitlines()[-1].startswith("ok: 政策2025.toml (dip")
    assert "payment_due:" in said["compare"] and "hospitals paid otherwise:" in said["compare"]
    assert (region / "对比.xlsx").is_file() and (region / "对账单/statement.html").is_file()
