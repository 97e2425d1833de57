"""End-to-end settlement of a grouped Parquet file with its peak memory (the streaming claim).

``python benchmarks/settle_end_to_end.py --cases 10000000`` writes an N-case grouped DIP file once
(``bench-data/settle-N-…parquet`` and its hospitals CSV, 500 hospitals; cases from
tests/payment/payment_synth.py, written chunk by chunk), then runs ``drgdip settle`` on it (demo-2025 policy,
Parquet → cases.parquet / hospitals.csv / region.json) in a fresh process and prints cases/s and the peak
resident set size. Memory should not grow with N.
"""

from __future__ import annotations

import argparse
import hashlib
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
    import payment.cli.settle  # noqa: F401  (registers the command)
    from payment.cli._app import app

    rows = pq.ParquetFile(source).metadata.num_rows
    extra = [] if batch_size is None else ["--batch-size", str(batch_size)]
    with tempfile.TemporaryDirectory() as tmp:
        args = ["settle", "--cases", str(source), "--hospitals", str(hospitals), "--out", tmp, "-q",
                "--policy", str(ROOT / "codebooks" / "policies" / "demo-2025.toml"), *extra]  # fmt: skip
        start = time.perf_counter()
        app(args, standalone_mode=False)
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{rows:,} cases in {seconds:.1f} s = {rows / seconds:,.0f} cases/s; peak RSS {peak_mib:,.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument("--batch-size", type=int, help="cases per batch (default: the CLI's)")
    parser.add_argument("--file", type=Path, help="settle this Parquet file instead (internal)")
    parser.add_argument("--hospitals", type=Path, help="with --file: its hospitals CSV (internal)")
    args = parser.parse_args()
    if args.file:
        _settle(args.file, args.hospitals, args.batch_size)
        return
    start = time.perf_counter()
    source, hospitals = ensure(args.cases)
    print(f"data: {source.name} ({time.perf_counter() - start:.1f} s)")
    extra = [] if args.batch_size is None else ["--batch-size", str(args.batch_size)]
    cmd = [sys.executable, __file__, "--file", str(source), "--hospitals", str(hospitals), *extra]
    subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
