"""What the engine decides, and the trace that explains it.

``RoutingDecision.plan`` holds the shipments (node, carrier service, cost, delivery estimate, and the
line quantities each ships); ``RoutingDecision.trace`` holds everything needed to explain the choice
later: every candidate with its scores, every excluded node with the constraint it failed, the plans
weighed, and the profile version. ``to_dict`` of either is JSON-ready (money as strings).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ordermesh.domain.routing.constraints import Candidate, Exclusion
from ordermesh.domain.routing.model import Assignment
from ordermesh.domain.routing.nearest_first import RoutingPlan
from ordermesh.domain.routing.places import Place
from ordermesh.domain.routing.planner import Planner
from ordermesh.domain.routing.rate_cards import CarrierOption, Zone
from ordermesh.domain.routing.scoring import CriterionScores
from ordermesh.domain.routing.search import ConsideredPlan


class PlanOutcome(StrEnum):
    SINGLE_NODE = "single_node"  # one node ships every open unit
    SPLIT = "split"  # several nodes together ship every open unit
    PARTIAL = "partial"  # some units ship now; the rest waits for stock
    NONE = "none"  # nothing ships now (nothing to route, no candidate, or the policy holds the order)


@dataclass(frozen=True, slots=True)
class Shipment:
    node_id: int
    node_code: str
    assignments: tuple[Assignment, ...]
    carrier: str
    service: str
    cost: Decimal
    currency: str
    lead_days: int  # carrier working days from handover to delivery
    weight_grams: int
    zone: Zone
    handover_at: datetime  # node local time
    estimated_delivery_at: datetime  # node local time
    distance_km: float | None
    late: bool  # handed over after ship-by (only with the ROUTE_LATE fallback)
    priced_by: str = "rate_card"  # "live_quote" when the carrier's own quote priced it

    @property
    def units(self) -> int:
        return sum(a.quantity for a in self.assignments)

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_id": self.node_id,
            "node_code": self.node_code,
            "assignments": [
                {"line_id": a.line_id, "node_id": a.node_id, "quantity": a.quantity} for a in self.assignments
            ],
            "carrier": self.carrier,
            "service": self.service,
            "cost": str(self.cost),
            "currency": self.currency,
            "lead_days": self.lead_days,
            "weight_grams": self.weight_grams,
            "zone": self.zone.value,
            "handover_at": self.handover_at.isoformat(),
            "estimated_delivery_at": self.estimated_delivery_at.isoformat(),
            "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
            "late": self.late,
            "priced_by": self.priced_by,
        }


@dataclass(frozen=True, slots=True)
class ShippingPlan:
    outcome: PlanOutcome
    shipments: tuple[Shipment, ...]
    scores: CriterionScores | None  # None when nothing ships

    @property
    def assignments(self) -> tuple[Assignment, ...]:
        return tuple(a for shipment in self.shipments for a in shipment.assignments)

    @property
    def node_ids(self) -> list[int]:
        return sorted({s.node_id for s in self.shipments})

    @property
    def total_cost(self) -> Decimal:
        return sum((s.cost for s in self.shipments), Decimal(0))

    @property
    def currency(self) -> str | None:
        return self.shipments[0].currency if self.shipments else None

    @property
    def estimated_delivery_at(self) -> datetime | None:
        """When the last parcel arrives."""
        return max((s.estimated_delivery_at for s in self.shipments), default=None)

    def reserved_units(self) -> int:
        return sum(s.units for s in self.shipments)

    def to_dict(self) -> dict[str, Any]:
        delivery = self.estimated_delivery_at
        return {
            "outcome": self.outcome.value,
            "shipments": [s.to_dict() for s in self.shipments],
            "total_cost": str(self.total_cost),
            "currency": self.currency,
            "estimated_delivery_at": delivery.isoformat() if delivery else None,
            "scores": self.scores.to_dict() if self.scores else None,
        }


@dataclass(frozen=True, slots=True)
class RoutingTrace:
    """Why the plan is what it is. ``candidates`` are ranked by their bound (the least score a plan
    shipping from them alone could have); ``candidate_scores`` gives each candidate's own value on
    every criterion (computed on demand, from what the search already knows)."""

    profile_name: str
    profile_version: int
    decided_at: datetime
    order_reference: str
    destination: Place
    candidates: tuple[Candidate, ...]
    excluded: tuple[Exclusion, ...]
    plans: tuple[ConsideredPlan, ...]  # every plan scored, best first
    sla_fallback_used: bool
    rate_card_source: str
    reference_cost: float | None  # the cheapest one-parcel quote: cost scores are multiples of it
    _planner: Planner | None = field(default=None, repr=False, compare=False)
    _ranked: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def candidate_scores(self) -> tuple[CriterionScores, ...]:
        """Each candidate's own scores, in rank order (see ``Planner.candidate_scores``)."""
        planner = self._planner
        return tuple(planner.candidate_scores(i) for i in self._ranked) if planner else ()

    def to_dict(self, *, max_plans: int = 5) -> dict[str, Any]:
        # Nodes on one route share their options, and nodes with one calendar their handover.
        carriers: dict[int, list[dict[str, Any]]] = {}
        moments: dict[int, str] = {}
        candidates = []
        for candidate, scores in zip(self.candidates, self.candidate_scores(), strict=True):
            options = carriers.get(id(candidate.options))
            if options is None:
                options = carriers[id(candidate.options)] = [_option_to_dict(o, moments) for o in candidate.options]
            handover = _isoformat(candidate.handover_at, moments)
            candidates.append(_candidate_to_dict(candidate, handover, options, scores))
        return {
            "order_reference": self.order_reference,
            "profile": {"name": self.profile_name, "version": self.profile_version},
            "profile_version": self.profile_version,
            "decided_at": self.decided_at.isoformat(),
            "destination": self.destination.to_dict(),
            "reference_cost": self.reference_cost,
            "candidates": candidates,
            "excluded": [e.to_dict() for e in self.excluded],
            "plans_considered": len(self.plans),
            "best_plans": [p.to_dict() for p in self.plans[:max_plans]],
            "sla_fallback_used": self.sla_fallback_used,
            "rate_card_source": self.rate_card_source,
        }


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    plan: ShippingPlan
    trace: RoutingTrace
    explanation: str

    @property
    def assignments(self) -> tuple[Assignment, ...]:
        return self.plan.assignments

    def to_dict(self) -> dict[str, Any]:
        return {"explanation": self.explanation, "plan": self.plan.to_dict(), "trace": self.trace.to_dict()}

    def to_routing_plan(self) -> RoutingPlan:
        """The decision in routing v1's shape (``rule``: single_node, fewest_nodes, partial, none), for
        callers that record v1 plans."""
        rule = "fewest_nodes" if self.plan.outcome is PlanOutcome.SPLIT else self.plan.outcome.value
        distances = {c.node.id: c.distance_km for c in self.trace.candidates}
        return RoutingPlan(self.plan.assignments, rule, self.explanation, distances)


