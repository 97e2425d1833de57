"""One Parquet file from row groups encoded in parallel (行组并行编码), byte for byte what one writer writes.

A Parquet writer encodes its row groups one after the other on one core, and for the settlement's per-case table
that encoding takes longer than settling the cases. Each row group is therefore written as a Parquet file of its own
(in a thread: pyarrow releases the GIL while it encodes), and :class:`JoinedWriter` joins them: the column chunks
are copied as they are (their bytes do not depend on where they sit in the file: page headers hold no offsets) and
the footer is the first part's, with every row group listed, the byte offsets moved to where the chunks now sit,
the ordinals renumbered and the row count added up. The footer is Thrift compact protocol (parquet.thrift
``FileMetaData``); :func:`decode` and :func:`encode` read and write it field for field, and a footer that would not
come back byte for byte is refused (OutputError) rather than guessed.

A row group's columns can be encoded apart too, in two steps (列块分步编码): :class:`EncodedColumns` encodes the
leading columns of each row group as soon as they are known and keeps them in a temporary file; the rest of the
columns are given to :meth:`JoinedWriter.write` later with ``before=`` those, and the row group is written as one
writer writes it (a column chunk's bytes do not depend on the other columns; the row group's sizes are the sums of
its columns').
"""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from grouper.errors import OutputError

__all__ = ["EncodedColumns", "JoinedWriter", "decode", "encode"]

_MAGIC = b"PAR1"
# Thrift compact protocol type ids
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# field ids (parquet.thrift) of the byte offsets a moved row group carries
_FILE_ROW_GROUPS, _FILE_NUM_ROWS = 4, 3
_RG_COLUMNS, _RG_BYTES, _RG_NUM_ROWS, _RG_FILE_OFFSET, _RG_COMPRESSED, _RG_ORDINAL = 1, 2, 3, 5, 6, 7
_CC_FILE_OFFSET, _CC_META, _CC_OFFSET_INDEX, _CC_COLUMN_INDEX = 2, 3, 4, 6
_META_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter


# ---------------------------------------------------------------------------------------------------------
# Thrift compact protocol: a struct is a list of [field id, type, value]; a list is (element type, [values])


def decode(data: bytes) -> list:
    """A Thrift compact struct (the footer's ``FileMetaData``) as ``[[field id, type, value], …]``."""
    value, end = _struct(memoryview(data), 0)
    if end != len(data):
        raise OutputError(f"parquet footer: {len(data) - end} bytes after the metadata")
    return value


def encode(fields: list) -> bytes:
    """The bytes of a struct as :func:`decode` gives it."""
    out = bytearray()
    _put_struct(out, fields)
    return bytes(out)


def _varint(data: memoryview, at: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, at
        shift += 7


def _zigzag(data: memoryview, at: int) -> tuple[int, int]:
    v, at = _varint(data, at)
    return (v >> 1) ^ -(v & 1), at


def _value(data: memoryview, at: int, typ: int):
    if typ in (_TRUE, _FALSE):  # a list element (a field's bool lives in its header)
        return data[at] == _TRUE, at + 1
    if typ == _BYTE:
        return data[at], at + 1
    if typ in (_I16, _I32, _I64):
        return _zigzag(data, at)
    if typ == _DOUBLE:
        return bytes(data[at : at + 8]), at + 8
    if typ == _BINARY:
        n, at = _varint(data, at)
        return bytes(data[at : at + n]), at + n
    if typ in (_LIST, _SET):
        head = data[at]
        at += 1
        size, elem = head >> 4, head & 0x0F
        if size == 15:
            size, at = _varint(data, at)
        items = []
        for _ in range(size):
            v, at = _value(data, at, elem)
            items.append(v)
        return (elem, items), at
    if typ == _STRUCT:
        return _struct(data, at)
    raise OutputError(f"parquet footer: Thrift type {typ} is not read here")


def _struct(data: memoryview, at: int) -> tuple[list, int]:
    fields, last = [], 0
    while True:
        head = data[at]
        at += 1
        if head == 0:
            return fields, at
        typ, delta = head & 0x0F, head >> 4
        if delta:
            fid = last + delta
        else:
            fid, at = _zigzag(data, at)
        if typ in (_TRUE, _FALSE):
            value = typ == _TRUE
        else:
            value, at = _value(data, at, typ)
        fields.append([fid, typ, value])
        last = fid


def _put_varint(out: bytearray, v: int) -> None:
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)


