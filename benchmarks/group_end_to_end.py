"""End-to-end ``drgdip group`` (issue 14): each figure beside its floor, measured in the same run, in fresh processes.

Usage::

    python benchmarks/group_end_to_end.py                   # everything: 10M files, 1M CSV, start-up, first run
    python benchmarks/group_end_to_end.py --cases 1000000   # smaller Parquet files (quick look)
    python benchmarks/group_end_to_end.py --only parquet,heavy,csv,startup
    python benchmarks/group_end_to_end.py --only stages --cases 2000000   # where the time goes, step by step

Each line is one quotable figure, with the machine's load (``os.getloadavg``) at the time:

- ``parquet``: the CLI, Parquet → Parquet, on the synthetic region (make_data.py) for chs-drg-1.1, chs-drg-2.0 and
  DIP (平顶山 2025 catalogue, the region's), at ``--cases`` and at 1M rows (peak RSS 1M vs 10M: memory flat in the
  input size). Floor: reading the columns the grouper needs from the same file (``ParquetFile.iter_batches``) in
  a fresh process with the CLI process's settings (``payment.cli.own_process``: Arrow on jemalloc, whose read is a
  quarter faster than on Arrow's default pool, mimalloc) and heap (``payment.heap.keep_freed_memory``).
- ``heavy``: the same on a file of conformance-style cases (the CHS-DRG conformance rows, 3–4 other diagnoses
  per case, tiled with unique ids).
- ``csv``: the CLI on CSV files of ``--csv-cases`` synthetic cases (``|``-separated code lists; 1M and 10M rows:
  at 1M the start-up is a large share, at 10M it is amortised); floor: Arrow reading the needed columns of that
  CSV as text. Beside it the start-up, the same command on the file's first 10 rows, and the rate past it.
- ``stages``: where a run's time goes, in a fresh process per scheme on the ``--cases`` Parquet file: each step
  run one after the other (reading and normalising into canonical batches, duplicate-id tracking, looking the
  codes up, grouping, the run counts, writing the Parquet output), CPU s (of every thread of the process: a
  step's own helper threads) and wall s, beside the start-up (imports, codebook, first kernel calls), and the
  CPU of each lane of ``drgdip group`` (the reading thread: read, normalise; the second lane: duplicate ids,
  then the codes looked up; the calling thread: group, counts; the writing thread); it overlaps the lanes on the cores, so its wall time is near the
  steps' CPU over the cores when they are balanced.
- ``startup``: ``benchmarks/cold_start.py``: each kernel's compile time (CPU s of its first call, empty numba
  cache), the cold first run of a 5,000-case file (empty numba and codebook caches: a fresh install; floor: the
  same command warm), a 10,000-case CSV grouped with warm caches (target < 1.5 s), and ``drgdip --help`` /
  ``--version`` (best of 5; floor: a bare ``python -c pass``).

drgdip's modules are compiled to bytecode first, as an installed drgdip has them (``bytecode.py``).

Targets (issue 14): ≥ 2.5 M records/s and within 3× of the floor end to end; CSV ≥ 1 M records/s; first run < 10 s;
``--help``/``--version`` < 0.3 s. On a shared machine compare the ratios, not the wall times.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "bench-data"
SCHEMES = {
    "chs-drg-1.1": ["--scheme", "chs-drg-1.1"],
    "chs-drg-2.0": ["--scheme", "chs-drg-2.0"],
    "dip": ["--scheme", "dip", "--catalogue", "pingdingshan-2025"],
}
HEAVY_SOURCES = [
    ROOT / "tests" / "grouper" / "drg" / "data" / "conformance_visible.csv",
    ROOT / "tests" / "grouper" / "drg" / "data20" / "conformance_visible.csv",
]
CLI = [sys.executable, "-c", "from payment.cli import main; main()"]
_CHUNK = 1_000_000


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def _run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one child process, which must succeed."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(args, env=env or _env(), stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"failed: {' '.join(args)}\n{err.read().decode(errors='replace')}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def _columns(scheme: str) -> list[str]:
    from grouper.pipeline import grouping

    settings = {"scheme": scheme}
    if scheme == "dip":
        settings["catalogue"] = "pingdingshan-2025"
    return list(grouping(**settings).columns)


# ---------------------------------------------------------------------------------------------------------
# data


def heavy_file(cases: int) -> Path:
    """``cases`` conformance-style rows (both CHS-DRG conformance sets, canonical, tiled with unique case ids)."""
    import make_data  # (not at import: the floor processes load pyarrow only)

    path = DATA_DIR / f"heavy-{cases}-{make_data._version()}.parquet"
    if path.exists():
        return path
    import grouper

    rows = pa.concat_tables(
        [grouper.canonicalise(pacsv.read_csv(p, convert_options=_text(p))) for p in HEAVY_SOURCES]
    )
    rows = rows.drop_columns(["case_id"])
    DATA_DIR.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(tmp, pa.schema([("case_id", pa.string()), *rows.schema])) as writer:
        for lo in range(0, cases, _CHUNK):
            n = min(_CHUNK, cases - lo)
            numbers = np.arange(lo, lo + n)
            ids = pc.binary_join_element_wise("H", pa.array(numbers).cast(pa.string()), "")
            chunk = rows.take(pa.array(numbers % rows.num_rows))
            writer.write_table(pa.table([ids, *chunk.columns], schema=writer.schema))
    tmp.rename(path)
    return path


def _text(path: Path) -> pacsv.ConvertOptions:
    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")
    return pacsv.ConvertOptions(column_types={h: pa.string() for h in header})


def csv_file(cases: int) -> Path:
    """The synthetic region's first ``cases`` discharges as a CSV export (canonical headers, ``|`` lists)."""
    import make_data  # (not at import: the floor processes load pyarrow only)

    path = DATA_DIR / f"discharges-{cases}-{make_data._version()}.csv"
    if path.exists():
        return path
    source = pq.ParquetFile(make_data.ensure(cases))
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    with tmp.open("wb") as sink:
        for batch in source.iter_batches(batch_size=_CHUNK):
            table = pa.Table.from_batches([batch])
            cols = [
                pc.binary_join(c.cast(pa.list_(pa.string())), "|") if pa.types.is_list(c.type) else c
                for c in table.columns
            ]
            table = pa.table(cols, names=table.column_names)
            if writer is None:
                writer = pacsv.CSVWriter(sink, table.schema)
            writer.write_table(table)
        writer.close()
    tmp.rename(path)
    return path


