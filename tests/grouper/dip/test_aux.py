"""AuxTyping (辅助分型): classification vectors, trigger conditions, coefficients, saved settings."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from grouper.dip.aux import (
    AuxTyping,
    aux_path,
    charlson_index,
    read_cci_table,
    read_severity_dictionary,
    read_subtypes,
    subtype_admitted,
)
from grouper.errors import CodebookError, InputError
from grouper.schema import FEE_COLUMNS

DATA = Path(__file__).parent / "data_aux"
CASES = list(csv.DictReader((DATA / "classify.csv").open(encoding="utf-8")))
FAMILIES = ("severity", "tumour", "age", "icu")


def _columns(applied):
    """AuxTyping.apply's table as (aux_type array, aux_coef ndarray)."""
    return applied.column("aux_type").combine_chunks(), applied.column("aux_coef").to_numpy()


def table(rows: list[dict]) -> pa.Table:
    def num(key, typ):
        return pa.array([float(r[key]) if r.get(key) else None for r in rows], pa.float64()).cast(typ)

    return pa.table(
        {
            "year": pa.array([int(r.get("year") or 2024) for r in rows], pa.int32()),
            "dip_group": [r["dip_group"] for r in rows],
            "principal_dx": [r["principal_dx"] for r in rows],
            "other_dx": pa.array([r["other_dx"].split("|") if r["other_dx"] else [] for r in rows]),
            "los_days": num("los_days", pa.int32()),
            "discharge_mode": num("discharge_mode", pa.int8()),
            "age_years": num("age_years", pa.int16()),
            "age_days": num("age_days", pa.int32()),
            "icu_hours": num("icu_hours", pa.float64()),
            "total_cost": num("total_cost", pa.float64()),
            **{c: num(c, pa.float64()) for c in FEE_COLUMNS},  # classify.csv: 治疗费 fee_05, 西药费 fee_09
        }
    )


@pytest.fixture(scope="module")
def fitted() -> AuxTyping:
    return AuxTyping.read(DATA / "coefficients.csv")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_classify_and_apply(fitted, case):
    t = table([case])
    got = fitted.classify(t).to_pylist()[0]
    for fam in FAMILIES:
        assert got[fam] == (case[f"expect_{fam}"] or None), (fam, case["why"])
    aux_type, aux_coef = _columns(fitted.apply(t))
    assert aux_type.to_pylist() == [case["expect_aux_type"] or None], case["why"]
    assert aux_coef[0] == pytest.approx(float(case["expect_aux_coef"])), case["why"]


def test_apply_batch_equals_row_by_row(fitted):
    t = table(CASES)
    aux_type, aux_coef = _columns(fitted.apply(t))
    assert aux_type.to_pylist() == [c["expect_aux_type"] or None for c in CASES]
    np.testing.assert_allclose(aux_coef, [float(c["expect_aux_coef"]) for c in CASES])
    assert aux_coef.dtype == np.float64 and len(aux_type) == t.num_rows


def test_metastasis_at_los_3_under_the_inclusive_reading():
    # docs/dip.md §5.2: "住院天数 3 天以上" read as ≥ 3 makes the LOS-3 case 转移; the direction is data.
    est = AuxTyping.read(DATA / "coefficients.csv")
    est.subtypes = str(DATA / "subtypes_los3.csv")
    case = next(c for c in CASES if c["name"].startswith("metastasis needs LOS"))
    assert est.classify(table([case]))["tumour"].to_pylist() == ["TUM-META"]
    assert est.apply(table([case]))["aux_coef"][0].as_py() == pytest.approx(1.4)


def test_only_eligible_kinds_get_a_subtype(fitted):
    case = next(c for c in CASES if c["name"].startswith("an MCC not excluded"))
    t = table([case, case]).append_column("dip_kind", pa.array(["core", "comprehensive"]))
    aux_type, aux_coef = _columns(fitted.apply(t))
    assert aux_type.to_pylist() == ["SEV-III", None]
    np.testing.assert_allclose(aux_coef, [1.5, 1.0])


