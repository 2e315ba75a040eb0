"""Routing profiles: how much each criterion weighs, which plans are allowed, which nodes are
preferred or excluded. A profile is an immutable value with a version; storing and versioning
profiles is the caller's business, and every decision's trace names the version it used.

Scores are points, lower is better. Each criterion yields a number near 0..1 (see scoring.py); a
plan's score is the weighted sum plus ``split.penalty`` points per shipment beyond the first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from ordermesh.domain.errors import InvalidInput


class ShortPickPolicy(StrEnum):
    REROUTE = "reroute"  # route the missing units again, never to the node that could not pick them
    BACKORDER = "backorder"  # the missing units wait for stock to arrive
    CANCEL = "cancel"  # route them again first; cancel what no other node can take (reason: warehouse)


class SlaFallback(StrEnum):
    HOLD = "hold"  # no node can hand over before ship-by: route nothing, the order waits for a person
    ROUTE_LATE = "route_late"  # route among the nodes that would be late; the trace marks the breach


@dataclass(frozen=True, slots=True)
class ScoreWeights:
    distance: float = 1.0  # unit-weighted distance, per ``distance_scale_km``
    cost: float = 1.0  # shipping cost, per the cheapest one-parcel quote for the order
    lead_time: float = 1.0  # days until the last parcel arrives, per ``lead_time_scale_days``
    stock_health: float = 0.5  # how close shipping brings a node to running out (days of cover)
    load: float = 0.5  # how full the node's day is (grows with the square of utilisation)
    priority: float = 0.0  # how far below the top ``node_priorities`` the node ranks


@dataclass(frozen=True, slots=True)
class SplitPolicy:
    allowed: bool = True
    penalty: float = 0.5  # points per shipment beyond the first
    max_shipments: int = 3
    channels_without_split: frozenset[str] = frozenset()  # channel codes that forbid splitting
    allow_partial: bool = True  # reserve what exists now when no plan ships everything


@dataclass(frozen=True, slots=True)
class RoutingProfile:
    name: str = "default"
    version: int = 1
    weights: ScoreWeights = ScoreWeights()
    split: SplitPolicy = SplitPolicy()
    node_priorities: Mapping[str, int] = field(default_factory=dict)  # node code -> priority, higher first
    excluded_nodes: frozenset[str] = frozenset()  # node codes this profile never routes to
    excluded_carriers: frozenset[str] = frozenset()  # carrier codes this profile never books
    enforce_capacity: bool = True
    sla_fallback: SlaFallback = SlaFallback.ROUTE_LATE  # a late parcel beats one that never leaves
    max_distance_km: float | None = None  # a node farther than this is not a candidate
    target_cover_days: float = 14.0  # days of cover left after shipping at which stock counts as healthy
    distance_scale_km: float = 1000.0
    lead_time_scale_days: float = 5.0
    search_breadth: int = 8  # multi-node plans are searched among this many best-ranked nodes
    short_pick: ShortPickPolicy = ShortPickPolicy.REROUTE  # what happens to units a node cannot pick

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_priorities", MappingProxyType(dict(self.node_priorities)))
        problems = profile_problems(self)
        if problems:
            raise InvalidInput(f"invalid routing profile {self.name!r}: " + "; ".join(problems), problems=problems)

    def allows_split(self, channel: str | None) -> bool:
        return self.split.allowed and self.split.max_shipments > 1 and channel not in self.split.channels_without_split

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; ``profile_from_dict(profile.to_dict()) == profile``."""
        return {
            "name": self.name,
            "version": self.version,
            "weights": asdict(self.weights),
            "split": {**asdict(self.split), "channels_without_split": sorted(self.split.channels_without_split)},
            "node_priorities": dict(sorted(self.node_priorities.items())),
            "excluded_nodes": sorted(self.excluded_nodes),
            "excluded_carriers": sorted(self.excluded_carriers),
            "enforce_capacity": self.enforce_capacity,
            "sla_fallback": self.sla_fallback.value,
            "max_distance_km": self.max_distance_km,
            "target_cover_days": self.target_cover_days,
            "distance_scale_km": self.distance_scale_km,
            "lead_time_scale_days": self.lead_time_scale_days,
            "search_breadth": self.search_breadth,
            "short_pick": self.short_pick.value,
        }


