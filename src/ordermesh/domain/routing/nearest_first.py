"""Routing v1, kept as it was: nearest location first (``route_order``).

Rules, in order:
1. One location that can ship every open unit, the nearest first (haversine on coordinates).
2. Otherwise the fewest locations that together can ship everything (nearest total distance among
   plans of that size; exact search over small location sets, greedy beyond).
3. Otherwise a partial plan: reserve what can be reserved, nearest first; the rest waits for stock.

It ignores capacity, cut-offs, carriers and cost: the routing engine (``decide`` in ``engine.py``)
weighs those. ``route_order`` stays because the batch allocator and its tests rely on its exact
behaviour, including its known limit (lines are filled greedily in line order; see
tests/unit/test_routing.py). It is pure: the caller passes the stock it may use and applies the plan.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from ordermesh.domain.geo import haversine_km
from ordermesh.domain.routing.model import Assignment, Destination, LineDemand, Node, Stock

EXACT_SEARCH_MAX_NODES = 12  # above this, combinations get expensive; fall back to greedy
EXACT_SEARCH_MAX_SPLIT = 3  # largest number of locations tried exhaustively for a full plan


@dataclass(frozen=True, slots=True)
class RoutingPlan:
    assignments: tuple[Assignment, ...]
    rule: str  # "single_node", "fewest_nodes", "partial", "none"
    explanation: str
    distances_km: Mapping[int, float | None] = field(default_factory=dict)

    @property
    def node_ids(self) -> list[int]:
        return sorted({a.node_id for a in self.assignments})

    def reserved_units(self) -> int:
        return sum(a.quantity for a in self.assignments)


def route_order(
    lines: Sequence[LineDemand],
    nodes: Iterable[Node],
    stock: Stock,
    destination: Destination,
) -> RoutingPlan:
    demand = [line for line in lines if line.quantity > 0]
    candidates = [node for node in nodes if node.active]
    distance = {node.id: _distance(node, destination) for node in candidates}
    # Nearest first; nodes without coordinates (or an address without them) last, then by code.
    candidates.sort(key=lambda n: (distance[n.id] is None, distance[n.id] or 0.0, n.code))
    if not demand:
        return RoutingPlan((), "none", "nothing left to reserve", distance)

    for node in candidates:
        if _covers(demand, [node], stock):
            plan = _fill(demand, [node], stock)
            return RoutingPlan(
                plan, "single_node", f"{node.code} ships everything and is the nearest that can", distance
            )

    if 1 < len(candidates) <= EXACT_SEARCH_MAX_NODES:
        for size in range(2, min(EXACT_SEARCH_MAX_SPLIT, len(candidates)) + 1):
            full = [combo for combo in combinations(candidates, size) if _covers(demand, list(combo), stock)]
            if full:
                # An unknown distance ranks after every known one (as in rule 1), never as zero.
                best = min(
                    full,
                    key=lambda combo: (
                        sum(distance[n.id] is None for n in combo),
                        sum(distance[n.id] or 0.0 for n in combo),
                    ),
                )
                codes = ", ".join(n.code for n in best)
                return RoutingPlan(
                    _fill(demand, list(best), stock),
                    "fewest_nodes",
                    f"no single location has everything; {size} locations ({codes}) do",
                    distance,
                )

    plan = _fill(demand, candidates, stock)
    wanted = sum(line.quantity for line in demand)
    got = sum(a.quantity for a in plan)
    if got == wanted:
        codes = ", ".join(sorted({n.code for n in candidates if any(a.node_id == n.id for a in plan)}))
        return RoutingPlan(plan, "fewest_nodes", f"split across {codes} (greedy, nearest first)", distance)
    if got == 0:
        return RoutingPlan((), "none", "no active location has any of the open units", distance)
    return RoutingPlan(plan, "partial", f"{got} of {wanted} units available now; the rest waits", distance)


def _distance(node: Node, destination: Destination) -> float | None:
    if None in (node.latitude, node.longitude, destination.latitude, destination.longitude):
        return None
    return haversine_km(node.latitude, node.longitude, destination.latitude, destination.longitude)  # type: ignore[arg-type]


def _covers(demand: Sequence[LineDemand], nodes: Sequence[Node], stock: Stock) -> bool:
    """Whether ``nodes`` together can reserve all of ``demand`` (lines may split across nodes, but each
    unit of a bundle comes whole from one node)."""
    plan = _fill(demand, nodes, stock)
    return sum(a.quantity for a in plan) == sum(line.quantity for line in demand)


def _fill(demand: Sequence[LineDemand], nodes: Sequence[Node], stock: Stock) -> tuple[Assignment, ...]:
    """Greedy: for each line, take units from the nodes in the order given."""
    remaining: dict[tuple[int, int], int] = {}
    assignments: list[Assignment] = []
    for line in demand:
        need = line.quantity
        for node in nodes:
            if need == 0:
                break
            units = need
            for sku_id, per_unit in line.components.items():
                key = (node.id, sku_id)
                left = remaining.get(key, stock.get(key, 0))
                units = min(units, max(left, 0) // per_unit)
            if units <= 0:
                continue
            for sku_id, per_unit in line.components.items():
                key = (node.id, sku_id)
                remaining[key] = remaining.get(key, stock.get(key, 0)) - units * per_unit
            assignments.append(Assignment(line.line_id, node.id, units))
            need -= units
    return tuple(assignments)
