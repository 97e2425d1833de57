"""Money (金额) arithmetic: exact fractions inside, fen (分) once at the output boundary.

docs/formulas.md §0: keep full precision internally, quantize to the fen half-up (``ROUND_HALF_UP``) once;
where a fixed total is shared, use the largest-remainder rule so the parts add up to the total.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from fractions import Fraction

import numpy as np
from numba import njit

__all__ = [
    "POINT_UNITS",
    "TIE_FEN",
    "exact",
    "fen_exact",
    "fen_half_up",
    "fen_to_yuan",
    "largest_remainder",
    "publish",
    "round_fen",
]

#: A float yuan amount within this many fen of a half fen counts as the half (float64 carries ~16 digits, so
#: the error on an amount below 1e9 yuan is under 1e-6 fen; the exact decimal value is what the rule rounds).
TIE_FEN = 1e-6
#: Case points are carried as integers of 1e-9 point (fixed point) from the case to the money: sums of them are
#: exact, and a decimal number of points (120.05) is the decimal it was written as, not the float near it.
POINT_UNITS = 10**9
#: A float amount this close to a half fen is rounded from its exact value (:func:`fen_exact`).
_NEAR_FEN = 1e-5


def exact(x: float | int | str | Decimal | Fraction) -> Fraction:
    """The exact value a number was *written* as: ``0.7`` → 7/10, not the binary float near it.

    Examples
    --------
    >>> exact(0.7)
    Fraction(7, 10)
    """
    if isinstance(x, Fraction):
        return x
    if isinstance(x, float):
        return Fraction(Decimal(repr(x)))
    return Fraction(Decimal(x)) if isinstance(x, str) else Fraction(x)


def round_fen(x: Fraction) -> int:
    """Quantize an exact yuan amount to fen, half-up (away from zero).

    Examples
    --------
    >>> round_fen(Fraction(225003, 20))     # 11,250.15 yuan
    1125015
    >>> round_fen(exact("11250.015"))
    1125002
    """
    f = x * 100
    n = (abs(f.numerator) * 2 + f.denominator) // (2 * f.denominator)
    return n if f >= 0 else -n


def publish(v: Fraction, decimals: int | None) -> Fraction:
    """A point value as published: rounded half-up to ``decimals`` places (None = full precision).

    Examples
    --------
    >>> float(publish(Fraction(75, 7), 4))
    10.7143
    """
    if decimals is None:
        return v
    q = 10**decimals
    f = v * q
    n = (abs(f.numerator) * 2 + f.denominator) // (2 * f.denominator)
    return Fraction(n if f >= 0 else -n, q)


def fen_half_up(yuan: np.ndarray) -> np.ndarray:
    """Vector form of :func:`round_fen` for float64 yuan amounts → int64 fen (ties to within 1e-6 fen; NaN → 0).

    Examples
    --------
    >>> fen_half_up(np.array([1050 * 10.7143, -0.005, np.nan])).tolist()
    [1125002, -1, 0]
    """
    return _fen_half_up(np.ascontiguousarray(yuan, dtype=np.float64))


@njit(cache=True, nogil=True)
def _fen_half_up(yuan):
    out = np.zeros(yuan.shape[0], dtype=np.int64)
    for i in range(yuan.shape[0]):
        f = yuan[i] * 100.0
        if np.isfinite(f):
            a = np.floor(abs(f) + 0.5 + TIE_FEN)
            out[i] = np.int64(a) if f >= 0 else -np.int64(a)
    return out


def fen_exact(
    approx_yuan: np.ndarray,
    exact_of: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    per_unit: tuple[np.ndarray, np.ndarray, Sequence[Fraction]] | None = None,
) -> np.ndarray:
    """Half-up fen of amounts known exactly, fast: the float approximation decides, except within 1e-5 fen
    of a half fen, where the exact amounts decide: ``exact_of(positions)`` gives their numerators and positive
    denominators (yuan; object arrays of Python ints), rounded as :func:`round_fen` does.

    ``per_unit`` ``(units, which, prices)``, optional: the amounts at rows with ``which >= 0`` are exactly
    ``units / POINT_UNITS × prices[which]`` yuan (points × a point value); those near a half fen are rounded in
    int64 arithmetic (when the price's terms are small enough), and ``exact_of`` is asked for the others only.

    The float approximation must be within 1e-6 fen of the exact amount (float64 products of a few factors
    carry ~1e-15 relative error, so amounts up to 1e8 yuan qualify).

    Examples
    --------
    >>> def parts(at):                                  # 120.05 points × 0.1 yuan = 12.005 yuan exactly
    ...     return np.full(len(at), 12005, dtype=object), np.full(len(at), 1000, dtype=object)
    >>> fen_exact(np.array([120.05 * 0.1]), parts).tolist()
    [1201]
    """
    out, near = _fen_near(np.ascontiguousarray(approx_yuan, dtype=np.float64), _NEAR_FEN)
    near = np.flatnonzero(near)
    if len(near) and per_unit is not None:
        units, which, prices = per_unit
        fen_per_unit = [p * 100 / POINT_UNITS for p in prices]  # fen per unit, exact
        a = np.array([f.numerator if _small(f) else 0 for f in fen_per_unit], dtype=np.int64)
        b = np.array([f.denominator if _small(f) else 0 for f in fen_per_unit], dtype=np.int64)
        done = _fen_units(np.ascontiguousarray(units, dtype=np.int64), near, np.asarray(which), a, b, out)
        near = near[~done]
    if len(near):
        num, den = exact_of(near)
        num = num * 100
        q = (2 * np.abs(num) + den) // (2 * den)
        out[near] = np.where(num < 0, -q, q).astype(np.int64)
    return out


def _small(f: Fraction) -> bool:
    """A non-negative fraction whose int64 rounding in :func:`_fen_units` cannot overflow."""
    return f.numerator >= 0 and f.numerator * f.denominator < 1 << 61


@njit(cache=True, nogil=True)
def _fen_units(units, at, which, a, b, out):
    """``out[i]`` = half-up of ``units[i] × a[w] / b[w]`` (w = ``which[i]``) at the positions ``at`` where
    ``w >= 0`` and ``b[w] > 0``, in int64 (a·b < 2**61); returns which positions it rounded."""
    done = np.zeros(at.shape[0], dtype=np.bool_)
    for j in range(at.shape[0]):
        i = at[j]
        w = which[i]
        if w < 0 or b[w] == 0:
            continue
        u = units[i]
        m = -u if u < 0 else u
        q, r = m // b[w], m % b[w]  # m·a/b = q·a + r·a/b, and r·a < a·b stays in range
        n = q * a[w] + (2 * r * a[w] + b[w]) // (2 * b[w])
        out[i] = -n if u < 0 else n
        done[j] = True
    return done


@njit(cache=True, nogil=True)
def _fen_near(yuan, window):
    """Half-up fen of float amounts (NaN → 0) and whether each lies within ``window`` fen of a half fen."""
    n = yuan.shape[0]
    out = np.zeros(n, dtype=np.int64)
    near = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        f = yuan[i] * 100.0
        if np.isfinite(f):
            a = abs(f)
            r = np.floor(a + 0.5)
            out[i] = np.int64(r) if f >= 0 else -np.int64(r)
            near[i] = abs(a - np.floor(a) - 0.5) < window
    return out, near


def fen_to_yuan(fen: int | np.ndarray) -> str | np.ndarray:
    """Fen as a yuan string with two decimals (one value) or float64 yuan (an array)."""
    if isinstance(fen, np.ndarray):
        return fen.astype(np.float64) / 100.0
    sign = "-" if fen < 0 else ""
    q, r = divmod(abs(int(fen)), 100)
    return f"{sign}{q}.{r:02d}"


def largest_remainder(total_fen: int, weights: Sequence[Fraction | int], keys: Sequence[str]) -> list[int]:
    """Share ``total_fen`` in proportion to ``weights`` so the parts sum to the total exactly.

    Floor every share to the fen, then give one more fen to the largest remainders (ties: ascending key).
    docs/formulas.md §0, vector R-1.

    Examples
    --------
    >>> largest_remainder(1_000_000_000, [100_000, 100_000, 100_000], ["H1", "H2", "H3"])
    [333333334, 333333333, 333333333]
    """
    w = [Fraction(x) for x in weights]
    tw = sum(w, Fraction(0))
    if tw == 0:
        if total_fen != 0:
            raise ValueError("cannot share a non-zero total over zero weights")
        return [0] * len(w)
    if any(x < 0 for x in w):
        raise ValueError("largest_remainder needs non-negative weights")
    exact_parts = [total_fen * x / tw for x in w]
    floors = [p.numerator // p.denominator for p in exact_parts]
    missing = total_fen - sum(floors)
    order = sorted(range(len(w)), key=lambda i: (-(exact_parts[i] - floors[i]), keys[i]))
    for i in order[:missing]:
        floors[i] += 1
    return floors
