"""Real-world file shapes found by adversarial QA: each gets a precise row status or one clear file error."""

from __future__ import annotations

import codecs

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import grouper
from grouper.io import InputError

HEAD = "case_id,sex,age_years,principal_dx,other_dx,discharge_mode,birth_weight_g,age_days\n"


def _group(codebook, path, **kw) -> list[tuple[str, str, str]]:
    table = pa.concat_tables(grouper.read_discharges(path, **kw))
    out = grouper.group_drg(table, codebook)
    return list(
        zip(out["case_id"].to_pylist(), out["drg"].to_pylist(), out["drg_status"].to_pylist(), strict=True)
    )


def test_numbers_are_floored_and_out_of_range_values_get_statuses(tmp_path, codebook):
    path = tmp_path / "n.csv"
    path.write_text(
        HEAD
        + "a,2,65.7,K22.301,,1,,\n"  # 65.7 → 65, as the reference's intValue
        + "b,2,65601,K22.301,,1,,\n"  # beyond int16: never wrapped into 65
        + "c,257,60,K22.301,,1,,\n"  # beyond int8: sex unreadable, not male
        + "d,2,60,K22.301,,261,,\n"  # discharge mode 261 is not 5 (death)
        + "e,2,８８,K22.301,,1,,\n"  # full-width digits
        + "f,2,0,P07.200,,1,3200g,10\n"  # unreadable birth weight: the newborn check stops the case
        + ",2,60,K22.301,,1,,\n",  # no case id
        encoding="utf-8",
    )
    got = {c: (d, s) for c, d, s in _group(codebook, path)}
    assert got["a"] == ("GZ15", "OK")
    assert got["b"] == ("0000", "AGE_INVALID")
    assert got["c"] == ("GZ15", "SEX_UNKNOWN")
    assert got["d"] == ("GZ15", "DISCHARGE_MODE_UNKNOWN")
    assert got["e"] == ("GZ15", "OK")
    assert got["f"] == ("0000", "NEWBORN_DATA_MISSING")
    assert got[None] == ("GZ15", "CASE_ID_MISSING")


def test_float_and_nan_parquet_columns(tmp_path, codebook):
    path = tmp_path / "f.parquet"
    pq.write_table(
        pa.table({"case_id": ["a", "b"], "sex": [2.0, 2.0], "age_years": [65.5, float("nan")],
                  "principal_dx": ["K22.301", "K22.301"]}),
        path,
    )  # fmt: skip
    assert _group(codebook, path) == [("a", "GZ15", "OK"), ("b", "0000", "AGE_MISSING")]


def test_lists_split_on_the_separators_exports_use_and_the_dagger_sign(tmp_path, codebook):
    path = tmp_path / "l.csv"
    path.write_text(
        HEAD + 'a,2,88,K22.301,"K11.901,E11.900",1,,\n' + "b,2,88,K22.301,K11.901；E11.900,1,,\n"
        "c,2,60,A18.000x047†M49.0*,,1,,\nd,2,60,A18.000x047 + M49.0*,,1,,\n",
        encoding="utf-8",
    )
    got = _group(codebook, path)
    assert [g[1] for g in got[:2]] == ["GZ13", "GZ13"]
    assert got[2][1:] == got[3][1:] and got[2][2] == "OK"


def test_bom_with_quoted_headers_and_crlf(tmp_path, codebook):
    path = tmp_path / "b.csv"
    path.write_bytes(
        codecs.BOM_UTF8 + b'"case_id","sex","age_years","principal_dx"\r\n"1","2","88","K22.301"\r\n'
    )
    assert _group(codebook, path) == [("1", "GZ15", "OK")]


def test_gbk_with_stray_bytes_deep_in_a_free_text_column(tmp_path, codebook):
    rows = "".join(f"c{i},女,88,K22.301,备注{i}\n" for i in range(120_000))
    data = ("case_id,性别,年龄,主要诊断编码,备注\n" + rows).encode("gbk")
    data = data[:-1] + b"\xff\xfe\n"  # broken bytes at the end of the last row's note
    path = tmp_path / "g.csv"
    path.write_bytes(data)
    got = _group(codebook, path)
    assert len(got) == 120_000 and {s for _, _, s in got} == {"OK"}


