"""The spill file between a settlement's passes (payment.spill): tables back in order, as often as asked."""

from __future__ import annotations

import errno

import pyarrow as pa
import pytest

from grouper.errors import OutputError
from payment.spill import Spill


def test_tables_come_back_in_order_with_their_own_dictionaries():
    tables = [
        pa.table({"h": pa.array(["b", "a", "b"]).dictionary_encode(), "x": [1, 2, 3]}),
        pa.table({"h": pa.array(["c"]).dictionary_encode(), "x": [4]}),
        pa.table({"h": pa.array([], pa.string()).dictionary_encode(), "x": pa.array([], pa.int64())}),
    ]
    with Spill() as spill:
        for t in tables:
            spill.write(t)
        assert len(spill) == 3
        for _ in range(2):  # read back twice (pass 1b, then pass 2)
            back = list(spill)
            assert [t.to_pylist() for t in back] == [t.to_pylist() for t in tables]
            assert [t.column("h").chunk(0).dictionary.to_pylist() for t in back if t.num_rows] == [
                ["b", "a"],
                ["c"],
            ]


def test_a_full_disk_is_an_output_error(monkeypatch):
    def full(self, table):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Spill, "_write", full)
    with (
        pytest.raises(OutputError, match=r"spill file .* could not be written: No space left on device"),
        Spill() as spill,
    ):
        spill.write(pa.table({"x": [1]}))
        list(spill)
