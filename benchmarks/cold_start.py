"""First run and start-up of ``drgdip`` (issue 14): each figure beside its floor, measured in the same run.

Usage::

    python benchmarks/cold_start.py                 # everything below
    python benchmarks/cold_start.py --only compile  # sections: compile, cold, warm, startup, help

Each line is one quotable figure, with the machine's load (``os.getloadavg``) at the time:

- ``compile``: the CPU seconds of each kernel's first call in a fresh process with an empty numba cache
  (``NUMBA_CACHE_DIR``), codebooks already loaded: what a fresh install compiles, kernel by kernel.
- ``cold``: the first ``drgdip group`` of a ``--cases`` file (5,000 by default) on a fresh install (empty numba
  cache and codebook cache, ``DRGDIP_CACHE``), for chs-drg-2.0 (the default scheme) and DIP, with the functions
  it compiled (the scheme's kernels only); floor: the same command again, caches warm. Target: < 10 s.
- ``warm``: a 10,000-case CSV (``--csv-cases``) grouped end to end with warm caches, best of 3; floor: a fresh
  process that imports pyarrow and reads the columns the grouper needs from that CSV. Target: < 1.5 s.
- ``startup``: the fixed cost of a command: ``drgdip group`` of a 10-row CSV and of a 10-row Parquet file
  (chs-drg-2.0) and ``drgdip settle`` of a 10-case file, caches warm, best of 5, with the bytecode of every module
  cached as an installed drgdip has it (``PYTHONPYCACHEPREFIX``; beside it the group figure as a checkout runs
  under ``PYTHONDONTWRITEBYTECODE=1``: drgdip's modules compiled at each start unless ``__pycache__`` holds them);
  floors: a bare python, and a python importing numpy, pyarrow and numba. Target: group ≤ 0.5 s.
- ``help``: ``drgdip --help`` and ``--version``, best of 5; floor: a bare ``python -c pass``. Target: < 0.3 s.

On a shared machine compare the ratios (and CPU seconds), not the wall times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from group_end_to_end import CLI, SCHEMES, _columns, _env, _load, _run

SECTIONS = ("compile", "cold", "warm", "startup", "help")


def _compile_times() -> None:
    """CPU seconds of each kernel's first call in this process (run with an empty ``NUMBA_CACHE_DIR``)."""
    import numpy as np

    import grouper
    import grouper.batch as batch
    import grouper.strings as strings
    from grouper.dip import aux
    from grouper.drg import _kernel
    from grouper.drg.group import group_drg
    from grouper.pipeline import grouping

    def timed(label: str, call) -> None:
        start = time.process_time()
        call()
        print(f"compile {label}: {time.process_time() - start:.2f} s CPU", flush=True)

    codebooks = {s: grouper.Codebook.load(s) for s in ("chs-drg-2.0", "chs-drg-1.1")}  # not timed
    dip = grouping(scheme="dip", catalogue="pingdingshan-2025").run
    ids = pa.array(["a", "b", "a"]).cast(pa.large_string())
    offsets, data, _ = strings.buffers(ids)
    timed("numba start + _fnv1a (case_id hash)", lambda: strings._fnv1a(offsets, data))
    timed("_rehash", lambda: batch.DuplicateTracker().reserve(10_000))
    timed("_insert", lambda: batch.DuplicateTracker().flag(ids))

    def spellings() -> None:
        seen = strings.StringIds()
        seen.add(ids[:2], np.arange(2))
        seen.ids_of(ids)

    timed("_place + _find (code spellings seen)", spellings)
    case = pa.table({"case_id": ["1"], "principal_dx": ["K22.301"], "other_dx": [["K11.901"]]})
    for scheme, codebook in codebooks.items():
        timed(
            f"CHS-DRG kernel ({scheme})", lambda cb=codebook: group_drg(case, cb, duplicate=np.zeros(1, bool))
        )
    timed("DIP kernels (pingdingshan-2025)", lambda: dip(case, np.zeros(1, bool)))
    tables = _kernel.tables(codebooks["chs-drg-2.0"], severity_includes_principal=False)
    one = np.zeros(1, np.int64)
    timed(
        "DIP auxiliary typing severity", lambda: aux._severity_flags(tables, one, np.zeros(2, np.int64), one)
    )


