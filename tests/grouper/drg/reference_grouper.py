"""Plain per-record CHS-DRG 1.1 reference grouper (参照分组器), test-only.

Written only from ``codebooks/chs-drg-1.1/RULES.md`` §1–§4 and the CSV tables, without looking at
``grouper/drg``, so that ``test_reference_crosscheck.py`` is an independent check of the vectorized grouper.
It reads the MDC gates and ADRG rules as the 13 rule kinds of codebooks/chs-drg-1.1/RULES.md §3 (``data/kinds_1_1/``: mdc.csv,
adrg.csv and adrg_codes.csv as the 1.1 source states them), not the condition expressions the codebook now
holds, so the cross-check also checks the rewrite of the kinds into expressions.
Oracle mode: codes match verbatim (no normalisation, no 国临→医保 mapping); feed it clean 医保版 codes.
Speed does not matter.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

__all__ = ["UNGROUPED", "ReferenceGrouper"]

#: (mdc, adrg, drg) of a case that does not group or fails the record checks (codebooks/chs-drg-1.1/RULES.md §5).
UNGROUPED = ("0000", "00", "0000")


def _rows(folder: Path, name: str) -> list[dict[str, str]]:
    with open(folder / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _params(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split(";") if item)


class ReferenceGrouper:
    """CHS-DRG 1.1 grouping of one record at a time (codebooks/chs-drg-1.1/RULES.md §1–§4)."""

    def __init__(self, folder: Path, kinds: Path) -> None:
        self.mdcs = sorted(_rows(kinds, "mdc.csv"), key=lambda r: int(r["seq"]))
        self.mdc_dx: dict[str, set[str]] = defaultdict(set)
        self.part: dict[str, str] = {}  # MDCZ code -> body part
        for row in _rows(folder, "mdc_dx.csv"):
            self.mdc_dx[row["mdc"]].add(row["code"])
            if row["mdc"] == "MDCZ":
                self.part[row["code"]] = row["part"]
        self.adrgs: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in sorted(_rows(kinds, "adrg.csv"), key=lambda r: int(r["seq"])):
            self.adrgs[row["mdc"]].append(row)
        self.lists: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.group_of: dict[tuple[str, str], str] = {}  # (adrg, ss code) -> procedure group number
        for row in _rows(kinds, "adrg_codes.csv"):
            self.lists[row["adrg"], row["list"]].add(row["code"])
            if row["grp"]:
                self.group_of[row["adrg"], row["code"]] = row["grp"]
        self.drgs: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in sorted(_rows(folder, "drg.csv"), key=lambda r: int(r["seq"])):
            self.drgs[row["adrg"]].append(row)
        self.proc_valid = {row["code"] for row in _rows(folder, "proc_valid.csv")}
        self.mcc = {row["code"]: row["table"] for row in _rows(folder, "mcc.csv")}
        self.cc = {row["code"]: row["table"] for row in _rows(folder, "cc.csv")}
        self.cce = {row["principal_code"]: row["table"] for row in _rows(folder, "cc_exclusion.csv")}

    # -- §1 record checks -------------------------------------------------------------------------
    def group(
        self,
        sex: int | None,
        age_years: int | None,
        age_days: int | None,
        weight: int | None,
        dx: list[str],
        procs: list[str],
    ) -> tuple[str, str, str]:
        """Group one record: ``dx`` = [principal, others...], ``procs`` = [principal, others...]."""
        age, days, weight = age_years or 0, age_days or 0, weight or 0  # Java: empty number -> 0
        if sex is None or (age == 0 and days <= 28 and weight == 0):
            return UNGROUPED
        dx = dx or [""]
        for mdc in self.mdcs:  # §2: MDCs in seq order, fall-through when no ADRG matches
            if not self._gate(mdc, sex, age, dx, procs):
                continue
            for adrg in self.adrgs[mdc["mdc"]]:  # §3: first matching ADRG wins
                if self._adrg_matches(adrg, days, weight, dx, procs):
                    return mdc["mdc"], adrg["adrg"], self._drg(adrg["adrg"], dx)
        return UNGROUPED

    # -- §2 MDC gates -----------------------------------------------------------------------------
    def _gate(self, mdc: dict[str, str], sex: int, age: int, dx: list[str], procs: list[str]) -> bool:
        gate, params, listed = mdc["gate"], _params(mdc["params"]), self.mdc_dx[mdc["mdc"]]
        if gate == "PPROC_VALID":
            return bool(procs) and procs[0] in self.proc_valid
        if dx[0] not in listed:
            return False
        if gate == "PDX":
            return True
        if gate == "PDX_INFANT":
            return age == 0
        if gate == "PDX_SEX":
            return sex == int(params["sex"])
        if gate == "PDX_TRAUMA_PARTS":
            parts = {self.part[code] for code in dx if code in listed}
            return len(parts) >= int(params["min_parts"])
        raise ValueError(f"unknown MDC gate {gate}")

    # -- §3 ADRG rules ----------------------------------------------------------------------------
    def _adrg_matches(
        self, adrg: dict[str, str], days: int, weight: int, dx: list[str], procs: list[str]
    ) -> bool:
        name, rule, params = adrg["adrg"], adrg["rule"], _params(adrg["params"])
        zd, ss, ss1 = self.lists[name, "zd"], self.lists[name, "ss"], self.lists[name, "ss1"]
        pdx_in = dx[0] in zd
        pproc_in = bool(procs) and procs[0] in ss
        pproc_valid = bool(procs) and procs[0] in self.proc_valid
        both = any(p in ss for p in procs) and any(p in ss1 for p in procs)
        newborn = days <= int(params.get("age_days_max", "28"))
        if rule == "PDX":
            return pdx_in
        if rule == "PPROC":
            return pproc_in
        if rule == "PDX_PPROC":
            return pdx_in and pproc_in
        if rule == "ANYPROC_BOTH":
            return both
        if rule == "PDX_ANYPROC_BOTH":
            return pdx_in and both
        if rule == "PDX_PROC_GROUPS":
            found = {self.group_of[name, p] for p in procs if p in ss}
            clauses = [clause.split("&") for clause in params["groups"].split("|")]
            return pdx_in and any(all(g in found for g in clause) for clause in clauses)
        if rule == "PPROC_VALID":
            return pproc_valid
        if rule == "ANYDX_PPROC_VALID":
            return any(d in zd for d in dx) and pproc_valid
        if rule == "NO_VALID_PROC":
            return not any(p in self.proc_valid for p in procs)
        if rule == "NEWBORN_PPROC":
            return pproc_in and newborn
        if rule == "NEWBORN_PDX":
            return pdx_in and newborn
        if rule == "NEWBORN_ANYDX_BW":
            low, below = int(params["bw_min"]), int(params["bw_lt"] or 10**9)
            return any(d in zd for d in dx) and weight > 0 and low <= weight < below and newborn
        if rule == "ALWAYS":
            return True
        raise ValueError(f"unknown ADRG rule {rule}")

    # -- §4 severity and DRG ----------------------------------------------------------------------
    def severity(self, dx: list[str]) -> tuple[bool, bool]:
        """(has_mcc, has_cc) of the other diagnoses after exclusion against the principal's table."""
        table = self.cce.get(dx[0], "")
        has_mcc = any(d in self.mcc and not (table and self.mcc[d] == table) for d in dx[1:])
        has_cc = any(d in self.cc and not (table and self.cc[d] == table) for d in dx[1:])
        return has_mcc, has_cc

    def _drg(self, adrg: str, dx: list[str]) -> str:
        has_mcc, has_cc = self.severity(dx)
        tests = {"MCC": has_mcc, "MCC_OR_CC": has_mcc or has_cc, "ALWAYS": True}
        return next(row["drg"] for row in self.drgs[adrg] if tests[row["rule"]])
