"""Procedure treatment tiers (治疗方式属性: 手术 / 介入 / 治疗性操作 / 诊断性操作) for 综合病种 grouping.

The shipped default, ``codebooks/dip/procedure_tiers.csv`` (``code, tier, rule``), gives each of the
13,686 医保版 2.0 procedures a tier. It is **derived**, not the official 手术操作类别 table (that attribute
exists only in the 国临版 3.0 master table, which the project does not hold): ``tools/compile_dip.py``
applies the ordered rules of ``codebooks/dip/procedure_tier_rules.csv`` (ICD-9-CM-3 chapter ranges,
names such as 活检 / 造影 / 经导管, and the CHS-DRG 1.1 OR and non-OR procedure lists); the ``rule``
column names the rule that decided.

A region's own table (same columns; ``rule`` may be empty) overrides the default code by code. A
procedure whose tier is ``conservative`` (simple procedures, 按保守治疗入组) is not a main procedure.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from grouper.dip.catalogue import TIERS, CatalogueError
from grouper.resources import data_path

__all__ = ["INTERVENTIONAL_AS", "ProcedureTiers", "read_procedure_tiers"]

#: Allowed values of the ``interventional_as`` policy switch (docs/dip.md §3.8, open choice P-1).
INTERVENTIONAL_AS = ("surgery", "therapeutic", "interventional")


@dataclass(frozen=True, eq=False)
class ProcedureTiers:
    """Procedure code → treatment tier, after the region override and the ``interventional_as`` switch.

    Attributes
    ----------
    codes : pa.Array of string          procedure codes (医保版 2.0), unique
    tier : ndarray of int8              index into :data:`grouper.dip.catalogue.TIERS`
    interventional_as : str             where 介入 procedures went (``surgery`` by default)
    fingerprint : str                   SHA-256 of codes, tiers and the switch
    """

    codes: pa.Array
    tier: np.ndarray
    interventional_as: str
    fingerprint: str = field(init=False)

    def __post_init__(self) -> None:
        h = hashlib.sha256(self.interventional_as.encode())
        h.update("\n".join(self.codes.to_pylist()).encode())
        h.update(self.tier.astype(np.int8).tobytes())
        object.__setattr__(self, "fingerprint", h.hexdigest())

    def lookup(self, codes: pa.Array) -> np.ndarray:
        """Tier index (int8) of each code; -1 for a code not in the table or null."""
        pos = pc.index_in(codes, value_set=self.codes).fill_null(-1).to_numpy(zero_copy_only=False)
        return np.where(pos >= 0, self.tier[pos], -1).astype(np.int8)


def _read(path: Path) -> pa.Table:
    try:
        table = pacsv.read_csv(
            path,
            convert_options=pacsv.ConvertOptions(
                column_types={"code": pa.string(), "tier": pa.string(), "rule": pa.string()},
                strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        raise CatalogueError(f"{path}: {exc}") from None
    for col in ("code", "tier"):
        if col not in table.column_names:
            raise CatalogueError(f"{path}: missing column {col}")
    bad = pc.invert(pc.is_in(table["tier"], value_set=pa.array(TIERS)))
    if pc.any(bad).as_py():
        i = pc.index(bad, True).as_py()
        raise CatalogueError(f"{path}: row {i + 1}: tier {table['tier'][i].as_py()!r} is not one of {TIERS}")
    return table.select(["code", "tier"])


def read_procedure_tiers(
    region: str | Path | None = None, *, interventional_as: str = "surgery"
) -> ProcedureTiers:
    """Read the procedure tier table (手术操作类别): the derived default, optionally overridden by a region's.

    Parameters
    ----------
    region : path, optional
        A region's table (``code, tier[, rule]``); its rows replace the default's for the same code.
    interventional_as : {"surgery", "therapeutic", "interventional"}
        Where 介入 procedures go: the 3.0 draft puts them in 相关手术组 (``surgery``, default); Node-DIP in
        治疗性操作 (``therapeutic``); ``interventional`` keeps them apart (for a catalogue with such rows).

    Returns
    -------
    ProcedureTiers

    Examples
    --------
    >>> t = read_procedure_tiers()
    >>> [TIERS[i] for i in t.lookup(pa.array(["47.0100", "36.0700", "88.5500", "99.2500", "no-such"]))[:4]]
    ['surgery', 'surgery', 'diagnostic', 'therapeutic']
    """
    if interventional_as not in INTERVENTIONAL_AS:
        raise CatalogueError(f"interventional_as {interventional_as!r} is not one of {INTERVENTIONAL_AS}")
    default = data_path("dip", "procedure_tiers.csv")
    table = _read(default)
    if region is not None:
        own = _read(Path(region))
        table = pa.concat_tables([table.filter(pc.invert(pc.is_in(table["code"], own["code"]))), own])
    codes = table["code"].combine_chunks()
    if len(pc.unique(codes)) != len(codes):
        raise CatalogueError(f"{region or default}: a procedure code occurs more than once")
    tier = (
        pc.index_in(table["tier"], value_set=pa.array(TIERS)).to_numpy(zero_copy_only=False).astype(np.int8)
    )
    tier[tier == TIERS.index("interventional")] = TIERS.index(interventional_as)
    return ProcedureTiers(codes, tier, interventional_as)