def profile_problems(profile: RoutingProfile) -> list[str]:
    """Everything wrong with a profile, in words an operator can act on (empty when valid)."""
    problems = []
    if not profile.name.strip():
        problems.append("name must not be empty")
    if isinstance(profile.version, bool) or not isinstance(profile.version, int) or profile.version < 1:
        problems.append("version must be a positive integer")
    for weight in fields(ScoreWeights):
        value = getattr(profile.weights, weight.name)
        if not _is_number(value) or not math.isfinite(value) or value < 0:
            problems.append(f"weights.{weight.name} must be a finite number >= 0")
    split = profile.split
    if not _is_number(split.penalty) or not math.isfinite(split.penalty) or split.penalty < 0:
        problems.append("split.penalty must be a finite number >= 0")
    if isinstance(split.max_shipments, bool) or not isinstance(split.max_shipments, int) or split.max_shipments < 1:
        problems.append("split.max_shipments must be an integer >= 1")
    for code, priority in profile.node_priorities.items():
        if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
            problems.append(f"node_priorities[{code!r}] must be an integer >= 0")
    contradictory = sorted(set(profile.node_priorities) & profile.excluded_nodes)
    if contradictory:
        problems.append(f"nodes both prioritised and excluded: {', '.join(contradictory)}")
    limit = profile.max_distance_km
    if limit is not None and not (_is_number(limit) and limit > 0):
        problems.append("max_distance_km must be a number > 0 (or null for no limit)")
    for name in ("target_cover_days", "distance_scale_km", "lead_time_scale_days"):
        value = getattr(profile, name)
        if not _is_number(value) or not math.isfinite(value) or value <= 0:
            problems.append(f"{name} must be a finite number > 0")
    breadth = profile.search_breadth
    if isinstance(breadth, bool) or not isinstance(breadth, int) or breadth < 2:
        problems.append("search_breadth must be an integer >= 2")
    return problems


def profile_from_dict(data: Mapping[str, Any]) -> RoutingProfile:
    """A profile from its stored JSON (``RoutingProfile.to_dict``); unknown keys are an error, missing
    keys take the defaults."""
    known = {f.name for f in fields(RoutingProfile)}
    unknown = sorted(set(data) - known)
    weights_data = dict(data.get("weights", {}))
    split_data = dict(data.get("split", {}))
    unknown += [f"weights.{k}" for k in sorted(set(weights_data) - {f.name for f in fields(ScoreWeights)})]
    unknown += [f"split.{k}" for k in sorted(set(split_data) - {f.name for f in fields(SplitPolicy)})]
    if unknown:
        raise InvalidInput(f"unknown routing profile fields: {', '.join(unknown)}", problems=unknown)
    if "channels_without_split" in split_data:
        split_data["channels_without_split"] = frozenset(split_data["channels_without_split"])
    values: dict[str, Any] = {k: v for k, v in data.items() if k not in ("weights", "split")}
    for name in ("excluded_nodes", "excluded_carriers"):
        if name in values:
            values[name] = frozenset(values[name])
    for name, kind in (("sla_fallback", SlaFallback), ("short_pick", ShortPickPolicy)):
        if name in values:
            try:
                values[name] = kind(values[name])
            except ValueError:
                problem = f"{name} must be one of {', '.join(v.value for v in kind)}"
                raise InvalidInput(problem, problems=[problem]) from None
    return RoutingProfile(**values, weights=ScoreWeights(**weights_data), split=SplitPolicy(**split_data))


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
