"""The one writer module: every file drgdip writes goes through :func:`atomic_file` or
:func:`atomic_folder`.

A file is written to a temporary name in its target folder, created exclusively (``O_EXCL | O_NOFOLLOW``: a link
planted at that name is never followed), and renamed over the target (``os.replace``) only when it is complete; on
any failure, Ctrl-C or SIGTERM (the CLI turns it into an exit) the temporary file is removed, and temporary files
left by a killed run are removed by the next write to the same folder. A multi-file output (a settlement folder)
is written into a temporary folder and moved in at the end, so a failure leaves nothing new at the destination
(missing parent folders created for it are removed again).
``if_exists="error"`` (the default) refuses an existing target, ``"replace"`` replaces it. Environment failures
(a folder that is a file, a read-only folder, a full disk, a name too long) are :class:`OutputError` naming the
path (shortened, :func:`grouper.io.paths.shortened`).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Literal

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from grouper.errors import OutputError
from grouper.io.paths import kind_of, path_error

__all__ = [
    "CSV_ENCODING",
    "MONEY_FORMAT",
    "PARQUET_OPTIONS",
    "IfExists",
    "atomic_file",
    "atomic_folder",
    "check_target",
    "column_options",
    "new_folders",
    "write_bytes",
    "write_json",
    "write_results",
    "write_text",
    "write_with",
]

IfExists = Literal["error", "replace"]
#: Options of every Parquet file drgdip writes: page checksums, so that a damaged page is detected on reading.
PARQUET_OPTIONS = {"write_page_checksum": True}
_TMP = ".drgdip-tmp"  # suffix of every temporary file or folder
_FORMATS = (".parquet", ".csv", ".xlsx", ".json")
#: Encoding of CSV files by default: UTF-8 with a byte-order mark, so that Excel on Windows reads Chinese text.
CSV_ENCODING = "utf-8-sig"
#: Excel number format of money columns (元, two decimals).
MONEY_FORMAT = "#,##0.00"


def check_target(path: str | os.PathLike, if_exists: IfExists = "error") -> Path:
    """Refuse ``path`` before any work is done: an existing file unless ``if_exists="replace"``, a folder, or a
    parent that is a file. Returns ``path`` as a Path."""
    path = Path(path)
    if if_exists not in ("error", "replace"):
        raise ValueError(f"if_exists must be 'error' or 'replace', not {if_exists!r}")
    try:
        if path.is_dir():
            raise OutputError(f"{path}: is a folder, not a file", path=path)
        if path.exists() and if_exists == "error":
            raise OutputError(f"{path} already exists", path=path)
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise OutputError(
                        f"{path}: cannot write here ({parent} is a file, not a folder)", path=path
                    )
                break
    except OSError as exc:  # a name too long, a loop of links…
        raise _output_error(path, exc) from None
    return path


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, if_exists: IfExists = "error") -> Iterator[Path]:
    """A temporary path beside ``path`` (an empty file, created exclusively) that replaces ``path`` when the
    ``with`` block ends without an error; removed otherwise.

    Examples
    --------
    >>> with atomic_file("out/catalogue.csv", if_exists="replace") as tmp:   # doctest: +SKIP
    ...     pyarrow.csv.write_csv(table, tmp)
    """
    path = check_target(path, if_exists)
    folder, made = path.parent, _make_folders(path.parent, path)
    _remove_stale(folder, path.name)
    tmp, done = None, False
    try:
        # a SIGTERM between creating the file and knowing its name would leave it behind: held for that moment
        with _signals_held():
            tmp = _exclusive(folder, path.name, path)
        try:
            yield tmp
            os.replace(tmp, path)
            done = True
        except OSError as exc:
            raise _output_error(path, exc) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        if not done:
            _remove_made(made)


@contextlib.contextmanager
def atomic_folder(
    folder: str | os.PathLike,
    names: Iterable[str],
    *,
    if_exists: IfExists = "error",
    folders: Iterable[str] = (),
) -> Iterator[Path]:
    """A temporary folder whose files ``names`` move into ``folder`` together when the ``with`` block ends
    without an error (all-or-nothing: on failure nothing new appears in ``folder``).

    A new ``folder`` is created by renaming the temporary folder; into an existing one the files are moved one
    by one after all of them were written (the renames, not the writes, are what is left at the end). The names
    in ``folders`` (also in ``names``) are folders written whole (a folder of Parquet parts): one that exists at
    the destination is replaced as a whole, never merged with the new one.
    """
    folder, names, folders = Path(folder), list(names), set(folders)
    found = kind_of(folder, OutputError)
    if found not in ("folder", "missing"):
        raise OutputError(f"{folder}: is a file, not a folder", path=folder)
    for name in names:
        target = folder / name
        if name not in folders:
            check_target(target, if_exists)
        elif (kind_of(target, OutputError) != "missing" or target.is_symlink()) and if_exists == "error":
            raise OutputError(f"{target} already exists", path=target)
    exists = found == "folder"
    parent = folder if exists else folder.parent
    made = _make_folders(parent, folder)
    _remove_stale(parent, folder.name)
    tmp = parent / f".{folder.name}.{os.getpid()}-{secrets.token_hex(4)}{_TMP}"
    done = False
    try:
        try:
            tmp.mkdir()  # inside the try: a SIGTERM right after it still removes the folder
        except OSError as exc:
            raise _output_error(folder, exc) from None
        try:
            yield tmp
            missing = [n for n in names if not ((tmp / n).is_dir() if n in folders else (tmp / n).is_file())]
            if missing:
                raise RuntimeError(f"{folder}: {', '.join(missing)} not written")
            if not exists and not folder.exists():
                os.rename(tmp, folder)
            else:
                folder.mkdir(parents=True, exist_ok=True)
                for name in names:
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)  # a part in a subfolder
                    if name in folders:
                        _replace_folder(tmp / name, folder / name)
                    else:
                        os.replace(tmp / name, folder / name)
            done = True
        except OSError as exc:
            raise _output_error(folder, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_made(made)


def _replace_folder(new: Path, target: Path) -> None:
    """Move the folder ``new`` to ``target``; what was at ``target`` (a folder or a file) is renamed aside first
    and removed after."""
    aside = None
    if target.exists() or target.is_symlink():
        aside = target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{_TMP}"
        os.rename(target, aside)
    os.rename(new, target)
    if aside is not None:
        if aside.is_dir() and not aside.is_symlink():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            aside.unlink(missing_ok=True)


def write_bytes(data: bytes, path: str | os.PathLike, *, if_exists: IfExists = "error") -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_file(path, if_exists=if_exists) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(text: str, path: str | os.PathLike, *, if_exists: IfExists = "error") -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (``\\n`` line ends on every platform); returns the path."""
    return write_bytes(text.encode("utf-8"), path, if_exists=if_exists)


