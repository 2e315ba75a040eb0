"""Plan scoring for one decision: the constants every plan shares, and the score of a plan.

A plan is a list of parts, each what one candidate ships. A part's score (its carrier, fee, weight,
stock health, delivery time) depends only on the candidate and the quantities it ships, and the
search meets the same part in many combinations, so parts are scored once per decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from ordermesh.domain.routing.constraints import Candidate, fill, needs_of
from ordermesh.domain.routing.model import LineDemand
from ordermesh.domain.routing.profile import RoutingProfile
from ordermesh.domain.routing.rate_cards import WEIGHT_STEP_GRAMS, CarrierOption, extra_steps
from ordermesh.domain.routing.request import RoutingRequest
from ordermesh.domain.routing.scoring import CriterionScores, score, stock_health_term

Taken = tuple[tuple[LineDemand, int], ...]  # (line, units) shipped from one node


class ShipmentPart(NamedTuple):
    candidate: Candidate
    taken: Taken
    option: CarrierOption
    weight_grams: int


class PlanOption(NamedTuple):
    parts: tuple[ShipmentPart, ...]
    scores: CriterionScores
    units: int
    complete: bool

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(part.candidate.node.code for part in self.parts)


class _PartScore(NamedTuple):
    option: CarrierOption
    fee: float
    weight_grams: int
    units: int
    stock_health: float
    delivery_days: float


class Planner:
    """Scores plans for one request; the constants are computed once per decision."""

    def __init__(
        self,
        request: RoutingRequest,
        profile: RoutingProfile,
        lines: Sequence[LineDemand],
        candidates: Sequence[Candidate],
        now: datetime,
    ) -> None:
        self.profile, self.request, self.now = profile, request, now
        # Bundles first: a multi-SKU unit needs every component at one node, plain lines can go anywhere.
        self.lines = sorted(lines, key=lambda line: -len(line.components))
        self.total_units = sum(line.quantity for line in lines)
        self.needs = needs_of(lines)
        self.weighs_lines = all(line.unit_weight_grams is not None for line in lines)
        self.order_weight = self.weight(tuple((line, line.quantity) for line in lines), self.total_units)
        self.candidates = list(candidates)
        self._parts: dict[tuple[int, tuple[tuple[int, int], ...]], _PartScore | None] = {}
        weights, lead_scale = profile.weights, profile.lead_time_scale_days
        # Per candidate: its cheapest parcel for the whole order, and floors for any parcel (cheapest
        # first 500 g, cheapest extra 500 g). These depend on the route's cards and zone only (a
        # handful per order), unless a delivery promise leaves some cards out of a node's options.
        per_route: dict[object, tuple[float, float, float]] = {}  # route -> (whole, first, extra)
        by_options = request.deliver_by is not None
        steps = extra_steps(self.order_weight)
        cheapest = []
        for candidate in self.candidates:
            route = id(candidate.options) if by_options else (candidate.zone, id(candidate.cards))
            fees = per_route.get(route)
            if fees is None:
                fees = per_route[route] = _floors(candidate.options, self.order_weight, steps)
            cheapest.append(fees)
        self.parcel_cost = [fees[0] for fees in cheapest]  # per candidate; inf: too heavy for its carriers
        parcel = min(self.parcel_cost, default=math.inf)
        self.reference_cost = parcel if 0 < parcel < math.inf else 1.0
        cost_points = weights.cost / self.reference_cost
        self.base: list[float] = []  # weighted node terms: distance, load, priority
        self.least_cost: list[float] = []  # weighted cost of the cheapest possible parcel
        self.least_extra: list[float] = []  # weighted cost of the cheapest extra 500 g
        self.least_lead: list[float] = []  # weighted time to the fastest possible delivery
        self.bound: list[float] = []  # no plan shipping from the candidate alone scores below this
        for candidate, (whole, first, extra) in zip(self.candidates, cheapest, strict=True):
            base = (
                weights.distance * candidate.distance_term
                + weights.load * candidate.load_term
                + weights.priority * candidate.priority_term
            )
            lead = weights.lead_time * (candidate.handover_days + candidate.options[0].transit_days) / lead_scale
            self.base.append(base)
            self.least_cost.append(cost_points * first)
            self.least_extra.append(cost_points * extra)
            self.least_lead.append(lead)
            self.bound.append(base + cost_points * whole + lead)

    def weight(self, taken: Taken, units: int) -> int:
        if self.weighs_lines:
            return sum((line.unit_weight_grams or 0) * count for line, count in taken)
        if not self.total_units:
            return 0
        return math.ceil(self.request.total_weight_grams * units / self.total_units)

    def extra_steps_at_least(self, parcels: int) -> int:
        """Extra 500 g steps that ``parcels`` parcels carrying the whole order pay in all, at least."""
        return max(0, -(-(self.order_weight - WEIGHT_STEP_GRAMS * parcels) // WEIGHT_STEP_GRAMS))

    def evaluate(self, indexes: Sequence[int], takens: Sequence[Taken]) -> PlanOption | None:
        """Score the plan that ships ``takens[k]`` from candidate ``indexes[k]``; None when nothing
        ships or a parcel is too heavy for every carrier serving its route."""
        parts = []
        for index, taken in zip(indexes, takens, strict=True):
            part = self._part(index, taken)
            if part is None:
                return None
            parts.append(part)
        units = sum(part.units for part in parts)
        if units == 0:
            return None
        distance = load = priority = health = cost = lead = 0.0
        for index, part in zip(indexes, parts, strict=True):
            candidate, share = self.candidates[index], part.units / units
            distance += share * candidate.distance_term
            load += share * candidate.load_term
            priority += share * candidate.priority_term
            health += share * part.stock_health
            cost += part.fee
            lead = max(lead, part.delivery_days)
        scores = score(
            self.profile,
            distance=distance,
            cost=cost / self.reference_cost,
            lead_time=lead / self.profile.lead_time_scale_days,
            stock_health=health,
            load=load,
            priority=priority,
            shipments=len(parts),
        )
        shipments = tuple(
            ShipmentPart(self.candidates[index], taken, part.option, part.weight_grams)
            for index, taken, part in zip(indexes, takens, parts, strict=True)
        )
        return PlanOption(shipments, scores, units, units == self.total_units)

    def _part(self, index: int, taken: Taken) -> _PartScore | None:
        key = (index, tuple((line.line_id, count) for line, count in taken))
        if key in self._parts:
            return self._parts[key]
        candidate, profile = self.candidates[index], self.profile
        units = sum(count for _, count in taken)
        weight = self.weight(taken, units)
        steps = extra_steps(weight)
        weights, scale = profile.weights, profile.lead_time_scale_days
        cost_points = weights.cost / self.reference_cost
        best: tuple[CarrierOption, float, float] | None = None
        best_points = math.inf
        for option in candidate.options:  # fastest first: a tie keeps the faster
            if not _carries(option, weight):
                continue
            fee = option.first_fee + option.extra_fee * steps
            days = candidate.handover_days + option.transit_days
            points = cost_points * fee + weights.lead_time * days / scale
            if points < best_points:
                best, best_points = (option, fee, days), points
        part = None
        if best is not None:
            drawn: dict[int, int] = {}
            for line, count in taken:
                for sku, per_unit in line.components.items():
                    drawn[sku] = drawn.get(sku, 0) + count * per_unit
            health = stock_health_term(
                candidate.node.id, candidate.available, drawn, self.request.daily_sales, profile.target_cover_days
            )
            part = _PartScore(best[0], best[1], weight, units, health, best[2])
        self._parts[key] = part
        return part

    def candidate_scores(self, index: int) -> CriterionScores:
        """The candidate's own scores, for the trace: its node terms, its cheapest parcel for the whole
        order, its fastest delivery, and the stock health of shipping what it holds of the order."""
        candidate, profile = self.candidates[index], self.profile
        drawn = {sku: min(need, candidate.available.get(sku, 0)) for sku, need in self.needs.items()}
        health = stock_health_term(
            candidate.node.id, candidate.available, drawn, self.request.daily_sales, profile.target_cover_days
        )
        return score(
            profile,
            distance=candidate.distance_term,
            cost=self.parcel_cost[index] / self.reference_cost,
            lead_time=(candidate.handover_days + candidate.options[0].transit_days) / profile.lead_time_scale_days,
            stock_health=health,
            load=candidate.load_term,
            priority=candidate.priority_term,
            shipments=1,
        )

    def alone(self, index: int) -> Taken:
        """What the candidate would ship of the order on its own."""
        candidate = self.candidates[index]
        if candidate.covers_order:
            return tuple((line, line.quantity) for line in self.lines)
        return tuple(fill(self.lines, [candidate.available])[0][0])


def _floors(options: Sequence[CarrierOption], weight_grams: int, steps: int) -> tuple[float, float, float]:
    """The cheapest parcel of ``weight_grams`` (inf when too heavy for all), first 500 g, extra 500 g."""
    whole = first = extra = math.inf
    for option in options:
        if _carries(option, weight_grams):
            whole = min(whole, option.first_fee + option.extra_fee * steps)
        first = min(first, option.first_fee)
        extra = min(extra, option.extra_fee)
    return whole, first, extra


def _carries(option: CarrierOption, weight_grams: int) -> bool:
    return option.max_weight_grams is None or weight_grams <= option.max_weight_grams
