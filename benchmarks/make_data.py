"""Benchmark data: synthetic discharges (grouper.synth) as Parquet files under ``bench-data/``.

Usage::

    python benchmarks/make_data.py                          # bench-data/discharges-1m.parquet and -10m
    python benchmarks/make_data.py --cases 200000 --out F   # one file F (+ F's stem + .hospitals.csv)

Benchmarks call :func:`ensure` (a path) or :func:`load` (a table) to get data of a given size, generated once
under ``bench-data/`` and reused (same seed → same bytes); ``import make_data`` works from a benchmark module
because pytest puts ``benchmarks/`` on ``sys.path``. Default region: 3 years (2022–2024), 40 hospitals, seed
20240101.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grouper.synth import plan_region, write_parquet  # noqa: E402

__all__ = ["DATA_DIR", "ensure", "load", "make"]

DATA_DIR = ROOT / "bench-data"
YEARS, HOSPITALS, SEED = [2022, 2023, 2024], 40, 20240101
SIZES = {"1m": 1_000_000, "10m": 10_000_000}


def make(cases: int, out: Path, years=YEARS, hospitals: int = HOSPITALS, seed: int = SEED) -> Path:
    """Write ``cases`` synthetic discharges to the Parquet file ``out`` and the hospitals beside it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = plan_region(cases, list(years), hospitals, seed)
    write_parquet(plan, out)
    pacsv.write_csv(plan.hospitals.table, out.with_name(out.stem + ".hospitals.csv"))
    return out


def _version() -> str:
    """Short hash of the generator's code and default parameters: a changed generator makes new files."""
    h = hashlib.sha256()
    files = sorted((ROOT / "grouper" / "synth").glob("*.py"))
    for f in [*files, ROOT / "codebooks" / "synth" / "region-default.toml"]:
        h.update(f.read_bytes())
    return h.hexdigest()[:8]


def ensure(cases: int, seed: int = SEED) -> Path:
    """Path of a benchmark file with ``cases`` rows (default region), generated on first use."""
    path = DATA_DIR / f"discharges-{cases}-s{seed}-{_version()}.parquet"
    if not path.exists():
        make(cases, path, seed=seed)
    return path


def load(cases: int, columns: list[str] | None = None, seed: int = SEED) -> pa.Table:
    """The benchmark table with ``cases`` rows (all columns, or only ``columns``), generated on first use."""
    return pq.read_table(ensure(cases, seed), columns=columns)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, help="number of discharges (default: the 1M and 10M files)")
    parser.add_argument("--out", type=Path, help="output Parquet file (with --cases)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--hospitals", type=int, default=HOSPITALS)
    parser.add_argument("--years", default=",".join(map(str, YEARS)))
    args = parser.parse_args(argv)
    years = [int(y) for y in args.years.split(",")]
    jobs = (
        [(args.cases, args.out or DATA_DIR / f"discharges-{args.cases}.parquet")]
        if args.cases is not None
        else [(n, DATA_DIR / f"discharges-{name}.parquet") for name, n in SIZES.items()]
    )
    for cases, out in jobs:
        start = time.perf_counter()
        make(cases, out, years, args.hospitals, args.seed)
        seconds = time.perf_counter() - start
        print(f"{out}: {cases:,} cases in {seconds:.1f} s ({cases / seconds:,.0f} cases/s)")


if __name__ == "__main__":
    main()