def write_json(obj, path: str | os.PathLike, *, if_exists: IfExists = "error") -> Path:
    """Write ``obj`` as indented UTF-8 JSON (non-ASCII as written, a final line break) atomically."""
    return write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", path, if_exists=if_exists)


def write_with(
    path: str | os.PathLike, write: Callable[[Path], None], *, if_exists: IfExists = "error"
) -> Path:
    """Call ``write(tmp)`` on a temporary path and move it to ``path`` (for writers that take a path)."""
    with atomic_file(path, if_exists=if_exists) as tmp:
        write(tmp)
    return Path(path)


def write_results(
    tables: pa.Table | Iterable[pa.Table],
    path: str | os.PathLike,
    *,
    if_exists: IfExists = "error",
    metadata: dict[str, str] | None = None,
    encoding: str | None = None,
    sheet: str = "results",
    formats: dict[str, str] | None = None,
) -> int:
    """Write result tables to ``.parquet``, ``.csv``, ``.xlsx`` or ``.json`` (by suffix) atomically; returns the
    row count.

    ``tables``: one Arrow table or an iterable of them (streamed: memory does not grow with the row count). The
    file appears only when everything was written. ``metadata`` (codebook, policy hashes, drgdip version) goes
    into the Parquet schema metadata, or a ``<file>.meta.json`` beside the other formats. ``path`` ``"-"`` writes
    CSV to standard output (UTF-8, no byte-order mark, no metadata). JSON holds a list of row objects (for small
    tables).

    CSV: ``encoding`` (default :data:`CSV_ENCODING`, UTF-8 with a byte-order mark; ``utf-8`` for none, ``gbk``).
    Excel: one sheet named ``sheet`` with the header row frozen, columns as wide as their first rows, and
    ``formats`` (column → Excel number format, e.g. :data:`MONEY_FORMAT`).
    """
    if isinstance(tables, pa.Table):
        tables = [tables]
    if str(path) == "-":
        return _write_csv(tables, sys.stdout.buffer, encoding or "utf-8")
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise OutputError(f"{path}: unknown output format {suffix!r} (use {', '.join(_FORMATS)})", path=path)
    encoding = encoding or CSV_ENCODING
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise OutputError(f"{path}: unknown encoding {encoding!r}", path=path, key="out_encoding") from None
    check_target(path, if_exists)
    with atomic_file(path, if_exists=if_exists) as tmp:
        if suffix == ".parquet":
            rows = _write_parquet(tables, tmp, metadata or {}, path)
        elif suffix == ".csv":
            rows = _write_csv(tables, tmp, encoding, path)
        elif suffix == ".json":
            rows = _write_json_rows(tables, tmp)
        else:
            from grouper.io.xlsx import write_sheet  # (its XML escaping imports urllib and email: 0.02 s)

            rows = write_sheet(tables, tmp, path=path, title=sheet, formats=formats or {})
        if suffix != ".parquet" and metadata:
            write_json(
                dict(sorted(metadata.items())), path.with_name(path.name + ".meta.json"), if_exists="replace"
            )
    return rows


