"""Regional point-method payment (区域点数法总额预算): routing, points, budget, settlement, audit.

The public names are imported on first use (PEP 562), so the command line starts without loading the engine.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from grouper._lazy import lazy_exports

if TYPE_CHECKING:
    from payment.audit import audit
    from payment.budget import budget_cascade, budget_point_value, elastic_point_value
    from payment.money import largest_remainder, round_fen
    from payment.points import Deviation, DeviationRule, DrgRule, dip_points, drg_points
    from payment.policy import Policy, PolicyError
    from payment.route import Route, route_cases
    from payment.settle import ExpectedPayments, Settlement, expected_payments, settle, settle_batches

#: Where each public name lives (imported on first access).
_HOMES = {
    "Deviation": "payment.points",
    "DeviationRule": "payment.points",
    "DrgRule": "payment.points",
    "ExpectedPayments": "payment.settle",
    "Policy": "payment.policy",
    "PolicyError": "payment.policy",
    "Route": "payment.route",
    "Settlement": "payment.settle",
    "audit": "payment.audit",
    "budget_cascade": "payment.budget",
    "budget_point_value": "payment.budget",
    "dip_points": "payment.points",
    "drg_points": "payment.points",
    "elastic_point_value": "payment.budget",
    "expected_payments": "payment.settle",
    "largest_remainder": "payment.money",
    "round_fen": "payment.money",
    "route_cases": "payment.route",
    "settle": "payment.settle",
    "settle_batches": "payment.settle",
}

__all__ = [
    "Deviation",
    "DeviationRule",
    "DrgRule",
    "ExpectedPayments",
    "Policy",
    "PolicyError",
    "Route",
    "Settlement",
    "audit",
    "budget_cascade",
    "budget_point_value",
    "dip_points",
    "drg_points",
    "elastic_point_value",
    "expected_payments",
    "largest_remainder",
    "round_fen",
    "route_cases",
    "settle",
    "settle_batches",
]


__getattr__, __dir__ = lazy_exports(globals(), _HOMES)


class _Package(types.ModuleType):
    """``payment.audit`` and ``payment.settle`` stay the functions even once their modules are imported."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and _HOMES.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
