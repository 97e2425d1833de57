"""End-to-end CHS-DRG grouping of a synthetic Parquet file with its peak memory (the streaming claim).

``python benchmarks/drg_end_to_end.py --cases 10000000`` generates the file once (bench-data/), then groups it
Parquet → Parquet in a fresh process and prints records/s and the peak resident set size.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import make_data


def _group(source: Path) -> None:
    import grouper
    from grouper.drg.group import INPUT_COLUMNS

    codebook = grouper.Codebook.load("chs-drg-1.1")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        results = grouper.group_files(
            [source], lambda t, d: grouper.group_drg(t, codebook, duplicate=d), columns=INPUT_COLUMNS
        )
        rows = grouper.write_results(results, Path(tmp) / "grouped.parquet")
        seconds = time.perf_counter() - start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{rows:,} cases in {seconds:.1f} s = {rows / seconds:,.0f} records/s; peak RSS {peak_mib:,.0f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument("--file", type=Path, help="group this Parquet file instead (internal)")
    args = parser.parse_args()
    if args.file:
        _group(args.file)
        return
    source = make_data.ensure(args.cases)
    subprocess.run([sys.executable, __file__, "--file", str(source)], check=True)


if __name__ == "__main__":
    main()
