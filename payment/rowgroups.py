"""One Parquet file from row groups encoded in parallel (行组并行编码), byte for byte what one writer writes.

A Parquet writer encodes its row groups one after the other on one core, and for the settlement's per-case table
that encoding takes longer than settling the cases. Each row group is therefore written as a Parquet file of its own
(in a thread: pyarrow releases the GIL while it encodes), and :class:`JoinedWriter` joins them: the column chunks
are copied as they are (their bytes do not depend on where they sit in the file: page headers hold no offsets) and
the footer is the first part's, with every row group listed, the byte offsets moved to where the chunks now sit,
the ordinals renumbered and the row count added up. The footer is Thrift compact protocol (parquet.thrift
``FileMetaData``); :func:`decode` and :func:`encode` read and write it field for field, and a footer that would not
come back byte for byte is refused (OutputError) rather than guessed.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from grouper.errors import OutputError

__all__ = ["JoinedWriter", "decode", "encode"]

_MAGIC = b"PAR1"
# Thrift compact protocol type ids
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY, _LIST, _SET, _MAP, _STRUCT = range(1, 13)
# field ids (parquet.thrift) of the byte offsets a moved row group carries
_FILE_ROW_GROUPS, _FILE_NUM_ROWS = 4, 3
_RG_COLUMNS, _RG_FILE_OFFSET, _RG_ORDINAL = 1, 5, 7
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
    """One row group as a Parquet file: its column chunks (bytes) and its footer (decoded, checked)."""
    if prepare is not None:
        table = prepare(table)
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


class JoinedWriter:
    """Parquet row groups written in ``threads`` threads into one file (as one ``pq.ParquetWriter`` would write
    them, one row group per :meth:`write`, in call order).

    Parameters
    ----------
    sink : a binary file open for writing
    options : keyword arguments of ``pq.ParquetWriter`` (compression, checksums, …)
    threads : row groups encoded at once
    """

    def __init__(self, sink: BinaryIO, options: dict, threads: int = 2):
        self.sink, self.options = sink, options
        self.pool = ThreadPoolExecutor(threads)
        self.threads = threads
        self.pending: list[Future] = []
        self.first: list | None = None
        self.row_groups: list = []
        self.rows = 0
        self.offset = len(_MAGIC)
        self.sink.write(_MAGIC)

    def write(self, table: pa.Table, prepare: Callable[[pa.Table], pa.Table] | None = None) -> None:
        """Encode ``table`` as the next row group (in the background; waits while ``threads`` are busy);
        ``prepare(table)``, run in the background first, may change the columns' values, not the schema."""
        self.schema = getattr(self, "schema", table.schema)
        if not table.schema.equals(self.schema):
            raise OutputError("parquet: a row group with another schema than the first")
        while len(self.pending) >= self.threads:
            self._append(self.pending.pop(0))
        self.pending.append(self.pool.submit(_part, table, self.options, prepare))

    def _append(self, done: Future) -> None:
        chunks, meta = done.result()
        self.first = self.first or meta
        for group in _field(meta, _FILE_ROW_GROUPS)[2][1]:  # one (none for an empty table)
            self.row_groups.append(_moved(group, self.offset - len(_MAGIC), len(self.row_groups)))
        self.rows += _field(meta, _FILE_NUM_ROWS)[2]
        self.sink.write(chunks)
        self.offset += len(chunks)

    def close(self) -> None:
        """Write the row groups still being encoded and the footer."""
        for done in self.pending:
            self._append(done)
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
        for done in self.pending:
            done.exception()
        self.pending = []
        self.pool.shutdown()