def compile_section() -> None:
    with tempfile.TemporaryDirectory(prefix="drgdip-compile-") as tmp:
        env = _env(NUMBA_CACHE_DIR=f"{tmp}/numba", DRGDIP_CACHE=f"{tmp}/codebooks")
        done = subprocess.run(
            [sys.executable, __file__, "--compile-times"], env=env, check=True, capture_output=True, text=True
        )
    print(done.stdout.strip(), f"({_load()})", flush=True)


def cold(cases: int) -> None:
    import make_data  # (not at import: the floor processes load pyarrow only)

    with tempfile.TemporaryDirectory(prefix="drgdip-cold-") as tmp:
        source = make_data.make(cases, Path(tmp) / "small.parquet")
        for scheme in ("chs-drg-2.0", "dip"):
            fresh = _env(NUMBA_CACHE_DIR=f"{tmp}/numba-{scheme}", DRGDIP_CACHE=f"{tmp}/codebooks-{scheme}")
            group = [
                *CLI,
                "group",
                str(source),
                "-o",
                f"{tmp}/out.parquet",
                "--force",
                "-q",
                *SCHEMES[scheme],
            ]
            wall, cpu, _ = _run(group, fresh)
            compiled = sorted({p.name.split("-")[0] for p in Path(fresh["NUMBA_CACHE_DIR"]).rglob("*.nbi")})
            warm, warm_cpu, _ = _run(group, fresh)
            print(
                f"cold first drgdip group {scheme} of {cases:,} cases (empty numba and codebook caches): {wall:.2f} s "
                f"wall, {cpu:.2f} s CPU; floor (the same command, caches warm) {warm:.2f} s wall, "
                f"{warm_cpu:.2f} s CPU; ratio {wall / warm:.1f} ({_load()})\n"
                f"  compiled ({len(compiled)} functions): {', '.join(compiled)}",
                flush=True,
            )


def _csv_floor(path: str, columns: str) -> None:
    """A fresh process's floor for a small CSV: import pyarrow and read the needed columns as text."""
    import pyarrow.csv as csv_reader

    with open(path, encoding="utf-8-sig") as f:
        header = f.readline().strip().split(",")
    wanted = [c for c in columns.split(",") if c in header]
    convert = csv_reader.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in wanted})
    csv_reader.read_csv(path, convert_options=convert)


def warm(csv_cases: int) -> None:
    import make_data

    with tempfile.TemporaryDirectory(prefix="drgdip-warm-") as tmp:
        table = pq.read_table(make_data.make(csv_cases, Path(tmp) / "cases.parquet"))
        cols = [
            pc.binary_join(c.cast(pa.list_(pa.string())), "|") if pa.types.is_list(c.type) else c
            for c in table.columns
        ]
        source = Path(tmp) / "cases.csv"
        pacsv.write_csv(pa.table(cols, names=table.column_names), source)
        group = [*CLI, "group", str(source), "-o", f"{tmp}/out.csv", "--force", "-q"]
        _run(group)  # caches warm for this input too
        runs = [_run(group) for _ in range(3)]
        t, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        floor_args = [sys.executable, __file__, "--csv-floor", str(source), ",".join(_columns("chs-drg-2.0"))]
        floor = min(_run(floor_args)[0] for _ in range(3))
        bare = min(_run([sys.executable, "-c", "pass"])[0] for _ in range(3))
        print(
            f"warm drgdip group of a {csv_cases:,}-case CSV: {t:.2f} s, {cpu:.2f} s CPU (best of 3); floor (fresh "
            f"process: import "
            f"pyarrow, read the needed columns) {floor:.2f} s; ratio {t / floor:.2f}; bare python {bare:.3f} s "
            f"({_load()})",
            flush=True,
        )


