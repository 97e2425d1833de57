"""Parquet page checksums (issue 11 item 8): drgdip writes them, and reading verifies them where present — a
flipped byte inside a column is one error naming the file, never silently different groups."""

from __future__ import annotations

from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from grouper.errors import InputError
from grouper.io.formats import raw_batches
from grouper.io.writer import PARQUET_OPTIONS
from payment.cli import app

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests/grouper/drg/data/conformance_visible.csv"
runner = CliRunner()


def _damaged(tmp_path: Path, column: str) -> Path:
    """The conformance cases written as drgdip writes Parquet, one byte inside ``column``'s first page flipped."""
    table = pacsv.read_csv(CASES, convert_options=pacsv.ConvertOptions(strings_can_be_null=False))
    path = tmp_path / "cases.parquet"
    pq.write_table(table, path, compression="snappy", **PARQUET_OPTIONS)
    meta = pq.ParquetFile(path).metadata.row_group(0)
    chunk = meta.column(table.column_names.index(column))
    data = bytearray(path.read_bytes())
    at = chunk.data_page_offset + chunk.total_compressed_size // 2  # inside the page, past its header
    data[at] ^= 0x5A
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("column", ["principal_dx", "los_days"])
def test_a_flipped_byte_is_one_error_naming_the_file(tmp_path, column):
    path = _damaged(tmp_path, column)
    with pytest.raises(InputError, match="a data page fails its checksum: the file is damaged") as info:
        for _ in raw_batches(path, batch_size=1000):
            pass
    assert info.value.path == str(path)
    result = runner.invoke(app, ["group", str(path), "-o", str(tmp_path / "out.parquet"), "-q"])
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"error: {path}: not a readable Parquet file (a data page fails its checksum: the file is damaged)"
    )
    assert not (tmp_path / "out.parquet").exists()


def test_an_intact_file_reads(tmp_path):
    table = pacsv.read_csv(CASES)
    path = tmp_path / "cases.parquet"
    pq.write_table(table, path, **PARQUET_OPTIONS)
    assert sum(t.num_rows for t in raw_batches(path, batch_size=1000)) == table.num_rows
