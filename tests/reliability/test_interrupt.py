"""A run stopped by SIGTERM (issue 11 item 7): the output being written is removed and nothing new is left at the
destination (the CLI turns SIGTERM into the exit Ctrl-C takes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests/grouper/drg/data/conformance_visible.csv"


def test_a_run_stopped_while_writing_leaves_nothing(tmp_path):
    lines = CASES.read_text(encoding="utf-8").splitlines(keepends=True)
    big = tmp_path / "big.csv"
    with big.open("w", encoding="utf-8") as f:  # 100,000 cases: long enough to be stopped while writing
        f.write(lines[0])
        for k in range(20):
            f.writelines(f"R{k}-{ln}" for ln in lines[1:])
    out = tmp_path / "out" / "grouped.parquet"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from payment.cli import main; main()",
            "group",
            str(big),
            "-o",
            str(out),
            "-q",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.parent.is_dir() and any(p.name.endswith(".drgdip-tmp") for p in out.parent.iterdir()):
            break
        time.sleep(0.005)
    if proc.poll() is not None:
        pytest.skip("the run ended before it could be stopped while writing")
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0].decode("utf-8", "replace")
    if out.exists() and proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output, output
    left = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
    if left == [out.name]:  # stopped after the output was in place (while it printed its summary): complete
        pytest.skip("the signal arrived after the output was complete")
    assert not out.parent.exists(), left  # neither the output, its temporary file nor the folder the run made