def startup(repeat: int = 5) -> None:
    """The fixed cost of ``drgdip group`` and ``drgdip settle``: each command on a 10-row file, best of ``repeat``."""
    import make_data
    import settle_end_to_end

    with tempfile.TemporaryDirectory(prefix="drgdip-startup-") as tmp:
        env = _env(PYTHONPYCACHEPREFIX=f"{tmp}/bytecode", PYTHONDONTWRITEBYTECODE="")
        table = pq.read_table(make_data.make(10, Path(tmp) / "tiny.parquet"))
        cols = [
            pc.binary_join(c.cast(pa.list_(pa.string())), "|") if pa.types.is_list(c.type) else c
            for c in table.columns
        ]
        pacsv.write_csv(pa.table(cols, names=table.column_names), Path(tmp) / "tiny.csv")
        cases, hospitals = settle_end_to_end.ensure(10)
        policy = settle_end_to_end.ROOT / "codebooks" / "policies" / "demo-2025.toml"
        commands = {
            f"drgdip group of a 10-row {kind}": [
                *CLI, "group", f"{tmp}/tiny.{kind.lower()}", "-o", f"{tmp}/out.parquet", "--force", "-q"
            ]
            for kind in ("CSV", "Parquet")
        }  # fmt: skip
        commands["drgdip settle of a 10-case file"] = [
            *CLI, "settle", "--cases", str(cases), "--hospitals", str(hospitals), "--policy", str(policy),
            "--out", f"{tmp}/settled", "--force", "-q",
        ]  # fmt: skip
        libraries = [sys.executable, "-c", "import numpy, pyarrow.parquet, numba"]

        def best(args: list[str], run_env: dict[str, str]) -> tuple[float, float]:
            _run(args, run_env)  # caches warm (numba's, the codebook's, the bytecode)
            runs = [_run(args, run_env) for _ in range(repeat)]
            return min(r[0] for r in runs), min(r[1] for r in runs)

        bare, (floor, floor_cpu) = best([sys.executable, "-c", "pass"], env)[0], best(libraries, env)
        for label, args in commands.items():
            wall, cpu = best(args, env)
            editable = ""
            if "group" in label:
                source_wall = best(args, _env(PYTHONDONTWRITEBYTECODE="1"))[0]
                editable = f"; as a checkout runs it (PYTHONDONTWRITEBYTECODE=1, bytecode as found) {source_wall:.2f} s"
            print(
                f"start-up {label} (caches warm): {wall:.2f} s wall, {cpu:.2f} s CPU (best of {repeat}){editable}; "
                f"floors: bare python {bare:.3f} s, python importing numpy, pyarrow and numba {floor:.2f} s wall, "
                f"{floor_cpu:.2f} s CPU; ratio {wall / floor:.2f} wall, {cpu / floor_cpu:.2f} CPU ({_load()})",
                flush=True,
            )


def help_section() -> None:
    floor = min(_run([sys.executable, "-c", "pass"])[0] for _ in range(5))
    for flag in ("--help", "--version"):
        t = min(_run([*CLI, flag])[0] for _ in range(5))
        print(
            f"drgdip {flag}: {t:.3f} s (best of 5); floor (bare python) {floor:.3f} s; ratio {t / floor:.2f} "
            f"({_load()})",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5_000, help="rows of the cold-run file")
    parser.add_argument("--csv-cases", type=int, default=10_000, help="rows of the warm CSV")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--compile-times", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--csv-floor", nargs=2, metavar=("FILE", "COLUMNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.compile_times:
        return _compile_times()
    if args.csv_floor:
        return _csv_floor(*args.csv_floor)
    only = set(args.only.split(","))
    if "compile" in only:
        compile_section()
    if "cold" in only:
        cold(args.cases)
    if "warm" in only:
        warm(args.csv_cases)
    if "startup" in only:
        startup()
    if "help" in only:
        help_section()


if __name__ == "__main__":
    main()