# ---------------------------------------------------------------------------------------------------------
# temporary names


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGTERM and SIGINT held back for the block (main thread, POSIX): delivered when it ends."""
    held = {signal.SIGTERM, signal.SIGINT}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@contextlib.contextmanager
def new_folders(folder: str | os.PathLike, target: str | os.PathLike) -> Iterator[Path]:
    """``folder``, created with its missing parents for writing ``target``; the folders this created are removed
    again (those still empty) when the ``with`` block fails, so that a failed run leaves no new folder."""
    folder = Path(folder)
    made = _make_folders(folder, Path(target))
    try:
        yield folder
    except BaseException:
        _remove_made(made)
        raise


def _make_folders(folder: Path, target: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the folders created, outermost first (removed again by
    :func:`_remove_made` when the write fails: all-or-nothing leaves no new empty folder either)."""
    missing = []
    for p in (folder, *folder.parents):
        if kind_of(p, OutputError) != "missing":
            break
        missing.append(p)
    made: list[Path] = []
    try:
        for p in reversed(missing):
            try:
                p.mkdir()
            except FileExistsError:  # another run made it meanwhile: theirs, not removed
                continue
            made.append(p)
    except OSError as exc:
        _remove_made(made)
        raise _output_error(target, exc) from None
    return made


def _remove_made(made: list[Path]) -> None:
    """Remove the folders of :func:`_make_folders` that are still empty, innermost first."""
    for p in reversed(made):
        try:
            p.rmdir()
        except OSError:
            return


def _exclusive(folder: Path, name: str, target: Path) -> Path:
    """A new empty file ``.<name>.<pid>-<random>.drgdip-tmp`` in ``folder``, created exclusively (no link
    followed, no existing file reused)."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(8):
        tmp = folder / f".{name}.{os.getpid()}-{secrets.token_hex(4)}{_TMP}"
        try:
            os.close(os.open(tmp, flags, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise _output_error(target, exc) from None
    raise OutputError(f"{target}: cannot create a temporary file beside it", path=target)


def _remove_stale(folder: Path, name: str) -> None:
    """Remove temporary files or folders for ``name`` left in ``folder`` by runs that no longer exist."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(\d+)-[0-9a-f]{{8}}{re.escape(_TMP)}$")
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = pattern.match(entry.name)
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a platform without signals: leave it alone
    return True


