"""The routing engine (``decide``), scenario by scenario. Each test name states the rule.

Unless a test says otherwise: it is Thursday 2026-11-26, 10:00 in Ho Chi Minh City (03:00 UTC); nodes
hand over at 17:00 local, Monday to Saturday; the order goes to Ho Chi Minh City; the default
(illustrative) rate cards price it.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.geo import haversine_km
from ordermesh.domain.routing import (
    MONDAY_TO_SATURDAY,
    Assignment,
    Destination,
    ExclusionReason,
    LineDemand,
    Node,
    NodeCalendar,
    PlanOutcome,
    RoutingDecision,
    RoutingProfile,
    RoutingRequest,
    ScoreWeights,
    SlaFallback,
    SplitPolicy,
    Zone,
    decide,
    locate_province,
    profile_from_dict,
)
from ordermesh.domain.routing.places import locate
from ordermesh.domain.routing.scoring import distance_term, load_term, priority_term

NOW = datetime(2026, 11, 26, 3, tzinfo=UTC)
SHIFT = NodeCalendar("Asia/Ho_Chi_Minh", time(17), MONDAY_TO_SATURDAY)
TO_HCMC = Destination(10.80, 106.72, "Hồ Chí Minh", "VN")
COST_ONLY = ScoreWeights(distance=0, cost=1, lead_time=0, stock_health=0, load=0, priority=0)
SKU_1, SKU_2, SKU_3 = 1, 2, 3


def _node(node_id: int, code: str, province: str = "Hồ Chí Minh", **fields: Any) -> Node:
    place = locate_province(province, "VN")
    assert place is not None
    fields.setdefault("calendar", SHIFT)
    return Node(node_id, code, place.latitude, place.longitude, country="VN", province=province, **fields)


def _line(line_id: int, quantity: int, sku: int, *, unit_weight: int | None = None) -> LineDemand:
    return LineDemand(line_id, quantity, {sku: 1}, unit_weight)


def _route(
    lines: list[LineDemand],
    nodes: list[Node],
    stock: dict[tuple[int, int], int],
    profile: RoutingProfile | None = None,
    **request_fields: Any,
) -> RoutingDecision:
    request_fields.setdefault("destination", TO_HCMC)
    request = RoutingRequest(lines=tuple(lines), nodes=tuple(nodes), stock=stock, **request_fields)
    return decide(request, profile or RoutingProfile(), now=NOW)


def _reasons(decision: RoutingDecision) -> dict[str, ExclusionReason]:
    return {e.node_code: e.reason for e in decision.trace.excluded}


# --- one node or several ----------------------------------------------------------------------------

# A 3 kg order: Hanoi has everything (far zone, cheapest 53,000 VND with ninjavan); two Saigon nodes
# have one SKU each (two 1.5 kg same-province parcels, 21,000 VND each with ghtk: 42,000 VND).
# The cheapest one-parcel quote for the whole order is 28,500 VND (ghtk, same province, 3 kg), so
# the split saves 11,000 / 28,500 = 0.386 points.
SPLIT_LINES = [_line(10, 1, SKU_1), _line(11, 1, SKU_2)]
SPLIT_NODES = [_node(1, "HAN", "Hà Nội"), _node(2, "SGN-A"), _node(3, "SGN-B")]
SPLIT_STOCK = {(1, SKU_1): 5, (1, SKU_2): 5, (2, SKU_1): 5, (3, SKU_2): 5}


def test_prefers_single_node_over_cheaper_split() -> None:
    profile = RoutingProfile(weights=COST_ONLY, split=SplitPolicy(penalty=0.5))
    decision = _route(SPLIT_LINES, SPLIT_NODES, SPLIT_STOCK, profile, total_weight_grams=3000)
    assert decision.plan.outcome is PlanOutcome.SINGLE_NODE
    assert decision.plan.node_ids == [1]
    assert decision.plan.total_cost == Decimal("53000")
    assert [(s.carrier, s.zone) for s in decision.plan.shipments] == [("ninjavan", Zone.FAR)]
    assert decision.plan.scores is not None
    assert decision.plan.scores.total == pytest.approx(53000 / 28500)  # the split would score 42000 / 28500 + 0.5


def test_splits_when_the_saving_beats_the_split_penalty() -> None:
    profile = RoutingProfile(weights=COST_ONLY, split=SplitPolicy(penalty=0.3))
    decision = _route(SPLIT_LINES, SPLIT_NODES, SPLIT_STOCK, profile, total_weight_grams=3000)
    assert decision.plan.outcome is PlanOutcome.SPLIT
    assert decision.plan.assignments == (Assignment(10, 2, 1), Assignment(11, 3, 1))
    assert [(s.carrier, s.cost, s.weight_grams) for s in decision.plan.shipments] == [
        ("ghtk", Decimal("21000"), 1500),
        ("ghtk", Decimal("21000"), 1500),
    ]
    assert decision.explanation == (
        "SGN-A, SGN-B together ship everything (score 1.774); beats the best single node HAN (1.860)"
    )
    assert [(p.node_codes, round(p.scores.total, 6)) for p in decision.trace.plans] == [
        (("SGN-A", "SGN-B"), round(42000 / 28500 + 0.3, 6)),
        (("HAN",), round(53000 / 28500, 6)),
    ]


def test_splits_when_no_single_node_has_everything() -> None:
    stock = {(2, SKU_1): 5, (3, SKU_2): 5}
    decision = _route(SPLIT_LINES, SPLIT_NODES, stock)
    assert decision.plan.outcome is PlanOutcome.SPLIT
    assert decision.plan.node_ids == [2, 3]
    assert decision.explanation.endswith("; no single node has everything")


def test_engine_finds_the_pair_that_routing_v1_misses_because_of_line_order() -> None:
    # The strict xfail in test_routing.py: line 10 needs SKU 1, the bundle needs SKUs 1 and 2.
    lines = [_line(10, 1, SKU_1), LineDemand(11, 1, {SKU_1: 1, SKU_2: 1})]
    stock = {(1, SKU_1): 1, (1, SKU_2): 1, (2, SKU_1): 1}
    nodes = [_node(1, "SGN"), _node(2, "VCA", "Cần Thơ")]
    decision = _route(lines, nodes, stock)
    assert sorted(decision.plan.assignments, key=lambda a: a.line_id) == [Assignment(10, 2, 1), Assignment(11, 1, 1)]


def test_bundle_units_come_whole_from_one_node() -> None:
    kit = LineDemand(10, 1, {SKU_1: 2, SKU_2: 1})
    stock = {(1, SKU_1): 9, (2, SKU_2): 9}  # SKU 1 only at one node, SKU 2 only at the other
    decision = _route([kit], [_node(1, "SGN-A"), _node(2, "SGN-B")], stock)
    assert decision.plan.outcome is PlanOutcome.NONE
    assert _reasons(decision) == {"SGN-A": ExclusionReason.NO_STOCK, "SGN-B": ExclusionReason.NO_STOCK}


def test_max_shipments_caps_the_split_and_the_rest_waits() -> None:
    lines = [_line(10, 1, SKU_1), _line(11, 1, SKU_2), _line(12, 1, SKU_3)]
    nodes = [_node(1, "A"), _node(2, "B"), _node(3, "C")]
    stock = {(1, SKU_1): 1, (2, SKU_2): 1, (3, SKU_3): 1}
    capped = _route(lines, nodes, stock, RoutingProfile(split=SplitPolicy(max_shipments=2)))
    assert capped.plan.outcome is PlanOutcome.PARTIAL
    assert len(capped.plan.shipments) == 2
    assert capped.explanation == "2 of 3 units can ship now from A, B; the rest waits"
    full = _route(lines, nodes, stock, RoutingProfile(split=SplitPolicy(max_shipments=3)))
    assert full.plan.outcome is PlanOutcome.SPLIT
    assert full.plan.node_ids == [1, 2, 3]


def test_channel_that_forbids_splitting_ships_from_one_node() -> None:
    profile = RoutingProfile(split=SplitPolicy(channels_without_split=frozenset({"tiktok"})))
    stock = {(2, SKU_1): 5, (3, SKU_2): 5}
    lines = [_line(10, 2, SKU_1), _line(11, 1, SKU_2)]
    on_tiktok = _route(lines, SPLIT_NODES, stock, profile, channel="tiktok")
    assert on_tiktok.plan.outcome is PlanOutcome.PARTIAL
    assert on_tiktok.plan.assignments == (Assignment(10, 2, 2),)  # the node that ships the most units
    on_shopee = _route(lines, SPLIT_NODES, stock, profile, channel="shopee")
    assert on_shopee.plan.outcome is PlanOutcome.SPLIT


def test_no_partial_plan_when_the_profile_forbids_it() -> None:
    profile = RoutingProfile(split=SplitPolicy(allowed=False, allow_partial=False))
    decision = _route([_line(10, 3, SKU_1)], [_node(1, "A"), _node(2, "B")], {(1, SKU_1): 2, (2, SKU_1): 2}, profile)
    assert decision.plan.outcome is PlanOutcome.NONE
    assert _reasons(decision) == {"A": ExclusionReason.INSUFFICIENT_STOCK, "B": ExclusionReason.INSUFFICIENT_STOCK}
    assert decision.explanation == "no candidate node (insufficient_stock: 2)"


def test_partial_plan_reserves_what_exists_and_never_more() -> None:
    decision = _route([_line(10, 6, SKU_1)], [_node(1, "A"), _node(2, "B")], {(1, SKU_1): 2, (2, SKU_1): 1})
    assert decision.plan.outcome is PlanOutcome.PARTIAL
    assert sorted(decision.plan.assignments, key=lambda a: a.node_id) == [Assignment(10, 1, 2), Assignment(10, 2, 1)]


# --- hard constraints -------------------------------------------------------------------------------


def test_skips_node_past_cutoff_when_sla_would_breach() -> None:
    early = _node(1, "SGN-EARLY", calendar=NodeCalendar("Asia/Ho_Chi_Minh", time(9), MONDAY_TO_SATURDAY))
    later = _node(2, "VCA", "Cần Thơ")  # farther, but still hands over today at 17:00
    ship_by = datetime(2026, 11, 26, 12, tzinfo=UTC)  # 19:00 local
    decision = _route([_line(10, 1, SKU_1)], [early, later], {(1, SKU_1): 5, (2, SKU_1): 5}, ship_by=ship_by)
    assert decision.plan.node_ids == [2]
    [excluded] = decision.trace.excluded
    assert (excluded.node_code, excluded.reason) == ("SGN-EARLY", ExclusionReason.SLA_BREACH)
    assert excluded.detail == "next handover 2026-11-27T09:00:00+07:00 is after ship-by 2026-11-26T12:00:00+00:00"


def test_skips_node_closed_today_when_sla_would_breach() -> None:
    closed = replace(SHIFT, closed_dates=frozenset({date(2026, 11, 26)}))
    nodes = [_node(1, "SGN-CLOSED", calendar=closed), _node(2, "VCA", "Cần Thơ")]
    ship_by = datetime(2026, 11, 26, 23, tzinfo=UTC)
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, ship_by=ship_by)
    assert decision.plan.node_ids == [2]
    assert _reasons(decision) == {"SGN-CLOSED": ExclusionReason.SLA_BREACH}


def test_prefers_the_node_that_hands_over_sooner() -> None:
    tomorrow = _node(1, "A", calendar=NodeCalendar("Asia/Ho_Chi_Minh", time(9), MONDAY_TO_SATURDAY))
    today = _node(2, "B")
    decision = _route([_line(10, 1, SKU_1)], [tomorrow, today], {(1, SKU_1): 5, (2, SKU_1): 5})
    assert decision.plan.node_ids == [2]
    assert decision.plan.shipments[0].handover_at.isoformat() == "2026-11-26T17:00:00+07:00"


def test_without_the_late_fallback_an_order_no_node_can_make_waits() -> None:
    ship_by = NOW - timedelta(hours=1)
    profile = RoutingProfile(sla_fallback=SlaFallback.HOLD)
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, ship_by=ship_by)
    assert decision.plan.outcome is PlanOutcome.NONE
    assert decision.explanation == "no candidate node (sla_breach: 1)"


def test_late_fallback_still_ships_when_no_node_can_make_ship_by() -> None:
    profile = RoutingProfile()  # routing late is the default: a late parcel beats one that never leaves
    ship_by = NOW - timedelta(hours=1)
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, ship_by=ship_by)
    assert decision.plan.outcome is PlanOutcome.SINGLE_NODE
    assert decision.plan.shipments[0].late is True
    assert decision.trace.sla_fallback_used is True
    assert decision.explanation.endswith("(late: no node can hand over before ship-by)")


def test_inactive_node_is_never_a_candidate() -> None:
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A", active=False)], {(1, SKU_1): 5})
    assert decision.plan.outcome is PlanOutcome.NONE
    assert _reasons(decision) == {"A": ExclusionReason.NODE_INACTIVE}


def test_node_that_does_not_serve_the_channel_is_never_a_candidate() -> None:
    nodes = [_node(1, "WEB-ONLY", channels=frozenset({"shopify"})), _node(2, "ANY", "Cần Thơ")]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, channel="shopee")
    assert decision.plan.node_ids == [2]
    [excluded] = decision.trace.excluded
    assert (excluded.reason, excluded.detail) == (
        ExclusionReason.CHANNEL_NOT_ALLOWED,
        "does not ship for channel 'shopee'",
    )


def test_profile_can_exclude_a_node() -> None:
    profile = RoutingProfile(name="no-3pl", version=4, excluded_nodes=frozenset({"3PL"}))
    nodes = [_node(1, "3PL"), _node(2, "OWN", "Cần Thơ")]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, profile)
    assert decision.plan.node_ids == [2]
    assert [e.detail for e in decision.trace.excluded] == ["profile 'no-3pl' v4 excludes it"]


def test_node_whose_day_is_full_is_not_a_candidate() -> None:
    nodes = [_node(1, "FULL", daily_capacity=100), _node(2, "VCA", "Cần Thơ")]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, assigned_today={1: 100})
    assert decision.plan.node_ids == [2]
    assert [(e.reason, e.detail) for e in decision.trace.excluded] == [
        (ExclusionReason.CAPACITY_FULL, "100 of 100 orders assigned today")
    ]


def test_full_node_is_used_when_the_profile_does_not_enforce_capacity() -> None:
    profile = RoutingProfile(enforce_capacity=False)
    decision = _route(
        [_line(10, 1, SKU_1)], [_node(1, "FULL", daily_capacity=100)], {(1, SKU_1): 5}, profile, assigned_today={1: 100}
    )
    assert decision.plan.node_ids == [1]


def test_node_farther_than_the_profiles_limit_is_not_a_candidate() -> None:
    profile = RoutingProfile(max_distance_km=500)
    nodes = [_node(1, "HAN", "Hà Nội"), _node(2, "VCA", "Cần Thơ")]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, profile)
    assert decision.plan.node_ids == [2]
    assert [(e.reason, e.detail) for e in decision.trace.excluded] == [(ExclusionReason.TOO_FAR, "1141 km > 500 km")]


def test_cross_border_route_has_no_carrier() -> None:
    bangkok = Node(1, "BKK", 13.76, 100.50, country="TH", province="Bangkok", calendar=SHIFT)
    decision = _route([_line(10, 1, SKU_1)], [bangkok], {(1, SKU_1): 5})
    assert [(e.reason, e.detail) for e in decision.trace.excluded] == [
        (ExclusionReason.NO_CARRIER, "route TH -> VN has no domestic rate card")
    ]


# --- carriers and cost ------------------------------------------------------------------------------


def test_cheapest_carrier_books_the_parcel_when_cost_is_all_that_counts() -> None:
    profile = RoutingProfile(weights=COST_ONLY)
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, total_weight_grams=400)
    [shipment] = decision.plan.shipments
    assert (shipment.carrier, shipment.service, shipment.cost, shipment.currency) == (
        "ghtk",
        "standard",
        Decimal("16000"),
        "VND",
    )
    assert (shipment.zone, shipment.lead_days) == (Zone.SAME_PROVINCE, 1)


def test_excluded_carrier_is_never_booked() -> None:
    profile = RoutingProfile(weights=COST_ONLY, excluded_carriers=frozenset({"ghtk"}))
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, total_weight_grams=400)
    assert [(s.carrier, s.cost) for s in decision.plan.shipments] == [("ghn", Decimal("16500"))]


@pytest.mark.parametrize(
    ("grams", "carrier", "cost"),
    [
        (25_000, "ghn", Decimal("139000")),  # ghtk carries up to 20 kg
        (40_000, "generic", Decimal("338000")),  # only the generic card carries up to 50 kg
    ],
)
def test_heavy_parcel_goes_only_to_carriers_that_take_its_weight(grams: int, carrier: str, cost: Decimal) -> None:
    profile = RoutingProfile(weights=COST_ONLY)
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, total_weight_grams=grams)
    assert [(s.carrier, s.cost, s.weight_grams) for s in decision.plan.shipments] == [(carrier, cost, grams)]


def test_unit_weights_decide_each_parcels_weight() -> None:
    lines = [_line(10, 2, SKU_1, unit_weight=700), _line(11, 1, SKU_2, unit_weight=300)]
    stock = {(2, SKU_1): 5, (3, SKU_2): 5}
    decision = _route(lines, SPLIT_NODES, stock, total_weight_grams=99_999)  # ignored: lines carry weights
    assert [s.weight_grams for s in decision.plan.shipments] == [1400, 300]


def test_unrecognised_destination_province_is_priced_as_the_far_zone() -> None:
    profile = RoutingProfile(weights=COST_ONLY)
    somewhere = Destination(province="Atlantis", country="VN")
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, profile, destination=somewhere)
    assert [(s.zone, s.carrier, s.cost) for s in decision.plan.shipments] == [(Zone.FAR, "ghtk", Decimal("30000"))]
    assert decision.plan.shipments[0].distance_km is None


def test_address_without_coordinates_is_measured_from_its_provinces_capital() -> None:
    destination = Destination(province="Bình Dương", country="VN")  # now part of Ho Chi Minh City
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5}, destination=destination)
    assert decision.plan.shipments[0].distance_km == 0.0
    assert decision.plan.shipments[0].zone is Zone.SAME_PROVINCE
    assert decision.trace.to_dict()["destination"] == {
        "latitude": 10.78,
        "longitude": 106.7,
        "coordinates_basis": "province_capital",
        "province": "Hồ Chí Minh",
        "region": "south",
        "province_basis": "given",
        "country": "VN",
    }


# --- scoring rules ----------------------------------------------------------------------------------


def test_nearer_of_two_otherwise_identical_nodes_wins() -> None:
    far = Node(1, "A", 10.95, 106.90, country="VN", province="Hồ Chí Minh", calendar=SHIFT)
    near = Node(2, "B", 10.80, 106.73, country="VN", province="Hồ Chí Minh", calendar=SHIFT)
    decision = _route([_line(10, 1, SKU_1)], [far, near], {(1, SKU_1): 5, (2, SKU_1): 5})
    assert decision.plan.node_ids == [2]


def test_load_balancing_prefers_the_emptier_of_two_identical_nodes() -> None:
    nodes = [_node(1, "BUSY", daily_capacity=100), _node(2, "QUIET", daily_capacity=100)]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (2, SKU_1): 5}, assigned_today={1: 90, 2: 10})
    assert decision.plan.node_ids == [2]
    scores = decision.trace.candidate_scores()  # ranked: best first
    assert [round(s.load, 4) for s in scores if s] == [0.0121, 0.8281]  # (11/100)², (91/100)²


def test_stock_health_prefers_the_node_where_stock_is_plentiful() -> None:
    nodes = [_node(1, "SCARCE"), _node(2, "PLENTY")]
    stock = {(1, SKU_1): 3, (2, SKU_1): 40}
    sales = {(1, SKU_1): 1.0, (2, SKU_1): 1.0}
    decision = _route([_line(10, 2, SKU_1)], nodes, stock, daily_sales=sales)
    assert decision.plan.node_ids == [2]
    # SCARCE keeps 1 day of cover (1 - 1/14); PLENTY keeps 38 days, more than the 14-day target.
    scores = decision.trace.candidate_scores()  # ranked: best first
    assert [round(s.stock_health, 4) for s in scores if s] == [0.0, round(1 - 1 / 14, 4)]


def test_profile_priorities_prefer_the_favoured_node() -> None:
    profile = RoutingProfile(weights=replace(ScoreWeights(), priority=1.0), node_priorities={"B": 2})
    decision = _route([_line(10, 1, SKU_1)], [_node(1, "A"), _node(2, "B")], {(1, SKU_1): 5, (2, SKU_1): 5}, profile)
    assert decision.plan.node_ids == [2]


# --- the trace --------------------------------------------------------------------------------------


def test_trace_accounts_for_every_node_exactly_once() -> None:
    nodes = [_node(1, "A"), _node(2, "B", active=False), _node(3, "C"), _node(4, "D", "Hà Nội")]
    decision = _route([_line(10, 1, SKU_1)], nodes, {(1, SKU_1): 5, (4, SKU_1): 5})
    ranked = [c.node.code for c in decision.trace.candidates]
    assert ranked == ["A", "D"]  # best first
    assert _reasons(decision) == {"B": ExclusionReason.NODE_INACTIVE, "C": ExclusionReason.NO_STOCK}


def test_trace_is_json_and_names_the_profile_version() -> None:
    profile = RoutingProfile(name="11.11", version=7)
    decision = _route(SPLIT_LINES, SPLIT_NODES, SPLIT_STOCK, profile, order_reference="SO-1")
    trace = json.loads(json.dumps(decision.trace.to_dict()))
    assert trace["profile_version"] == 7
    assert trace["profile"] == {"name": "11.11", "version": 7}
    assert trace["order_reference"] == "SO-1"
    assert [c["code"] for c in trace["candidates"]] == [c.node.code for c in decision.trace.candidates]
    assert set(trace["candidates"][0]["scores"]) == {
        "distance",
        "cost",
        "lead_time",
        "stock_health",
        "load",
        "priority",
        "split_penalty",
        "total",
    }
    assert trace["best_plans"][0]["nodes"] == [s.node_code for s in decision.plan.shipments]
    assert trace["plans_considered"] == len(decision.trace.plans)
    plan = json.loads(json.dumps(decision.to_dict()))["plan"]
    assert plan["total_cost"] == str(decision.plan.total_cost)


def test_same_request_gives_the_same_decision() -> None:
    first = _route(SPLIT_LINES, SPLIT_NODES, SPLIT_STOCK, total_weight_grams=3000)
    second = _route(SPLIT_LINES, SPLIT_NODES, SPLIT_STOCK, total_weight_grams=3000)
    assert first.plan == second.plan
    assert first.to_dict() == second.to_dict()


def test_nothing_to_route_when_every_line_is_done() -> None:
    decision = _route([_line(10, 0, SKU_1)], [_node(1, "A")], {(1, SKU_1): 5})
    assert decision.plan.outcome is PlanOutcome.NONE
    assert decision.explanation == "nothing left to route"


def test_decision_converts_to_a_routing_v1_plan() -> None:
    stock = {(2, SKU_1): 5, (3, SKU_2): 5}
    v1 = _route(SPLIT_LINES, SPLIT_NODES, stock).to_routing_plan()
    assert v1.rule == "fewest_nodes"
    assert v1.assignments == (Assignment(10, 2, 1), Assignment(11, 3, 1))
    assert set(v1.distances_km) == {2, 3}


# --- profiles and requests --------------------------------------------------------------------------


def test_invalid_profile_lists_every_problem() -> None:
    with pytest.raises(InvalidInput) as refused:
        RoutingProfile(
            name=" ",
            version=0,
            weights=ScoreWeights(distance=-1),
            split=SplitPolicy(max_shipments=0),
            node_priorities={"A": 1},
            excluded_nodes=frozenset({"A"}),
        )
    assert refused.value.details["problems"] == [
        "name must not be empty",
        "version must be a positive integer",
        "weights.distance must be a finite number >= 0",
        "split.max_shipments must be an integer >= 1",
        "nodes both prioritised and excluded: A",
    ]


def test_profile_round_trips_through_its_stored_form() -> None:
    profile = RoutingProfile(
        name="flash-sale",
        version=3,
        weights=ScoreWeights(distance=0.5, cost=2.0),
        split=SplitPolicy(penalty=1.5, channels_without_split=frozenset({"tiktok"})),
        node_priorities={"HCM-1": 2},
        excluded_carriers=frozenset({"generic"}),
        sla_fallback=SlaFallback.ROUTE_LATE,
    )
    stored = json.loads(json.dumps(profile.to_dict()))
    assert profile_from_dict(stored) == profile


def test_profile_with_unknown_fields_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        profile_from_dict({"name": "x", "colour": "red", "weights": {"speed": 1}})
    assert refused.value.details["problems"] == ["colour", "weights.speed"]


def test_request_with_a_naive_ship_by_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        RoutingRequest(lines=(), nodes=(), stock={}, ship_by=datetime(2026, 11, 26, 12))
    assert refused.value.details["problems"] == ["ship_by must be timezone-aware"]


def test_decide_needs_an_aware_now() -> None:
    request = RoutingRequest(lines=(), nodes=(), stock={})
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(request, now=datetime(2026, 11, 26, 3))


def test_candidate_node_terms_follow_the_scoring_definitions() -> None:
    profile = RoutingProfile(node_priorities={"A": 3, "B": 1}, distance_scale_km=800)
    nodes = [
        _node(1, "A", daily_capacity=40),
        _node(2, "B", "Hà Nội"),
        Node(3, "C", country="VN", province=None, calendar=SHIFT),  # nowhere known: distance unknown
    ]
    stock = {(1, SKU_1): 5, (2, SKU_1): 5, (3, SKU_1): 5}
    decision = _route([_line(10, 1, SKU_1)], nodes, stock, profile, assigned_today={1: 9})
    assert len(decision.trace.candidates) == 3
    for candidate in decision.trace.candidates:
        node = candidate.node
        assert candidate.distance_term == distance_term(candidate.distance_km, profile)
        assert candidate.load_term == load_term(node, {1: 9}.get(node.id, 0))
        assert candidate.priority_term == priority_term(node, profile)
    unknown = {c.node.code: c.distance_km is None for c in decision.trace.candidates}
    assert unknown == {"A": False, "B": False, "C": True}


@pytest.mark.parametrize(
    ("origin", "destination"),
    [((10.78, 106.70), (21.03, 105.85)), ((1.29, 103.85), (14.60, 120.98)), ((-6.21, 106.85), (-8.65, 115.22))],
)
def test_distances_are_great_circle_distances(origin: tuple[float, float], destination: tuple[float, float]) -> None:
    here, there = locate(*origin, None, None), locate(*destination, None, None)
    assert here.distance_km(there) == pytest.approx(haversine_km(*origin, *destination), rel=1e-12)
