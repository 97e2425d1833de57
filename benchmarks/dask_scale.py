"""Grouping and settlement on a Dask LocalCluster: records/s at 1 and 2 workers and peak RSS per worker (issue 15).

``python benchmarks/dask_scale.py --cases 10000000`` writes a partitioned synthetic region once
(``drgdip synth --parts``: parts of 4 blocks = 262,144 cases, 200 hospitals, year 2025) under ``--data``, then for
each worker count starts a fresh LocalCluster of worker processes per step and times

* ``group``: the dataset → a folder of grouped parts (DIP, catalogue pingdingshan-2025), written by the workers;
* ``settle``: the grouped parts with their discharges under the demo-2025 policy → the settlement folder,

printing records/s and the peak resident set size of each worker (``ru_maxrss`` of the worker process: a fresh
cluster per step, so it is that step's peak) and of the calling process (each step runs in a fresh one; it writes
cases.parquet). ``--local`` adds the
local engine on the same dataset as the floor of the same run. Memory per worker should not grow with the
dataset: run two sizes and compare (the parts have the same size).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PART_BLOCKS, HOSPITALS, SEED = 4, 200, 15
CATALOGUE = "pingdingshan-2025"


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def ensure(data: Path, cases: int) -> Path:
    """The partitioned region of ``cases`` cases (written on first use by ``drgdip synth --parts``)."""
    from grouper.synth import plan_region

    folder = data / f"region-{cases}-s{SEED}"
    if (folder / "hospitals.csv").exists():
        return folder
    blocks = plan_region(cases, [2025], HOSPITALS, SEED).n_blocks
    parts = max(1, blocks // PART_BLOCKS)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "from payment.cli import main; main()", "synth", "--out", str(folder), "--cases", str(cases), "--years",
         "2025", "--hospitals", str(HOSPITALS), "--seed", str(SEED), "--parts", str(parts), "--quiet"],
        check=True,
    )  # fmt: skip
    print(
        f"data: {cases:,} cases in {parts} parts → {folder} ({time.perf_counter() - start:.0f} s)", flush=True
    )
    return folder


def _step(name: str, workers: int | None, region: Path, out: Path) -> dict:
    """One timed step on a fresh cluster of ``workers`` processes (None: the local engine)."""
    from distributed import Client, LocalCluster

    from grouper.distributed import Engine
    from grouper.pipeline import group_to_file
    from grouper.resources import data_path
    from payment.pipeline import settle_files

    def run(engine: Engine) -> int:
        if name == "group":
            return group_to_file(
                [region / "discharges"], out, scheme="dip", catalogue=CATALOGUE, engine=engine
            ).rows
        summary = settle_files(
            out.parent / "grouped",
            region / "hospitals.csv",
            data_path("policies", "demo-2025.toml"),
            out,
            discharges=region / "discharges",
            catalogue=CATALOGUE,
            engine=engine,
        )
        return summary["cases"]

    if workers is None:
        start = time.perf_counter()
        rows = run(Engine("local"))
        seconds = time.perf_counter() - start
        return {"step": name, "engine": "local", "rows": rows, "seconds": seconds, "worker_peak_mib": [],
                "caller_peak_mib": _peak_kib() / 1024}  # fmt: skip
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            silence_logs=logging.ERROR,
            memory_limit=0,
        ) as cluster,
        Client(cluster, set_as_default=False) as client,
    ):
        start = time.perf_counter()
        rows = run(Engine("dask", client=client))
        seconds = time.perf_counter() - start
        peaks = client.run(_peak_kib)
    return {"step": name, "engine": f"dask×{workers}", "rows": rows, "seconds": seconds,
            "worker_peak_mib": sorted(round(v / 1024) for v in peaks.values()),
            "caller_peak_mib": _peak_kib() / 1024}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--local", action="store_true", help="also the local engine (the floor)")
    parser.add_argument("--data", type=Path, default=Path("/tmp/drgdip-scale"))
    parser.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one step in this (fresh) process
    args = parser.parse_args()
    region = ensure(args.data, args.cases)
    if args.step:
        name, workers, out = args.step.split(":")
        print(json.dumps(_step(name, int(workers) or None, region, Path(out))))
        return
    counts = [None] * args.local + [int(w) for w in args.workers.split(",")]
    for workers in counts:
        work = args.data / f"run-{args.cases}-{workers or 'local'}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name in ("group", "settle"):
            out = work / ("grouped" if name == "group" else "settlement")
            cmd = [sys.executable, __file__, "--cases", str(args.cases), "--data", str(args.data),
                   "--step", f"{name}:{workers or 0}:{out}"]  # fmt: skip
            r = json.loads(
                subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]
            )
            r["cases"] = args.cases
            print(
                f"{r['step']:6} {r['engine']:7} {r['rows']:>12,} records in {r['seconds']:7.1f} s = "
                f"{r['rows'] / r['seconds']:>9,.0f} records/s; peak RSS per worker {r['worker_peak_mib']} MiB, "
                f"caller {r['caller_peak_mib']:,.0f} MiB",
                flush=True,
            )
            if args.json:
                with args.json.open("a") as f:
                    f.write(json.dumps(r) + "\n")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