def test_trigger_vector():
    # docs/dip.md §5.2 DIP-AUX: group n 400 > 15, subtype n 60 > 5, CV 0.80 → 0.60: fall 25 % ≥ 20 % → admitted.
    assert subtype_admitted(400, 60, 0.80, 0.60)
    assert not subtype_admitted(15, 60, 0.80, 0.60)  # group n must exceed N
    assert not subtype_admitted(400, 5, 0.80, 0.60)  # subtype n must exceed n
    assert subtype_admitted(400, 60, 0.80, 0.64)  # exactly 20 %
    assert not subtype_admitted(400, 60, 0.80, 0.65)


def _group(n_severe, n_mild, severe_cost, mild_cost, group="K35.8", rng=None):
    rows = []
    for i in range(n_severe + n_mild):
        severe = i < n_severe
        cost = severe_cost if severe else mild_cost
        if rng is not None:
            cost = float(rng.choice([severe_cost, mild_cost]))
        rows.append(
            {
                "dip_group": group,
                "principal_dx": "K35.800",
                "other_dx": "I50.900" if severe else "",
                "los_days": "5",
                "discharge_mode": "1",
                "age_years": "40",
                "total_cost": str(cost),
            }
        )
    return rows


def test_fit_coefficient_is_subtype_mean_over_group_mean():
    # 80 重度 cases at 15,000 and 320 mild at 8,750: group mean 4,000,000 / 400 = 10,000 → 重度 1.5, 轻度 0.875.
    est = AuxTyping().fit(table(_group(80, 320, 15000.0, 8750.0)))
    rows = {r["subtype"]: r for r in est.coefficients_.to_pylist()}
    # I50.900 is also chf (CCI 1): the cci family splits the group the same way and is admitted too
    assert set(rows) == {"SEV-III", "SEV-I-B", "CCI-1-2", "CCI-0"}
    assert rows["CCI-1-2"]["coef"] == pytest.approx(1.5)
    assert rows["SEV-III"]["coef"] == pytest.approx(1.5)
    assert rows["SEV-I-B"]["coef"] == pytest.approx(0.875)
    assert rows["SEV-III"]["n_cases"] == 80 and rows["SEV-III"]["group_n"] == 400
    assert rows["SEV-III"]["cv_fall"] == pytest.approx(1.0)
    aux_type, aux_coef = _columns(est.apply(table(_group(1, 1, 1.0, 1.0))))
    assert aux_type.to_pylist() == ["SEV-III", "SEV-I-B"]  # equal coefficients: the earlier family wins
    np.testing.assert_allclose(aux_coef, [1.5, 0.875])


def test_fit_admits_nothing_without_a_cv_fall_or_enough_cases():
    rng = np.random.default_rng(3)
    est = AuxTyping().fit(table(_group(80, 320, 15000.0, 8750.0, rng=rng)))  # cost independent of severity
    assert est.coefficients_.num_rows == 0
    est = AuxTyping().fit(table(_group(5, 10, 15000.0, 8750.0)))  # n = 15 is not > 15
    assert est.coefficients_.num_rows == 0
    est = AuxTyping(min_group_n=10).fit(table(_group(5, 10, 15000.0, 8750.0)))  # 重度 n = 5 is not > 5
    assert set(est.coefficients_["subtype"].to_pylist()) == {"SEV-I-B", "CCI-0"}


def test_fit_uses_the_last_year_only():
    old = [dict(r, year="2023", total_cost="1000") for r in _group(80, 320, 0, 0)]
    est = AuxTyping().fit(table(old + _group(80, 320, 15000.0, 8750.0)))
    assert est.year_ == 2024 and est.n_cases_ == 400
    assert {r["subtype"]: r["coef"] for r in est.coefficients_.to_pylist()}["SEV-III"] == pytest.approx(1.5)