def _output_error(path: Path, exc: OSError) -> OutputError:
    return path_error(path, exc, OutputError)


# ---------------------------------------------------------------------------------------------------------
# formats


def _decoded(table: pa.Table) -> pa.Table:
    """Dictionary columns as plain strings (for CSV, Excel and JSON)."""
    cols = [c.cast(c.type.value_type) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


def column_options(schema: pa.Schema) -> dict[str, object]:
    """How the columns of a per-case Parquet file (results, a settlement's cases.parquet) are encoded: min/max
    statistics only on number and date columns (Arrow computes a dictionary column's over its decoded text: about
    half the writing time of a grouping's output, for statistics no reader of ids and labels uses), and the
    Parquet dictionary tried on every column but the ``case_id``, which is as distinct as the rows."""
    ranged = [
        f.name
        for f in schema
        if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_temporal(f.type)
    ]
    leaves = [f"{f.name}.list.element" if pa.types.is_list(f.type) else f.name for f in schema]
    return {
        "write_statistics": ranged or False,
        "use_dictionary": [c for c in leaves if c != "case_id"] or False,
    }


def _write_parquet(tables: Iterable[pa.Table], tmp: Path, metadata: dict[str, str], path: Path) -> int:
    """Each table is written in a background thread while the next one is produced (pyarrow releases the GIL)."""
    writer, rows, pending = None, 0, None
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            for t in tables:
                if writer is None:
                    schema = t.schema.with_metadata(
                        {**(t.schema.metadata or {}), **{k.encode(): v.encode() for k, v in metadata.items()}}
                    )
                    options = {**column_options(schema), **PARQUET_OPTIONS}
                    writer = pq.ParquetWriter(tmp, schema, compression="snappy", **options)
                if pending is not None:
                    pending.result()
                pending = pool.submit(writer.write_table, t.replace_schema_metadata(writer.schema.metadata))
                rows += t.num_rows
            if pending is not None:
                pending.result()
        finally:
            if writer is not None:
                if pending is not None:
                    pending.exception()  # wait for the last write before closing, whatever happened
                writer.close()
    if writer is None:
        raise OutputError(f"{path}: nothing to write (no table)", path=path)
    return rows


def _write_csv(
    tables: Iterable[pa.Table], target: Path | BinaryIO, encoding: str, path: Path | None = None
) -> int:
    """Arrow writes UTF-8; a byte-order mark goes first for ``utf-8-sig``, another encoding is converted batch by
    batch (a character it cannot hold is an OutputError naming it)."""
    codec = codecs.lookup(encoding).name
    utf8 = codec in ("utf-8", "utf-8-sig")
    writer, rows = None, 0
    with target.open("wb") if isinstance(target, Path) else contextlib.nullcontext(target) as sink:
        if codec == "utf-8-sig":
            sink.write(codecs.BOM_UTF8)
        for t in tables:
            t = _decoded(t)
            if utf8:
                if writer is None:
                    writer = pacsv.CSVWriter(sink, t.schema)
                writer.write_table(t)
            else:
                buf = pa.BufferOutputStream()
                pacsv.write_csv(t, buf, pacsv.WriteOptions(include_header=rows == 0))
                text = buf.getvalue().to_pybytes().decode("utf-8")
                try:
                    sink.write(text.encode(encoding))
                except UnicodeEncodeError as exc:
                    bad = exc.object[exc.start : exc.end]
                    raise OutputError(
                        f"{path or 'output'}: {bad!r} cannot be written in {encoding}; write UTF-8",
                        path=path,
                        key="out_encoding",
                    ) from None
            rows += t.num_rows
        if writer is not None:
            writer.close()
    return rows


def _write_json_rows(tables: Iterable[pa.Table], tmp: Path) -> int:
    rows: list[dict] = []
    for t in tables:
        rows += _decoded(t).to_pylist()
    tmp.write_text(json.dumps(rows, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
    return len(rows)
