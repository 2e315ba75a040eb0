"""Routing v1 (``route_order``): which location(s) reserve which units, and the rule that chose them."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ordermesh.domain.geo import haversine_km
from ordermesh.domain.routing import (
    EXACT_SEARCH_MAX_NODES,
    Assignment,
    Destination,
    LineDemand,
    Node,
    RoutingPlan,
    route_order,
)
from tests.strategies import RoutingProblem, coordinates, routing_problems, routing_problems_with_a_complete_node

HCMC = (10.776, 106.700)
CAN_THO = (10.045, 105.746)
DA_NANG = (16.054, 108.202)
HANOI = (21.028, 105.854)

SKU_1, SKU_2, SKU_3 = 1, 2, 3


def _node(node_id: int, code: str, place: tuple[float, float] | None, *, active: bool = True) -> Node:
    latitude, longitude = place if place is not None else (None, None)
    return Node(node_id, code, latitude, longitude, active)


def _at(place: tuple[float, float]) -> Destination:
    return Destination(*place)


def _line(line_id: int, quantity: int, sku: int) -> LineDemand:
    return LineDemand(line_id, quantity, {sku: 1})


SAIGON_DC = _node(1, "SGN", HCMC)
CAN_THO_DC = _node(2, "VCA", CAN_THO)
DA_NANG_DC = _node(3, "DAD", DA_NANG)
HANOI_DC = _node(4, "HAN", HANOI)


def _used(plan: RoutingPlan) -> dict[tuple[int, int], int]:
    """Units of each (node, line) the plan assigns."""
    return {(a.node_id, a.line_id): a.quantity for a in plan.assignments}


# --- rule 1: one location ships everything --------------------------------------------------------


def test_single_node_that_has_everything_ships_everything() -> None:
    lines = [_line(10, 2, SKU_1), _line(11, 1, SKU_2)]
    stock = {(1, SKU_1): 5, (1, SKU_2): 5}
    plan = route_order(lines, [SAIGON_DC], stock, _at(HCMC))
    assert plan.rule == "single_node"
    assert plan.assignments == (Assignment(10, 1, 2), Assignment(11, 1, 1))
    assert plan.explanation == "SGN ships everything and is the nearest that can"


def test_nearest_single_node_wins() -> None:
    lines = [_line(10, 2, SKU_1)]
    stock = {(4, SKU_1): 5, (3, SKU_1): 5, (1, SKU_1): 5}
    plan = route_order(lines, [HANOI_DC, DA_NANG_DC, SAIGON_DC], stock, _at(CAN_THO))
    assert plan.rule == "single_node"
    assert plan.assignments == (Assignment(10, 1, 2),)


def test_a_farther_node_with_everything_beats_a_split_across_nearer_nodes() -> None:
    lines = [_line(10, 1, SKU_1), _line(11, 1, SKU_2)]
    stock = {(1, SKU_1): 5, (2, SKU_2): 5, (4, SKU_1): 1, (4, SKU_2): 1}
    plan = route_order(lines, [SAIGON_DC, CAN_THO_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "single_node"
    assert plan.node_ids == [4]


def test_distances_are_reported_for_every_active_node() -> None:
    plan = route_order([_line(10, 1, SKU_1)], [SAIGON_DC, HANOI_DC], {(1, SKU_1): 1}, _at(HCMC))
    assert dict(plan.distances_km) == {
        1: pytest.approx(0.0),
        4: pytest.approx(haversine_km(*HCMC, *HANOI)),
    }
    assert 1130 < plan.distances_km[4] < 1150  # type: ignore[operator]


# --- rule 2: the fewest locations -----------------------------------------------------------------


def test_fewest_nodes_when_no_single_node_has_everything() -> None:
    lines = [_line(10, 2, SKU_1), _line(11, 3, SKU_2)]
    stock = {(1, SKU_1): 2, (2, SKU_2): 3, (4, SKU_2): 9}
    plan = route_order(lines, [SAIGON_DC, CAN_THO_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert plan.assignments == (Assignment(10, 1, 2), Assignment(11, 2, 3))
    assert plan.explanation == "no single location has everything; 2 locations (SGN, VCA) do"


def test_fewest_nodes_prefers_two_locations_over_three_nearer_ones() -> None:
    lines = [_line(10, 1, SKU_1), _line(11, 1, SKU_2), _line(12, 1, SKU_3)]
    stock = {
        (1, SKU_1): 1,
        (2, SKU_2): 1,
        (3, SKU_3): 1,  # three nearby nodes, one SKU each
        (4, SKU_1): 1,
        (4, SKU_2): 1,  # Hanoi has two of the three
    }
    plan = route_order(lines, [SAIGON_DC, CAN_THO_DC, DA_NANG_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert len(plan.node_ids) == 2
    assert 3 in plan.node_ids  # the only node with SKU 3


def test_one_line_splits_across_locations_when_no_location_has_all_of_it() -> None:
    plan = route_order([_line(10, 5, SKU_1)], [SAIGON_DC, HANOI_DC], {(1, SKU_1): 3, (4, SKU_1): 4}, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert plan.assignments == (Assignment(10, 1, 3), Assignment(10, 4, 2))
    assert plan.reserved_units() == 5


def test_fewest_nodes_prefers_known_distances_over_unknown_ones() -> None:
    # Saigon has SKU 1; SKU 2 is in Can Tho (140 km away) and in a 3PL without coordinates.
    # An unknown distance is not a distance of zero: the 3PL is ranked last, as in rule 1.
    somewhere = _node(5, "3PL", None)
    lines = [_line(10, 1, SKU_1), _line(11, 1, SKU_2)]
    stock = {(1, SKU_1): 1, (2, SKU_2): 1, (5, SKU_2): 1}
    plan = route_order(lines, [somewhere, SAIGON_DC, CAN_THO_DC], stock, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert plan.node_ids == [1, 2]


def test_beyond_the_exact_search_limit_a_greedy_split_still_ships_everything() -> None:
    count = EXACT_SEARCH_MAX_NODES + 3
    nodes = [_node(i, f"N{i:02d}", (10.0 + i * 0.1, 106.0)) for i in range(1, count + 1)]
    stock = {(node.id, SKU_1): 1 for node in nodes}
    plan = route_order([_line(10, 5, SKU_1)], nodes, stock, Destination(10.0, 106.0))
    assert plan.rule == "fewest_nodes"
    assert plan.node_ids == [1, 2, 3, 4, 5]  # the five nearest, one unit each
    assert plan.explanation == "split across N01, N02, N03, N04, N05 (greedy, nearest first)"


@pytest.mark.xfail(
    strict=True,
    reason="routing v1 fills lines greedily in line order, so a pair of locations that could ship "
    "everything (line 10 from VCA, the bundle from SGN) is judged unable to",
)
def test_two_locations_that_can_ship_everything_are_found_whatever_the_line_order() -> None:
    lines = [_line(10, 1, SKU_1), LineDemand(11, 1, {SKU_1: 1, SKU_2: 1})]
    stock = {(1, SKU_1): 1, (1, SKU_2): 1, (2, SKU_1): 1}
    plan = route_order(lines, [SAIGON_DC, CAN_THO_DC], stock, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert sorted(plan.assignments, key=lambda a: a.line_id) == [Assignment(10, 2, 1), Assignment(11, 1, 1)]


# --- rule 3: partial, and nothing -------------------------------------------------------------------


def test_partial_plan_reserves_what_exists_nearest_first() -> None:
    lines = [_line(10, 6, SKU_1)]
    stock = {(1, SKU_1): 2, (4, SKU_1): 1, (2, SKU_1): 0}
    plan = route_order(lines, [HANOI_DC, SAIGON_DC, CAN_THO_DC], stock, _at(HCMC))
    assert plan.rule == "partial"
    assert plan.assignments == (Assignment(10, 1, 2), Assignment(10, 4, 1))
    assert plan.explanation == "3 of 6 units available now; the rest waits"


def test_partial_plan_keeps_lines_it_can_fill() -> None:
    lines = [_line(10, 2, SKU_1), _line(11, 1, SKU_2)]
    plan = route_order(lines, [SAIGON_DC], {(1, SKU_1): 2}, _at(HCMC))
    assert plan.rule == "partial"
    assert plan.assignments == (Assignment(10, 1, 2),)


def test_no_stock_anywhere_gives_rule_none() -> None:
    plan = route_order([_line(10, 2, SKU_1)], [SAIGON_DC, HANOI_DC], {(1, SKU_2): 9}, _at(HCMC))
    assert plan.rule == "none"
    assert plan.assignments == ()
    assert plan.node_ids == []
    assert plan.explanation == "no active location has any of the open units"


def test_no_locations_gives_rule_none() -> None:
    plan = route_order([_line(10, 2, SKU_1)], [], {}, _at(HCMC))
    assert plan.rule == "none"
    assert plan.assignments == ()


def test_nothing_left_to_reserve_gives_rule_none() -> None:
    plan = route_order([_line(10, 0, SKU_1)], [SAIGON_DC], {(1, SKU_1): 9}, _at(HCMC))
    assert plan.rule == "none"
    assert plan.assignments == ()
    assert plan.explanation == "nothing left to reserve"


def test_negative_availability_counts_as_nothing() -> None:
    stock = {(1, SKU_1): -4, (4, SKU_1): 1}
    plan = route_order([_line(10, 1, SKU_1)], [SAIGON_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.assignments == (Assignment(10, 4, 1),)


# --- inactive nodes ---------------------------------------------------------------------------------


def test_inactive_node_is_never_used_even_when_it_has_everything() -> None:
    closed = _node(1, "SGN", HCMC, active=False)
    stock = {(1, SKU_1): 9, (4, SKU_1): 1}
    plan = route_order([_line(10, 3, SKU_1)], [closed, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "partial"
    assert plan.assignments == (Assignment(10, 4, 1),)
    assert 1 not in plan.distances_km


def test_only_inactive_nodes_gives_rule_none() -> None:
    closed = _node(1, "SGN", HCMC, active=False)
    plan = route_order([_line(10, 1, SKU_1)], [closed], {(1, SKU_1): 9}, _at(HCMC))
    assert plan.rule == "none"
    assert plan.assignments == ()


# --- bundles ----------------------------------------------------------------------------------------


def test_bundle_takes_whole_units_from_one_node() -> None:
    kit = LineDemand(10, 3, {SKU_1: 2, SKU_2: 1})
    stock = {(1, SKU_1): 5, (1, SKU_2): 9, (4, SKU_1): 2, (4, SKU_2): 1}
    plan = route_order([kit], [SAIGON_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "fewest_nodes"
    assert plan.assignments == (Assignment(10, 1, 2), Assignment(10, 4, 1))


def test_bundle_is_never_assembled_from_components_at_different_nodes() -> None:
    kit = LineDemand(10, 1, {SKU_1: 2, SKU_2: 1})
    stock = {(1, SKU_1): 9, (4, SKU_2): 9}  # SKU 1 only in Saigon, SKU 2 only in Hanoi
    plan = route_order([kit], [SAIGON_DC, HANOI_DC], stock, _at(HCMC))
    assert plan.rule == "none"
    assert plan.assignments == ()


def test_bundle_and_plain_line_share_a_component_without_double_counting() -> None:
    kit = LineDemand(10, 1, {SKU_1: 2, SKU_2: 1})
    plain = _line(11, 2, SKU_1)
    stock = {(1, SKU_1): 3, (1, SKU_2): 1}
    plan = route_order([kit, plain], [SAIGON_DC], stock, _at(HCMC))
    assert plan.rule == "partial"
    assert plan.assignments == (Assignment(10, 1, 1), Assignment(11, 1, 1))


# --- missing coordinates ----------------------------------------------------------------------------


def test_node_without_coordinates_comes_after_every_node_with_them() -> None:
    unknown = _node(5, "AAA", None)  # sorts first by code; distance decides first
    stock = {(5, SKU_1): 9, (4, SKU_1): 9}
    plan = route_order([_line(10, 1, SKU_1)], [unknown, HANOI_DC], stock, _at(HCMC))
    assert plan.node_ids == [4]
    assert plan.distances_km[5] is None


def test_node_without_coordinates_is_used_when_it_is_the_only_one_with_stock() -> None:
    unknown = _node(5, "3PL", None)
    plan = route_order([_line(10, 1, SKU_1)], [unknown, HANOI_DC], {(5, SKU_1): 1}, _at(HCMC))
    assert plan.rule == "single_node"
    assert plan.node_ids == [5]


def test_address_without_coordinates_ranks_nodes_by_code() -> None:
    stock = {(1, SKU_1): 9, (4, SKU_1): 9, (3, SKU_1): 9}
    plan = route_order([_line(10, 1, SKU_1)], [SAIGON_DC, HANOI_DC, DA_NANG_DC], stock, Destination())
    assert plan.rule == "single_node"
    assert plan.node_ids == [3]  # "DAD" < "HAN" < "SGN"
    assert dict(plan.distances_km) == {1: None, 3: None, 4: None}


def test_address_with_only_a_latitude_counts_as_without_coordinates() -> None:
    stock = {(1, SKU_1): 9, (4, SKU_1): 9}
    plan = route_order([_line(10, 1, SKU_1)], [SAIGON_DC, HANOI_DC], stock, Destination(latitude=HCMC[0]))
    assert plan.node_ids == [4]  # "HAN" < "SGN"


# --- properties -------------------------------------------------------------------------------------


@given(
    first=coordinates,
    second=coordinates,
    destination=st.one_of(coordinates, st.none()),
    quantity=st.integers(min_value=1, max_value=5),
)
def test_of_two_identical_nodes_the_nearer_one_wins(
    first: tuple[float, float],
    second: tuple[float, float],
    destination: tuple[float, float] | None,
    quantity: int,
) -> None:
    where = destination or HCMC
    near, far = sorted([first, second], key=lambda p: haversine_km(*p, *where))
    assume(haversine_km(*far, *where) - haversine_km(*near, *where) > 1e-6)
    # the farther node gets the lower id and the earlier code: only distance can pick the nearer one
    nodes = [_node(1, "A", far), _node(2, "B", near)]
    stock = {(1, SKU_1): 9, (1, SKU_2): 9, (2, SKU_1): 9, (2, SKU_2): 9}
    lines = [_line(10, quantity, SKU_1), LineDemand(11, 1, {SKU_1: 2, SKU_2: 1})]
    plan = route_order(lines, nodes, stock, _at(where))
    assert plan.rule == "single_node"
    assert plan.node_ids == [2]


@given(routing_problems())
def test_plan_never_assigns_more_than_the_stock(problem: RoutingProblem) -> None:
    plan = route_order(problem.lines, problem.nodes, problem.stock, problem.destination)
    components = {line.line_id: line.components for line in problem.lines}
    drawn: dict[tuple[int, int], int] = defaultdict(int)
    for assignment in plan.assignments:
        for sku, per_unit in components[assignment.line_id].items():
            drawn[(assignment.node_id, sku)] += assignment.quantity * per_unit
    for key, units in drawn.items():
        assert units <= max(problem.stock.get(key, 0), 0), key


@given(routing_problems())
def test_plan_is_well_formed(problem: RoutingProblem) -> None:
    plan = route_order(problem.lines, problem.nodes, problem.stock, problem.destination)
    active = {node.id for node in problem.nodes if node.active}
    wanted = {line.line_id: line.quantity for line in problem.lines}
    assigned: dict[int, int] = defaultdict(int)
    for assignment in plan.assignments:
        assert assignment.quantity > 0
        assert assignment.node_id in active  # inactive nodes are never used
        assigned[assignment.line_id] += assignment.quantity
    for line_id, units in assigned.items():
        assert units <= wanted[line_id]
    assert len({(a.line_id, a.node_id) for a in plan.assignments}) == len(plan.assignments)
    assert set(plan.distances_km) == active

    total_wanted, total_got = sum(wanted.values()), plan.reserved_units()
    if total_got == 0:
        assert plan.rule == "none"
    elif total_got == total_wanted:
        assert plan.rule in {"single_node", "fewest_nodes"}
    else:
        assert plan.rule == "partial"


@given(routing_problems_with_a_complete_node())
def test_a_single_active_node_with_everything_is_always_chosen_alone(problem: RoutingProblem) -> None:
    needs: dict[int, int] = defaultdict(int)
    for line in problem.lines:
        if line.quantity == 0:  # asks for nothing, so a node short of its SKU (even below zero) can still serve
            continue
        for sku, per_unit in line.components.items():
            needs[sku] += line.quantity * per_unit
    able = [
        node
        for node in problem.nodes
        if node.active and all(problem.stock.get((node.id, sku), 0) >= units for sku, units in needs.items())
    ]
    assume(able and sum(line.quantity for line in problem.lines) > 0)
    plan = route_order(problem.lines, problem.nodes, problem.stock, problem.destination)
    assert plan.rule == "single_node"
    assert len(plan.node_ids) == 1
    chosen = plan.node_ids[0]
    assert chosen in {node.id for node in able}
    distances = plan.distances_km
    best = min(able, key=lambda n: (distances[n.id] is None, distances[n.id] or 0.0, n.code))
    assert chosen == best.id