def test_the_subtype_table_is_read_once_a_fit_however_many_parts(monkeypatch):
    """A history in 4 parts: the subtype table is read once for the fit (not once a part), and the ``apply`` after
    it takes it from the fit; the coefficients are those of the history in one part."""
    import grouper.dip.aux as aux
    from grouper._reduction import LocalParts

    history = table(_group(80, 320, 15000.0, 8750.0))
    whole = AuxTyping().fit(history).coefficients_
    reads = []
    monkeypatch.setattr(aux, "read_subtypes", lambda path=None: reads.append(path) or read_subtypes(path))
    est = AuxTyping().fit_parts(LocalParts([history.slice(100 * k, 100) for k in range(4)]))
    assert len(reads) == 1 and est.coefficients_.equals(whole)
    est.apply(history.slice(0, 10))
    assert len(reads) == 1


@pytest.mark.parametrize("severity", ["cc_mcc", "dictionary"])
def test_the_rule_tables_are_read_once_a_fit_however_many_parts(monkeypatch, severity):
    """A history in 4 parts: the code flags, the severity source (the CHS-DRG codebook or a 中/重度 dictionary) and
    the Charlson table are read once for the fit, as the subtype table is (each part's pass read them again);
    the coefficients are those of the history in one part."""
    import grouper.dip.aux as aux
    from grouper._reduction import LocalParts
    from grouper.codebook import Codebook

    source = "cc_mcc" if severity == "cc_mcc" else str(DATA / "severity_dictionary.csv")
    history = table(_group(80, 320, 15000.0, 8750.0))
    whole = AuxTyping(severity_source=source).fit(history).coefficients_
    reads: list[str] = []

    def counted(name, read):
        return lambda *args, **kw: reads.append(name) or read(*args, **kw)

    monkeypatch.setattr(aux, "_read_flags", counted("flags", aux._read_flags))
    monkeypatch.setattr(aux, "read_severity_dictionary", counted("dictionary", aux.read_severity_dictionary))
    monkeypatch.setattr(aux, "read_cci_table", counted("cci", aux.read_cci_table))
    monkeypatch.setattr(Codebook, "load", counted("codebook", Codebook.load))
    est = AuxTyping(severity_source=source).fit_parts(
        LocalParts([history.slice(100 * k, 100) for k in range(4)])
    )
    assert sorted(reads) == sorted(["flags", "cci", "codebook" if severity == "cc_mcc" else "dictionary"])
    assert est.coefficients_.equals(whole) and whole.num_rows > 0


def test_a_typing_applied_batch_after_batch_reads_its_rule_tables_once(monkeypatch, tmp_path):
    """A grouping applies a typing to each of its batches: the rule tables (here the codebook, the severity
    source) are read at the first batch and kept while the settings that name them stay (each apply read them
    again: about 40 ms a batch); a copy sent to a worker leaves them behind."""
    import pickle

    import grouper.dip.aux as aux
    from grouper.codebook import Codebook

    history = table(_group(80, 320, 15000.0, 8750.0))
    AuxTyping().fit(history).to_csv(tmp_path / "t.aux.csv")
    typing = AuxTyping.read(tmp_path / "t.aux.csv")
    loads: list[str] = []
    monkeypatch.setattr(
        Codebook, "load", lambda *a, load=Codebook.load, **k: loads.append(a) or load(*a, **k)
    )
    monkeypatch.setattr(
        aux, "read_subtypes", lambda path=None: loads.append("subtypes") or read_subtypes(path)
    )
    first = typing.apply(history)
    for k in range(4):
        assert typing.apply(history.slice(100 * k, 100)).equals(first.slice(100 * k, 100))
    typing.classify(history.slice(0, 10))
    assert len(loads) == 2  # the codebook and the subtype table, once
    assert "_rules_kept" not in vars(pickle.loads(pickle.dumps(typing)))
    typing.set_params(codebook="chs-drg-1.1")
    typing.apply(history.slice(0, 10))
    assert len(loads) == 4  # read anew under the other codebook


