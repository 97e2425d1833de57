"""Case status (病例状态): the one documented list of outcomes a case can end with, for DRG and DIP grouping.

Every output row carries exactly one status, the most severe one found (``drg_status`` or ``dip_status``, by
name). ``ERROR`` statuses (code ≥ 30) mean the group is not usable for payment (the DRG is ``0000``, except where
the reference still groups the case by its principal procedure in MDCA, or for the run-level DUPLICATE_CASE /
CASE_ID_MISSING; a DIP case has no regular group); ``WARNING`` statuses mean the case was grouped but the record
has a defect the hospital should fix. Each code has one meaning; :meth:`Status.of_scheme` lists the statuses a
scheme's grouper reports. Codes order severity within each scheme.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Case status codes. Lower value = less severe; a case reports its highest code."""

    OK = 0  #: grouped, nothing to report (DIP: into a core 核心病种 or priority 先期分组 group)
    COMPREHENSIVE = 1  #: DIP: grouped into a 综合病种 (类目 × treatment tier)
    # warnings: the case is grouped
    SEX_UNKNOWN = 10  #: sex is 0/9 or unreadable; grouped, but never enters sex-gated MDCs (M/N)
    CODE_UNKNOWN = 11  #: an other diagnosis or procedure is not in the dictionary; it matches no list
    LOS_INVALID = 12  #: LOS negative or contradicting the dates; not used by CHS-DRG 1.1 grouping
    DISCHARGE_MODE_UNKNOWN = 13  #: 离院方式 not in {1, 2, 3, 4, 5, 9}
    BLANK = 20  #: DIP: no core or 综合 group; put in the catalogue's 空白病种 ``KBBZ``
    # errors: no payable group
    NO_ADRG = 30  #: an MDC gate admitted the case but no ADRG of any MDC matched → 0000
    NO_MDC = 31  #: no MDC gate admits the case (principal in no list, or age/trauma gates refuse) → 0000
    SEX_CONFLICT = 32  #: the principal is in a sex-gated MDC only and the sex is the other one → 0000
    UNMATCHED = 33  #: DIP: no group at all (the catalogue has no ``KBBZ``); 未入组
    #: DIP: principal diagnosis on the 《不能作为主诊断》 list or an asterisk (*) code (docs/records.md §5 Q04); no group
    PDX_INVALID = 34
    #: principal diagnosis not in the dictionary after normalisation (DRG: may still group in MDCA)
    PDX_UNKNOWN = 35
    PDX_MISSING = 36  #: no principal diagnosis (DRG: may still group in MDCA by its procedure)
    AGE_INVALID = 37  #: age negative, over 150, or not a number → 0000
    AGE_MISSING = 38  #: age in years missing → 0000
    #: DRG: age 0, age_days ≤ 28 and no birth weight → 0000 (reference check); DIP: a low-birth-weight 先期分组
    #: could apply but birth weight or age in days is missing
    NEWBORN_DATA_MISSING = 39
    SEX_MISSING = 40  #: sex empty → 0000 (reference check)
    DUPLICATE_CASE = 41  #: case_id seen earlier in the run; grouped, but never paid twice
    CASE_ID_MISSING = 42  #: no case_id: grouped, but the row cannot be matched, paid or audited
    #: sex not written as one of the scheme's ``[engine] sex_spellings`` (chs-drg-2.0: exactly 1 or 2; ``男``, ``1.0``
    #: and ``" 1"`` fail, as in its reference) → 0000
    SEX_INVALID = 43

    @property
    def is_error(self) -> bool:
        """True when the case has no payable (regular) group."""
        return self >= 30

    @classmethod
    def of_scheme(cls, scheme: str) -> tuple[Status, ...]:
        """The statuses the ``drg`` or ``dip`` grouper reports, in code order."""
        only = _DIP_ONLY if scheme == "dip" else _DRG_ONLY
        other = _DRG_ONLY if scheme == "dip" else _DIP_ONLY
        return tuple(s for s in cls if s in only or s not in other)


_DIP_ONLY = frozenset({Status.COMPREHENSIVE, Status.BLANK, Status.UNMATCHED, Status.PDX_INVALID})
_DRG_ONLY = frozenset(
    {
        Status.SEX_UNKNOWN,
        Status.LOS_INVALID,
        Status.DISCHARGE_MODE_UNKNOWN,
        Status.NO_ADRG,
        Status.NO_MDC,
        Status.SEX_CONFLICT,
        Status.AGE_INVALID,
        Status.AGE_MISSING,
        Status.SEX_MISSING,
        Status.SEX_INVALID,
    }
)

#: Group labels of an ungrouped case.
UNGROUPED_MDC, UNGROUPED_ADRG, UNGROUPED_DRG = "0000", "00", "0000"