def test_quoted_newlines_in_a_large_file(tmp_path, codebook):
    path = tmp_path / "q.csv"
    path.write_text(
        "case_id,sex,age_years,principal_dx,note\n"
        + "".join(f'c{i},2,88,K22.301,"line one\nline two, with comma"\n' for i in range(80_000)),
        encoding="utf-8",
    )
    got = _group(codebook, path)
    assert len(got) == 80_000 and got[-1] == ("c79999", "GZ15", "OK")


def test_case_id_alias_priority_does_not_depend_on_column_order(tmp_path, codebook):
    path = tmp_path / "i.csv"
    path.write_text(
        "病案号,结算ID,性别,年龄,主要诊断编码\nMR001,S1,女,88,K22.301\nMR001,S2,女,88,K22.301\n", "utf-8"
    )
    assert [s for _, _, s in _group(codebook, path)] == ["OK", "OK"]
    assert [c for c, _, _ in _group(codebook, path)] == ["S1", "S2"]


def test_text_values_of_sex_and_discharge_mode(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "case_id,性别,离院方式,principal_dx\n1,男性,死亡,K35.8\n2,Female,医嘱离院,K35.8\n", "utf-8"
    )
    t = pa.concat_tables(grouper.read_discharges(path))
    assert t["sex"].to_pylist() == [1, 2] and t["discharge_mode"].to_pylist() == [5, 1]


@pytest.mark.parametrize(
    ("name", "write", "message"),
    [
        ("k.csv", lambda p: p.write_text("case_id,principal_dx,Principal_DX\n1,K35.8,K35.8\n"), "same column"),
        ("p.parquet", lambda p: pq.write_table(
            pa.Table.from_arrays([pa.array(["1"]), pa.array(["K"]), pa.array(["K"])],
                                 names=["case_id", "principal_dx", "principal_dx"]), p), "appears twice"),
    ],
)  # fmt: skip
def test_duplicate_headers_are_one_clear_error(tmp_path, name, write, message):
    path = tmp_path / name
    write(path)
    with pytest.raises(InputError, match=message):
        list(grouper.read_discharges(path))


def test_header_only_files_give_an_empty_result(tmp_path):
    for text in ("case_id,principal_dx\n", "case_id,principal_dx"):
        path = tmp_path / "h.csv"
        path.write_text(text)
        assert pa.concat_tables(grouper.read_discharges(path)).num_rows == 0


def test_dates_in_the_shapes_exports_use_and_impossible_dates(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(
        "case_id,principal_dx,discharge_date\n1,K35.8,2024/12/3 9:15\n2,K35.8,2025-02-30\n3,K35.8,2024年1月5日\n"
        "4,K35.8,20230914\n5,K35.8,2025.03.01\n",
        encoding="utf-8",
    )
    got = [
        str(d) if d else None
        for d in pa.concat_tables(grouper.read_discharges(path))["discharge_date"].to_pylist()
    ]
    assert got == ["2024-12-03", None, "2024-01-05", "2023-09-14", "2025-03-01"]


def test_a_stray_gbk_byte_near_the_top_is_tolerated_too(tmp_path, codebook):
    data = (
        "case_id,性别,年龄,主要诊断编码,备注\n" + "".join(f"c{i},女,88,K22.301,备注\n" for i in range(50))
    ).encode("gbk")
    head, rest = data.split(b"\n", 3)[:3], data.split(b"\n", 3)[3]
    path = tmp_path / "g.csv"
    path.write_bytes(b"\n".join(head) + b"\xff\n" + rest)  # a stray byte at the end of the third line
    got = _group(codebook, path)
    assert len(got) == 50 and {s for _, _, s in got} == {"OK"}


def test_a_damaged_parquet_file_is_one_clear_error(tmp_path):
    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table({"case_id": [str(i) for i in range(5000)], "principal_dx": ["K35.8"] * 5000}), path
    )
    data = bytearray(path.read_bytes())
    data[200:400] = b"\x00" * 200  # inside the first data page
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"c\.parquet"):
        list(grouper.read_discharges(path))


def test_excel_output_keeps_text_as_text(tmp_path):
    import openpyxl

    out = tmp_path / "x.xlsx"
    grouper.write_results(pa.table({"case_id": ["=1+1", "A\x01B"], "drg": ["GZ15", "GZ13"]}), out)
    cells = [[c.value for c in r] for r in openpyxl.load_workbook(out).active.iter_rows()]
    assert cells == [["case_id", "drg"], ["=1+1", "GZ15"], ["AB", "GZ13"]]