def test_severity_dictionary_is_read_as_every_table_from_csv_or_excel(tmp_path):
    """The GX_ASSI workbook goes through the project's one table reader (header aliases as data)."""
    import openpyxl

    rows = [
        line.split(",")
        for line in (DATA / "severity_dictionary.csv").read_text(encoding="utf-8").splitlines()
    ]
    book = openpyxl.Workbook()
    book.active.title = "GX_ASSI"
    for row in rows:
        book.active.append(row)
    book.save(tmp_path / "dictionary.xlsx")
    expected = read_severity_dictionary(DATA / "severity_dictionary.csv")
    assert read_severity_dictionary(tmp_path / "dictionary.xlsx").equals(expected)
    (tmp_path / "plain.csv").write_text("code,level\nR57.000,2\nK72.000, 1\nC78.700,3\nZ99.999,x\n")
    assert read_severity_dictionary(tmp_path / "plain.csv")["flag"].to_pylist() == [
        "severe",
        "moderate",
        "metastasis",
    ]
    (tmp_path / "bad.csv").write_text("diagnosis,level\nR57.000,2\n")
    with pytest.raises(InputError, match="needs columns code,level") as caught:
        read_severity_dictionary(tmp_path / "bad.csv")
    assert caught.value.column == "code"


def test_severity_dictionary_gx_assi_sheet_after_a_note_sheet_is_found(tmp_path):
    """A published workbook opens on a 说明 sheet (a note, a field list of two columns): the GX_ASSI sheet
    after it is found by its columns and read; the sheets before it are named in a warning."""
    import openpyxl

    from grouper.io.formats import InputWarning

    book = openpyxl.Workbook()
    note = book.active
    note.title = "说明"
    note.append(["本表为病种中/重度辅助目录"])
    note.append(["字段", "含义"])
    note.append(["ASSI_ITEM_ID", "诊断编码"])
    fields = book.create_sheet("字段说明")
    fields.append(["字段名", "说明"])
    data = book.create_sheet("GX_ASSI")
    data.append(["ASSI_ITEM_ID", "ASSI_ITEM_NAME", "DIP_ASSISTANT_CODE"])
    data.append(["R57.000", "休克", 2])
    data.append(["K72.000", "肝衰竭", 1])
    book.save(tmp_path / "dictionary.xlsx")
    with pytest.warns(InputWarning, match="sheet '说明' does not hold the columns sought"):
        d = read_severity_dictionary(tmp_path / "dictionary.xlsx")
    assert d.to_pylist() == [{"code": "R57.000", "flag": "severe"}, {"code": "K72.000", "flag": "moderate"}]


def test_severity_dictionary_replaces_cc_mcc(tmp_path):
    d = read_severity_dictionary(DATA / "severity_dictionary.csv")
    assert d.to_pylist() == [{"code": "R57.000", "flag": "severe"}, {"code": "K72.000", "flag": "moderate"}]
    est = AuxTyping.read(DATA / "coefficients.csv")
    est.severity_source = str(DATA / "severity_dictionary.csv")
    rows = [dict(CASES[0], other_dx="R57.000"), dict(CASES[0], other_dx="K72.000"), dict(CASES[0])]
    assert est.classify(table(rows))["severity"].to_pylist() == ["SEV-III", "SEV-II", "SEV-I-B"]


def test_subtype_table_is_checked(tmp_path):
    assert read_subtypes().num_rows == 26
    bad = tmp_path / "bad.csv"
    text = (DATA / "subtypes_los3.csv").read_text(encoding="utf-8").replace(",icu_days,", ",icu_weeks,", 1)
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(CodebookError, match="kind 'icu_weeks' is not implemented") as caught:
        read_subtypes(bad)
    assert caught.value.path == str(bad) and caught.value.column == "kind" and caught.value.row > 1


def test_missing_columns_are_reported_not_fatal():
    t = table(_group(80, 320, 15000.0, 8750.0)).drop_columns(["icu_hours", "fee_10"])
    est = AuxTyping().fit(t)
    assert any("icu_hours" in w for w in est.warnings_) and any("fee_10" in w for w in est.warnings_)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_round_trip_through_the_file(tmp_path, suffix):
    est = AuxTyping(min_cv_fall=0.3, kinds=("core", "comprehensive")).fit(
        table(_group(80, 320, 15000.0, 8750.0))
    )
    path = tmp_path / f"aux{suffix}"
    (est.to_parquet if suffix == ".parquet" else est.to_csv)(path)
    back = AuxTyping.read(path)
    assert back.get_params() == est.get_params()
    assert back.coefficients_.equals(est.coefficients_)
    assert back.history_ == est.history_
    assert back.fingerprint == est.fingerprint and back.meta_ == {}


