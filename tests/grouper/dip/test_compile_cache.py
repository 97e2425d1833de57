"""The compiled catalogue of a DIP grouping is one object per (catalogue, tiers) in a process, also when two
threads build it at once (Grouping.warm on the calling thread beside the first batch's encoding on the reading
thread): cases encoded by one are grouped by the other, which compares the objects' ids."""

from __future__ import annotations

import sys
import threading

from grouper.dip import group
from grouper.dip.catalogue import read_catalogue
from grouper.dip.tiers import read_procedure_tiers


def test_two_threads_compiling_the_same_catalogue_get_one_object(monkeypatch):
    catalogue, tiers = read_catalogue("pingdingshan-2025"), read_procedure_tiers()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the two builds overlap
    try:
        for _ in range(5):
            monkeypatch.setattr(group, "_CACHE", {})
            built = [None, None]

            def build(into: list, i: int) -> None:
                into[i] = group._compile(catalogue, tiers)

            threads = [threading.Thread(target=build, args=(built, i)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert built[0] is built[1]
    finally:
        sys.setswitchinterval(interval)