def _candidate_to_dict(
    candidate: Candidate, handover: str, carriers: list[dict[str, Any]], scores: CriterionScores
) -> dict[str, Any]:
    return {
        "node_id": candidate.node.id,
        "code": candidate.node.code,
        "distance_km": None if candidate.distance_km is None else round(candidate.distance_km, 3),
        "distance_basis": candidate.place.coordinates_basis.value,
        "zone": candidate.zone.value,
        "handover_at": handover,
        "late": candidate.late,
        "covers_order": candidate.covers_order,
        "available": {str(sku): units for sku, units in sorted(candidate.available.items())},
        "carriers": carriers,
        "scores": scores.to_dict(),
    }


def _option_to_dict(option: CarrierOption, moments: dict[int, str]) -> dict[str, Any]:
    return {
        "carrier": option.card.carrier,
        "service": option.card.service,
        "lead_days": option.rate.lead_days,
        "estimated_delivery_at": _isoformat(option.delivery_at, moments),
        "priced_by": "live_quote" if option.card.quoted else "rate_card",
        **({"quoted_fee": str(option.rate.first_500g)} if option.card.quoted else {}),
    }


def _isoformat(moment: datetime, memo: dict[int, str]) -> str:
    """``moment.isoformat()``, once per object (handovers and deliveries are shared by many nodes)."""
    text = memo.get(id(moment))
    if text is None:
        text = memo[id(moment)] = moment.isoformat()
    return text
