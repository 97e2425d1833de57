"""Regional point-method payment (区域点数法总额预算): routing, points, budget, settlement, audit."""

from payment.audit import audit
from payment.budget import budget_cascade, budget_point_value, elastic_point_value
from payment.money import largest_remainder, round_fen
from payment.points import Deviation, DeviationRule, DrgRule, dip_points, drg_points
from payment.policy import Policy, PolicyError
from payment.route import Route, route_cases
from payment.settle import Settlement, settle, settle_batches

__all__ = [
    "Deviation",
    "DeviationRule",
    "DrgRule",
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
    "largest_remainder",
    "round_fen",
    "route_cases",
    "settle",
    "settle_batches",
]
