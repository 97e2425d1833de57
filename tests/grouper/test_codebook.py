"""Codebook loading: compiled arrays, cache, and load-time errors for unknown rule kinds or tables."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import grouper
from grouper.codebook import CodebookError, codebook_dir


def test_counts_match_the_source(codebook):
    assert len(codebook["mdc_labels"]) == 26
    assert len(codebook["adrg_labels"]) == 376
    assert len(codebook["drg_labels"]) == 628
    assert int(codebook["proc_valid"].sum()) == 10251
    assert int((codebook["mcc_table"] >= 0).sum()) == 4678
    assert int((codebook["cc_table"] >= 0).sum()) == 16568
    assert int((codebook["cce_table"] >= 0).sum()) == 28302
    assert int(codebook["dx_known"].sum()) == 33304


def test_cached_load_is_well_under_a_second(tmp_path, monkeypatch):
    monkeypatch.setenv("DRGDIP_CACHE", str(tmp_path))
    first = grouper.Codebook.load("chs-drg-1.1")
    start = time.perf_counter()
    again = grouper.Codebook.load("chs-drg-1.1")
    assert time.perf_counter() - start < 0.5
    assert again.fingerprint == first.fingerprint
    assert list(tmp_path.glob("chs-drg-1.1-*.npz"))


def _copy(tmp_path: Path) -> Path:
    folder = tmp_path / "cb"
    shutil.copytree(codebook_dir("chs-drg-1.1"), folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_unknown_predicate_stops_the_load_naming_file_row_and_position(tmp_path):
    folder = _copy(tmp_path)
    _edit(
        folder / "adrg.csv",
        "MDCA,AA1,心脏移植,1,surgical,pproc in ss",
        "MDCA,AA1,心脏移植,1,surgical,pproc twice ss",
    )
    with pytest.raises(
        CodebookError, match=r"adrg\.csv: row 2 \(AA1\): 'pproc' cannot be followed by 'twice' at position 7"
    ):
        grouper.Codebook.load(folder, cache=False)


def test_unknown_list_stops_the_load(tmp_path):
    folder = _copy(tmp_path)
    _edit(
        folder / "adrg.csv",
        "MDCA,AA1,心脏移植,1,surgical,pproc in ss",
        "MDCA,AA1,心脏移植,1,surgical,pproc in ss9",
    )
    with pytest.raises(CodebookError, match=r"adrg\.csv: row 2: unknown list AA1\.ss9 at position 1"):
        grouper.Codebook.load(folder, cache=False)


def test_syntax_error_in_a_gate_stops_the_load(tmp_path):
    folder = _copy(tmp_path)
    _edit(folder / "mdc.csv", "pdx in MDCP.zd and age_years == 0", "pdx in MDCP.zd and (age_years == 0")
    with pytest.raises(
        CodebookError, match=r"mdc\.csv: row 3 \(MDCP\): expected \), found the end at position 35"
    ):
        grouper.Codebook.load(folder, cache=False)


def test_unknown_engine_setting_stops_the_load(tmp_path):
    folder = _copy(tmp_path)
    _edit(folder / "codebook.toml", 'numbers = "java"', 'numbers = "cobol"')
    with pytest.raises(CodebookError, match=r"codebook\.toml: \[engine\] numbers: 'cobol'"):
        grouper.Codebook.load(folder, cache=False)


def test_missing_table_and_unknown_name(tmp_path):
    folder = _copy(tmp_path)
    (folder / "drg.csv").unlink()
    with pytest.raises(CodebookError, match=r"drg\.csv: missing codebook table"):
        grouper.Codebook.load(folder, cache=False)
    with pytest.raises(CodebookError, match=r"unknown codebook 'chs-drg-9' \(known: chs-drg-1.1"):
        grouper.Codebook.load("chs-drg-9")


def test_enabled_qy_sends_an_unrelated_procedure_to_the_ambiguous_group(tmp_path):
    """codebooks/chs-drg-1.1/RULES.md §3 QY: with the test on, a case failing the surgical/non-OR ADRGs but with a valid procedure → xQY."""
    folder = _copy(tmp_path)
    qy = folder / "qy.csv"
    _edit(qy, "GQY,1,in_mdc,GK3,anyproc valid,false", "GQY,1,in_mdc,GK3,anyproc valid,true")
    cb = grouper.Codebook.load(folder, cache=False)
    import pyarrow as pa

    t = pa.table(
        {
            "case_id": ["1", "2"],
            "sex": pa.array([2, 2], pa.int8()),
            "age_years": pa.array([88, 88], pa.int16()),
            "principal_dx": ["K22.301", "K22.301"],
            "principal_proc": ["86.2200x011", None],  # 86.22 清创术: valid OR procedure unrelated to MDCG
        }
    )
    got = grouper.group_drg(t, cb).to_pydict()
    assert got["drg"] == ["GQY", "GZ15"] and got["adrg"] == ["QY", "GZ1"] and got["mdc"] == ["MDCG", "MDCG"]


def test_a_folder_named_like_the_scheme_in_the_working_directory_is_not_taken_for_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "chs-drg-1.1").mkdir()
    assert grouper.Codebook.load("chs-drg-1.1").scheme == "chs-drg-1.1"
    with pytest.raises(CodebookError, match="not a codebook folder"):
        grouper.Codebook.load(tmp_path / "chs-drg-1.1")


@pytest.mark.parametrize(
    ("scheme", "drg", "adrg", "mdc"),
    [
        ("chs-drg-1.1", "其他消化系统诊断，伴并发症或合并症", "其他消化系统诊断", "消化系统疾病及功能障碍"),
        ("chs-drg-2.0", "", "其他消化系统疾病", "消化道疾病及功能障碍"),
    ],
)
def test_names_of_mdc_adrg_and_drg_codes_for_both_versions(scheme, drg, adrg, mdc):
    cb = grouper.Codebook.load(scheme)
    assert cb.names("drg", ["GZ13", "NOPE"]).tolist() == [drg, ""]
    assert cb.names("adrg", ["GZ1", "QY"]).tolist() == [adrg, "歧义组"]
    assert cb.names("mdc", ["MDCG"]).tolist() == [mdc]
    with pytest.raises(ValueError, match="level must be"):
        cb.names("dip", ["GZ1"])


def test_the_default_scheme_is_chs_drg_2_0_with_its_counts_and_qc_lists():
    cb = grouper.Codebook.load()
    assert cb.scheme == "chs-drg-2.0"
    assert len(cb["mdc_labels"]) == 26 and len(cb["adrg_labels"]) == 409 and len(cb["drg_labels"]) == 634
    assert len(cb["qy_labels"]) == 20 and int(cb["proc_valid"].sum()) == 9376
    assert cb.settings.severity_includes_principal and cb.settings.numbers == "ecmascript"
    assert len(cb.table("dx_gray.csv")) == 2828 and len(cb.table("proc_not_for_grouping.csv")) == 1829
    assert (
        len(cb.table("dx_surgical_hint_adrg.csv")) == 15 and len(cb.table("dx_surgical_hint_mdc.csv")) == 14
    )


def test_codes_seen_in_earlier_batches_encode_as_in_a_fresh_codebook(codebook):
    """Raw code strings looked up once are remembered (issue 14); a later batch mixing remembered, new, noisy and
    unknown codes gets the ids a fresh codebook gives."""
    import pyarrow as pa

    first = pa.array(["K35.800x001", " j18.900", "XXX", None, "I10.X05"])
    later = pa.array(
        ["j18.900", " j18.900", "E11.900", "XXX", "", "K35.800x001", None, "A18.000x047 + M49.0*"]
    )
    codebook.encode_dx(first)
    fresh = grouper.Codebook.load(codebook.scheme)
    assert codebook.encode_dx(later).tolist() == fresh.encode_dx(later).tolist()
    assert codebook.encode_dx(first, verbatim=True).tolist() == fresh.encode_dx(first, verbatim=True).tolist()
    assert codebook.encode_proc(later).tolist() == fresh.encode_proc(later).tolist()


def test_a_copy_sent_to_a_worker_encodes_as_the_codebook_it_was_copied_from(codebook):
    """A codebook pickled after it has looked codes up (its lookup maps built) encodes the same codes the same
    way: a Dask worker's copy once read every diagnosis as unknown (the copy kept empty maps)."""
    import pickle

    import pyarrow as pa

    from grouper.strings import StringIds

    codes = pa.array(["K35.800x001", " j18.900", "XXX", None, "I10.X05", "A18.000x047 + M49.0*"])
    expected = codebook.encode_dx(codes).tolist()
    assert sum(i >= 0 for i in expected) == 4
    copy = pickle.loads(pickle.dumps(codebook))
    assert copy.encode_dx(codes).tolist() == expected
    assert (
        copy.encode_proc(pa.array(["99.0400x001"])).tolist()
        == codebook.encode_proc(pa.array(["99.0400x001"])).tolist()
    )

    ids = StringIds()
    ids.add(pa.array(["a", "bc"]), [7, 9])
    again = pickle.loads(pickle.dumps(ids))
    assert again.ids_of(pa.array(["bc", "a", "z"]))[0].tolist() == [9, 7, -1]
    again.add(pa.array(["z"]), [1])
    assert len(again) == 3 and len(ids) == 2
