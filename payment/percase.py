"""Per-case fixed prices (单病种 / 按病种定额付费): (principal dx, main procedure) lists, level prices, exits.

docs/formulas.md §11, vectors E-1…E-4. A case qualifies when its principal diagnosis *and* main procedure
are on an item's lists (prefix match, "凡主诊断主操作符合…均应纳入"); the first item in policy order wins. It
leaves the price (exit rule) when its cost exceeds ``exit_cost_over_price_x`` × price (strict) or its LOS
exceeds ``exit_los_over`` days, going back to the scheme or to fee-for-service.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["per_case_exit", "per_case_price"]


def per_case_price(item: np.ndarray, level: np.ndarray, items: Sequence) -> np.ndarray:
    """Fixed price (定额, yuan) of each case's item at its hospital level; NaN when the level has no price."""
    price = np.full(len(item), np.nan)
    for i, it in enumerate(items):
        np.copyto(price, it["price"].at(level), where=item == i)
    return price


def per_case_exit(item: np.ndarray, price: np.ndarray, cost: np.ndarray, los: np.ndarray, items: Sequence):
    """Exit mask (leaves the fixed price) of matched cases; E-4: cost > 2 × 9,500 exits, = 19,000 stays.

    Examples
    --------
    >>> items = [dict(exit_cost_over_price_x=2.0, exit_los_over=None)]
    >>> per_case_exit(np.array([0, 0]), np.array([9500.0, 9500.0]), np.array([19000.0, 20000.0]),
    ...               np.array([3, 3]), items).tolist()
    [False, True]
    """
    x = np.array(
        [np.inf if it["exit_cost_over_price_x"] is None else it["exit_cost_over_price_x"] for it in items]
    )
    d = np.array([np.inf if it["exit_los_over"] is None else it["exit_los_over"] for it in items])
    safe = np.maximum(item, 0)
    return (item >= 0) & ((cost > x[safe] * price) | (los > d[safe]))
