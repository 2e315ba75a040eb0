"""The routing engine: ``decide`` picks the node(s), carriers and quantities for one order.

    request ──> hard constraints (constraints.py: calendar.py, places.py, rate_cards.py)
            ──> candidates ──> ranking and plan search (search.py; plans scored by planner.py
                with the criteria of scoring.py) ──> decision + trace (decision.py)

Pure and deterministic: the same request, profile and ``now`` always give the same decision (the
memos along the way only remember answers). The caller owns the state it reads (stock, today's
assignments) and applies the plan it gets back.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from ordermesh.domain.routing.constraints import Exclusion, assess_nodes, can_route_late
from ordermesh.domain.routing.decision import (
    PlanOutcome,
    RoutingDecision,
    RoutingTrace,
    Shipment,
    ShippingPlan,
)
from ordermesh.domain.routing.model import Assignment, LineDemand
from ordermesh.domain.routing.places import locate_destination
from ordermesh.domain.routing.planner import Planner, PlanOption
from ordermesh.domain.routing.profile import RoutingProfile
from ordermesh.domain.routing.rate_cards import load_default_rate_cards
from ordermesh.domain.routing.request import RoutingRequest
from ordermesh.domain.routing.search import SearchResult, search_plans

DEFAULT_PROFILE = RoutingProfile()


def decide(request: RoutingRequest, profile: RoutingProfile = DEFAULT_PROFILE, *, now: datetime) -> RoutingDecision:
    """Route one order. ``now`` (timezone-aware) is when the decision is made: handovers and delivery
    estimates count from it."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    rate_cards = request.rate_cards or load_default_rate_cards()
    destination = locate_destination(request.destination)
    lines = [line for line in request.lines if line.quantity > 0]
    candidates, excluded = assess_nodes(request, profile, destination, lines, now, rate_cards)
    fallback = bool(lines) and can_route_late(profile, candidates, excluded)
    if fallback:
        candidates, excluded = assess_nodes(request, profile, destination, lines, now, rate_cards, allow_late=True)
    max_shipments = profile.split.max_shipments if profile.allows_split(request.channel) else 1
    planner = Planner(request, profile, lines, candidates, now) if lines and candidates else None
    result = search_plans(planner, max_shipments=max_shipments) if planner else SearchResult(None, (), ())
    plan = _plan(result.best, request)
    trace = RoutingTrace(
        profile_name=profile.name,
        profile_version=profile.version,
        decided_at=now,
        order_reference=request.order_reference,
        destination=destination,
        candidates=tuple(candidates[i] for i in result.ranked),
        excluded=tuple(excluded),
        plans=result.considered,
        sla_fallback_used=fallback,
        rate_card_source=rate_cards.source,
        reference_cost=planner.reference_cost if planner else None,
        _planner=planner,
        _ranked=result.ranked,
    )
    return RoutingDecision(plan, trace, _explain(plan, result, excluded, lines, fallback))


def _plan(best: PlanOption | None, request: RoutingRequest) -> ShippingPlan:
    if best is None:
        return ShippingPlan(PlanOutcome.NONE, (), None)
    position = {line.line_id: index for index, line in enumerate(request.lines)}
    shipments = []
    for part in best.parts:
        node, option = part.candidate.node, part.option
        taken = sorted(part.taken, key=lambda entry: position[entry[0].line_id])
        shipments.append(
            Shipment(
                node_id=node.id,
                node_code=node.code,
                assignments=tuple(Assignment(line.line_id, node.id, count) for line, count in taken),
                carrier=option.card.carrier,
                service=option.card.service,
                cost=option.rate.fee(part.weight_grams),
                currency=option.card.currency,
                lead_days=option.rate.lead_days,
                weight_grams=part.weight_grams,
                zone=part.candidate.zone,
                handover_at=part.candidate.handover_at,
                estimated_delivery_at=option.delivery_at,
                distance_km=part.candidate.distance_km,
                late=part.candidate.late,
                priced_by="live_quote" if option.card.quoted else "rate_card",
            )
        )
    if not best.complete:
        outcome = PlanOutcome.PARTIAL
    else:
        outcome = PlanOutcome.SINGLE_NODE if len(shipments) == 1 else PlanOutcome.SPLIT
    return ShippingPlan(outcome, tuple(shipments), best.scores)


def _explain(
    plan: ShippingPlan,
    result: SearchResult,
    excluded: list[Exclusion],
    lines: list[LineDemand],
    fallback: bool,
) -> str:
    wanted = sum(line.quantity for line in lines)
    late = " (late: no node can hand over before ship-by)" if fallback else ""
    codes = ", ".join(s.node_code for s in plan.shipments)
    if plan.outcome is PlanOutcome.SINGLE_NODE:
        return (
            f"{codes} ships everything (score {plan.scores.total:.3f}, best of "  # type: ignore[union-attr]
            f"{len(result.considered)} plans scored, {len(result.ranked)} candidates){late}"
        )
    if plan.outcome is PlanOutcome.SPLIT:
        singles = [p for p in result.considered if p.complete and len(p.node_codes) == 1]
        versus = (
            f"beats the best single node {singles[0].node_codes[0]} ({singles[0].scores.total:.3f})"
            if singles
            else "no single node has everything"
        )
        return f"{codes} together ship everything (score {plan.scores.total:.3f}); {versus}{late}"  # type: ignore[union-attr]
    if plan.outcome is PlanOutcome.PARTIAL:
        return f"{plan.reserved_units()} of {wanted} units can ship now from {codes}; the rest waits{late}"
    if not lines:
        return "nothing left to route"
    if result.ranked:
        return "no plan ships everything and the profile does not allow partial plans"
    reasons = Counter(e.reason.value for e in excluded)
    summary = ", ".join(f"{reason}: {count}" for reason, count in sorted(reasons.items()))
    return f"no candidate node ({summary})" if summary else "no nodes to route to"
