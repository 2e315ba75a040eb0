"""Hard constraints: which nodes may ship an order at all, and why each other one may not.

Checks run in this order and a node is excluded by the first it fails (the trace names that one):
inactive, excluded by the profile, channel not allowed, capacity full, no stock (or not enough for a
plan the policy allows), too far, no carrier for the route, SLA breach, delivery promise breach.
A node that passes every check is a ``Candidate``, carrying the facts scoring and search need.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple

from ordermesh.domain.routing.calendar import handover_moment
from ordermesh.domain.routing.model import LineDemand, Node
from ordermesh.domain.routing.places import Place, locate
from ordermesh.domain.routing.profile import RoutingProfile, SlaFallback
from ordermesh.domain.routing.rate_cards import (
    SECONDS_PER_DAY,
    CarrierOption,
    RateCard,
    RateCards,
    Zone,
    carrier_options,
    with_quotes,
)
from ordermesh.domain.routing.request import RoutingRequest
from ordermesh.domain.routing.scoring import UNKNOWN_DISTANCE_TERM, load_term


class ExclusionReason(StrEnum):
    NODE_INACTIVE = "node_inactive"  # the node is switched off
    EXCLUDED_BY_PROFILE = "excluded_by_profile"  # the routing profile lists the node as excluded
    CHANNEL_NOT_ALLOWED = "channel_not_allowed"  # the node does not ship for the order's channel
    CAPACITY_FULL = "capacity_full"  # today's order capacity (node's local day) is used up
    NO_STOCK = "no_stock"  # cannot ship a single unit of any open line
    INSUFFICIENT_STOCK = "insufficient_stock"  # cannot ship everything alone, and the policy needs that
    TOO_FAR = "too_far"  # farther from the destination than the profile's maximum distance
    NO_CARRIER = "no_carrier"  # no rate card serves the route (node province/region -> destination)
    SLA_BREACH = "sla_breach"  # its next handover (cut-off, working days) is after the ship-by deadline
    DELIVERY_PROMISE_BREACH = "delivery_promise_breach"  # no carrier delivers by the promised date


@dataclass(frozen=True, slots=True)
class Exclusion:
    node_id: int
    node_code: str
    reason: ExclusionReason
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"node_id": self.node_id, "code": self.node_code, "reason": self.reason.value, "detail": self.detail}


class Candidate(NamedTuple):
    """A node that passed every hard constraint, with the facts scoring needs."""

    node: Node
    place: Place
    distance_km: float | None
    zone: Zone
    handover_at: datetime  # node local time
    handover_days: float  # from the decision's ``now`` until handover, in days
    late: bool  # routed past ship-by because the profile's SLA fallback allows it
    options: tuple[CarrierOption, ...]  # fastest first
    cards: tuple[RateCard, ...]  # every card serving the route (options may leave out those too slow)
    available: Mapping[int, int]  # SKU -> units it may promise (the order's SKUs, > 0 only)
    covers_order: bool  # ships every open unit on its own
    distance_term: float
    load_term: float
    priority_term: float

    @property
    def fastest_days(self) -> float:
        """Days from now until its fastest carrier delivers."""
        return self.handover_days + self.options[0].transit_days


def needs_of(lines: Sequence[LineDemand]) -> dict[int, int]:
    """Units of each SKU the lines need in all."""
    needs: dict[int, int] = {}
    for line in lines:
        for sku, per_unit in line.components.items():
            needs[sku] = needs.get(sku, 0) + line.quantity * per_unit
    return needs


def fill(
    lines: Sequence[LineDemand], sources: Sequence[Mapping[int, int]]
) -> tuple[list[list[tuple[LineDemand, int]]], int]:
    """Greedy: each line takes whole units from the sources in the order given (a bundle unit comes
    whole from one source). Returns what each source ships and the units placed; never draws more
    than a source has."""
    left = [dict(source) for source in sources]
    taken: list[list[tuple[LineDemand, int]]] = [[] for _ in sources]
    placed = 0
    for line in lines:
        need = line.quantity
        components = line.components.items()
        for index, stock in enumerate(left):
            if need == 0:
                break
            units = need
            for sku, per_unit in components:
                possible = stock.get(sku, 0) // per_unit
                if possible < units:
                    units = possible
            if units <= 0:
                continue
            for sku, per_unit in components:
                stock[sku] -= units * per_unit
            taken[index].append((line, units))
            need -= units
            placed += units
    return taken, placed


def assess_nodes(
    request: RoutingRequest,
    profile: RoutingProfile,
    destination: Place,
    lines: Sequence[LineDemand],
    now: datetime,
    rate_cards: RateCards,
    *,
    allow_late: bool = False,
) -> tuple[list[Candidate], list[Exclusion]]:
    """Split the request's nodes into candidates and exclusions (each with its first failed check).

    This runs for every node of every order, so what repeats within one decision is looked up once:
    a route's zone and cards per origin place, carrier options per route and handover moment."""
    needs = needs_of(lines)
    components = [tuple(line.components.items()) for line in lines]
    may_split_or_part = profile.allows_split(request.channel) or profile.split.allow_partial
    candidates: list[Candidate] = []
    excluded: list[Exclusion] = []
    stock_of, assigned, ship_by, deliver_by = (
        request.stock.get,
        request.assigned_today,
        request.ship_by,
        request.deliver_by,
    )
    now_ts = now.timestamp()
    ship_by_ts = ship_by.timestamp() if ship_by is not None else math.inf
    deliver_by_ts = deliver_by.timestamp() if deliver_by is not None else None
    priorities, distance_scale = profile.node_priorities, profile.distance_scale_km
    measurable = destination.latitude is not None and destination.longitude is not None
    top_priority = max(priorities.values(), default=0)
    routes: dict[tuple[int, str | None], tuple[Zone | None, tuple[RateCard, ...], str]] = {}  # by origin province
    options_at: dict[tuple[int, float], tuple[CarrierOption, ...]] = {}  # (id(route), handover) -> options
    for node in request.nodes:
        if not node.active:
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.NODE_INACTIVE, "node is inactive"))
            continue
        if node.code in profile.excluded_nodes:
            detail = f"profile {profile.name!r} v{profile.version} excludes it"
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.EXCLUDED_BY_PROFILE, detail))
            continue
        if node.channels is not None and request.channel not in node.channels:
            detail = f"does not ship for channel {request.channel!r}"
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.CHANNEL_NOT_ALLOWED, detail))
            continue
        load = assigned.get(node.id, 0)
        if profile.enforce_capacity and node.daily_capacity is not None and load >= node.daily_capacity:
            detail = f"{load} of {node.daily_capacity} orders assigned today"
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.CAPACITY_FULL, detail))
            continue
        node_id, available = node.id, {}
        for sku in needs:
            units = stock_of((node_id, sku), 0)
            if units > 0:
                available[sku] = units
        covers = len(available) == len(needs)
        if covers:
            for sku, units in needs.items():
                if available[sku] < units:
                    covers = False
                    break
        if not covers:
            if not _ships_any(components, available):
                excluded.append(Exclusion(node.id, node.code, ExclusionReason.NO_STOCK, "has none of the open units"))
                continue
            if not may_split_or_part:
                detail = "cannot ship every open unit alone, and the order may not split or ship in part"
                excluded.append(Exclusion(node.id, node.code, ExclusionReason.INSUFFICIENT_STOCK, detail))
                continue
        place = locate(node.latitude, node.longitude, node.province, node.country)
        distance = place.distance_km(destination) if measurable else None
        if profile.max_distance_km is not None and distance is not None and distance > profile.max_distance_km:
            detail = f"{distance:.0f} km > {profile.max_distance_km:g} km"
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.TOO_FAR, detail))
            continue
        origin = (id(place.province), place.country)  # provinces are the table's own objects
        route = routes.get(origin)
        if route is None:
            route = routes[origin] = _route(place, destination, rate_cards, profile)
        zone, cards, problem = route
        if zone is None:
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.NO_CARRIER, problem))
            continue
        moment = handover_moment(node.calendar, now, now_ts)
        if moment is None:
            detail = "no working day with a cut-off ahead"
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.SLA_BREACH, detail))
            continue
        handover, handover_ts = moment
        late = handover_ts > ship_by_ts
        if late and not allow_late:
            detail = f"next handover {handover.isoformat()} is after ship-by {ship_by.isoformat()}"  # type: ignore[union-attr]
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.SLA_BREACH, detail))
            continue
        quoted = request.quotes.get(node_id) if request.quotes else None
        if quoted:  # this node's own live quotes, priced before the route's shared cards
            cards = with_quotes(quoted, zone, cards)
            options = carrier_options(cards, zone, handover, deliver_by)
        else:
            shared = options_at.get((id(route), handover_ts))
            if shared is None:
                shared = rate_cards.options(zone, cards, handover, handover_ts, deliver_by, deliver_by_ts)
                options_at[(id(route), handover_ts)] = shared
            options = shared
        if not options:
            detail = f"handover {handover.isoformat()} + carrier lead time misses {deliver_by.isoformat()}"  # type: ignore[union-attr]
            excluded.append(Exclusion(node.id, node.code, ExclusionReason.DELIVERY_PROMISE_BREACH, detail))
            continue
        candidates.append(
            Candidate(
                node,
                place,
                distance,
                zone,
                handover,
                (handover_ts - now_ts) / SECONDS_PER_DAY,
                late,
                options,
                cards,
                available,
                covers,
                UNKNOWN_DISTANCE_TERM if distance is None else distance / distance_scale,
                0.0 if node.daily_capacity is None else load_term(node, load),
                0.0 if not top_priority else (top_priority - priorities.get(node.code, 0)) / top_priority,
            )  # the node terms of scoring.py, inlined: this line runs for every node of every order
        )
    return candidates, excluded


