"""The built wheel runs outside the checkout: the codebooks ship inside it and are found without the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh virtual environment, outside the checkout, with only the built wheel (and its dependencies)."""
    work = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DRGDIP_CODEBOOKS", "VIRTUAL_ENV")}
    env["DRGDIP_CACHE"] = str(work / "cache")  # a user's first run: no compiled codebook yet
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"), str(ROOT)],
        work,
        env,
    )
    (wheel,) = (work / "dist").glob("drgdip-*.whl")
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / ("Scripts" if os.name == "nt" else "bin")
    _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)], work, env)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return work, env


def test_wheel_ships_the_codebooks_and_runs_the_demo(installed):
    work, env = installed
    version = _run(["drgdip", "--version"], work, env)
    assert version.stdout.startswith("drgdip ")
    _run(["drgdip", "demo", "--out", str(work / "demo"), "--cases", "4000", "--quiet"], work, env)
    assert (work / "demo" / "settlement" / "region.json").is_file()


def test_wheel_groups_a_file(installed):
    work, env = installed
    data = work / "discharges.csv"
    data.write_text(
        "case_id,sex,age_years,principal_dx,other_dx,principal_proc,los_days\n"
        "1,2,88,K22.301,K11.901|E11.900|I10.x05,96.0800x005,5\n",
        encoding="utf-8",
    )
    _run(["drgdip", "group", str(data), "-o", str(work / "grouped.csv"), "--quiet"], work, env)
    text = (work / "grouped.csv").read_text(encoding="utf-8")
    assert "GZ19" in text  # default scheme chs-drg-2.0: K11.901 is no CC of K22.301 there (1.1: GZ13)
