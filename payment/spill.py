"""A spill file (溢出文件): batches of per-case arrays kept on disk between two passes, read back in order.

A settlement's pass 1 routes and prices every case; pass 2 needs those per-case arrays again once the region-wide
point values are known. Kept in memory they would grow with the cases; read again from the input they cost a second
read and a second pricing. :class:`Spill` writes each batch as an Arrow IPC stream to an anonymous temporary file
(the system's temporary folder, ``TMPDIR``; deleted when closed) and gives the batches back in the order written,
one at a time: memory stays bounded by the batch size, and the file is mostly read back from the page cache.
Writing and reading run in a background thread, beside the caller's work on the other core.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa

from grouper.errors import OutputError
from grouper.io.formats import read_ahead

__all__ = ["Spill"]


class Spill:
    """Tables written one after the other to a temporary file and read back in the same order, as often as asked.

    Use as a context manager (the file is deleted on exit). Each table keeps its own schema and dictionaries.
    """

    def __init__(self):
        self.file = tempfile.TemporaryFile(prefix="drgdip-spill-")  # noqa: SIM115 (closed by close())
        self.ends: list[int] = []
        self._pool = ThreadPoolExecutor(1)
        self._pending: Future | None = None

    def __enter__(self) -> Spill:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write(self, table: pa.Table) -> None:
        """Append ``table`` after the tables written before it (in the background; one table at a time)."""
        self._wait()
        self._pending = self._pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        self.file.seek(0, 2)
        with pa.ipc.new_stream(pa.PythonFile(self.file, mode="w"), table.schema) as writer:
            writer.write_table(table)
        self.ends.append(self.file.tell())

    def _wait(self) -> None:
        if self._pending is not None:
            done, self._pending = self._pending, None
            try:
                done.result()
            except OSError as exc:  # a full disk: the temporary folder (TMPDIR) is named, the data never
                raise OutputError(
                    f"the settlement's spill file in {tempfile.gettempdir()} (TMPDIR) could not be written: "
                    f"{exc.strerror or exc}",
                    path=tempfile.gettempdir(),
                ) from None

    def __iter__(self) -> Iterator[pa.Table]:
        """The tables in the order written (the next one read in the background while the caller works)."""
        self._wait()
        return read_ahead(self._tables())

    def _tables(self) -> Iterator[pa.Table]:
        start = 0
        for end in self.ends:
            self.file.seek(start)
            yield pa.ipc.open_stream(pa.PythonFile(self.file, mode="r")).read_all()
            start = end

    def __len__(self) -> int:
        self._wait()
        return len(self.ends)

    def close(self) -> None:
        """Wait for the table being written, then delete the file."""
        try:
            self._wait()
        finally:
            self._pool.shutdown()
            self.file.close()
