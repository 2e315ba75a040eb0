"""Properties of the routing engine (``decide``) over drawn requests, profiles and moments."""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from hypothesis import assume, given
from hypothesis import strategies as st

from ordermesh.domain.geo import haversine_km
from ordermesh.domain.routing import (
    Candidate,
    Destination,
    LineDemand,
    Node,
    PlanOutcome,
    RoutingDecision,
    RoutingProfile,
    RoutingRequest,
    ScoreWeights,
    SplitPolicy,
    decide,
    load_default_rate_cards,
    next_handover,
)
from tests.strategies import EngineProblem, coordinates, decision_moments, engine_problems

CARDS = load_default_rate_cards()


def _decide(problem: EngineProblem) -> RoutingDecision:
    return decide(problem.request, problem.profile, now=problem.now)


@given(engine_problems())
def test_a_chosen_plan_never_violates_a_hard_constraint(problem: EngineProblem) -> None:
    request, profile = problem.request, problem.profile
    decision = _decide(problem)
    shipments = decision.plan.shipments
    nodes = {node.id: node for node in request.nodes}
    may_split = profile.split.allowed and request.channel not in profile.split.channels_without_split
    assert len(shipments) <= (profile.split.max_shipments if may_split else 1)
    assert len({s.node_id for s in shipments}) == len(shipments)
    for shipment in shipments:
        node = nodes[shipment.node_id]
        assert node.active
        assert node.code not in profile.excluded_nodes
        assert node.channels is None or request.channel in node.channels
        if profile.enforce_capacity and node.daily_capacity is not None:
            assert request.assigned_today.get(node.id, 0) < node.daily_capacity
        if profile.max_distance_km is not None and shipment.distance_km is not None:
            assert shipment.distance_km <= profile.max_distance_km
        handover = next_handover(node.calendar, problem.now)
        assert handover is not None
        assert shipment.handover_at == handover
        if request.ship_by is not None:
            # On time, or routed late and marked so: the built-in fallback (ADR 0006) routes an order
            # that no node can hand over in time rather than holding it, and says so.
            assert shipment.late == (handover > request.ship_by)
        if request.deliver_by is not None and not shipment.late:
            assert shipment.estimated_delivery_at <= request.deliver_by
        assert shipment.carrier not in profile.excluded_carriers
        card = next(c for c in CARDS.cards_for("VN") if c.carrier == shipment.carrier)
        assert shipment.zone in card.rates  # the carrier serves the route
        assert card.max_weight_grams is None or shipment.weight_grams <= card.max_weight_grams
        assert shipment.cost == card.rates[shipment.zone].fee(shipment.weight_grams)


@given(engine_problems())
def test_a_plan_never_reserves_more_than_is_available(problem: EngineProblem) -> None:
    request = problem.request
    decision = _decide(problem)
    components = {line.line_id: line.components for line in request.lines}
    wanted = {line.line_id: line.quantity for line in request.lines}
    drawn: dict[tuple[int, int], int] = defaultdict(int)
    assigned: dict[int, int] = defaultdict(int)
    for assignment in decision.plan.assignments:
        assert assignment.quantity > 0
        assigned[assignment.line_id] += assignment.quantity
        for sku, per_unit in components[assignment.line_id].items():
            drawn[(assignment.node_id, sku)] += assignment.quantity * per_unit
    for key, units in drawn.items():
        assert units <= max(request.stock.get(key, 0), 0), key
    for line_id, units in assigned.items():
        assert units <= wanted[line_id]
    complete = sum(assigned.values()) == sum(wanted.values())
    assert (decision.plan.outcome in {PlanOutcome.SINGLE_NODE, PlanOutcome.SPLIT}) == (complete and bool(assigned))


@given(engine_problems())
def test_the_trace_accounts_for_every_node_once(problem: EngineProblem) -> None:
    decision = _decide(problem)
    listed = [c.node.id for c in decision.trace.candidates] + [e.node_id for e in decision.trace.excluded]
    if any(line.quantity for line in problem.request.lines):
        assert sorted(listed) == sorted(node.id for node in problem.request.nodes)
    assert decision.trace.to_dict()["profile_version"] == problem.profile.version