def _put_zigzag(out: bytearray, v: int) -> None:
    _put_varint(out, (v << 1) ^ (v >> 63))


def _put_value(out: bytearray, typ: int, v) -> None:
    if typ in (_TRUE, _FALSE):
        out.append(_TRUE if v else _FALSE)
    elif typ == _BYTE:
        out.append(v)
    elif typ in (_I16, _I32, _I64):
        _put_zigzag(out, v)
    elif typ == _DOUBLE:
        out += v
    elif typ == _BINARY:
        _put_varint(out, len(v))
        out += v
    elif typ in (_LIST, _SET):
        elem, items = v
        if len(items) < 15:
            out.append(len(items) << 4 | elem)
        else:
            out.append(0xF0 | elem)
            _put_varint(out, len(items))
        for item in items:
            _put_value(out, elem, item)
    else:
        _put_struct(out, v)


def _put_struct(out: bytearray, fields: list) -> None:
    last = 0
    for fid, typ, v in fields:
        head = (_TRUE if v else _FALSE) if typ in (_TRUE, _FALSE) else typ
        if 0 < fid - last <= 15:
            out.append((fid - last) << 4 | head)
        else:
            out.append(head)
            _put_zigzag(out, fid)
        if typ not in (_TRUE, _FALSE):
            _put_value(out, typ, v)
        last = fid
    out.append(0)


# ---------------------------------------------------------------------------------------------------------


def _field(fields: list, fid: int) -> list | None:
    return next((f for f in fields if f[0] == fid), None)


def _moved(row_group: list, shift: int, ordinal: int) -> list:
    """A row group's metadata with its byte offsets moved by ``shift`` and its ordinal set."""
    out = []
    for fid, typ, v in row_group:
        if fid == _RG_COLUMNS:
            v = (v[0], [_moved_chunk(c, shift) for c in v[1]])
        elif fid == _RG_FILE_OFFSET:
            v += shift
        elif fid == _RG_ORDINAL:
            v = ordinal
        out.append([fid, typ, v])
    return out


def _moved_chunk(chunk: list, shift: int) -> list:
    out = []
    for fid, typ, v in chunk:
        if fid in (_CC_OFFSET_INDEX, _CC_COLUMN_INDEX) or (fid == _CC_FILE_OFFSET and v):
            v += shift  # (pyarrow writes the deprecated ColumnChunk.file_offset as 0: kept 0)
        elif fid == _CC_META:
            v = [[f, t, x + shift if f in _META_OFFSETS else x] for f, t, x in v]
        out.append([fid, typ, v])
    return out


def _part(
    table: pa.Table, options: dict, prepare: Callable[[pa.Table], pa.Table] | None
) -> tuple[bytes, list]:
    """One row group as a Parquet file: its column chunks (bytes) and its footer (decoded, checked).

    Consecutive columns that :func:`_one_batch` allows are encoded apart, in one write batch, and joined side by
    side: the same bytes as one writer gives."""
    if prepare is not None:
        table = prepare(table)
    table = (
        table.combine_chunks()
    )  # one chunk a column: the writer's encoding choices do not follow the batches
    runs: list[tuple[bool, list[int]]] = []
    for i, column in enumerate(table.columns):
        whole = _one_batch(column, options)
        if runs and runs[-1][0] == whole:
            runs[-1][1].append(i)
        else:
            runs.append((whole, [i]))
    if len(runs) == 1:
        return _file(table, options, runs[0][0])
    chunks, meta = _side_by_side([_file(table.select(at), options, whole) for whole, at in runs])
    joined = {_FILE_ROW_GROUPS: _field(meta, _FILE_ROW_GROUPS)[2], _FILE_NUM_ROWS: table.num_rows}
    footer = _file(table.schema.empty_table(), options, False)[1]  # the file-wide fields of the whole schema
    return chunks, [[fid, typ, joined.get(fid, v)] for fid, typ, v in footer]


#: Dictionary entries up to which a dictionary column's row group is written in one batch (its indices then
#: take at most 10 bits a row, 11 with the null levels).
_ONE_BATCH_ENTRIES = 1 << 10
#: Parquet's default data page size (pyarrow's ``data_page_size``).
_PAGE_SIZE = 1 << 20