def can_route_late(profile: RoutingProfile, candidates: list[Candidate], excluded: list[Exclusion]) -> bool:
    """Whether the profile's SLA fallback applies: nothing can meet ship-by, and some node only missed it."""
    return (
        profile.sla_fallback is SlaFallback.ROUTE_LATE
        and not candidates
        and any(e.reason is ExclusionReason.SLA_BREACH for e in excluded)
    )


def _ships_any(components: list[tuple[tuple[int, int], ...]], available: Mapping[int, int]) -> bool:
    """Whether at least one unit of some line can ship from ``available``."""
    for parts in components:
        for sku, per_unit in parts:
            if available.get(sku, 0) < per_unit:
                break
        else:
            return True
    return False


def _route(
    origin: Place, destination: Place, rate_cards: RateCards, profile: RoutingProfile
) -> tuple[Zone | None, tuple[RateCard, ...], str]:
    """The route's zone and the cards that serve it, or None and why nothing does."""
    country = origin.country or destination.country
    destination_country = destination.country or country
    if country is None or country != destination_country:
        return None, (), f"route {country or '?'} -> {destination_country or '?'} has no domestic rate card"
    zone, cards = rate_cards.route(country, origin.province, destination.province, profile.excluded_carriers)
    if not cards:
        return None, cards, f"no rate card serves {country} zone {zone.value}"
    return zone, cards, ""
