"""Row groups encoded in parallel and joined (payment.rowgroups): the same bytes as one Parquet writer."""

from __future__ import annotations

import errno
import functools
import io
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grouper.errors import OutputError
from grouper.io.writer import PARQUET_OPTIONS
from payment.rowgroups import EncodedColumns, JoinedWriter, decode, encode

OPTIONS = dict(compression="zstd", **PARQUET_OPTIONS)


def _group(rows: int, first: int, seed: int) -> pa.Table:
    """Dictionary (its own per group), nullable double, text, bool, int, date columns, with metadata."""
    rng = np.random.default_rng(seed)
    values = pa.array([f"v{i}" for i in range(first, first + 7)])
    idx = pa.array(rng.integers(0, 7, rows).astype(np.int32), mask=rng.random(rows) < 0.1)
    return pa.table(
        {
            "d": pa.DictionaryArray.from_arrays(idx, values),
            "x": pa.array(rng.random(rows), mask=rng.random(rows) < 0.2),
            "s": pa.array([f"C{first}-{i}" for i in range(rows)]),
            "b": pa.array(rng.random(rows) < 0.5),
            "i": pa.array(rng.integers(-5, 5, rows)),
            "t": pa.array(rng.integers(0, 400, rows).astype("datetime64[D]")),
        }
    ).replace_schema_metadata({"drgdip.version": "test"})


def _one_writer(groups: list[pa.Table]) -> bytes:
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, groups[0].schema, **OPTIONS) as writer:
        for g in groups:
            writer.write_table(g, row_group_size=max(g.num_rows, 1))
    return sink.getvalue()


def _joined(groups: list[pa.Table], threads: int = 2) -> bytes:
    sink = io.BytesIO()
    writer = JoinedWriter(sink, OPTIONS, threads)
    for g in groups:
        writer.write(g)
    writer.close()
    return sink.getvalue()


@pytest.mark.parametrize(
    "sizes",
    [[1000, 500, 17], [0], [3] * 20, [2000]],
    ids=["three", "empty", "twenty (a long Thrift list)", "one"],
)
def test_joined_row_groups_are_the_bytes_one_writer_writes(sizes):
    groups = [_group(n, 3 * k, k) for k, n in enumerate(sizes)]
    one = _one_writer(groups)
    assert _joined(groups) == one
    assert _joined(groups, threads=1) == one
    back = pq.read_table(io.BytesIO(one))
    assert back.num_rows == sum(sizes)


def test_the_footer_reads_back_byte_for_byte():
    data = _one_writer([_group(100, 0, 1), _group(50, 2, 2)])
    (size,) = struct.unpack("<I", data[-8:-4])
    footer = data[-8 - size : -8]
    assert encode(decode(footer)) == footer


def test_a_row_group_with_another_schema_is_refused():
    writer = JoinedWriter(io.BytesIO(), OPTIONS)
    writer.write(_group(10, 0, 1))
    with pytest.raises(OutputError, match="schema"):
        writer.write(_group(10, 0, 1).drop_columns(["x"]))
    writer.discard()


@pytest.mark.parametrize("sizes", [[1000, 500, 17], [3] * 20, [2000]], ids=["three", "twenty", "one"])
def test_row_groups_written_in_two_steps_are_the_bytes_one_writer_writes(sizes):
    """The leading columns of each row group encoded ahead (EncodedColumns), the rest later (``before=``): the
    same file, also where a small dictionary page makes the writer fall back to plain encoding."""
    options = {**OPTIONS, "dictionary_pagesize_limit": 256}
    groups = [_group(n, 3 * k, k) for k, n in enumerate(sizes)]
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, groups[0].schema, **options) as one:
        for g in groups:
            one.write_table(g, row_group_size=max(g.num_rows, 1))
    for threads in (1, 2):
        ahead = EncodedColumns(options, threads)
        for g in groups:
            ahead.write(g.select(["d", "x", "s"]))
        joined = io.BytesIO()
        writer = JoinedWriter(joined, options, threads, schema=groups[0].schema)
        for k, g in enumerate(groups):
            writer.write(g.select(["b", "i", "t"]), before=functools.partial(ahead.take, k))
        writer.close()
        ahead.close()
        assert joined.getvalue() == sink.getvalue()


def test_row_groups_in_two_steps_need_the_files_schema():
    ahead = EncodedColumns(OPTIONS)
    ahead.write(_group(10, 0, 1).select(["d"]))
    writer = JoinedWriter(io.BytesIO(), OPTIONS)
    with pytest.raises(OutputError, match="schema"):
        writer.write(_group(10, 0, 1).drop_columns(["d"]), before=lambda: ahead.take(0))
    writer.discard()
    ahead.close()


def test_a_full_temporary_folder_is_an_output_error(monkeypatch):
    class Full(io.BytesIO):
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    ahead = EncodedColumns(OPTIONS, threads=1)
    monkeypatch.setattr(ahead, "file", Full())
    ahead.write(_group(10, 0, 1))
    with pytest.raises(OutputError, match=r"TMPDIR\) could not be written: No space left on device"):
        ahead.take(0)
    ahead.close()


def test_dictionary_columns_written_in_one_batch_are_the_bytes_one_writer_writes():
    """Row groups of many write batches (Arrow's: 1,024 rows) whose small dictionary columns, between other
    columns, are encoded in one batch: the same file as one writer's, for a dictionary too large to be written so
    too, and with the row groups' leading columns encoded ahead."""
    rng = np.random.default_rng(7)

    def group(rows: int) -> pa.Table:
        def coded(entries: int, nulls: float) -> pa.DictionaryArray:
            idx = pa.array(rng.integers(0, entries, rows).astype(np.int32), mask=rng.random(rows) < nulls)
            return pa.DictionaryArray.from_arrays(idx, pa.array([f"H{i:05d}" for i in range(entries)]))

        return pa.table(
            {
                "s": pa.array([f"C{i}" for i in range(rows)]),
                "d": coded(7, 0.1),
                "e": coded(1000, 0.0),
                "big": coded(5000, 0.01),
                "x": pa.array(rng.random(rows)),
                "f": coded(3, 0.0),
            }
        ).replace_schema_metadata({"drgdip.version": "test"})

    groups = [group(n) for n in (30_000, 5_000, 1)]
    one = _one_writer(groups)
    assert _joined(groups) == one
    ahead = EncodedColumns(OPTIONS)
    for g in groups:
        ahead.write(g.select(["s", "d", "e"]))
    sink = io.BytesIO()
    writer = JoinedWriter(sink, OPTIONS, schema=groups[0].schema)
    for k, g in enumerate(groups):
        writer.write(g.select(["big", "x", "f"]), before=functools.partial(ahead.take, k))
    writer.close()
    ahead.close()
    assert sink.getvalue() == one
