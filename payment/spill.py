"""A spill file (溢出文件): batches of per-case arrays kept on disk between two passes, read back in order.

A settlement's pass 1 routes and prices every case; pass 2 needs those per-case arrays again once the region-wide
point values are known. Kept in memory they would grow with the cases; read again from the input they cost a second
read and a second pricing. :class:`Spill` writes each batch as an Arrow IPC stream to an anonymous temporary file
(the system's temporary folder, ``TMPDIR``; deleted when closed) and gives the batches back in the order written,
one at a time: memory stays bounded by the batch size, and the file is mostly read back from the page cache.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pyarrow as pa

__all__ = ["Spill"]


class Spill:
    """Tables written one after the other to a temporary file and read back in the same order, as often as asked.

    Use as a context manager (the file is deleted on exit). Each table keeps its own schema and dictionaries.
    """

    def __init__(self):
        self.file = tempfile.TemporaryFile(prefix="drgdip-spill-")  # noqa: SIM115 (closed by close())
        self.ends: list[int] = []

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (after the tables written before it)."""
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        self.file.seek(0, 2)
        self.file.write(sink.getvalue())
        self.ends.append(self.file.tell())

    def __iter__(self) -> Iterator[pa.Table]:
        """The tables in the order written (each read when asked for)."""
        start = 0
        for end in self.ends:
            self.file.seek(start)
            data = self.file.read(end - start)
            yield pa.ipc.open_stream(pa.py_buffer(data)).read_all()
            start = end

    def __len__(self) -> int:
        return len(self.ends)

    def close(self) -> None:
        """Delete the file."""
        self.file.close()
