"""The audit's view of a grouping (分组结果): one group label, a weight and a grouped flag per case, CHS-DRG or DIP.

A :class:`Grouping` wraps the scheme's grouper so that the flags can regroup variants of the cases (another
diagnosis as the principal, one CC/MCC removed) exactly as the cases themselves were grouped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from grouper.codebook import Codebook
from grouper.dip import group_dip
from grouper.drg.group import group_drg
from grouper.status import Status

__all__ = ["Grouping"]

_DRG_ERRORS = [s.name for s in Status if s.is_error]
#: DIP statuses of a case in a regular group (入组): core or 先期 (OK), 综合, or with an unknown procedure left out;
#: 空白病种 (BLANK, ``KBBZ``) and the errors are not grouped (docs/audit.md §1: "say which").
_DIP_GROUPED = [Status.OK.name, Status.COMPREHENSIVE.name, Status.CODE_UNKNOWN.name]


@dataclass
class Grouping:
    """One scheme's grouper and the per-group reference data the audit needs.

    Parameters
    ----------
    scheme : ``"dip"`` or a CHS-DRG codebook name (``"chs-drg-1.1"``)
    codebook : Codebook
    catalogue : grouper.dip.Catalogue, optional   DIP: required (groups, scores, avg_cost, avg_los)
    weights : pa.Table, optional   CHS-DRG: ``drg, rw`` (+ ``avg_cost``, ``avg_los``); default: RW from the run
    score_scale : float            DIP: points of weight 1 (docs/audit.md §1: total weight = Σ score / 1000)
    """

    scheme: str
    codebook: Codebook
    catalogue: object = None
    weights: pa.Table | None = None
    score_scale: float = 1000.0
    group_kw: dict = field(default_factory=dict)

    @property
    def is_dip(self) -> bool:
        return self.scheme == "dip"

    @property
    def status_column(self) -> str:
        return "dip_status" if self.is_dip else "drg_status"

    @property
    def group_column(self) -> str:
        return "dip_group" if self.is_dip else "drg"

    def group(self, table: pa.Table, duplicate: np.ndarray | None = None) -> pa.Table:
        """The grouper's own output for ``table`` (one row per row)."""
        if self.is_dip:
            return group_dip(
                table, self.catalogue, codebook=self.codebook, duplicate=duplicate, **self.group_kw
            )
        return group_drg(table, self.codebook, duplicate=duplicate)

    def view(self, grouped: pa.Table) -> dict[str, np.ndarray]:
        """``group`` (label, "" when not grouped), ``grouped`` (bool), ``mdc``, ``adrg`` of a grouper output."""
        status = grouped.column(self.status_column).cast(pa.string()).combine_chunks()
        label = grouped.column(self.group_column).cast(pa.string()).combine_chunks()
        if self.is_dip:
            ok = pc.is_in(status, value_set=pa.array(_DIP_GROUPED))
            mdc = adrg = np.full(grouped.num_rows, "", dtype=object)
        else:
            adrg_col = grouped.column("adrg").cast(pa.string()).combine_chunks()
            ok = pc.and_(
                pc.invert(pc.is_in(status, value_set=pa.array(_DRG_ERRORS))),
                pc.and_(pc.not_equal(label, "0000"), pc.not_equal(adrg_col, "QY")),
            )
            mdc = grouped.column("mdc").cast(pa.string()).to_numpy(zero_copy_only=False)
            adrg = adrg_col.to_numpy(zero_copy_only=False)
        # DUPLICATE_CASE and CASE_ID_MISSING keep their group but are never paid: they are not grouped here
        ok = np.asarray(pc.fill_null(ok, False).to_numpy(zero_copy_only=False), bool)
        return {
            "group": np.where(ok, label.fill_null("").to_numpy(zero_copy_only=False), ""),
            "grouped": ok,
            "mdc": mdc,
            "adrg": adrg,
            "status": status.fill_null("").to_numpy(zero_copy_only=False),
        }

    def fit_weights(self, group: np.ndarray, grouped: np.ndarray, cost: np.ndarray) -> None:
        """CHS-DRG without a weights table: RW of each group from the run (mean cost ÷ mean of all grouped)."""
        if self.is_dip or self.weights is not None:
            return
        ok = grouped & np.isfinite(cost)
        inv, labels = pd.factorize(group[ok])  # a hash pass (np.unique sorts the text)
        n = np.bincount(inv, minlength=len(labels))
        mean = np.bincount(inv, weights=cost[ok], minlength=len(labels)) / np.maximum(n, 1)
        overall = cost[ok].mean() if ok.any() else np.nan
        self.weights = pa.table(
            {"drg": pa.array(np.asarray(labels, dtype=object), pa.string()), "rw": pa.array(mean / overall)}
        )

    def weight(self, grouped_view: dict[str, np.ndarray], grouper_out: pa.Table) -> np.ndarray:
        """RW (CHS-DRG) or score ÷ score_scale (DIP) per case; NaN when not grouped or not weighted."""
        ok = grouped_view["grouped"]
        if self.is_dip:
            score = grouper_out.column("dip_score").to_numpy(zero_copy_only=False).astype(np.float64)
            return np.where(ok, score / self.score_scale, np.nan)
        return np.where(ok, self.standard("rw", grouped_view["group"]), np.nan)

    def standard(self, column: str, group: np.ndarray) -> np.ndarray:
        """A group standard (``rw``, ``avg_cost``, ``avg_los``) per case from the weights or the catalogue."""
        table = self.catalogue.table if self.is_dip else self.weights
        key = "dip_code" if self.is_dip else "drg"
        if table is None or column not in table.column_names:
            return np.full(len(group), np.nan)
        codes = table.column(key).cast(pa.string())
        at = (
            pc.index_in(pa.array(group, pa.string()), value_set=codes)
            .fill_null(-1)
            .to_numpy(zero_copy_only=False)
        )
        values = pc.cast(table.column(column), pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
        return np.where(at >= 0, np.append(values, np.nan)[np.maximum(at, 0)], np.nan)
