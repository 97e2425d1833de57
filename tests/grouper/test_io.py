"""Readers map every export shape onto the canonical schema; whole-file problems are one clear error."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.io import InputError, OutputError
from grouper.resources import data_path, text_columns

CHINESE = (
    "结算ID,性别,年龄,年龄(天),新生儿出生体重(克),主要诊断编码,其他诊断编码1,其他诊断编码2,主要手术操作编码,"
    "手术操作编码1,离院方式,实际住院天数,入院时间,出院时间,医保类型,医疗费用总额\n"
    "A1,女,88,,,K22.301,K11.901,E11.900,96.0800x005,,1,3,2025-01-02 08:00:00,2025-01-05,310,12345.67\n"
    "A2,男,0,10,1200,P07.200,,,,,5,1,2025/02/01,2025/02/01,390,\n"
)


def _read(path, **kw) -> pa.Table:
    return pa.concat_tables(grouper.read_discharges(path, **kw))


def test_chinese_headers_numbered_lists_and_value_maps(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(CHINESE, encoding="utf-8")
    t = _read(path).to_pylist()
    assert t[0]["case_id"] == "A1" and t[0]["sex"] == 2 and t[1]["sex"] == 1
    assert t[0]["other_dx"] == ["K11.901", "E11.900"] and t[1]["other_dx"] == []
    assert t[0]["principal_proc"] == "96.0800x005" and t[0]["other_procs"] == []
    assert t[0]["insurance_type"] == "employee" and t[1]["insurance_type"] == "resident"
    assert str(t[0]["admission_date"]) == "2025-01-02" and str(t[1]["discharge_date"]) == "2025-02-01"
    assert t[0]["total_cost"] == pytest.approx(12345.67) and t[1]["total_cost"] is None
    assert t[1]["age_days"] == 10 and t[1]["birth_weight_g"] == 1200 and t[1]["discharge_mode"] == 5


def test_gbk_is_detected_and_groups_like_utf8(tmp_path, codebook):
    utf8, gbk = tmp_path / "u.csv", tmp_path / "g.csv"
    utf8.write_text(CHINESE, encoding="utf-8")
    gbk.write_bytes(CHINESE.encode("gbk"))
    assert _read(gbk).equals(_read(utf8))
    assert grouper.group_drg(_read(gbk), codebook).column("drg").to_pylist() == ["GZ13", "PS15"]


def test_wrong_encoding_is_one_clear_error(tmp_path):
    gbk = tmp_path / "g.csv"
    gbk.write_bytes(CHINESE.encode("gbk"))
    with pytest.raises(InputError, match=r"g\.csv: .*(valid utf-8|--encoding)"):
        _read(gbk, encoding="utf-8")


def test_4101a_names_and_parquet_and_excel_agree(tmp_path):
    frame = pd.DataFrame(
        {
            "setl_id": ["S1", "S2"],
            "gend": ["1", "2"],
            "age": ["65.0", "30"],
            "principal_dx": ["C61.x00", "J34.200"],
            "other_dx": ["Z98.800x210", ""],
            "principal_proc": ["60.5x02", ""],
            "dscg_way": ["1", "9"],
            "act_ipt_days": ["4", "2"],
        }
    )
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_excel(tmp_path / "a.xlsx", index=False)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "a.parquet")
    tables = [_read(tmp_path / f"a.{ext}") for ext in ("csv", "xlsx", "parquet")]
    assert tables[0].equals(tables[1]) and tables[0].equals(tables[2])
    assert tables[0].column("age_years").to_pylist() == [65, 30]
    assert tables[0].column("los_days").to_pylist() == [4, 2]


def test_canonical_parquet_round_trip(tmp_path):
    table = _read_cases()
    pq.write_table(table, tmp_path / "c.parquet")
    assert _read(tmp_path / "c.parquet").equals(table)


def _read_cases() -> pa.Table:
    from pathlib import Path

    return _read(Path(__file__).parent / "drg" / "cases_1_1.csv")


def test_missing_required_column_names_file_and_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("case_id,sex,age\n1,1,40\n")
    with pytest.raises(InputError, match=r"x\.csv: required column 'principal_dx' is missing"):
        _read(path)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00garbage\x00\x00"])
def test_unreadable_or_empty_file(tmp_path, content):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=r"bad\.csv"):
        _read(path)


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "bad.parquet"
    path.write_text("hello")
    with pytest.raises(InputError, match=r"bad\.parquet: not a readable Parquet file"):
        _read(path)


def test_batches_stream_in_order(tmp_path):
    path = tmp_path / "many.csv"
    path.write_text("case_id,principal_dx\n" + "".join(f"{i},K35.800x001\n" for i in range(1000)))
    batches = list(grouper.read_discharges(path, batch_size=300))
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    assert pa.concat_tables(batches).column("case_id").to_pylist() == [str(i) for i in range(1000)]


def test_write_results_is_atomic_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "o.parquet"
    table = pa.table({"case_id": ["1"], "drg": ["GZ15"]})
    grouper.write_results(table, out, metadata={"drgdip.codebook": "chs-drg-1.1"})
    assert pq.read_schema(out).metadata[b"drgdip.codebook"] == b"chs-drg-1.1"
    with pytest.raises(OutputError, match="already exists"):
        grouper.write_results(table, out)

    def broken():
        yield table
        raise RuntimeError("crash mid-run")

    with pytest.raises(RuntimeError):
        grouper.write_results(broken(), tmp_path / "half.csv")
    assert list(tmp_path.iterdir()) == [out]


@pytest.mark.parametrize("name", sorted(p.name for p in data_path("records").glob("*.csv")))
def test_a_shipped_records_table_reads_without_pandas_as_pandas_reads_it(name):
    """``grouper.resources.text_columns``: every cell as written (trailing spaces, empty cells, Chinese text)."""
    frame = pd.read_csv(data_path("records", name), dtype=str, keep_default_na=False)
    assert text_columns("records", name) == {c: frame[c].tolist() for c in frame.columns}


def test_a_number_column_skips_the_value_map_unless_the_map_respells_numbers(monkeypatch):
    from grouper.io import values
    from grouper.schema import DISCHARGE_SCHEMA

    field = DISCHARGE_SCHEMA.field("discharge_mode")
    modes = pa.array([6, 1, None, 6] * 2048, pa.int8())
    assert values.convert(field, modes) is modes  # the shipped map only respells words (医嘱离院 → 1)
    keys, canonical = pa.array(["6"]), pa.array(["9"])  # a region's map: code 6 reads as 9 (其他)
    monkeypatch.setattr(values, "_value_maps", lambda: {"discharge_mode": (keys, canonical)})
    values._maps_numbers.cache_clear()
    try:
        assert values.convert(field, modes).to_pylist()[:4] == [9, 1, None, 9]
    finally:
        values._maps_numbers.cache_clear()
