"""恶性肿瘤 高费用类型 (docs/dip.md §5.2) from the 清单 fee columns: TUM-HC1 ``fee_05``, TUM-HC2 ``fee_09+fee_10+fee_11``."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import grouper
from grouper.dip import group_dip, read_catalogue
from grouper.dip.aux import AuxTyping, read_subtypes
from grouper.dip.group import INPUT_COLUMNS
from grouper.errors import CodebookError
from grouper.schema import FEE_COLUMNS
from grouper.synth import write_region

# Last year's C18.0 cases: 10 高费用类型1 (治疗费 35,000 of 65,000), 10 高费用类型2 (药品费 40,000 of 65,000),
# 80 others at 8,750. Group mean = (10 × 65,000 + 10 × 65,000 + 80 × 8,750) / 100 = 2,000,000 / 100 = 20,000
# (the "group standard" of docs/dip.md §5.2); each subtype has CV 0 → CV fall 100 % → both admitted, coefficient
# 65,000 / 20,000 = 3.25.
HISTORY = (
    "结算ID,主要诊断编码,实际住院天数,离院方式,年龄,医疗费用总额,治疗费,手术费,西药费,中药饮片费,中成药费\n"
    + "".join(f"h1-{i},C18.000,10,1,60,65000,35000,,5000,,\n" for i in range(10))
    + "".join(f"h2-{i},C18.000,10,1,60,65000,1000,,30000,2000,8000\n" for i in range(10))
    + "".join(f"h3-{i},C18.000,10,1,60,8750,1000,,3000,,\n" for i in range(80))
)

# docs/dip.md §5.2 TEST VECTORS DIP-AUX, group standard 20,000 → 3 × 20,000 = 60,000. Columns: case, cost, 治疗费 05,
# 手术费 06, 西药费 09, 中药饮片费 10, 中成药费 11, 离院方式, expected tumour cell, expected aux_type / coefficient.
VECTORS = [
    # C 65,000 ≥ 60,000; 治疗费 35,000 / 65,000 = 53.8 % ≥ 50 % → 高费用类型1 (the spec's own vector)
    ("hc1", 65000, 35000, None, 5000, None, None, 1, "TUM-HC1", "TUM-HC1", 3.25),
    # C 65,000 ≥ 60,000; 药品费 30,000 + 2,000 + 8,000 = 40,000 / 65,000 = 61.5 % ≥ 50 % → 高费用类型2
    ("hc2", 65000, 1000, None, 30000, 2000, 8000, 1, "TUM-HC2", "TUM-HC2", 3.25),
    # 59,999 < 60,000 → not high-cost although 治疗费 58.3 %
    ("under 3x", 59999, 35000, None, None, None, None, 1, "TUM-OTHER", "TUM-OTHER", 0.4375),
    # boundaries inclusive: 60,000 ≥ 3 × 20,000 and 30,000 / 60,000 = 50 % ≥ 50 %
    ("boundary", 60000, 30000, None, None, None, None, 1, "TUM-HC1", "TUM-HC1", 3.25),
    # drug parts left empty count 0: 40,000 / 65,000 = 61.5 % from 西药费 alone
    ("drug one part", 65000, None, None, 40000, None, None, 1, "TUM-HC2", "TUM-HC2", 3.25),
    # 治疗费 50 % and 药品费 50 %: type 1 is checked first (order 2 before 3)
    ("both", 60000, 30000, None, 30000, None, None, 1, "TUM-HC1", "TUM-HC1", 3.25),
    # "治疗费 excluding surgery": 手术费 40,000 / 65,000 = 61.5 % does not count
    ("surgery", 65000, 1000, 40000, 1000, None, None, 1, "TUM-OTHER", "TUM-OTHER", 0.4375),
    # no fee breakdown at all: the condition cannot hold
    ("no fees", 65000, None, None, None, None, None, 1, "TUM-OTHER", "TUM-OTHER", 0.4375),
    # death is checked before the high-cost types (TUM-DEATH not admitted: no coefficient)
    ("death", 65000, 35000, None, None, None, None, 5, "TUM-DEATH", None, 1.0),
]
_HEADER = (
    "结算ID,主要诊断编码,实际住院天数,离院方式,年龄,医疗费用总额,治疗费,手术费,西药费,中药饮片费,中成药费\n"
)


def _columns(applied):
    """AuxTyping.apply's table as (aux_type array, aux_coef ndarray)."""
    return applied.column("aux_type").combine_chunks(), applied.column("aux_coef").to_numpy()


def _csv(v) -> str:
    return ",".join("" if x is None else str(x) for x in (v[0], "C18.000", 10, v[7], 60, *v[1:7]))


def _read(path, aux: AuxTyping) -> pa.Table:
    """As ``drgdip`` reads for DIP with auxiliary typing: the grouper's columns and the subtype table's."""
    t = pa.concat_tables(grouper.read_discharges(path, columns=INPUT_COLUMNS + aux.input_columns()))
    return t.append_column("dip_group", pa.array(["C18.0"] * t.num_rows)).append_column(
        "year", pa.array([2024] * t.num_rows, pa.int32())
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory) -> AuxTyping:
    path = tmp_path_factory.mktemp("aux") / "history.csv"
    path.write_text(HISTORY, encoding="utf-8")
    est = AuxTyping()
    return est.fit(_read(path, est))