def test_saved_metadata_and_fingerprint(tmp_path):
    est = AuxTyping().fit(table(_group(80, 320, 15000.0, 8750.0)))
    est.to_csv(tmp_path / "a.csv", catalogue="x", catalogue_sha256="abc")
    back = AuxTyping.read(tmp_path / "a.csv")
    assert back.meta_ == {"catalogue": "x", "catalogue_sha256": "abc"}
    assert back.fingerprint == est.fingerprint
    back.to_csv(tmp_path / "b.csv")  # the extra metadata is kept on saving again
    assert AuxTyping.read(tmp_path / "b.csv").meta_ == back.meta_
    assert (tmp_path / "b.params.toml").exists() and not (tmp_path / "b.csv.params.toml").exists()
    changed = AuxTyping.read(tmp_path / "a.csv")
    changed.min_cv_fall = 0.3  # a setting is part of the fingerprint
    assert changed.fingerprint != est.fingerprint


def test_aux_path_convention(tmp_path):
    assert aux_path(tmp_path / "region.csv") == tmp_path / "region.aux.csv"
    assert aux_path(tmp_path / "region.parquet") == tmp_path / "region.aux.csv"
    assert aux_path(tmp_path) == tmp_path / "catalogue.aux.csv"  # a folder holding catalogue.csv


def test_input_columns_add_the_fee_columns_of_high_cost_rows():
    cols = AuxTyping().input_columns()
    assert {"other_dx", "icu_hours", "fee_05", "fee_09", "fee_10", "fee_11"} <= set(cols)
    assert len(set(cols)) == len(cols)


def test_charlson_index_vector_and_band(fitted):
    # docs/dip.md §5.1 TEST VECTOR DIP-CCI (fallback table): I50.900 chf 1, E11.200 diabwc 2, E11.900 diab 1 zeroed
    # because diabwc is present, N18.500 rend 2 → CCI = 1 + 2 + 0 + 2 = 5 → band ≥ 5.
    odx = ["I50.900", "E11.200", "E11.900", "N18.500"]
    assert charlson_index(pa.array([odx]), read_cci_table()).tolist() == [5]
    case = dict(CASES[0], other_dx="|".join(odx))
    assert fitted.classify(table([case]))["cci"].to_pylist() == ["CCI-5"]


@pytest.mark.parametrize(
    ("odx", "cci"),
    [
        ([], 0),
        (["E11.900"], 1),  # diab alone counts
        (["C18.000", "C78.700"], 6),  # canc 2 zeroed by metacanc 6
        (["I50.900", "I50.100"], 1),  # a category counts once
        (["K70.300", "K72.100"], 3),  # mld zeroed by msld 3
        (["Z99.999"], 0),
    ],
)
def test_charlson_index_hierarchy(odx, cci):
    assert charlson_index(pa.array([odx], pa.list_(pa.string())), read_cci_table()).tolist() == [cci]


def test_cci_source_is_pluggable(tmp_path):
    own = tmp_path / "cci.csv"
    own.write_text("category,prefix,weight,zeroed_if_present\nchf,I50.900,3,\n", encoding="utf-8")
    assert charlson_index(pa.array([["I50.900", "I50.100"]]), read_cci_table(own)).tolist() == [3]


def test_a_stay_the_reader_could_not_read_meets_no_los_bound(fitted):
    # docs/records.md §4: -1 is "written but not a number", not a stay of at most 3 days (SEV-I-A).
    case = next(c for c in CASES if c["name"].startswith("age 64 is not elderly"))
    unread, empty = dict(case, los_days="-1"), dict(case, los_days="")
    got = fitted.classify(table([case, unread, empty]))["severity"].to_pylist()
    assert got == ["SEV-I-A", None, None]