# ---------------------------------------------------------------------------------------------------------
# floors (run in a fresh process by this script itself)


def _floor_parquet(path: str, columns: str) -> None:
    from payment.heap import keep_freed_memory

    keep_freed_memory()  # the C heap as the CLI keeps it (_app.batch_process): the floor is the best read
    start = time.perf_counter()
    reader = pq.ParquetFile(path)
    wanted = [c for c in columns.split(",") if c in reader.schema_arrow.names]
    for _ in reader.iter_batches(batch_size=1 << 18, columns=wanted):
        pass
    print(time.perf_counter() - start)


def _floor_csv(path: str, columns: str) -> None:
    from payment.heap import keep_freed_memory

    keep_freed_memory()  # (as in _floor_parquet)
    start = time.perf_counter()
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f))
    wanted = [c for c in columns.split(",") if c in header]
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted})
    reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 22), convert_options=convert)
    for _ in reader:
        pass
    print(time.perf_counter() - start)


def _floor(kind: str, path: Path, scheme: str) -> float:
    """Seconds to read the columns ``scheme`` needs from ``path`` in a fresh process (the read alone, timed
    inside the process: the interpreter's start is not counted in the floor, while it is in the CLI's figure)."""
    args = [sys.executable, __file__, f"--floor-{kind}", str(path), ",".join(_columns(scheme))]
    done = subprocess.run(args, env=_env(), check=True, capture_output=True, text=True)
    return float(done.stdout.strip())


