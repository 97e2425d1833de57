"""Start-up and first-run times of the command line (issue 14), each with its floor measured in the same run.

Usage::

    python benchmarks/startup.py                 # --help/--version, then cold and warm `drgdip group` of 5,000 cases
    python benchmarks/startup.py --cases 10000   # another size of the small file

- ``drgdip --help`` / ``--version``: best of 5 wall times, floor = a bare ``python -c pass`` (target < 0.3 s).
- cold ``drgdip group``: empty ``NUMBA_CACHE_DIR`` and ``DRGDIP_CACHE`` (a fresh install), wall and CPU seconds
  (target < 10 s); floor = the same command with warm caches. The machine's load (``os.getloadavg``) is printed
  with every figure: on a shared machine, compare ratios and CPU seconds, not wall times.
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

import make_data

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(args, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _best(args: list[str], env: dict[str, str], rounds: int = 5) -> float:
    return min(_run(args, env)[0] for _ in range(rounds))


def _load() -> str:
    return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5_000)
    args = parser.parse_args(argv)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-c", "from payment.cli import main; main()"]
    floor = _best([sys.executable, "-c", "pass"], env)
    for flag in ("--help", "--version"):
        t = _best([*cli, flag], env)
        print(
            f"drgdip {flag}: {t:.3f} s, floor (bare python) {floor:.3f} s, ratio {t / floor:.2f} ({_load()})"
        )
    with tempfile.TemporaryDirectory(prefix="drgdip-cold-") as tmp:
        source = make_data.make(args.cases, Path(tmp) / "small.parquet")
        cold = {**env, "NUMBA_CACHE_DIR": f"{tmp}/numba", "DRGDIP_CACHE": f"{tmp}/codebooks"}
        group = [*cli, "group", str(source), "-o", f"{tmp}/out.parquet", "--force", "-q"]
        wall, cpu = _run(group, cold)
        warm, warm_cpu = _run(group, cold)
        print(
            f"cold drgdip group of {args.cases:,} cases: {wall:.1f} s wall, {cpu:.1f} s CPU; floor (warm caches) "
            f"{warm:.2f} s wall, {warm_cpu:.2f} s CPU; ratio {wall / warm:.1f} ({_load()})"
        )


if __name__ == "__main__":
    main()
