"""End-to-end settlement of a grouped Parquet file with its peak memory (the streaming claim).

``python benchmarks/settle_end_to_end.py --cases 1000000,10000000`` writes each N-case grouped DIP file once
(``bench-data/settle-N-…parquet`` and its hospitals CSV, 500 hospitals; cases from
tests/payment/payment_synth.py, written chunk by chunk), then, each in a fresh process, reads the columns the
settlement needs from the file (the floor) and runs ``drgdip settle`` on it (demo-2025 policy, Parquet →
cases.parquet / hospitals.csv / region.json). It prints one line per N: the wall time end to end (start-up
included) and the CPU time it used (user + system, all threads: on a busy machine the wall time grows, the CPU
time much less), the floor, their ratio, the peak resident set size and the load. Memory should not grow with N.

drgdip's own modules are compiled to bytecode first, as an installed drgdip has them (``bytecode.py``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "bench-data"
HOSPITALS, SEED, CHUNK = 500, 42, 1_000_000
SYNTH = ROOT / "tests" / "payment" / "payment_synth.py"
for p in (ROOT, SYNTH.parent):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))


def _ids(prefix: str, numbers: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(numbers, pa.string()), "")


def ensure(cases: int) -> tuple[Path, Path]:
    """The grouped cases file and the hospitals CSV for ``cases`` rows, generated on first use."""
    import payment_synth

    tag = hashlib.sha256(SYNTH.read_bytes()).hexdigest()[:8]
    path = DATA_DIR / f"settle-{cases}-s{SEED}-{tag}.parquet"
    hosp = path.with_name(path.stem + ".hospitals.csv")
    if path.exists() and hosp.exists():
        return path, hosp
    DATA_DIR.mkdir(exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    writer = None
    for k, start in enumerate(range(0, cases, CHUNK)):
        n = min(CHUNK, cases - start)
        table, hospitals = payment_synth.region(n, HOSPITALS, seed=SEED + k, codes=True)
        if k == 0:
            pacsv.write_csv(hospitals, hosp)  # every chunk uses the ids H0000 …; the first chunk's levels
        # case and patient ids unique across chunks
        table = table.set_column(0, "case_id", _ids("C", pa.array(range(start, start + n))))
        patient = pc.cast(pc.utf8_slice_codeunits(table.column("patient_id"), 1), pa.int64())
        i = table.schema.get_field_index("patient_id")
        table = table.set_column(i, "patient_id", _ids("P", pc.add(patient, start)))
        if writer is None:
            writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()
    tmp.replace(path)
    return path, hosp


def _settle(source: Path, hospitals: Path, batch_size: int | None) -> None:
    """Child: ``drgdip settle`` on the file in a process of its own (as a user runs it); prints its wall seconds
    (start-up included), its peak RSS (MiB) and its CPU seconds."""
    extra = [] if batch_size is None else ["--batch-size", str(batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        args = ["settle", "--cases", str(source), "--hospitals", str(hospitals), "--out", tmp, "-q",
                "--policy", str(ROOT / "codebooks" / "policies" / "demo-2025.toml"), *extra]  # fmt: skip
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "from payment.cli import main; main()", *args], check=True)
        seconds = time.perf_counter() - start
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{seconds} {used.ru_maxrss / 1024} {used.ru_utime + used.ru_stime}")


def needed_columns(source: Path) -> list[str]:
    """The columns of ``source`` that the settlement reads (discharge and grouping columns)."""
    from payment.cases import GROUPING_COLUMNS, SETTLE_COLUMNS

    names = pq.ParquetFile(source).schema_arrow.names
    return [n for n in names if n in SETTLE_COLUMNS or n in GROUPING_COLUMNS]


def _floor(source: Path) -> None:
    """Child: read the columns the settlement needs from the file, batch by batch as the settlement reads them."""
    from payment.heap import keep_freed_memory

    columns = needed_columns(source)
    keep_freed_memory()  # the C heap as the CLI keeps it (_app.batch_process): the floor is the best read
    start = time.perf_counter()
    reader = pq.ParquetFile(source, pre_buffer=False, page_checksum_verification=True)
    rows = sum(b.num_rows for b in reader.iter_batches(batch_size=1 << 18, columns=columns))
    print(f"{time.perf_counter() - start} {rows}")


def _child(*args: str) -> tuple[float, list[float]]:
    """Wall seconds of a fresh process running this script with ``args`` (start-up included), and its output."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - start, [float(x) for x in out.split()]


def measure(cases: int, batch_size: int | None) -> str:
    """One quotable line: the settlement's wall time end to end (fresh process), its floor and peak RSS."""
    source, hospitals = ensure(cases)
    extra = [] if batch_size is None else ["--batch-size", str(batch_size)]
    floor, _ = _child("--floor", str(source))
    _, (wall, peak, cpu) = _child("--file", str(source), "--hospitals", str(hospitals), *extra)
    load = os.getloadavg()[0]
    return (
        f"settle {cases:,} cases: {wall:.2f} s end to end (drgdip settle, fresh process; "
        f"{cases / wall / 1e6:.2f} M cases/s; CPU {cpu:.2f} s), floor {floor:.2f} s (fresh process reading the "
        f"{len(needed_columns(source))} columns it needs) = {wall / floor:.1f}× the floor; peak RSS {peak:,.0f} MiB; "
        f"load {load:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", default="10000000", help="cases, or sizes separated by commas (1000000,10000000)"
    )
    parser.add_argument("--batch-size", type=int, help="cases per batch (default: the CLI's)")
    parser.add_argument("--file", type=Path, help="settle this Parquet file instead (internal)")
    parser.add_argument("--hospitals", type=Path, help="with --file: its hospitals CSV (internal)")
    parser.add_argument(
        "--floor", type=Path, help="read the columns settlement needs from this file (internal)"
    )
    from payment.cli import own_process

    args = parser.parse_args()
    own_process()  # every child runs with the CLI process's settings (Arrow's allocator): floor and CLI
    if args.file:
        _settle(args.file, args.hospitals, args.batch_size)
    elif args.floor:
        _floor(args.floor)
    else:
        import bytecode

        bytecode.compiled()
        for cases in (int(n) for n in args.cases.split(",")):
            print(measure(cases, args.batch_size), flush=True)


if __name__ == "__main__":
    main()
