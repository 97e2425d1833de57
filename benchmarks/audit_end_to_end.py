"""End-to-end ``drgdip audit`` of a synthetic Parquet file: wall and CPU time, load and peak memory (issue 12 §8).

``python benchmarks/audit_end_to_end.py --cases 1000000 --hospitals 40`` writes an N-case synthetic region once
(``bench-data/audit-N-hH-s2025/discharges.parquet`` with the fee breakdown, and its hospitals CSV), then runs
``drgdip audit`` on it in a fresh process (DIP, demo-2025 policy, every output: Parquet tables, audit.xlsx,
report.html) and prints the wall time, the child's CPU time (user + system), the load average around the run and
the child's own peak resident set size, after the same for ``drgdip group`` of the file (the floor: the
grouping alone, measured under the same load). ``--focus`` audits the busiest hospital (one hospital's year: ``--hospitals 1
--focus``). A warm-up run on 2,000 cases fills the compiled caches first. The machine is shared: CPU time is the
fairer figure; the wall time is reported with the load it was measured under.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT / "bench-data"
SEED = 2025
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def ensure(cases: int, hospitals: int) -> tuple[Path, Path]:
    """The discharge file and hospitals CSV of an N-case region, generated on first use."""
    from grouper.synth import write_region

    folder = DATA_DIR / f"audit-{cases}-h{hospitals}-s{SEED}"
    if not (folder / "discharges.parquet").exists():
        write_region(folder, cases, [2025], hospitals, SEED, fees=True)
    return folder / "discharges.parquet", folder / "hospitals.csv"


def _busiest(source: Path) -> str:
    counts = pq.read_table(source, columns=["hospital_id"]).column("hospital_id").value_counts().to_pylist()
    return max(counts, key=lambda v: (v["counts"], v["values"]))["values"]


#: The command in a fresh process that reports its own peak resident set size on exit (the children's
#: ru_maxrss is the largest of all the children so far).
_CHILD = (
    "import atexit, resource, sys; atexit.register(lambda: print('PEAK_RSS_KB', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)); "
    "from payment.cli import app; app(sys.argv[1:])"
)


def _run(source: Path, hospitals: Path, focus: str | None, floor: bool = False) -> tuple[float, float, float]:
    """Wall seconds, the child's CPU seconds and its peak RSS (GiB) of one ``drgdip audit`` in a fresh process
    (``floor``: ``drgdip group`` of the same file, the reference measured under the same load)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as tmp:
        args = ["audit", str(source), "--scheme", "dip", "--policy", str(ROOT / "codebooks" / "policies" /
                "demo-2025.toml"), "--hospitals", str(hospitals), "--out", str(Path(tmp) / "out"), "-q",
                *(["--hospital", focus] if focus else [])]  # fmt: skip
        if floor:
            args = ["group", str(source), "--scheme", "dip", "--catalogue", "pingdingshan-2025", "-q",
                    "--out", str(Path(tmp) / "grouped.parquet")]  # fmt: skip
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", _CHILD, *args], stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - start
        if run.returncode:
            sys.exit(f"drgdip {args[0]} failed:\n{run.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    peak = int(run.stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0])
    return wall, cpu, peak / 1024**2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--hospitals", type=int, default=40)
    parser.add_argument(
        "--focus", action="store_true", help="audit the busiest hospital (the others: its region)"
    )
    args = parser.parse_args()
    start = time.perf_counter()
    source, hospitals = ensure(args.cases, args.hospitals)
    print(f"data: {source.parent.name} ({time.perf_counter() - start:.1f} s)")
    warm, warm_hosp = ensure(2000, 2)
    _run(warm, warm_hosp, None)  # compiled caches (numba) outside the measurement
    focus = _busiest(source) if args.focus else None
    rows = pq.ParquetFile(source).metadata.num_rows
    load = os.getloadavg()[0]
    wall, cpu, rss = _run(source, hospitals, None, floor=True)
    print(
        f"floor, drgdip group of the same {rows:,} cases: wall {wall:.1f} s, CPU {cpu:.1f} s, "
        f"load {load:.1f} → {os.getloadavg()[0]:.1f}, peak RSS {rss:.2f} GiB"
    )
    load = os.getloadavg()[0]
    wall, cpu, rss = _run(source, hospitals, focus)
    print(
        f"drgdip audit of {rows:,} cases{' (one hospital in focus)' if focus else ''}, every output: "
        f"wall {wall:.1f} s, CPU {cpu:.1f} s, load {load:.1f} → {os.getloadavg()[0]:.1f}, peak RSS {rss:.2f} GiB"
    )


if __name__ == "__main__":
    main()
