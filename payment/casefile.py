"""The per-case table of a settlement (``cases.parquet``): row groups of a fixed size and dictionaries in order of
first appearance, so that the file's bytes depend only on its rows, not on how the input was read or cut into
batches. One file, or (a settlement of parts) a folder ``cases.parquet/`` of one such file per part, which the
workers of a cluster write in parallel (payment.distributed)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from grouper.errors import OutputError
from grouper.io.writer import PARQUET_OPTIONS, column_options
from payment._arrays import spread
from payment.rowgroups import EncodedColumns, JoinedWriter

__all__ = ["ROW_GROUP", "CaseWriter", "part_name"]

#: Rows per row group of cases.parquet (fixed, so the file does not depend on how the input was read).
ROW_GROUP = 1 << 19
#: Per-case columns copied from the input: their dictionaries are the input's, cut as the input was read.
_FROM_INPUT = ("case_id", "hospital_id", "insurance_type")
_OPTIONS = dict(compression="zstd", **PARQUET_OPTIONS)


def _options(schema: pa.Schema) -> dict:
    """The Parquet writer's options for columns of ``schema``: :data:`_OPTIONS`, and statistics and dictionaries as
    in every per-case file drgdip writes (grouper.io.writer.column_options)."""
    return {**_OPTIONS, **column_options(schema)}


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
        entries = len(chunk.dictionary)
        idx = pc.fill_null(chunk.indices, entries) if chunk.null_count else chunk.indices
        idx = idx.to_numpy(zero_copy_only=False)
        used = _first_appearances(idx, entries)
        remap = np.full(entries + 1, -1, dtype=np.int32)  # the last entry: null
        for i, value in zip(used.tolist(), chunk.dictionary.take(pa.array(used)).to_pylist(), strict=True):
            remap[i] = code.setdefault(value, len(code))
        parts.append(spread(remap, idx))
    new = np.concatenate(parts)
    missing = new < 0
    indices = pa.array(new, mask=missing if missing.any() else None).cast(column.type.index_type)
    return pa.DictionaryArray.from_arrays(indices, pa.array(list(code), column.type.value_type))


@njit(cache=True, nogil=True)
def _first_appearances(indices, entries):
    """The dictionary positions that ``indices`` use, in order of first appearance (``entries``, a null, left
    out): what ``pc.unique`` gives, in one pass without a hash table."""
    seen = np.zeros(entries + 1, dtype=np.bool_)
    seen[entries] = True
    order = np.empty(entries, dtype=np.int64)
    k = 0
    for i in range(indices.shape[0]):
        j = indices[i]
        if not seen[j]:
            seen[j] = True
            order[k] = j
            k += 1
    return order[:k]


def _dictionaries_in_order(group: pa.Table) -> pa.Table:
    """The row group with the input's dictionary columns re-coded in order of first appearance (same types)."""
    cols = [
        _first_seen(c) if pa.types.is_dictionary(c.type) and name in _FROM_INPUT else c
        for name, c in zip(group.column_names, group.columns, strict=True)
    ]
    return pa.Table.from_arrays(cols, schema=group.schema)


class _Rows:
    """Tables cut into row groups of ``ROW_GROUP`` rows whatever their lengths (the rows kept until a group is
    full)."""

    def __init__(self):
        self.pending: list[pa.Table] = []
        self.rows = self.total = self.groups = 0

    def add(self, table: pa.Table) -> Iterator[pa.Table]:
        """The row groups filled by ``table``."""
        self.pending.append(table)
        self.rows += table.num_rows
        self.total += table.num_rows
        while self.rows >= ROW_GROUP:
            yield self.take(ROW_GROUP)

    def take(self, n: int) -> pa.Table:
        """The first ``n`` rows kept (all of them: ``self.rows``) as the next row group."""
        table = pa.concat_tables(self.pending)
        group, rest = table.slice(0, n), table.slice(n)
        self.pending, self.rows = [rest], rest.num_rows
        self.groups += 1
        return group


class CaseWriter:
    """Per-case tables → Parquet in row groups of ``ROW_GROUP`` rows whatever the batches (byte-stable); the row
    groups are encoded in background threads (payment.rowgroups) while the next batches are settled.

    The columns can come in two steps: :meth:`early` takes the leading columns of every case (those final after a
    settlement's first pass), encoded then; the call then takes the other columns of the same cases in the same
    order, and each row group is written with both, as when they come together."""

    def __init__(self, path: Path, metadata: dict[str, str]):
        self.path, self.metadata = path, metadata
        self.file: BinaryIO | None = None
        self.writer: JoinedWriter | None = None
        self.ahead: EncodedColumns | None = None
        self.restart()

    def restart(self) -> None:
        """Start the file again (a settlement rerun once its cases turned out to need the join by case_id)."""
        self.discard()
        self.rows, self.first = _Rows(), _Rows()
        self.first_schema: pa.Schema | None = None

    def early(self, table: pa.Table) -> None:
        """The leading columns of the next cases, encoded before their other columns are known."""
        if self.rows.total:
            raise OutputError("cases.parquet: leading columns after the others")
        if self.ahead is None:
            self.ahead = EncodedColumns(_options(table.schema))
            self.first_schema = table.schema
        for group in self.first.add(table):
            self.ahead.write(group, _dictionaries_in_order)

    def __call__(self, table: pa.Table) -> None:
        """The cases' columns (after :meth:`early`: the other columns)."""
        if self.ahead is not None and self.first.rows:
            # the first pass is over: the leading columns' last row group
            self.ahead.write(self.first.take(self.first.rows), _dictionaries_in_order)
        for group in self.rows.add(table):
            self._write(group)

    def _write(self, group: pa.Table) -> None:
        group = group.replace_schema_metadata(self.metadata)
        if self.writer is None:
            self.file = self.path.open("wb")
            schema = None
            if self.ahead is not None:
                schema = pa.schema([*self.first_schema, *group.schema], metadata=self.metadata)
            self.writer = JoinedWriter(self.file, _options(schema or group.schema), schema=schema)
        if self.ahead is None:
            self.writer.write(group, _dictionaries_in_order)
        else:
            self.writer.write(group, before=functools.partial(self.ahead.take, self.rows.groups - 1))

    def close(self) -> None:
        """Write the last row group (or the empty table) and close the file."""
        if self.ahead is not None:
            if self.first.total != self.rows.total:
                raise OutputError(
                    f"cases.parquet: {self.first.total:,} cases in the leading columns, {self.rows.total:,} in the "
                    "others"
                )
            if not self.rows.total:  # no cases: the empty table, in one step
                first, rest = self.first.take(0), self.rows.take(0)
                self.ahead.close()
                self.ahead, self.rows = None, _Rows()
                self.rows.pending = [
                    pa.Table.from_arrays(
                        [*first.columns, *rest.columns], schema=pa.schema([*first.schema, *rest.schema])
                    )
                ]
        if self.rows.rows or self.writer is None:
            self._write(self.rows.take(self.rows.rows))
        self.writer.close()
        self.file.close()
        if self.ahead is not None:
            self.ahead.close()
        self.writer = self.file = self.ahead = None

    def discard(self) -> None:
        """Close and delete the unfinished file."""
        if self.writer is not None:
            self.writer.discard()
            self.writer = None
        if self.ahead is not None:
            self.ahead.close()
            self.ahead = None
        if self.file is not None:
            self.file.close()
            self.file = None
        self.path.unlink(missing_ok=True)
