"""A history given as a folder (catalog, weights): the files read are those every other command reads of a folder,
and a folder whose files store one column differently (dates as dates in one, as text in another) reads the same
whichever file comes first (issue 11)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import grouper
from grouper.io.discharges import dataset_files, history_files
from payment.cli import app
from tests.payment import payment_synth as synth


@pytest.fixture(scope="module")
def cases() -> pa.Table:
    cases, _ = synth.region(40, 2, seed=5, codes=True)
    plain = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in cases.columns]
    return pa.table(plain, names=cases.column_names)


def _write(path: Path, table: pa.Table) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def _catalog(history: Path, out: Path) -> bytes:
    result = CliRunner().invoke(app, ["catalog", "--history", str(history), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def test_a_history_folder_is_read_by_the_one_rule_of_every_folder(tmp_path, cases):
    """A copy under ``_tmp/`` or a hidden file is not read (it was: a catalogue of twice the cases, silently);
    ``B.PARQUET`` is (it was not): the files of ``history_files`` are those of ``dataset_files``."""
    folder = tmp_path / "history"
    a = _write(folder / "a.parquet", cases.slice(0, 20))
    b = _write(folder / "B.PARQUET", cases.slice(20))
    _write(folder / "_tmp" / "a.parquet", cases.slice(0, 20))
    _write(folder / ".a.parquet", cases.slice(0, 20))
    _write(folder / "year=2025" / "_SUCCESS.parquet", cases.slice(0, 20))
    assert history_files([folder]) == dataset_files([folder]) == [b, a]  # sorted by path
    assert grouper.read_cases(folder).num_rows == cases.num_rows
    single = _write(tmp_path / "one" / "all.parquet", cases)
    assert _catalog(folder, tmp_path / "f.csv") == _catalog(single, tmp_path / "s.csv")


def test_a_history_path_that_is_missing_or_an_empty_folder_is_one_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(grouper.InputError, match="no such file or folder"):
        history_files([tmp_path / "nope"])
    with pytest.raises(grouper.InputError, match="empty: no Parquet files found"):
        history_files([tmp_path / "empty"])


def test_a_history_folder_reads_the_same_whichever_file_stores_dates_as_text(tmp_path, cases):
    """One file stores dates as dates, the other as text (``2025/05/07``) and its hospital dictionary-encoded:
    each file is read with the one typed reading before they are put together, so either order gives the same
    history (what catalog and weights fit on), the same catalogue and the same fingerprint (the values as read);
    it was "not readable Parquet (…date32…)" when the typed file came first."""
    import pyarrow.compute as pc

    day = pc.strftime(cases.column("discharge_date").cast(pa.timestamp("s")), "%Y/%m/%d")
    text = cases.set_column(cases.column_names.index("discharge_date"), "discharge_date", day)
    text = text.set_column(1, "hospital_id", pc.dictionary_encode(text.column("hospital_id")))
    fits, reads = {}, {}
    for order, (first, second) in {
        "typed": (cases, cases),
        "one": (cases, text),
        "other": (text, cases),
    }.items():
        folder, out = tmp_path / order, tmp_path / f"out-{order}"
        _write(folder / "a.parquet", first.slice(0, 20))
        _write(folder / "b.parquet", second.slice(20))
        result = CliRunner().invoke(app, ["catalog", "--history", str(folder), "--out", str(out / "fit.csv")])
        assert result.exit_code == 0, result.output
        fits[order] = {f.name: f.read_bytes() for f in sorted(out.iterdir())}
        read = grouper.read_cases(folder)
        reads[order] = read.set_column(1, "hospital_id", read.column("hospital_id").cast(pa.string()))
    assert fits["one"] == fits["other"] == fits["typed"] and b"sha256" in fits["typed"]["fit.toml"]
    assert reads["one"].equals(reads["typed"]) and reads["other"].equals(reads["typed"])
