"""Field kinds: the checks of one setting's value, shared by the policy loader and the estimators' settings.

Each kind says what a value may be and returns the problem in words (``None`` when the value is fine); the policy
loader (:mod:`payment.policy`) adds the file and dotted key, :func:`check_settings` the setting's name. One set
of checks, one wording, whether a number comes from a policy file or a constructor argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from grouper.errors import SettingsError

__all__ = ["Choice", "Flag", "Num", "Seq", "Text", "check_settings"]


def _is_num(v: Any) -> bool:
    return (not isinstance(v, bool) and isinstance(v, int | float)) or isinstance(v, np.integer | np.floating)


def _is_int(v: Any) -> bool:
    return (not isinstance(v, bool) and isinstance(v, int)) or isinstance(v, np.integer)


@dataclass(frozen=True)
class Num:
    """A number: ``integer`` (whole), ``share`` (0–1), bounds ``lo`` (open with ``lo_open``) and ``hi``."""

    lo: float | None = None
    hi: float | None = None
    integer: bool = False
    lo_open: bool = False
    share: bool = False
    optional: bool = False

    def problem(self, v: Any) -> str | None:
        if v is None and self.optional:
            return None
        if self.integer:
            if not _is_int(v):
                return f"expected an integer, got {v!r}"
        elif not _is_num(v):
            return f"expected a number, got {v!r}"
        if self.share and not 0 <= v <= 1:
            return f"a share must lie in 0–1, got {v}"
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return f"must be {'>' if self.lo_open else '≥'} {self.lo}, got {v}"
        if self.hi is not None and v > self.hi:
            return f"must be ≤ {self.hi}, got {v}"
        return None


@dataclass(frozen=True)
class Choice:
    """One of a closed set of values."""

    choices: tuple
    optional: bool = False
    noun: str = ""  #: with a noun: "unknown <noun> 'x' (known: …)"

    def problem(self, v: Any) -> str | None:
        if (v is None and self.optional) or (not isinstance(v, bool) and v in self.choices):
            return None
        known = ", ".join(map(str, self.choices))
        return f"unknown {self.noun} {v!r} (known: {known})" if self.noun else f"{v!r} is not one of {known}"


@dataclass(frozen=True)
class Flag:
    """true or false."""

    optional: bool = False

    def problem(self, v: Any) -> str | None:
        if (v is None and self.optional) or isinstance(v, bool):
            return None
        return f"expected true or false, got {v!r}"


@dataclass(frozen=True)
class Text:
    """A non-empty string (a name, a path)."""

    optional: bool = False

    def problem(self, v: Any) -> str | None:
        if (v is None and self.optional) or (isinstance(v, str) and v):
            return None
        return f"expected a non-empty string, got {v!r}"


@dataclass(frozen=True)
class Seq:
    """A list or tuple whose items are each of ``item``; ``length`` fixes how many, ``min_length`` the fewest."""

    item: Any
    length: int | None = None
    min_length: int = 0
    optional: bool = False

    def problem(self, v: Any) -> str | None:
        if v is None and self.optional:
            return None
        if not isinstance(v, list | tuple):
            return f"expected a list, got {v!r}"
        if self.length is not None and len(v) != self.length:
            return f"expected {self.length} values, got {len(v)}"
        if len(v) < self.min_length:
            return f"expected at least {self.min_length} values, got {len(v)}"
        for x in v:
            if (p := self.item.problem(x)) is not None:
                return p
        return None


def check_settings(owner: str, kinds: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Check each setting against its kind; the first problem raises :class:`SettingsError` naming it."""
    for name, kind in kinds.items():
        p = kind.problem(values[name])
        if p is not None:
            raise SettingsError(f"{owner}: {name}: {p}", key=name)
