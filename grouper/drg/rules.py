"""The closed set of CHS-DRG rule kinds. Rule *instances* are codebook rows; each kind is coded once in _kernel.py.

A codebook row that names a kind missing here stops the load (see ``Codebook.load``). Member names match the
``gate`` / ``rule`` columns of ``mdc.csv``, ``adrg.csv``, ``drg.csv`` and ``qy.csv``.
"""

from __future__ import annotations

from enum import IntEnum


class GateKind(IntEnum):
    """MDC entry gates (主要诊断大类入组条件), mdc.csv ``gate``."""

    PPROC_VALID = 1  #: principal procedure ∈ proc_valid (1.1 MDCA)
    PDX = 2  #: principal dx ∈ the MDC's list
    PDX_INFANT = 3  #: principal dx ∈ list and age_years == 0 (MDCP)
    PDX_SEX = 4  #: principal dx ∈ list and sex == params.sex (MDCM 1, MDCN 2)
    PDX_TRAUMA_PARTS = 5  #: principal dx ∈ list and the listed dx cover ≥ params.min_parts body parts (MDCZ)


class RuleKind(IntEnum):
    """ADRG rules (核心疾病诊断相关组入组规则), adrg.csv ``rule``; RULES.md §3."""

    PDX = 1  #: principal dx ∈ zd
    PPROC = 2  #: principal procedure ∈ ss
    PDX_PPROC = 3  #: principal dx ∈ zd and principal procedure ∈ ss
    ANYPROC_BOTH = 4  #: some procedure ∈ ss and some procedure ∈ ss1 (双手术匹配)
    PDX_ANYPROC_BOTH = 5  #: principal dx ∈ zd and ANYPROC_BOTH
    PDX_PROC_GROUPS = (
        6  #: principal dx ∈ zd and the groups of the procedures found in ss satisfy params.groups
    )
    PPROC_VALID = 7  #: principal procedure ∈ proc_valid (存在手术)
    ANYDX_PPROC_VALID = 8  #: some dx (principal or other) ∈ zd and principal procedure ∈ proc_valid
    NO_VALID_PROC = 9  #: no procedure in any position ∈ proc_valid
    NEWBORN_PPROC = 10  #: principal procedure ∈ ss and age_days ≤ params.age_days_max
    NEWBORN_PDX = 11  #: principal dx ∈ zd and age_days ≤ params.age_days_max
    NEWBORN_ANYDX_BW = 12  #: some dx ∈ zd, bw_min ≤ birth weight < bw_lt, weight > 0, age_days ≤ age_days_max
    ALWAYS = 13  #: always true (catch-all, e.g. PV1)


class SeverityRule(IntEnum):
    """DRG (severity suffix) predicates, drg.csv ``rule``; RULES.md §4."""

    MCC = 1  #: at least one other dx and an MCC not excluded by the principal's table
    MCC_OR_CC = 2  #: at least one other dx and an MCC or a CC, not excluded
    ALWAYS = 3  #: always true


class QyTrigger(IntEnum):
    """Ambiguous-group (歧义组, QY) triggers, qy.csv ``trigger``."""

    ANYPROC_VALID = 1  #: some procedure in any position ∈ proc_valid
    PPROC_VALID = 2  #: the principal procedure ∈ proc_valid
