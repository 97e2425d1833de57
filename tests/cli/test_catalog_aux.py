"""``drgdip catalog`` writes ``<stem>.aux.csv`` (辅助分型) beside the catalogue; ``drgdip group`` picks it up."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.dip.aux import AuxTyping
from grouper.dip.catalogue import read_catalogue
from payment.cli import app
from tests.grouper.dip.test_group_aux import history

runner = CliRunner()
CASES = """case_id,principal_dx,other_dx,los_days,discharge_mode,age_years,total_cost
severe,K35.800,I50.900,5,1,40,15000
mild,K35.800,,5,1,40,8750
unknown,Q99.999,,5,1,40,100
"""


@pytest.fixture()
def files(tmp_path):
    pq.write_table(history(), tmp_path / "history.parquet")
    (tmp_path / "cases.csv").write_text(CASES, encoding="utf-8")
    return tmp_path


def catalog(files, out: str, *extra: str):
    args = ["catalog", "--history", str(files / "history.parquet"), "--out", str(files / out), *extra]
    return runner.invoke(app, [*args, "-q"])


def group(files, catalogue: str, out: str, *extra: str):
    args = ["group", str(files / "cases.csv"), "-o", str(files / out), "--scheme", "dip"]
    return runner.invoke(app, [*args, "--catalogue", str(files / catalogue), "-q", *extra])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_catalog_then_group_applies_the_aux_table(files, suffix):
    result = catalog(files, f"region{suffix}")
    assert result.exit_code == 0, result.output
    aux_file = files / "region.aux.csv"  # CSV beside a .csv or a .parquet catalogue
    assert aux_file.exists() and (files / "region.aux.params.toml").exists()
    aux = AuxTyping.read(aux_file)
    assert aux.meta_["catalogue_sha256"] == read_catalogue(files / f"region{suffix}").fingerprint
    result = group(files, f"region{suffix}", "g.parquet")
    assert result.exit_code == 0, result.output
    out = pq.read_table(files / "g.parquet")
    assert out["dip_group"].to_pylist() == ["K35.8", "K35.8", ""]
    assert out["aux_type"].to_pylist() == ["SEV-III", "SEV-I-B", ""]
    assert out["aux_coef"].to_pylist() == pytest.approx([1.5, 0.875, 1.0])
    assert out.schema.metadata[b"drgdip.aux_sha256"].decode() == aux.fingerprint


def test_no_aux_in_group_and_in_catalog(files):
    assert catalog(files, "region.csv").exit_code == 0
    result = group(files, "region.csv", "g.csv", "--no-aux")
    assert result.exit_code == 0, result.output
    meta = json.loads((files / "g.csv.meta.json").read_text(encoding="utf-8"))
    assert "drgdip.aux_sha256" not in meta
    assert all(line.split(",")[-2] == "1" for line in (files / "g.csv").read_text().splitlines()[1:])
    assert catalog(files, "bare.csv", "--no-aux").exit_code == 0
    assert not (files / "bare.aux.csv").exists()
    result = group(files, "bare.csv", "g.parquet")
    assert result.exit_code == 0, result.output
    out = pq.read_table(files / "g.parquet")
    assert out["aux_coef"].to_pylist() == [1.0, 1.0, 1.0] and b"drgdip.aux_sha256" not in out.schema.metadata


def test_aux_named_explicitly_and_a_stale_one(files):
    assert catalog(files, "region.csv").exit_code == 0
    assert catalog(files, "bare.csv", "--no-aux", "--name", "other").exit_code == 0
    named = ["--aux", str(files / "region.aux.csv")]
    result = group(files, "bare.csv", "g.parquet", *named)  # fitted against region.csv: a warning only
    assert result.exit_code == 0 and "another catalogue" in result.output
    assert pq.read_table(files / "g.parquet")["aux_coef"].to_pylist() == pytest.approx([1.5, 0.875, 1.0])
    (files / "region.aux.csv").replace(files / "bare.aux.csv")
    (files / "region.aux.params.toml").replace(files / "bare.aux.params.toml")
    result = group(files, "bare.csv", "h.parquet")  # found beside bare.csv but fitted against region.csv
    assert result.exit_code == 1 and "fitted against another catalogue" in result.output
    assert not (files / "h.parquet").exists()
    result = group(files, "bare.csv", "h.parquet", *named, "--no-aux")
    assert result.exit_code == 2 and "--aux is for --scheme dip, without --no-aux" in result.output
    result = group(files, "bare.csv", "h.parquet", "--aux", str(files / "cases.csv"))
    assert result.exit_code == 1 and "not an auxiliary typing table" in result.output


def test_catalog_keeps_an_existing_aux_table_without_force(files):
    assert catalog(files, "region.csv").exit_code == 0
    (files / "region.csv").unlink()
    result = catalog(files, "region.csv")
    assert result.exit_code == 1 and "region.aux.csv already exists" in result.output
    assert catalog(files, "region.csv", "--force").exit_code == 0