def test_a_ragged_row_is_reported_without_repeating_its_patient_data(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("case_id,principal_dx,name\n1,K35.8,张三\n2,K35.8,李四,extra\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"row 3: CSV parse error: Expected 3 columns, got 4 \(check") as err:
        list(grouper.read_discharges(path))
    assert "李四" not in str(err.value)


_TOP = "case_id,principal_dx,name\n1,K35.8,张三\n"


@pytest.mark.parametrize(
    ("text", "row", "got"),
    [
        (_TOP + "2,K35.8,李四\n3,K35.8,王五,110101199001011234\n4,K35.8,赵六\n", 4, 4),  # a field too many
        (_TOP + "2,K35.8\n", 3, 2),  # one too few
        ("某医院出院病例导出\n\n" + _TOP + "2,K35.8,李四,x\n", 5, 4),  # title rows above the header counted
        ("\ufeff" + _TOP.replace("\n", "\r\n") + "2,K35.8,李四,x\r\n", 3, 4),  # Excel's UTF-8: BOM, CRLF
        (
            _TOP + '2,K35.8,"李\n四"\n3,K35.8,王五,x\n',
            4,
            4,
        ),  # a cell over two lines: one row, as every rule counts
        # an unterminated quote runs on to the next quote: the row it opens on is named
        (_TOP + '2,K35.8,"李四\n3,K35.8,王五\n4,"K35.8",赵六\n5,K35.8,钱七\n', 3, 4),
    ],
)
def test_a_csv_parse_error_names_the_row_as_every_error_does(tmp_path, text, row, got):
    """pyarrow counts rows only on one thread (``Row #N``); on a parse error the file is read again so to name the
    row, by the one rule of docs/records.md §6 (first_data_row + the case's place), never its content."""
    path = tmp_path / "r.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError) as err:
        list(grouper.read_discharges(path, batch_size=2))
    msg = str(err.value)
    assert msg == f"{path}: row {row}: CSV parse error: Expected 3 columns, got {got} (check its quoting)", (
        msg
    )
    assert err.value.row == row and err.value.path == str(path)
    assert not any(name in msg for name in ("李", "王五", "赵六", "1101"))


@pytest.mark.parametrize(
    ("text", "row", "column", "taken"),
    [
        (_TOP + '2,K35.8,"李四\n3,K35.8,王五\n', 3, "name", 1),  # runs on to the end: 2 cases read, not 3
        # runs on to a later quote, the rows between lost with no column count wrong
        (_TOP + '2,K35.8,"李四\n3,K35.8,王五\n4,K35.8,赵六"\n5,K35.8,钱七\n', 3, "name", 2),
        (_TOP + '2,"K35.8,李四\n3,K35.8,王五\n4,K35.8",赵六\n', 3, "principal_dx", 1),
        (_TOP.replace("\n", "\r") + '2,K35.8,"李四\r3,K35.8,王五\r', 3, "name", 1),  # old Mac line ends
    ],
)
def test_an_unterminated_quote_stops_naming_the_row_where_it_opens(tmp_path, text, row, column, taken):
    """A quote opened and not closed swallows the rows below it into one cell (pyarrow reads cells over several
    lines): the cases were lost silently, exit 0. A cell holding a line break and then a line of the file's
    shape (as many commas as the header less one) stops the read, naming the row where the quote opens by the one
    rule of docs/records.md §6, and the column, never the content."""
    path = tmp_path / "q.csv"
    path.write_bytes(text.encode("utf-8"))
    with pytest.raises(InputError) as err:
        list(grouper.read_discharges(path, batch_size=2))
    msg = str(err.value)
    assert msg == (
        f"{path}: row {row}, column {column}: a quoted cell runs on over {taken} line(s) that read as rows of "
        "the file, whose cases would be lost: an unterminated quote?"
    ), msg
    assert (err.value.row, err.value.column, err.value.path) == (row, column, str(path))
    assert not any(name in msg for name in ("李", "王五", "赵六", "K35"))


def test_a_quoted_cell_over_several_lines_still_reads(tmp_path):
    """An address written over lines (even with a comma in it) is one cell of one case, as before."""
    path = tmp_path / "ok.csv"
    path.write_bytes(
        (_TOP + '2,K35.8,"北京市\n朝阳区, 某街"\n3,K35.8,"上海市\r\n浦东新区"\n4,K35.8,赵六\n').encode(
            "utf-8"
        )
    )
    read = pa.concat_tables(grouper.read_discharges(path, batch_size=2))
    assert read.column("case_id").to_pylist() == ["1", "2", "3", "4"]