def test_default_table_names_fee_columns():
    rows = {r["subtype"]: r["arg"] for r in read_subtypes().to_pylist() if r["kind"] == "high_cost"}
    assert rows == {"TUM-HC1": "fee_05", "TUM-HC2": "fee_09+fee_10+fee_11"}
    cols = AuxTyping().input_columns()
    assert {"fee_05", "fee_09", "fee_10", "fee_11"} <= set(cols) and "fee_06" not in cols
    assert len(set(cols)) == len(cols)


def test_fitted_group_standard_and_coefficients(fitted):
    c = fitted.coefficients_.filter(pc.equal(fitted.coefficients_["family"], "tumour")).to_pylist()
    got = {r["subtype"]: (r["coef"], r["n_cases"], r["group_avg_cost"]) for r in c}
    assert got == {
        "TUM-HC1": (3.25, 10, 20000.0),
        "TUM-HC2": (3.25, 10, 20000.0),
        "TUM-OTHER": (0.4375, 80, 20000.0),
    }
    assert fitted.warnings_ == []


def test_vectors_fire_from_fee_columns(tmp_path, fitted):
    path = tmp_path / "cases.csv"
    path.write_text(_HEADER + "".join(_csv(v) + "\n" for v in VECTORS), encoding="utf-8")
    t = _read(path, fitted)
    assert fitted.classify(t)["tumour"].to_pylist() == [v[8] for v in VECTORS]
    aux_type, aux_coef = _columns(fitted.apply(t))
    assert aux_type.to_pylist() == [v[9] for v in VECTORS]
    np.testing.assert_allclose(aux_coef, [v[10] for v in VECTORS])


def test_a_missing_fee_column_is_reported_and_its_condition_false(tmp_path, fitted):
    path = tmp_path / "cases.csv"
    path.write_text(_HEADER + _csv(VECTORS[1]) + "\n", encoding="utf-8")
    t = _read(path, fitted).drop_columns(["fee_10"])
    assert fitted.classify(t)["tumour"].to_pylist() == ["TUM-OTHER"]
    est = AuxTyping().fit(t)
    assert any("fee_10" in w for w in est.warnings_)


@pytest.mark.parametrize("arg, bad", [("fee_treatment", "fee_treatment"), ("fee_09+fee_99", "fee_99")])
def test_unknown_fee_column_is_an_error_naming_file_and_row(tmp_path, arg, bad):
    path = tmp_path / "subtypes.csv"
    text = read_subtypes().to_pandas()
    text.loc[text.subtype == "TUM-HC2", "arg"] = arg
    text.to_csv(path, index=False)
    line = int(np.flatnonzero(text.subtype == "TUM-HC2")[0]) + 2
    with pytest.raises(
        CodebookError, match=rf"subtypes\.csv: line {line}: TUM-HC2 .*'{bad}' is not a fee column"
    ) as caught:
        read_subtypes(path)
    assert (caught.value.path, caught.value.row, caught.value.column) == (str(path), line, "arg")
    with pytest.raises(CodebookError, match="is not a fee column"):
        AuxTyping(subtypes=str(path)).input_columns()


def test_synthetic_fees_reach_the_high_cost_conditions(tmp_path):
    """synth --fees → read as for ``drgdip group`` with aux → group_dip → fit: the fee columns arrive."""
    est = AuxTyping(min_group_n=5, min_subtype_n=1)
    discharges, _ = write_region(tmp_path, 20_000, [2024], 10, seed=3, fees=True)
    t = pa.concat_tables(grouper.read_discharges(discharges, columns=INPUT_COLUMNS + est.input_columns()))
    assert all(t[c].null_count == 0 for c in ("fee_05", "fee_09", "fee_10", "fee_11"))
    assert t["fee_01"].null_count == t.num_rows  # not asked for, not parsed
    g = group_dip(t, read_catalogue("pingdingshan-2025"))
    est.fit(t, g)
    assert est.warnings_ == []
    # make one fitted tumour case of the region high-cost by drugs: cost 3 × the group mean, 西药费 60 %
    fitted = est.coefficients_.filter(pc.equal(est.coefficients_["family"], "tumour"))
    group, mean = fitted["dip_group"][0].as_py(), fitted["group_avg_cost"][0].as_py()
    tumour = est.classify(t.append_column("dip_group", g["dip_group"]))["tumour"]
    alive = pc.and_(pc.is_valid(tumour), pc.not_equal(tumour, "TUM-DEATH"))
    row = int(
        np.flatnonzero(pc.and_(pc.equal(g["dip_group"], group), alive).to_numpy(zero_copy_only=False))[0]
    )
    case = t.slice(row, 1).append_column("dip_group", pa.array([group]))
    cost = 3 * mean
    fees = {c: 0.0 for c in FEE_COLUMNS} | {"fee_09": 0.6 * cost, "fee_14": 0.4 * cost}
    for name, value in {"total_cost": cost, **fees}.items():
        case = case.set_column(case.schema.get_field_index(name), name, pa.array([value]))
    assert est.classify(case)["tumour"].to_pylist() == ["TUM-HC2"]