def _one_batch(column: pa.ChunkedArray, options: dict) -> bool:
    """Whether a column is written in one write batch (``write_batch_size`` = its rows) rather than Arrow's batches
    of 1,024 rows: a dictionary column of at most :data:`_ONE_BATCH_ENTRIES` entries whose indices fit well
    within one data page. Arrow computes a dictionary column's statistics batch by batch (the distinct indices of
    each, then their values): in one batch about a third of the time. The bytes are the same, as every page
    and dictionary limit is checked between batches and none is reached."""
    if not pa.types.is_dictionary(column.type) or not len(column):
        return False
    entries = max(len(c.dictionary) for c in column.chunks)
    page = options.get("data_page_size") or _PAGE_SIZE
    return entries <= _ONE_BATCH_ENTRIES and len(column) * 11 <= 6 * page  # (11 bits a row ≤ ¾ of a page)


def _file(table: pa.Table, options: dict, whole: bool) -> tuple[bytes, list]:
    """``table`` as a Parquet file of one row group (in one write batch when ``whole``): its column chunks and
    footer."""
    if whole:
        options = {**options, "write_batch_size": max(table.num_rows, 1)}
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, table.schema, **options) as writer:
        writer.write_table(table, row_group_size=max(table.num_rows, 1))
    data = sink.getvalue()
    (size,) = struct.unpack("<I", data[-8:-4])
    footer = data[-8 - size : -8]
    meta = decode(footer)
    if encode(meta) != footer:
        raise OutputError("parquet footer: the metadata does not read back byte for byte")
    return data[4 : -8 - size], meta


def _side_by_side(parts: list[tuple[bytes, list]]) -> tuple[bytes, list]:
    """Parts of one row group (the same rows, consecutive columns; each a file of one row group as :func:`_part`
    gives it) as one part holding all their columns: chunks one after the other, the row group's column list
    joined with each part's offsets moved, its byte sizes added up (the first part's footer otherwise)."""
    (chunks, meta), rest = parts[0], parts[1:]
    group = _field(meta, _FILE_ROW_GROUPS)[2][1][0]
    columns = list(_field(group, _RG_COLUMNS)[2][1])
    sizes = {_RG_BYTES: _field(group, _RG_BYTES)[2], _RG_COMPRESSED: _field(group, _RG_COMPRESSED)[2]}
    out = bytearray(chunks)
    for more, other in rest:
        theirs = _field(other, _FILE_ROW_GROUPS)[2][1][0]
        if _field(theirs, _RG_NUM_ROWS)[2] != _field(group, _RG_NUM_ROWS)[2]:
            raise OutputError("parquet: the columns of a row group were encoded for different rows")
        columns += [_moved_chunk(c, len(out)) for c in _field(theirs, _RG_COLUMNS)[2][1]]
        for fid in sizes:
            sizes[fid] += _field(theirs, fid)[2]
        out += more
    joined = []
    for fid, typ, v in group:
        if fid == _RG_COLUMNS:
            v = (v[0], columns)
        v = sizes.get(fid, v)
        joined.append([fid, typ, v])
    footer = [[fid, typ, (v[0], [joined]) if fid == _FILE_ROW_GROUPS else v] for fid, typ, v in meta]
    return bytes(out), footer


class EncodedColumns:
    """The leading columns of row groups, encoded ahead in ``threads`` threads and kept in a temporary file (the
    system's temporary folder; deleted when closed) until :meth:`JoinedWriter.write` joins them to the rest of
    their columns: memory stays bounded by the row groups being encoded. Its methods are called from one thread.

    Parameters
    ----------
    options : keyword arguments of ``pq.ParquetWriter``, as the JoinedWriter's
    threads : row groups encoded at once
    """

    def __init__(self, options: dict, threads: int = 2):
        self.options, self.threads = options, threads
        self.pool = ThreadPoolExecutor(threads)
        self.pending: list[Future] = []
        self.file = tempfile.TemporaryFile(prefix="drgdip-columns-")  # noqa: SIM115 (closed by close())
        self.kept: list[tuple[int, int, list]] = []  # (offset, length, footer) of each encoded row group
        self.end = 0

    def write(self, table: pa.Table, prepare: Callable[[pa.Table], pa.Table] | None = None) -> None:
        """Encode ``table`` as the leading columns of the next row group (in the background)."""
        while len(self.pending) >= self.threads:
            self._keep(self.pending.pop(0))
        self.pending.append(self.pool.submit(_part, table, self.options, prepare))

    def _keep(self, done: Future) -> None:
        chunks, meta = done.result()
        try:
            self.file.seek(self.end)
            self.file.write(chunks)
        except OSError as exc:  # a full disk: the temporary folder (TMPDIR) is named
            raise OutputError(
                f"the row groups encoded ahead in {tempfile.gettempdir()} (TMPDIR) could not be written: "
                f"{exc.strerror or exc}",
                path=tempfile.gettempdir(),
            ) from None
        self.kept.append((self.end, len(chunks), meta))
        self.end += len(chunks)

    def take(self, k: int) -> tuple[bytes, list]:
        """The ``k``-th row group's columns (from 0): their chunks and footer (waits for their encoding)."""
        while len(self.kept) <= k:
            self._keep(self.pending.pop(0))
        at, size, meta = self.kept[k]
        self.file.seek(at)
        chunks = self.file.read(size)
        if len(chunks) != size:
            raise OutputError(
                f"the row groups encoded ahead in {tempfile.gettempdir()} (TMPDIR) were cut short"
            )
        return chunks, meta

    def close(self) -> None:
        """Stop: wait for the row groups being encoded (their errors dropped) and delete the file."""
        for done in self.pending:
            done.exception()
        self.pending = []
        self.pool.shutdown()
        self.file.close()


