"""Grouping and settlement on a Dask LocalCluster: records/s at 1 and 2 workers, beside the local engine and the
column-read floor of the same run, and peak RSS per worker (issue 15).

``python benchmarks/dask_scale.py --cases 10000000`` writes a partitioned synthetic region once
(``drgdip synth --parts``: parts of 4 blocks = 262,144 cases, 200 hospitals, year 2025) under ``--data`` (kept
for later runs: ``--data /tmp/scale50m --cases 50000000`` finds the 50M region there), then times, each step in a
fresh process:

* ``floor``: one process reading, part by part, the columns the step needs (grouping: the discharge columns the
  DIP grouping reads; settlement: the discharge and grouping columns it reads), nothing else — the cost no engine
  can avoid on one core;
* ``group``: the dataset → a folder of grouped parts (DIP, catalogue pingdingshan-2025), written by the workers;
* ``settle``: the grouped parts with their discharges under the demo-2025 policy → the settlement folder;
* ``weights`` (Dask engines only): DRG weights fitted on the dataset as a history, grouped under chs-drg-2.0 on
  the workers and reduced there (``drgdip weights --engine dask``): the caller's peak RSS is the figure that
  matters (it receives per-group figures only);
* ``catalog`` (Dask engines only; not in the default ``--steps``): a DIP catalogue with auxiliary typing built
  from the dataset as a history (``drgdip catalog --engine dask``), likewise reduced on the workers;

on the local engine (``--engines local,1,2``: ``local`` is this machine's streamed engine, a number a fresh
LocalCluster of that many worker processes, one thread each). Peak RSS is the ``ru_maxrss`` of each worker
process (a fresh cluster per step: that step's peak) and of the calling process. Memory per worker should not
grow with the dataset: run two sizes and compare (the parts have the same size).

Output: one line per figure (``floor``, ``group``, ``settle``, ``scaling``, ``projection``), then the same figures
as a Markdown table for docs/scale.md. The ``projection`` lines derive the worker-seconds of 300 million cases a
year from the 1-worker records/s of this run (docs/scale.md, "Projection").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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
NATION, PROJECTED_WORKERS = 300_000_000, 32


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _load() -> str:
    return "load " + " ".join(f"{x:.1f}" for x in os.getloadavg())


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


def _floor(name: str, region: Path, grouped: Path) -> dict:
    """Seconds for one process to read, part by part, the columns step ``name`` reads (timed inside the
    process)."""
    import pyarrow.parquet as pq

    from grouper.io import dataset_files
    from grouper.pipeline import grouping
    from payment.cases import GROUPING_COLUMNS, SETTLE_COLUMNS

    if name == "group":
        needed = {region / "discharges": set(grouping(scheme="dip", catalogue=CATALOGUE).columns)}
    else:
        needed = {region / "discharges": set(SETTLE_COLUMNS), grouped: set(GROUPING_COLUMNS) | {"case_id"}}
    start, rows = time.perf_counter(), 0
    for k, (folder, columns) in enumerate(needed.items()):
        for path in dataset_files([folder]):
            reader = pq.ParquetFile(path)
            wanted = [c for c in reader.schema_arrow.names if c in columns]
            for batch in reader.iter_batches(batch_size=1 << 18, columns=wanted):
                rows += batch.num_rows if k == 0 else 0  # the discharges' rows: the cases
    seconds = time.perf_counter() - start
    return {"step": f"floor-{name}", "engine": "1 process", "rows": rows, "seconds": seconds,
            "columns": sorted(needed[region / "discharges"]), "worker_peak_mib": [],
            "caller_peak_mib": _peak_kib() / 1024}  # fmt: skip


def _step(name: str, workers: int | None, region: Path, out: Path) -> dict:
    """One timed step on a fresh cluster of ``workers`` processes (None: the local engine)."""
    from distributed import Client, LocalCluster

    from grouper.distributed import Engine
    from grouper.pipeline import group_to_file
    from grouper.resources import data_path
    from payment.pipeline import settle_files

    def run(engine: Engine) -> int:
        if name == "catalog":
            from grouper.fitting import catalogue_to_file

            built = catalogue_to_file([region / "discharges"], out.with_suffix(".csv"), engine=engine)
            return built.catalogue.n_cases_ + sum(built.catalogue.n_excluded_.values())
        if name == "weights":
            from grouper.fitting import weights_to_file

            fitted = weights_to_file([region / "discharges"], out.with_suffix(".parquet"), scheme="chs-drg-2.0",
                                     engine=engine)  # fmt: skip
            return fitted.weights.n_cases_ + sum(fitted.weights.n_excluded_.values())
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


def _child(args: argparse.Namespace, step: str) -> dict:
    cmd = [sys.executable, __file__, "--cases", str(args.cases), "--data", str(args.data), "--step", step]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    r = json.loads(done.stdout.splitlines()[-1])
    r["cases"], r["load"] = args.cases, _load()
    return r


def _line(r: dict, floors: dict) -> str:
    rate = r["rows"] / r["seconds"]
    if r["step"].startswith("floor"):
        return (f"floor  {r['step'][6:]:6} {r['rows']:>12,} records in {r['seconds']:8.1f} s = {rate:>10,.0f} records/s "
                f"(one process reading the {len(r['columns'])} discharge columns the step reads, part by part"
                f"{' and the grouping columns of the grouped parts' if r['step'] == 'floor-settle' else ''}); {r['load']}")  # fmt: skip
    floor = floors.get(r["step"])
    times = f" = {r['seconds'] / floor['seconds']:.1f}× the floor" if floor else ""
    if r["worker_peak_mib"]:
        rss = f"peak RSS per worker {', '.join(map(str, r['worker_peak_mib']))} MiB, caller"
    else:
        rss = "peak RSS (one process)"
    return (f"{r['step']:6} {r['engine']:7} {r['rows']:>12,} records in {r['seconds']:8.1f} s = {rate:>10,.0f} records/s"
            f"{times}; {rss} {r['caller_peak_mib']:,.0f} MiB; {r['load']}")  # fmt: skip


def _summary(results: list[dict], floors: dict) -> list[str]:
    """Scaling and projection lines, and the Markdown table of the run."""
    out = []
    by = {(r["step"], r["engine"]): r for r in results}
    rate = {k: r["rows"] / r["seconds"] for k, r in by.items()}
    for step in ("group", "settle"):
        one, two, local = (rate.get((step, e)) for e in ("dask×1", "dask×2", "local"))
        if one and two:
            vs = f"; local {local:,.0f} records/s ({two / local:.2f}× by 2 workers)" if local else ""
            out.append(
                f"scaling {step:6} 1 → 2 workers: {one:,.0f} → {two:,.0f} records/s = {two / one:.2f}×{vs}"
            )
    one = {s: rate.get((s, "dask×1")) for s in ("group", "settle")}
    if all(one.values()):
        work = {s: NATION / v for s, v in one.items()}
        total = sum(work.values())
        peak = max(max(r["worker_peak_mib"], default=0) for r in results)
        out.append(
            f"projection {NATION:,} cases a year from the 1-worker figures: group {one['group']:,.0f} records/s → "
            f"{work['group']:,.0f} worker-s, settle {one['settle']:,.0f} records/s → {work['settle']:,.0f} worker-s; "
            f"{total:,.0f} worker-s = {total / 3600:.2f} worker-hours; on {PROJECTED_WORKERS} workers "
            f"{total / PROJECTED_WORKERS:,.0f} s = {total / PROJECTED_WORKERS / 60:.1f} min of partition work; "
            f"largest peak RSS per worker {peak:,} MiB"
        )
    out.append("")
    out.append(
        "| cases | step | engine | seconds | records/s | × floor | peak RSS per worker (MiB) | caller (MiB) |"
    )
    out.append("|---:|---|---|---:|---:|---:|---|---:|")
    for r in results:
        floor = floors.get(r["step"]) or (r if r["step"].startswith("floor") else None)
        ratio = f"{r['seconds'] / floor['seconds']:.1f}" if floor else "–"
        out.append(
            f"| {r['cases']:,} | {r['step']} | {r['engine']} | {r['seconds']:,.1f} | {r['rows'] / r['seconds']:,.0f} "
            f"| {ratio} | {', '.join(map(str, r['worker_peak_mib'])) or '–'} | {r['caller_peak_mib']:,.0f} |"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000_000)
    parser.add_argument(
        "--engines",
        default="local,1,2",
        help="comma-separated: local and/or worker counts (default local,1,2)",
    )
    parser.add_argument(
        "--steps",
        default="group,settle,weights",
        help="comma-separated: group, settle, weights, catalog (default group,settle,weights)",
    )
    parser.add_argument("--data", type=Path, default=Path("/tmp/drgdip-scale"))
    parser.add_argument("--json", type=Path, help="append the results as JSON lines to this file")
    parser.add_argument("--step", help=argparse.SUPPRESS)  # internal: one step in this (fresh) process
    args = parser.parse_args()
    region = ensure(args.data, args.cases)
    if args.step:
        name, workers, out = args.step.split(":")
        if name.startswith("floor-"):
            print(json.dumps(_floor(name[6:], region, Path(out))))
        else:
            print(json.dumps(_step(name, int(workers) or None, region, Path(out))))
        return
    engines = [None if e == "local" else int(e) for e in args.engines.split(",")]
    print(f"dask_scale: {args.cases:,} cases in {region}; {os.cpu_count()} cores; {_load()}", flush=True)
    results, floors = [], {}

    def record(r: dict) -> None:
        if r["step"].startswith("floor"):
            floors[r["step"][6:]] = r
        results.append(r)
        print(_line(r, floors), flush=True)
        if args.json:
            with args.json.open("a") as f:
                f.write(json.dumps(r) + "\n")

    steps = args.steps.split(",")
    if "group" in steps:
        record(_child(args, "floor-group:0:-"))
    for workers in engines:
        work = args.data / f"run-{args.cases}-{workers or 'local'}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for name in ("group", "settle", "weights", "catalog"):
            if name not in steps or (name in ("weights", "catalog") and workers is None):
                continue  # the local engine holds the whole history in memory to fit
            if name == "settle" and "settle" not in floors:
                record(_child(args, f"floor-settle:0:{work / 'grouped'}"))
            out = (
                work
                / {"group": "grouped", "settle": "settlement", "weights": "weights", "catalog": "catalog"}[
                    name
                ]
            )
            record(_child(args, f"{name}:{workers or 0}:{out}"))
        shutil.rmtree(work, ignore_errors=True)
    print("\n".join(_summary(results, floors)), flush=True)


if __name__ == "__main__":
    main()