# ---------------------------------------------------------------------------------------------------------
# figures


def _group(path: Path, scheme: str, tmp: str) -> tuple[float, float, float]:
    out = f"{tmp}/grouped.parquet"
    return _run([*CLI, "group", str(path), "-o", out, "--force", "-q", *SCHEMES[scheme]])


def end_to_end(label: str, path: Path, scheme: str, kind: str = "parquet") -> None:
    rows = pq.ParquetFile(path).metadata.num_rows if kind == "parquet" else _csv_rows(path)
    _warm(path)  # the floor and the CLI both read from the page cache, whichever runs first
    floor_wall = _floor(kind, path, scheme)
    past = ""
    with tempfile.TemporaryDirectory(prefix="drgdip-bench-") as tmp:
        if kind == "csv":  # the fixed cost, measured apart: the same command on the file's first 10 rows
            head = Path(tmp) / "head.csv"
            with path.open("rb") as f:
                head.write_bytes(b"".join(f.readline() for _ in range(11)))
            start = _group(head, scheme, tmp)[0]
        wall, cpu, rss = _group(path, scheme, tmp)
    if kind == "csv":
        past = (
            f"; start-up (the same command on its first 10 rows) {start:.2f} s, past it "
            f"{rows / max(wall - start, 1e-9) / 1e6:.2f} M records/s"
        )
    print(
        f"group {scheme} {label} {rows:,} rows: {wall:.2f} s = {rows / wall / 1e6:.2f} M records/s "
        f"(CPU {cpu:.1f} s, peak RSS {rss:,.0f} MiB); floor ({kind} read of the needed columns) {floor_wall:.2f} s "
        f"= {rows / floor_wall / 1e6:.2f} M/s; ratio {wall / floor_wall:.2f}{past} ({_load()})",
        flush=True,
    )


def _warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(1 << 24):
            pass


def _csv_rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(buf.count(b"\n") for buf in iter(lambda: f.read(1 << 24), b"")) - 1