class JoinedWriter:
    """Parquet row groups written in ``threads`` threads into one file (as one ``pq.ParquetWriter`` would write
    them, one row group per :meth:`write`, in call order).

    Parameters
    ----------
    sink : a binary file open for writing
    options : keyword arguments of ``pq.ParquetWriter`` (compression, checksums, …)
    threads : row groups encoded at once
    schema : the file's schema (with its metadata) when row groups are written in two steps (``before=``)
    """

    def __init__(self, sink: BinaryIO, options: dict, threads: int = 2, schema: pa.Schema | None = None):
        self.sink, self.options = sink, options
        # the footer's fields besides the row groups: those of a file of the whole schema
        self.template = None if schema is None else _part(schema.empty_table(), options, None)[1]
        self.pool = ThreadPoolExecutor(threads)
        self.threads = threads
        self.pending: list[Future] = []
        self.first: list | None = None
        self.row_groups: list = []
        self.rows = 0
        self.offset = len(_MAGIC)
        self.sink.write(_MAGIC)

    def write(
        self,
        table: pa.Table,
        prepare: Callable[[pa.Table], pa.Table] | None = None,
        before: Callable[[], tuple[bytes, list]] | None = None,
    ) -> None:
        """Encode ``table`` as the next row group (in the background; waits while ``threads`` are busy);
        ``prepare(table)``, run in the background first, may change the columns' values, not the schema;
        ``before()`` gives the row group's leading columns encoded already (:meth:`EncodedColumns.take`), written
        before ``table``'s."""
        self.schema = getattr(self, "schema", table.schema)
        if not table.schema.equals(self.schema):
            raise OutputError("parquet: a row group with another schema than the first")
        if before is not None and self.template is None:
            raise OutputError("parquet: row groups written in two steps need the file's schema")
        while len(self.pending) >= self.threads:
            self._append(*self.pending.pop(0))
        self.pending.append((self.pool.submit(_part, table, self.options, prepare), before))

    def _append(self, done: Future, before: Callable[[], tuple[bytes, list]] | None) -> None:
        chunks, meta = done.result()
        if before is not None:
            chunks, meta = _side_by_side([before(), (chunks, meta)])
        self.first = self.first or self.template or meta
        for group in _field(meta, _FILE_ROW_GROUPS)[2][1]:  # one (none for an empty table)
            self.row_groups.append(_moved(group, self.offset - len(_MAGIC), len(self.row_groups)))
        self.rows += _field(meta, _FILE_NUM_ROWS)[2]
        self.sink.write(chunks)
        self.offset += len(chunks)

    def close(self) -> None:
        """Write the row groups still being encoded and the footer."""
        for done, before in self.pending:
            self._append(done, before)
        self.pending = []
        self.pool.shutdown()
        footer = []
        for fid, typ, v in self.first:
            if fid == _FILE_NUM_ROWS:
                v = self.rows
            elif fid == _FILE_ROW_GROUPS:
                v = (v[0], self.row_groups)
            footer.append([fid, typ, v])
        data = encode(footer)
        self.sink.write(data + struct.pack("<I", len(data)) + _MAGIC)

    def discard(self) -> None:
        """Stop: wait for the row groups being encoded and drop them."""
        for done, _ in self.pending:
            done.exception()
        self.pending = []
        self.pool.shutdown()
