"""Scoring: each criterion as a number near 0..1 (lower is better), and a plan's weighted total.

- distance: unit-weighted distance from node to destination, per ``distance_scale_km``; a distance
  that cannot be known counts as ``UNKNOWN_DISTANCE_TERM`` (after every known one, never as zero).
- cost: the plan's shipping cost divided by the cheapest one-parcel quote any candidate has for the
  whole order (so 1.0 is "as cheap as one parcel can be"; each extra parcel adds about 1).
- lead_time: days from now until the last parcel is delivered, per ``lead_time_scale_days``.
- stock_health: for each SKU shipped, how far the days of cover left at the node (available after
  shipping / recent daily sales) fall short of ``target_cover_days``: 0 when at least the target
  remains, 1 when shipping empties it; a node's value is its worst SKU, the plan's is unit-weighted.
- load: utilisation of the node's daily capacity after this order, squared (a filling node is
  penalised more and more); unit-weighted.
- priority: how far below the profile's top priority the node ranks (0 for the top), unit-weighted.
A plan's score is the weighted sum of these plus ``split.penalty`` for each shipment beyond the first.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import NamedTuple

from ordermesh.domain.routing.model import DailySales, Node
from ordermesh.domain.routing.profile import RoutingProfile

UNKNOWN_DISTANCE_TERM = 2.0  # twice the distance scale


class Criterion(StrEnum):
    DISTANCE = "distance"  # nearer nodes deliver faster and cheaper beyond what rate zones tell
    COST = "cost"  # shipping cost from the carriers' rate cards
    LEAD_TIME = "lead_time"  # time until the last parcel is delivered (cut-off and carrier days)
    STOCK_HEALTH = "stock_health"  # ship from plenty, protect nodes about to run out
    LOAD = "load"  # spread work before a node's day fills up
    PRIORITY = "priority"  # the profile's preferred nodes


class CriterionScores(NamedTuple):
    """One node's or one plan's value on each criterion, and the weighted total. (A NamedTuple:
    immutable, and cheap enough to build for every plan the search scores.)"""

    distance: float
    cost: float
    lead_time: float
    stock_health: float
    load: float
    priority: float
    split: float  # penalty points for extra shipments (0 for a node on its own)
    total: float

    def to_dict(self) -> dict[str, float]:
        return {  # the keys are the ``Criterion`` values (literal: one dict per candidate of every trace)
            "distance": round(self.distance, 6),
            "cost": round(self.cost, 6),
            "lead_time": round(self.lead_time, 6),
            "stock_health": round(self.stock_health, 6),
            "load": round(self.load, 6),
            "priority": round(self.priority, 6),
            "split_penalty": round(self.split, 6),
            "total": round(self.total, 6),
        }


def score(
    profile: RoutingProfile,
    *,
    distance: float,
    cost: float,
    lead_time: float,
    stock_health: float,
    load: float,
    priority: float,
    shipments: int,
) -> CriterionScores:
    weights = profile.weights
    split = profile.split.penalty * (shipments - 1)
    total = (
        weights.distance * distance
        + weights.cost * cost
        + weights.lead_time * lead_time
        + weights.stock_health * stock_health
        + weights.load * load
        + weights.priority * priority
        + split
    )
    return CriterionScores(distance, cost, lead_time, stock_health, load, priority, split, total)


def distance_term(distance_km: float | None, profile: RoutingProfile) -> float:
    return UNKNOWN_DISTANCE_TERM if distance_km is None else distance_km / profile.distance_scale_km


def load_term(node: Node, assigned_today: int) -> float:
    if not node.daily_capacity:
        return 0.0 if node.daily_capacity is None else float(assigned_today + 1) ** 2
    return ((assigned_today + 1) / node.daily_capacity) ** 2


def priority_term(node: Node, profile: RoutingProfile, top: int | None = None) -> float:
    """``top``: the profile's highest priority, when the caller has it at hand."""
    priorities = profile.node_priorities
    if not priorities:
        return 0.0
    top = max(priorities.values()) if top is None else top
    return 0.0 if top == 0 else (top - priorities.get(node.code, 0)) / top


def cover_days(available: int, daily_sales: float) -> float | None:
    """Days the stock lasts at the recent rate of sale; None when it does not sell (no end in sight)."""
    return None if daily_sales <= 0 else max(available, 0) / daily_sales


def stock_health_term(
    node_id: int,
    available: Mapping[int, int],
    drawn: Mapping[int, int],
    daily_sales: DailySales,
    target_cover_days: float,
) -> float:
    worst = 0.0
    for sku, units in drawn.items():
        if units <= 0:
            continue
        cover = cover_days(available.get(sku, 0) - units, daily_sales.get((node_id, sku), 0.0))
        if cover is not None and cover < target_cover_days:
            worst = max(worst, 1.0 - cover / target_cover_days)
    return worst
