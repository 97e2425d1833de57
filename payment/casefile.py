"""The per-case table of a settlement (``cases.parquet``): row groups of a fixed size and dictionaries in order of
first appearance, so that the file's bytes depend only on its rows, not on how the input was read or cut into
batches. One file, or (a settlement of parts) a folder ``cases.parquet/`` of one such file per part, which the
workers of a cluster write in parallel (payment.distributed)."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.io.writer import PARQUET_OPTIONS
from payment.rowgroups import JoinedWriter

__all__ = ["ROW_GROUP", "CaseWriter", "part_name"]

#: Rows per row group of cases.parquet (fixed, so the file does not depend on how the input was read).
ROW_GROUP = 1 << 19
#: Per-case columns copied from the input: their dictionaries are the input's, cut as the input was read.
_FROM_INPUT = ("case_id", "hospital_id", "insurance_type")


def part_name(k: int) -> str:
    """The file of the ``k``-th part (from 0) in a ``cases.parquet/`` folder: names sort in part order."""
    return f"part-{k:05d}.parquet"


def _first_seen(column: pa.ChunkedArray) -> pa.Array:
    """A dictionary column as one array whose dictionary lists the values in order of first appearance.

    Parquet stores the Arrow dictionary as it is, so this makes a row group's bytes depend only on its values.
    """
    code: dict = {}
    parts = [np.zeros(0, dtype=np.int32)]
    for chunk in column.chunks:
        idx = pc.fill_null(chunk.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        remap = np.full(len(chunk.dictionary) + 1, -1, dtype=np.int32)  # the last entry: null
        used = pc.unique(pa.array(idx)).to_numpy()  # in order of first appearance
        used = used[used >= 0]
        for i, value in zip(used.tolist(), chunk.dictionary.take(pa.array(used)).to_pylist(), strict=True):
            remap[i] = code.setdefault(value, len(code))
        parts.append(remap[idx])
    new = np.concatenate(parts)
    indices = pa.array(new, mask=new < 0).cast(column.type.index_type)  # no more values than the input's
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(code), column.type.value_type))


def _dictionaries_in_order(group: pa.Table) -> pa.Table:
    """The row group with the input's dictionary columns re-coded in order of first appearance (same types)."""
    cols = [
        _first_seen(c) if pa.types.is_dictionary(c.type) and name in _FROM_INPUT else c
        for name, c in zip(group.column_names, group.columns, strict=True)
    ]
    return pa.table(cols, names=group.column_names).replace_schema_metadata(group.schema.metadata)


class CaseWriter:
    """Per-case tables → Parquet in row groups of ``ROW_GROUP`` rows whatever the batches (byte-stable); the row
    groups are encoded in background threads (payment.rowgroups) while the next batches are settled."""

    def __init__(self, path: Path, metadata: dict[str, str]):
        self.path, self.metadata = path, metadata
        self.file: BinaryIO | None = None
        self.writer: JoinedWriter | None = None
        self.restart()

    def restart(self) -> None:
        """Start the file again (a settlement rerun once its cases turned out to need the join by case_id)."""
        self.discard()
        self.pending: list[pa.Table] = []
        self.rows = 0

    def __call__(self, table: pa.Table) -> None:
        self.pending.append(table)
        self.rows += table.num_rows
        while self.rows >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        group, rest = table.slice(0, n), table.slice(n)
        self.pending, self.rows = [rest], rest.num_rows
        group = group.replace_schema_metadata(self.metadata)
        if self.writer is None:
            self.file = self.path.open("wb")
            self.writer = JoinedWriter(self.file, dict(compression="zstd", **PARQUET_OPTIONS))
        self.writer.write(group, _dictionaries_in_order)

    def close(self) -> None:
        """Write the last row group (or the empty table) and close the file."""
        if self.rows or self.writer is None:
            self._flush(self.rows)
        self.writer.close()
        self.file.close()
        self.writer = self.file = None

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        if self.file is not None:
            self.file.close()
            self.file = None
        self.path.unlink(missing_ok=True)
