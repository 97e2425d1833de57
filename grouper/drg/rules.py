"""The closed sets of a CHS-DRG codebook besides its conditions: severity rules, record checks, number reading.

Conditions (ADRG entry rules, MDC gates, QY rows) are expressions (grouper/drg/expr.py). The names here are the
values of ``drg.csv`` ``rule`` and of the ``[engine]`` settings of ``codebook.toml``; an unknown name stops the load.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class SeverityRule(IntEnum):
    """DRG (severity suffix) predicates, drg.csv ``rule``."""

    MCC = 1  #: at least two diagnoses and an MCC not excluded by the principal's table
    MCC_OR_CC = 2  #: at least two diagnoses and an MCC or a CC, not excluded
    ALWAYS = 3  #: always true


class Check(StrEnum):
    """Blocking record checks (病案校验) a scheme applies before grouping, ``[engine] checks`` in this order."""

    SEX_MISSING = "SEX_MISSING"  #: sex empty
    SEX_INVALID = "SEX_INVALID"  #: sex not exactly 1 or 2 (2.0 reference)
    DX_MISSING = "DX_MISSING"  #: no diagnosis at all, principal and others empty (2.0 reference)
    NEWBORN_DATA_MISSING = "NEWBORN_DATA_MISSING"  #: age 0, ≤ 28 days, no birth weight (1.1 reference)
    AGE_MISSING = "AGE_MISSING"  #: age in years missing (project check)
    AGE_INVALID = "AGE_INVALID"  #: age negative, over 150 or unreadable (project check)


class NumberReading(StrEnum):
    """How ages and birth weight reach the conditions, ``[engine] numbers``."""

    #: empty is 0, an unreadable value stays -1 (1.1: Java ``intValue``; the checks stop such records)
    JAVA = "java"
    #: empty is 0, an unreadable value is NaN, false in every comparison but ``!=`` (2.0: ECMAScript ToNumber)
    ECMASCRIPT = "ecmascript"