@given(
    first=coordinates,
    second=coordinates,
    destination=coordinates,
    now=decision_moments(),
    quantity=st.integers(min_value=1, max_value=4),
)
def test_of_identical_nodes_the_nearer_one_wins(
    first: tuple[float, float],
    second: tuple[float, float],
    destination: tuple[float, float],
    now: object,
    quantity: int,
) -> None:
    near, far = sorted([first, second], key=lambda p: haversine_km(*p, *destination))
    assume(haversine_km(*far, *destination) - haversine_km(*near, *destination) > 1e-3)
    # Same province (so the same rate zone), same stock, same everything: only distance differs. The
    # farther node gets the lower id and the earlier code, so only distance can pick the nearer one.
    nodes = (
        Node(1, "A", *far, country="VN", province="Đà Nẵng"),
        Node(2, "B", *near, country="VN", province="Đà Nẵng"),
    )
    request = RoutingRequest(
        lines=(LineDemand(10, quantity, {1: 1}), LineDemand(11, 1, {1: 2, 2: 1})),
        nodes=nodes,
        stock={(1, 1): 9, (1, 2): 9, (2, 1): 9, (2, 2): 9},
        destination=Destination(*destination, province="Hồ Chí Minh", country="VN"),
        daily_sales={(1, 1): 1.0, (2, 1): 1.0},
    )
    decision = decide(request, RoutingProfile(), now=now)  # type: ignore[arg-type]
    assert decision.plan.outcome is PlanOutcome.SINGLE_NODE
    assert decision.plan.node_ids == [2]


def _feasible_sets(
    request: RoutingRequest, candidates: tuple[Candidate, ...], largest: int
) -> list[tuple[Candidate, ...]]:
    """Every set of up to ``largest`` candidates that together hold every unit (plain SKUs: a sum per SKU)."""
    needs: dict[int, int] = defaultdict(int)
    for line in request.lines:
        for sku, per_unit in line.components.items():
            needs[sku] += line.quantity * per_unit
    return [
        nodes
        for size in range(1, largest + 1)
        for nodes in combinations(candidates, size)
        if all(sum(c.available.get(sku, 0) for c in nodes) >= units for sku, units in needs.items())
    ]


@given(engine_problems(plain_skus=True, plain_nodes=True, covered=True))
def test_with_no_split_penalty_the_plan_costs_the_least_possible(problem: EngineProblem) -> None:
    # Parcels of at most 500 g cost each carrier's first-500 g fee, whatever the split.
    request = RoutingRequest(**{**_fields(problem.request), "total_weight_grams": 500})
    profile = RoutingProfile(
        weights=ScoreWeights(distance=0, cost=1, lead_time=0, stock_health=0, load=0, priority=0),
        split=SplitPolicy(penalty=0.0, max_shipments=3),
    )
    decision = decide(request, profile, now=problem.now)
    feasible = _feasible_sets(request, decision.trace.candidates, 3)
    assume(feasible and any(line.quantity for line in request.lines))
    cheapest = min(sum(min(o.rate.first_500g for o in c.options) for c in nodes) for nodes in feasible)
    assert decision.plan.outcome in {PlanOutcome.SINGLE_NODE, PlanOutcome.SPLIT}
    assert decision.plan.total_cost == cheapest


@given(engine_problems(plain_skus=True, plain_nodes=True, covered=True))
def test_with_a_large_split_penalty_the_plan_ships_in_the_fewest_parcels(problem: EngineProblem) -> None:
    profile = RoutingProfile(split=SplitPolicy(penalty=1_000_000.0, max_shipments=3))
    decision = decide(problem.request, profile, now=problem.now)
    feasible = _feasible_sets(problem.request, decision.trace.candidates, 3)
    assume(feasible and any(line.quantity for line in problem.request.lines))
    assert len(decision.plan.shipments) == min(len(nodes) for nodes in feasible)


def _fields(request: RoutingRequest) -> dict[str, object]:
    return {name: getattr(request, name) for name in RoutingRequest.__dataclass_fields__}
