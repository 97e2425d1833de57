"""Excel output speed (issue 13): writing a grouped result table to .xlsx, with the CSV write of the same table
as its floor, measured in the same run.

Usage::

    python benchmarks/excel_output.py                # 100,000 rows, best of 3
    python benchmarks/excel_output.py --rows 1000000

The table is shaped like ``drgdip group --keep 病案号,科室,总费用 --names --lang zh --explain`` output (14 columns:
ids, Chinese names and labels, a reason, a 元 amount with its number format). Target: 100k rows well under 10 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from grouper.io.writer import MONEY_FORMAT, write_results


def result_table(rows: int, seed: int = 0) -> pa.Table:
    """A grouped result table of ``rows`` rows (random codes, names and amounts)."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, 400, rows)
    drg = np.array([f"GZ{k:03d}" for k in range(400)])[pick]
    names = np.array([f"消化系统疾病第{k}组，伴并发症" for k in range(400)])[pick]
    return pa.table(
        {
            "case_id": [f"S{k:010d}" for k in range(rows)],
            "病案号": [f"B{k:08d}" for k in range(rows)],
            "科室": np.array(["消化内科", "心血管内科", "普通外科", "儿科"])[pick % 4],
            "总费用": np.round(rng.gamma(2.0, 6000.0, rows), 2),
            "mdc": np.array(["MDCG", "MDCF", "MDCE"])[pick % 3],
            "mdc_name": np.array(
                ["消化系统疾病及功能障碍", "循环系统疾病及功能障碍", "呼吸系统疾病及功能障碍"]
            )[pick % 3],
            "adrg": np.array([f"GZ{k:03d}"[:4] for k in range(400)])[pick],
            "adrg_name": names,
            "drg": drg,
            "drg_name": names,
            "drg_status": np.array(["OK", "OK", "OK", "PDX_MISSING"])[pick % 4],
            "drg_status_label": np.array(["已入组", "已入组", "已入组", "未入组：无主要诊断（主要诊断）"])[
                pick % 4
            ],
            "los": rng.integers(1, 30, rows),
            "reason": np.char.add("MDCG > GZ1 (pdx in zd); 无 CC/MCC → ", drg),
        }
    )


def _best(write, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        write()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    table = result_table(args.rows)
    batches = [pa.Table.from_batches([b]) for b in table.to_batches(max_chunksize=65_536)]
    load = "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="drgdip-xlsx-") as tmp:
        times = {}
        for suffix in (".xlsx", ".csv"):
            out = Path(tmp) / f"out{suffix}"
            times[suffix] = _best(
                lambda out=out: write_results(
                    batches, out, if_exists="replace", formats={"总费用": MONEY_FORMAT}
                ),
                args.rounds,
            )
        size = (Path(tmp) / "out.xlsx").stat().st_size
    x, c = times[".xlsx"], times[".csv"]
    print(
        f"excel output: {args.rows:,} rows × {table.num_columns} columns in {x:.2f} s ({args.rows / x:,.0f} rows/s, "
        f"{size / 1e6:.1f} MB), floor (CSV of the same table) {c:.2f} s, ratio {x / c:.1f} ({load})"
    )


if __name__ == "__main__":
    main()
