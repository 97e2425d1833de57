"""The library pipelines behind ``drgdip catalog`` and ``drgdip weights``: one call reproduces the command."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper import fitting
from grouper.codebook import Codebook
from grouper.dip.aux import aux_path
from grouper.dip.catalogue_builder import DipCatalog
from grouper.drg.group import group_drg
from grouper.drg.weights import DrgWeights
from grouper.errors import InputError, OutputError
from grouper.fitting import _in_batches, catalogue_to_file, weights_to_file
from payment.cli import app
from tests.grouper.dip.test_group_aux import history as aux_history
from tests.grouper.drg.test_weights import VECTORS, history


class Passes:
    """Records what a pipeline reports: each pass (label, total) and the rows done in it."""

    def __init__(self) -> None:
        self.passes: list[list] = []

    def on_pass(self, label: str, total: int | None) -> None:
        self.passes.append([label, total, 0])

    def on_batch(self, rows: int) -> None:
        self.passes[-1][2] += rows


def test_catalogue_to_file_writes_what_drgdip_catalog_writes(tmp_path):
    pq.write_table(aux_history(), tmp_path / "h.parquet")
    seen = Passes()
    run = catalogue_to_file(
        tmp_path / "h.parquet", tmp_path / "lib.csv", on_pass=seen.on_pass, on_batch=seen.on_batch
    )
    cli = CliRunner().invoke(
        app, ["catalog", "--history", str(tmp_path / "h.parquet"), "--out", str(tmp_path / "cli.csv"), "-q"]
    )
    assert cli.exit_code == 0, cli.output
    for lib, cmd in (("lib.csv", "cli.csv"), ("lib.aux.csv", "cli.aux.csv")):
        assert (tmp_path / lib).read_bytes() == (tmp_path / cmd).read_bytes()
    assert run.path == tmp_path / "lib.csv" and run.aux_path == aux_path(tmp_path / "lib.csv")
    assert run.aux is not None and run.aux.coefficients_.num_rows > 0
    rows = aux_history().num_rows
    assert seen.passes == [
        ["reading the history", rows, rows],  # Parquet: the total is known up front (ETA)
        ["fitting the catalogue", None, 0],
        ["grouping the history into the catalogue", rows, rows],
        ["fitting auxiliary typing", None, 0],
    ]


def test_catalogue_to_file_refuses_an_existing_output_before_any_work(tmp_path):
    pq.write_table(aux_history(), tmp_path / "h.parquet")
    catalogue_to_file(tmp_path / "h.parquet", tmp_path / "c.parquet", aux=False)
    with pytest.raises(OutputError, match="already exists"):
        catalogue_to_file(tmp_path / "h.parquet", tmp_path / "c.parquet", aux=False)
    aux_path(tmp_path / "d.csv").write_text("left\n")
    seen = Passes()
    with pytest.raises(OutputError, match=r"d\.aux\.csv already exists"):
        catalogue_to_file(tmp_path / "h.parquet", tmp_path / "d.csv", on_pass=seen.on_pass)
    assert seen.passes == [] and not (tmp_path / "d.csv").exists()
    catalogue_to_file(tmp_path / "h.parquet", tmp_path / "d.csv", if_exists="replace")
    assert aux_path(tmp_path / "d.csv").read_text() != "left\n"


def test_weights_to_file_fits_the_drg_rw_vector_and_reports_its_passes(tmp_path):
    pq.write_table(history(VECTORS[0]["history"]), tmp_path / "h.parquet")
    seen = Passes()
    run = weights_to_file(
        tmp_path / "h.parquet",
        tmp_path / "w.parquet",
        year_weights=(1,),
        on_pass=seen.on_pass,
        on_batch=seen.on_batch,
    )
    assert run.grouped_with is None  # the history has its drg
    back = DrgWeights.read(run.path)
    assert dict(zip(*back.weights_.select(["drg", "rw"]).to_pydict().values(), strict=True)) == {
        "GB19": 2.0,
        "GB29": 0.5,
    }
    assert [p[0] for p in seen.passes] == ["reading the history", "fitting the weights"]
    with pytest.raises(OutputError, match="already exists"):
        weights_to_file(tmp_path / "h.parquet", tmp_path / "w.parquet", year_weights=(1,))


def test_grouping_in_batches_flags_a_duplicate_across_batches(monkeypatch):
    """Slices for progress give what one call gives: a case_id of an earlier slice is a duplicate."""
    monkeypatch.setattr(fitting, "BATCH_SIZE", 2)
    t = pa.table({"case_id": ["a", "b", "c", "a", None, "c"], "x": [1, 2, 3, 4, 5, 6]})
    done: list[int] = []

    def mark(part, duplicate):
        return pa.table({"duplicate": pa.array(duplicate)})

    out = _in_batches(mark, t, done.append)
    assert out.column("duplicate").to_pylist() == [False, False, False, True, False, True]
    assert done == [2, 2, 2]


def test_estimator_writers_refuse_to_replace_unless_asked(tmp_path):
    pq.write_table(aux_history(), tmp_path / "h.parquet")
    est = DipCatalog().fit(aux_history())
    est.to_csv(tmp_path / "c.csv")
    (tmp_path / "lone.toml").write_text("kept\n")  # the other half of a CSV pair exists: nothing is written
    for write in (lambda: est.to_csv(tmp_path / "c.csv"), lambda: est.to_csv(tmp_path / "lone.csv")):
        with pytest.raises(OutputError, match="already exists"):
            write()
    assert not (tmp_path / "lone.csv").exists() and (tmp_path / "lone.toml").read_text() == "kept\n"
    est.to_csv(tmp_path / "c.csv", if_exists="replace")


def test_auxiliary_typing_fitted_in_batches_is_the_one_fitted_in_one_call(tmp_path, monkeypatch):
    h = aux_history()
    pq.write_table(h, tmp_path / "h.parquet")
    monkeypatch.setattr(fitting, "BATCH_SIZE", 64)
    run = catalogue_to_file(tmp_path / "h.parquet", tmp_path / "c.parquet")
    whole = DipCatalog().fit(h).fit_aux(h)
    assert run.aux.coefficients_.equals(whole.coefficients_) and run.aux.n_cases_ == whole.n_cases_


def test_weights_grouped_in_batches_are_the_weights_grouped_in_one_call(tmp_path, monkeypatch):
    """Cases without a drg grouped slice by slice; a repeated case_id is a duplicate as in one call."""
    n = 200
    t = pa.table(
        {
            "case_id": [str(i - (i % 7 == 6)) for i in range(n)],  # every 7th repeats the one before
            "year": pa.array([2024] * n, pa.int32()),
            "sex": pa.array([1, 2] * (n // 2), pa.int8()),
            "age_years": pa.array([30 + i % 60 for i in range(n)], pa.int16()),
            "principal_dx": ["K22.301", "J18.900", "K35.800", "I50.900"] * (n // 4),
            "other_dx": [["K11.901", "E11.900"], [], ["I10.x00"], []] * (n // 4),
            "total_cost": [1000.0 + 37 * i for i in range(n)],
        }
    )
    pq.write_table(t, tmp_path / "h.parquet")
    monkeypatch.setattr(fitting, "BATCH_SIZE", 16)
    seen = Passes()
    run = weights_to_file(
        tmp_path / "h.parquet", tmp_path / "w.csv", min_n=1, on_pass=seen.on_pass, on_batch=seen.on_batch
    )
    grouped = group_drg(t, Codebook.load("chs-drg-2.0"))
    whole = DrgWeights(min_n=1).fit(
        t.append_column("drg", grouped["drg"]).append_column("adrg", grouped["adrg"])
    )
    assert run.grouped_with == "chs-drg-2.0" and run.weights.weights_.equals(whole.weights_)
    assert seen.passes[1] == ["grouping with chs-drg-2.0", n, n]


def test_weights_that_group_their_history_need_a_principal_in_every_file(tmp_path):
    """A history without `drg` is grouped, so each of its files needs principal_dx: one without it is named, with
    the column (its cases were grouped as ungroupable and left out of the fit without a word; a cluster's
    reader stops on it); with `drg` in a file, none needs it (the DRG-RW vector's history has no principal)."""
    t = pa.table(
        {
            "case_id": [str(i) for i in range(40)],
            "year": pa.array([2024] * 40, pa.int32()),
            "principal_dx": ["K35.800"] * 40,
            "total_cost": [1000.0 + i for i in range(40)],
        }
    )
    (tmp_path / "h").mkdir()
    pq.write_table(t.slice(0, 20), tmp_path / "h" / "part-0.parquet")
    pq.write_table(t.slice(20).drop_columns(["principal_dx"]), tmp_path / "h" / "part-1.parquet")
    with pytest.raises(
        InputError, match=r"part-1\.parquet: required column 'principal_dx' is missing"
    ) as err:
        weights_to_file(tmp_path / "h", tmp_path / "w.csv", min_n=1)
    assert err.value.column == "principal_dx" and not (tmp_path / "w.csv").exists()
    with_drg = pa.table({"drg": ["GB19"] * 20, **{c: t.slice(20).column(c) for c in ("year", "total_cost")}})
    pq.write_table(with_drg, tmp_path / "h" / "part-1.parquet")  # part-0 has no drg: its cases are left out
    assert weights_to_file(tmp_path / "h", tmp_path / "w.csv", min_n=1).weights.n_cases_ == 20


def test_the_scheme_in_force_is_the_default_and_1_1_stays_selectable(tmp_path):
    """DIP's dictionary and auxiliary typing's CC/MCC lists default to chs-drg-2.0; 1.1 is kept when named."""
    from grouper.dip.aux import AuxTyping
    from grouper.pipeline import grouping

    assert grouping("dip", catalogue="pingdingshan-2025").metadata["drgdip.codebook"] == "chs-drg-2.0"
    h = aux_history()
    est = DipCatalog().fit(h)
    fitted = {scheme: est.fit_aux(h, AuxTyping(codebook=scheme)) for scheme in ("chs-drg-2.0", "chs-drg-1.1")}
    assert AuxTyping().codebook == "chs-drg-2.0"
    for scheme, typing in fitted.items():
        typing.to_csv(tmp_path / f"{scheme}.csv")
        assert AuxTyping.read(tmp_path / f"{scheme}.csv").codebook == scheme
        assert typing.coefficients_.num_rows > 0
