"""Version migration table (分组方案版本迁移表): the same cases grouped under two CHS-DRG schemes, side by side.

What a region and its hospitals need when they switch versions (e.g. CHS-DRG 1.1 → 2.0): each case's result
under both schemes, and the number of cases per (old DRG, new DRG) pair with the share whose ADRG or DRG changed.
``compare_schemes`` groups one batch under both; ``Migration`` accumulates the pairs over any number of batches.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codebook import Codebook
from grouper.drg.group import group_drg
from grouper.io.values import CodeReading

__all__ = ["Migration", "compare_schemes", "scheme_suffix"]

_RESULT = ("mdc", "adrg", "drg", "drg_status")


def scheme_suffix(scheme: str) -> str:
    """Column suffix of a scheme's results: ``chs-drg-1.1`` → ``chs_drg_1_1``."""
    return re.sub(r"[^0-9A-Za-z]+", "_", scheme).strip("_")


def compare_schemes(
    table: pa.Table,
    codebook: Codebook,
    other: Codebook,
    *,
    explain: bool = False,
    duplicate: np.ndarray | None = None,
    lang: str = "en",
    codes: CodeReading = "clean",
) -> pa.Table:
    """Group under ``codebook`` and add the results under ``other`` beside them (``mdc_<other>`` …); ``explain``,
    ``lang`` and ``codes`` as :func:`group_drg` takes them.

    Examples
    --------
    >>> t = pa.table({"case_id": ["1"], "sex": pa.array([2], pa.int8()), "age_years": pa.array([88], pa.int16()),
    ...               "principal_dx": ["K22.301"], "other_dx": [["K11.901"]]})
    >>> out = compare_schemes(t, Codebook.load("chs-drg-2.0"), Codebook.load("chs-drg-1.1"))
    >>> out.select(["drg", "drg_chs_drg_1_1"]).to_pylist()
    [{'drg': 'GZ19', 'drg_chs_drg_1_1': 'GZ13'}]
    """
    new = group_drg(table, codebook, explain=explain, duplicate=duplicate, lang=lang, codes=codes)
    old = group_drg(table, other, duplicate=duplicate, codes=codes)
    suffix = scheme_suffix(other.scheme)
    for name in _RESULT:
        new = new.append_column(f"{name}_{suffix}", old.column(name))
    return new


@dataclass
class Migration:
    """Cases per (old DRG, new DRG) pair over the batches seen, and how many changed ADRG or DRG.

    Parameters
    ----------
    old_scheme : str    the scheme compared with (its columns carry ``scheme_suffix(old_scheme)``)
    new_scheme : str    the scheme of the main columns
    """

    old_scheme: str
    new_scheme: str
    pairs: Counter = field(default_factory=Counter)
    cases: int = 0
    adrg_changed: int = 0
    drg_changed: int = 0

    def add(self, compared: pa.Table) -> pa.Table:
        """Count one batch of ``compare_schemes`` output; returns the batch unchanged."""
        suffix = scheme_suffix(self.old_scheme)
        col = {k: compared.column(k).combine_chunks().cast(pa.string()) for k in ("adrg", "drg")}
        old = {
            k: compared.column(f"{k}_{suffix}").combine_chunks().cast(pa.string()) for k in ("adrg", "drg")
        }
        self.cases += compared.num_rows
        self.adrg_changed += int(pc.sum(pc.not_equal(col["adrg"], old["adrg"])).as_py() or 0)
        self.drg_changed += int(pc.sum(pc.not_equal(col["drg"], old["drg"])).as_py() or 0)
        pairs = (
            pa.table({"old": old["drg"], "new": col["drg"]})
            .group_by(["old", "new"])
            .aggregate([("old", "count")])
        )
        for o, n, k in zip(*(pairs.column(c).to_pylist() for c in ("old", "new", "old_count")), strict=True):
            self.pairs[o, n] += k
        return compared

    def table(self) -> pa.Table:
        """The migration table: one row per (old DRG, new DRG) pair, most cases first, then by codes."""
        rows = sorted(self.pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        total = max(self.cases, 1)
        return pa.table(
            {
                f"drg_{scheme_suffix(self.old_scheme)}": pa.array([k[0] for k, _ in rows], pa.string()),
                f"drg_{scheme_suffix(self.new_scheme)}": pa.array([k[1] for k, _ in rows], pa.string()),
                "cases": pa.array([n for _, n in rows], pa.int64()),
                "share": pa.array([n / total for _, n in rows], pa.float64()),
                "changed": pa.array([k[0] != k[1] for k, _ in rows], pa.bool_()),
            }
        )

    def summary(self) -> str:
        """One line: cases, share whose ADRG / DRG changed, number of pairs."""
        total = max(self.cases, 1)
        return (
            f"{self.old_scheme} → {self.new_scheme}: {self.cases:,} cases, ADRG changed for "
            f"{self.adrg_changed:,} ({self.adrg_changed / total:.1%}), DRG changed for {self.drg_changed:,} "
            f"({self.drg_changed / total:.1%}); {len(self.pairs):,} (old DRG, new DRG) pairs"
        )
