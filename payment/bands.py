"""Banded rates (分段): one shape, one evaluator, one boundary convention for every band a policy writes.

A band is a row ``{from, to, <value>}`` covering the half-open interval ``[from, to)``; ``to`` omitted means open
above. Bands may leave gaps but never overlap. The same rows price clearing rates (结余留用 ``retain``, 超支分担
``fund_share``; docs/formulas.md §8), bed days (``factor``; §10) and DRG high-ratio limits by RW (``ratio``;
docs/drg.md §7.4). For day counts the axis is elapsed days: day d is the interval ``[d − 1, d)``, so a band
``from = 60, to = 90`` prices days 61 to 90.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from payment.money import exact

__all__ = ["Bands"]


@dataclass(frozen=True)
class Bands:
    """Rows ``[from, to)`` → value, sorted by ``from``; exact (Fraction) and float copies of the limits.

    Examples
    --------
    >>> b = Bands.from_rows([{"from": 0, "to": 60, "factor": 1.0}, {"from": 60, "factor": 0.5}], "factor")
    >>> b.at(np.array([0.0, 59.9, 60.0, 500.0])).tolist()
    [1.0, 1.0, 0.5, 0.5]
    >>> b.integral(0, np.array([100.0]))[0].tolist()
    [80.0]
    """

    lo: tuple[Fraction, ...]
    hi: tuple[Fraction | None, ...]
    value: tuple[Fraction, ...]

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping[str, Any]], value: str) -> Bands:
        """Bands from policy rows with ``from``, ``to`` (None: open) and the ``value`` column."""
        ordered = sorted(rows, key=lambda r: exact(r["from"]))
        return cls(
            tuple(exact(r["from"]) for r in ordered),
            tuple(None if r.get("to") is None else exact(r["to"]) for r in ordered),
            tuple(exact(r[value]) for r in ordered),
        )

    def __len__(self) -> int:
        return len(self.lo)

    def overlap(self) -> int | None:
        """Index of the first band that starts before the previous one ends (None: no overlap)."""
        for i in range(1, len(self.lo)):
            prev = self.hi[i - 1]
            if prev is None or self.lo[i] < prev:
                return i
        return None

    def at(self, x: np.ndarray, missing: float = np.nan) -> np.ndarray:
        """The value of the band holding each x (float64); ``missing`` outside every band."""
        x = np.asarray(x, dtype=np.float64)
        out = np.full(x.shape, missing, dtype=np.float64)
        for f, t, v in zip(self.lo, self.hi, self.value, strict=True):
            inside = (x >= float(f)) & (x < (np.inf if t is None else float(t)))
            out[inside] = float(v)
        return out

    def value_at(self, x: Fraction) -> Fraction | None:
        """Exact value of the band holding a scalar x (None outside every band)."""
        for f, t, v in zip(self.lo, self.hi, self.value, strict=True):
            if f <= x and (t is None or x < t):
                return v
        return None

    def integral(self, lo, hi):
        """(Σ over bands of |[lo, hi) ∩ band| × value, |[lo, hi) ∩ bands|): exact for Fraction scalars.

        ``lo`` and ``hi`` are both Fractions (exact result) or numbers / float arrays (float64 result).
        """
        if isinstance(lo, Fraction) and isinstance(hi, Fraction):
            total = width = Fraction(0)
            for f, t, v in zip(self.lo, self.hi, self.value, strict=True):
                w = max((hi if t is None else min(hi, t)) - max(lo, f), Fraction(0))
                total, width = total + w * v, width + w
            return total, width
        lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
        total = np.zeros(np.broadcast(lo, hi).shape)
        width = np.zeros_like(total)
        for f, t, v in zip(self.lo, self.hi, self.value, strict=True):
            top = hi if t is None else np.minimum(hi, float(t))
            w = np.clip(top - np.maximum(lo, float(f)), 0.0, None)
            total += w * float(v)
            width += w
        return total, width