def _stages(path: str, scheme: str) -> None:
    """One line: the CPU and wall seconds of each step of grouping ``path``, one step after the other."""
    clock = {"start-up": [time.process_time(), time.perf_counter()]}
    import numpy as np

    from grouper.batch import DuplicateTracker
    from grouper.io.discharges import read_discharges_keeping
    from grouper.io.writer import PARQUET_OPTIONS, column_options
    from grouper.pipeline import grouping, status_counts
    from payment.heap import keep_freed_memory

    keep_freed_memory()  # as the CLI's process (_app.batch_process)
    settings = {"scheme": scheme, "catalogue": "pingdingshan-2025"} if scheme == "dip" else {"scheme": scheme}
    g = grouping(**settings)
    DuplicateTracker().flag(pa.array(["a"]))
    g.run(pa.table({"case_id": ["1"], "principal_dx": ["K22.301"]}), np.zeros(1, bool))
    spent = {
        "start-up": (time.process_time() - clock["start-up"][0], time.perf_counter() - clock["start-up"][1])
    }
    steps = ("read+normalise", "duplicates", "encode", "group", "counts", "write")
    cpu, wall = dict.fromkeys(steps, 0.0), dict.fromkeys(steps, 0.0)

    def timed(step, call):
        c, w = time.process_time(), time.perf_counter()
        out = call()
        cpu[step] += time.process_time() - c
        wall[step] += time.perf_counter() - w
        return out

    tracker = DuplicateTracker()
    tracker.reserve(pq.ParquetFile(path).metadata.num_rows)
    batches = read_discharges_keeping(path, columns=g.columns, codes=g.codes, encoded=True)
    rows, writer = 0, None
    with tempfile.TemporaryDirectory(prefix="drgdip-stages-") as tmp:
        while (batch := timed("read+normalise", lambda: next(batches, None))) is not None:
            table = batch[0]
            duplicate = timed(
                "duplicates", lambda t=table: tracker.flag(t.column("case_id").combine_chunks())
            )
            if g.prepare is not None:
                table = timed("encode", lambda t=table: g.prepare(t))
            result = timed("group", lambda t=table, d=duplicate: g.run(t, d))
            timed("counts", lambda r=result: status_counts(r, g.status_column))
            if writer is None:
                options = {**column_options(result.schema), **PARQUET_OPTIONS}
                writer = pq.ParquetWriter(
                    f"{tmp}/out.parquet", result.schema, compression="snappy", **options
                )
            timed("write", lambda r=result, w=writer: w.write_table(r))
            rows += result.num_rows
        timed("write", writer.close)
    parts = [f"{k} {c:.2f} s CPU / {w:.2f} s" for k, (c, w) in spent.items()]
    parts += [f"{k} {cpu[k]:.2f} s CPU / {wall[k]:.2f} s" for k in steps]
    total = sum(cpu.values())
    side = cpu["duplicates"] + cpu["encode"]
    print(
        f"stages {scheme} {rows:,} rows, one step after the other: " + "; ".join(parts) + f"; steps' CPU "
        f"{total:.2f} s = {rows / total / 1e6:.2f} M records/s per core; lanes: reading (read+normalise) "
        f"{cpu['read+normalise']:.2f} s CPU, duplicates and encode {side:.2f} s, grouping (group, counts) "
        f"{cpu['group'] + cpu['counts']:.2f} s, writing {cpu['write']:.2f} s ({_load()})",
        flush=True,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000_000, help="rows of the big Parquet files")
    parser.add_argument(
        "--csv-cases", default="1000000,10000000", help="rows of the CSV files (comma-separated sizes)"
    )
    parser.add_argument(
        "--only", default="parquet,heavy,csv,startup", help="comma-separated sections (also stages)"
    )
    parser.add_argument("--floor-parquet", nargs=2, metavar=("FILE", "COLUMNS"), help=argparse.SUPPRESS)
    parser.add_argument("--floor-csv", nargs=2, metavar=("FILE", "COLUMNS"), help=argparse.SUPPRESS)
    parser.add_argument("--stages-of", nargs=2, metavar=("FILE", "SCHEME"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))  # (this checkout's drgdip, as the children's PYTHONPATH gives it)
    from payment.cli import own_process

    own_process()  # every child runs with the CLI process's settings (Arrow's allocator): floors, stages, CLI
    if args.stages_of:
        return _stages(*args.stages_of)
    if args.floor_parquet:
        return _floor_parquet(*args.floor_parquet)
    if args.floor_csv:
        return _floor_csv(*args.floor_csv)
    import bytecode
    import make_data

    bytecode.compiled()
    only = set(args.only.split(","))
    sizes = sorted({args.cases, min(args.cases, 1_000_000)}, reverse=True)
    if "parquet" in only:
        for scheme in SCHEMES:
            for n in sizes:
                end_to_end("synthetic", make_data.ensure(n), scheme)
    if "stages" in only:
        for scheme in SCHEMES:
            path = make_data.ensure(args.cases)
            done = subprocess.run(
                [sys.executable, __file__, "--stages-of", str(path), scheme],
                env=_env(),
                check=True,
                capture_output=True,
                text=True,
            )
            print(done.stdout.strip(), flush=True)
    if "heavy" in only:
        for scheme in ("chs-drg-1.1", "chs-drg-2.0"):
            end_to_end("conformance-style", heavy_file(args.cases), scheme)
    if "csv" in only:
        for n in (int(x) for x in args.csv_cases.split(",")):
            end_to_end("synthetic CSV", csv_file(n), "chs-drg-2.0", kind="csv")
    if "startup" in only:
        import cold_start

        cold_start.main([])


if __name__ == "__main__":
    main()
