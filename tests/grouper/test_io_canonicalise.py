"""The pandas-friendly API (issue 8 item 7): canonicalise applies to an in-memory table what the readers apply to a
file; the groupers take any Arrow-compatible table and refuse one without its required columns."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import grouper
from grouper.errors import InputError

EXPORT = {
    "结算ID": [" 1 ", "2"],
    "性别": ["男", "女"],
    "险种类型": ["310", "390"],
    "出院日期": ["2025/05/07", "20250601"],
    "主要诊断编码": ["K35.800x001", "J18.900"],
    "其他诊断编码1": ["E11.900", ""],
    "其他诊断编码2": ["I10.x00", None],
}


def test_canonicalise_maps_an_exports_headers_and_values():
    t = grouper.canonicalise(pd.DataFrame(EXPORT))
    assert t.schema == grouper.DISCHARGE_SCHEMA
    assert t.column("case_id").to_pylist() == ["1", "2"]
    assert t.column("sex").to_pylist() == [1, 2]
    assert t.column("insurance_type").to_pylist() == ["employee", "resident"]
    assert t.column("discharge_date").to_pylist() == [dt.date(2025, 5, 7), dt.date(2025, 6, 1)]
    assert t.column("other_dx").to_pylist() == [["E11.900", "I10.x00"], []]


def test_canonicalise_is_what_the_reader_does_to_the_same_file(tmp_path):
    path = tmp_path / "export.csv"
    pd.DataFrame(EXPORT).to_csv(path, index=False)
    from_file = pa.concat_tables(grouper.read_discharges(path))
    as_text = pd.DataFrame(EXPORT).fillna("")
    assert grouper.canonicalise(as_text).equals(from_file)
    assert grouper.canonicalise(pa.Table.from_pandas(as_text).to_batches()).equals(from_file)


def test_canonicalise_refuses_a_table_without_a_required_column():
    with pytest.raises(InputError, match="required column 'case_id' is missing") as info:
        grouper.canonicalise(pd.DataFrame({"姓名": ["x"], "主要诊断编码": ["K35.800"]}))
    assert info.value.column == "case_id"


def test_the_groupers_take_a_dataframe_and_refuse_an_exports_headers():
    cb = grouper.Codebook.load("chs-drg-1.1")
    canonical = grouper.canonicalise(pd.DataFrame(EXPORT))
    assert grouper.group_drg(canonical.to_pandas(), cb).equals(grouper.group_drg(canonical, cb))
    with pytest.raises(InputError, match="canonicalise"):
        grouper.group_drg(pd.DataFrame(EXPORT), cb)  # not 100 % CASE_ID_MISSING
    with pytest.raises(InputError, match="canonicalise"):
        grouper.group_dip(pd.DataFrame(EXPORT), "pingdingshan-2025")


def test_a_long_column_is_converted_through_its_distinct_values_exactly_as_value_by_value():
    """Columns that repeat a few values (sex, dates, ages, value-mapped text) are converted once per distinct
    value (issue 14): the same values as converting every row, for spellings, blanks, unreadable values and
    nulls, from text, numbers and a dictionary column alike."""
    from grouper.io.values import _DISTINCT_FROM, _convert, convert
    from grouper.schema import DISCHARGE_SCHEMA

    reps = _DISTINCT_FROM // 4 + 1
    samples = {
        "sex": [" 男", "女", "1", "2.0", "x", "", None, "１"],
        "insurance_type": ["310", "390", " 职工 ", "", None, "other"],
        "discharge_date": ["2025/05/07", "20250601", "2025-02-30", "", None, "2025年6月1日"],
        "age_years": ["65", "65.7", "-3", "abc", "", None, "70000"],
        "department": [" 内科", "外科 ", "", None],
    }
    for name, values in samples.items():
        field = DISCHARGE_SCHEMA.field(name)
        column = pa.array(values * reps, pa.string())
        expected = _convert(field, column)
        assert convert(field, column).equals(expected), name
        assert convert(field, pc.dictionary_encode(column)).equals(expected), name
    sex = pa.array([1, 2, 9, None] * reps, pa.int8())
    assert convert(DISCHARGE_SCHEMA.field("sex"), sex).equals(_convert(DISCHARGE_SCHEMA.field("sex"), sex))


def test_code_lists_split_at_bars_alone_as_the_pattern_does():
    """A column whose text holds no other separator is split at ``|`` by a plain split (issue 14); any other
    separator (, ; ， ； 、 line breaks) anywhere sends the column through the pattern, as before."""
    from grouper.io.values import _LIST_SEPARATORS, _split, code_list

    bars = pa.array(["A01.000|B02.100", "", "|C03.9||", "D04 | E05", "中文|F06"] * 3, pa.string())
    assert _split(bars).equals(pc.split_pattern_regex(bars, _LIST_SEPARATORS))
    assert _split(bars.slice(2, 7)).equals(pc.split_pattern_regex(bars.slice(2, 7), _LIST_SEPARATORS))
    for other in ("G07,H08", "G07；H08", "G07、H08", "G07\nH08"):
        mixed = pa.array(["A01.000|B02.100", other], pa.string())
        assert _split(mixed).equals(pc.split_pattern_regex(mixed, _LIST_SEPARATORS))
        assert code_list([mixed]).to_pylist()[1] == ["G07", "H08"]


@pytest.mark.parametrize(
    "values",
    [["C1", "C2"], ["C1 ", "C2"], [" C1", "C2"], ["", "C2"], ["C1", None], ["C1\u3000", "C2"], ["病例", "C2"],
     ["C1\t", "C2"], ["~", "!x"]],
)  # fmt: skip
def test_text_read_as_it_is_when_nothing_needs_trimming_is_what_trimming_gives(values):
    """The shortcut of ``strings`` (no value to trim or empty: the array back as it is) gives what trimming and
    emptying give, on a whole array and on a slice of one."""
    from grouper.io.values import strings

    arr = pa.array(["pad", *values], pa.string())
    for a in (arr, arr.slice(1)):
        trimmed = pc.utf8_trim_whitespace(a)
        assert strings(a).equals(pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed))
