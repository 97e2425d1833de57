"""Lookups remembered for the run (grouper.strings.Remembered, issue 14): each batch computes only the strings
not seen before, and every batch gets the results a fresh lookup gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

import grouper
from grouper.dip import group as dip_group
from grouper.strings import Remembered

CONFORMANCE = Path(__file__).parent / "drg" / "data20" / "conformance_visible.csv"


def test_only_new_strings_are_computed_and_every_result_is_the_computed_one():
    asked = []

    def lengths(strings: pa.Array) -> np.ndarray:
        asked.append(strings.to_pylist())
        return np.column_stack(
            [[len(s or "") for s in strings.to_pylist()], [s is None for s in strings.to_pylist()]]
        )

    looked = Remembered(lengths, limit=3)
    assert looked(pa.array(["a", "bb", None])).tolist() == [[1, 0], [2, 0], [0, 1]]
    assert looked(pa.array(["bb", "ccc", "a", None])).tolist() == [[2, 0], [3, 0], [1, 0], [0, 1]]
    assert asked == [["a", "bb", None], ["ccc", None]]  # a null is computed each time, never kept
    looked(pa.array(["dddd", "eeeee"]))  # three kept: the limit; these are computed and not kept
    assert looked(pa.array(["eeeee", "ccc"])).tolist() == [[5, 0], [3, 0]]
    assert asked[-1] == ["eeeee"]
    assert len(looked(pa.array([], pa.string()))) == 0


def test_dip_batches_group_as_one_table_with_nothing_remembered(monkeypatch):
    """The principal diagnoses and procedures of a batch are looked up through those of the batches before it:
    grouped in two batches, the cases get the groups they get in one table with an empty memory."""
    table = pa.concat_tables(grouper.read_discharges(CONFORMANCE))  # 5,000 cases of varied codes
    codebook = grouper.Codebook.load("chs-drg-2.0")
    first, second = table.slice(0, 2_000), table.slice(2_000)
    halves = [grouper.group_dip(t, "pingdingshan-2025", codebook=codebook) for t in (first, second)]
    for compiled in dip_group._CACHE.values():
        compiled.looked_up.clear()
    whole = grouper.group_dip(table, "pingdingshan-2025", codebook=codebook)
    assert pa.concat_tables(halves).equals(whole)
