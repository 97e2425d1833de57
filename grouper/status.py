"""Case status (病例状态): the one documented list of outcomes a case can end with.

Every output row carries exactly one status, the most severe one found. ``ERROR`` statuses mean the
group is not usable for payment (the DRG is ``0000``, except where the reference still groups the case by its
principal procedure in MDCA, or for the run-level DUPLICATE_CASE / CASE_ID_MISSING); ``WARNING`` statuses mean
the case was grouped but the record has a defect the hospital should fix.
"""

from __future__ import annotations

from enum import IntEnum


class Status(IntEnum):
    """Case status codes. Lower value = less severe; a case reports its highest code."""

    OK = 0  #: grouped, nothing to report
    # warnings: the case is grouped
    SEX_UNKNOWN = 10  #: sex is 0/9 or unreadable; grouped, but never enters sex-gated MDCs (M/N)
    CODE_UNKNOWN = 11  #: an other diagnosis or procedure is not in the dictionary; it matches no list
    LOS_INVALID = 12  #: LOS negative or contradicting the dates; not used by CHS-DRG 1.1 grouping
    DISCHARGE_MODE_UNKNOWN = 13  #: 离院方式 not in {1, 2, 3, 4, 5, 9}
    # errors: no payable group
    NO_ADRG = 30  #: an MDC gate admitted the case but no ADRG of any MDC matched → 0000
    NO_MDC = 31  #: no MDC gate admits the case (principal in no list, or age/trauma gates refuse) → 0000
    SEX_CONFLICT = 32  #: the principal is in a sex-gated MDC only and the sex is the other one → 0000
    PDX_UNKNOWN = (
        33  #: principal diagnosis not in the dictionary after normalisation (may still group in MDCA)
    )
    PDX_MISSING = 34  #: no principal diagnosis (may still group in MDCA by its procedure)
    AGE_INVALID = 35  #: age negative, over 150, or not a number → 0000
    AGE_MISSING = 36  #: age in years missing → 0000
    NEWBORN_DATA_MISSING = 37  #: age 0, age_days ≤ 28 and no birth weight → 0000 (reference check)
    SEX_MISSING = 38  #: sex empty → 0000 (reference check)
    DUPLICATE_CASE = 39  #: case_id seen earlier in the run; grouped, but never paid twice
    CASE_ID_MISSING = 40  #: no case_id: grouped, but the row cannot be matched, paid or audited
    SEX_INVALID = 41  #: sex not 1 or 2 under a scheme whose reference check refuses it (chs-drg-2.0) → 0000

    @property
    def is_error(self) -> bool:
        return self >= 30


#: Group labels of an ungrouped case.
UNGROUPED_MDC, UNGROUPED_ADRG, UNGROUPED_DRG = "0000", "00", "0000"
