"""The CHS-DRG kernel shares the cases among threads (issue 14): any split groups exactly as one thread does."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

import grouper
from grouper.drg import _kernel

DATA = Path(__file__).with_name("data20")


def test_cases_split_among_threads_group_as_on_one_thread(monkeypatch):
    codebook = grouper.Codebook.load("chs-drg-2.0")
    table = pa.concat_tables(grouper.read_discharges(DATA / "conformance_visible.csv"))
    one = grouper.group_drg(table, codebook, explain=True)  # 5,000 cases: one piece, the calling thread
    monkeypatch.setattr(_kernel, "_PIECE", 97)
    monkeypatch.setattr(_kernel.config, "NUMBA_NUM_THREADS", 3)
    assert grouper.group_drg(table, codebook, explain=True).equals(one)  # 12 pieces on 3 threads
