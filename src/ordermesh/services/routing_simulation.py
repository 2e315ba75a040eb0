"""Routing what-if: run a draft profile over recent orders and compare it with the profiles in force.

Nothing is written: the caller passes a read unit of work that is never committed. Each order is
decided twice against the same world, once with the profile in force for its channel (the baseline)
and once with the draft: today's available stock with the order's own live reservations added back
(what the allocator would have seen had it routed the order now), today's node loads without the
order itself, and last week's sales. Orders are decided independently: a decision does not lower
the stock the next order sees, so the totals compare the two profiles order by order, not a replay
of a batch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import Allocation, Channel, InventoryLevel, Location, Order, OrderLine
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing import (
    Destination,
    LineDemand,
    Node,
    PlanOutcome,
    RoutingDecision,
    RoutingProfile,
    RoutingRequest,
    decide,
    profile_from_dict,
)
from ordermesh.services.routing_inputs import assigned_today, daily_sales, local_midnight, node_of
from ordermesh.services.routing_profiles import ProfileChooser
from ordermesh.services.stock_ledger import level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork

DEFAULT_LAST = 200
MAX_ORDERS = 5000
MAX_EXAMPLES = 50
ASSUMPTIONS = [
    "each order is decided independently against the same stock: no decision lowers the stock the next order sees",
    "stock is today's available stock plus the order's own live reservations added back",
    "handover times, node loads and sales are today's, not those of the day the order was placed",
    "an order without ship_by counts as SLA-feasible",
]
FULLY_ROUTED = (PlanOutcome.SINGLE_NODE, PlanOutcome.SPLIT)


@dataclass
class Tally:
    """One side (baseline or draft) of the comparison, summed over the simulated orders."""

    orders: int = 0
    distance_km: float = 0.0
    unknown_distance_shipments: int = 0
    cost: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    shipments: int = 0
    split_orders: int = 0
    sla_feasible: int = 0
    fully_routable: int = 0

    def add(self, decision: RoutingDecision, ship_by: datetime | None) -> None:
        plan = decision.plan
        self.orders += 1
        for shipment in plan.shipments:
            if shipment.distance_km is None:
                self.unknown_distance_shipments += 1
            else:
                self.distance_km += shipment.distance_km
            self.cost[shipment.currency] += shipment.cost
        self.shipments += len(plan.shipments)
        self.split_orders += len(plan.shipments) > 1
        routed = plan.outcome in FULLY_ROUTED
        self.fully_routable += routed
        self.sla_feasible += ship_by is None or (routed and not any(s.late for s in plan.shipments))

    def view(self) -> dict[str, Any]:
        return {
            "distance_km": round(self.distance_km, 3),
            "unknown_distance_shipments": self.unknown_distance_shipments,
            "cost": {currency: str(amount) for currency, amount in sorted(self.cost.items())},
            "split_orders": self.split_orders,
            "average_shipments": _share(self.shipments, self.orders),
            "sla_feasible_share": _share(self.sla_feasible, self.orders),
            "fully_routable_share": _share(self.fully_routable, self.orders),
        }


@dataclass(frozen=True)
class World:
    """What both profiles weigh, loaded once."""

    nodes: tuple[Node, ...]
    codes: Mapping[int, str]
    stock: Mapping[tuple[int, int], int]
    assigned: Mapping[int, int]
    sales: Mapping[tuple[int, int], float]
    midnights: Mapping[int, datetime]


def simulate(
    uow: UnitOfWork,
    caller: Caller,
    draft: dict[str, Any],
    *,
    channel: str | None = None,
    last: int | None = None,
    placed_after: datetime | None = None,
    placed_before: datetime | None = None,
) -> dict[str, Any]:
    """Compare ``draft`` with the profiles in force over the tenant's newest orders (at most ``last``,
    default 200) or those placed in [``placed_after``, ``placed_before``), optionally of one channel."""
    if set(draft) & {"name", "version"}:
        raise InvalidInput("name and version are set by ordermesh, not in the definition", field="definition")
    draft_profile = profile_from_dict({**draft, "name": "draft", "version": 1})  # lists every problem
    limit = _limit(last, windowed=placed_after is not None or placed_before is not None)
    for name, moment in (("placed_after", placed_after), ("placed_before", placed_before)):
        if moment is not None and moment.utcoffset() is None:
            raise InvalidInput(f"{name} must be timezone-aware", field=name)
    if placed_after is not None and placed_before is not None and placed_after >= placed_before:
        raise InvalidInput("placed_after must be before placed_before", field="placed_after")
    now = utcnow()
    with uow:
        session = uow.session
        channels = dict(
            session.execute(select(Channel.id, Channel.code).where(Channel.tenant_id == caller.tenant_id)).all()
        )
        query = select(Order).where(Order.tenant_id == caller.tenant_id)
        if channel is not None:
            query = query.where(Order.channel_id.in_([i for i, code in channels.items() if code == channel]))
        if placed_after is not None:
            query = query.where(Order.placed_at >= placed_after.astimezone(UTC))
        if placed_before is not None:
            query = query.where(Order.placed_at < placed_before.astimezone(UTC))
        orders = session.scalars(query.order_by(Order.placed_at.desc(), Order.id.desc()).limit(limit)).all()
        order_ids = [order.id for order in orders]
        lines: dict[int, list[OrderLine]] = defaultdict(list)
        allocations: dict[int, list[Allocation]] = defaultdict(list)
        if order_ids:
            for line in session.scalars(
                select(OrderLine).where(OrderLine.order_id.in_(order_ids)).order_by(OrderLine.id)
            ):
                lines[line.order_id].append(line)
            for row in session.scalars(select(Allocation).where(Allocation.order_id.in_(order_ids))):
                allocations[row.order_id].append(row)
        skus = {int(sku) for order_lines in lines.values() for line in order_lines for sku in line.components}
        world = _load_world(session, caller.tenant_id, skus, now)
        chooser = ProfileChooser.load(session, caller.tenant_id)

        baseline, drafted = Tally(), Tally()
        baseline_profiles: dict[str, int] = defaultdict(int)
        moved, skipped = 0, 0
        examples: list[dict[str, Any]] = []
        for order in orders:
            code = channels[order.channel_id]
            profile = chooser.for_order(code, order.tags)
            request = _request(order, lines[order.id], allocations[order.id], code, world)
            if request is None:
                skipped += 1
                continue
            before = decide(request, profile, now=now)
            after = decide(request, draft_profile, now=now)
            baseline_profiles[f"{profile.name} v{profile.version}"] += 1
            baseline.add(before, order.ship_by)
            drafted.add(after, order.ship_by)
            if before.plan.node_ids != after.plan.node_ids:
                moved += 1
                if len(examples) < MAX_EXAMPLES:
                    examples.append(_example(order, code, profile, before, after, world.codes))
    return {
        "selection": {
            "channel": channel,
            "last": limit,
            "placed_after": placed_after,
            "placed_before": placed_before,
        },
        "orders_selected": len(orders),
        "orders_simulated": baseline.orders,
        "orders_skipped": skipped,  # nothing open to route (every unit cancelled)
        "moved": moved,
        "baseline_profiles": dict(sorted(baseline_profiles.items())),
        "baseline": baseline.view(),
        "draft": drafted.view(),
        "delta": _delta(baseline, drafted),
        "examples": examples,
        "assumptions": ASSUMPTIONS,
        "simulated_at": now,
    }


def _limit(last: int | None, *, windowed: bool) -> int:
    if last is None:
        return MAX_ORDERS if windowed else DEFAULT_LAST
    if isinstance(last, bool) or not 1 <= last <= MAX_ORDERS:
        raise InvalidInput(f"last must be between 1 and {MAX_ORDERS}", field="last")
    return last


def _load_world(session: Session, tenant_id: int, skus: set[int], now: datetime) -> World:
    locations = session.scalars(select(Location).where(Location.tenant_id == tenant_id).order_by(Location.id)).all()
    active = [location for location in locations if location.active]
    stock: dict[tuple[int, int], int] = {}
    if skus and active:
        for row in session.scalars(
            select(InventoryLevel).where(
                InventoryLevel.tenant_id == tenant_id,
                InventoryLevel.location_id.in_([location.id for location in active]),
                InventoryLevel.sku_id.in_(sorted(skus)),
            )
        ):
            stock[(row.location_id, row.sku_id)] = level_of(row).available
    return World(
        nodes=tuple(node_of(location, now) for location in locations),
        codes={location.id: location.code for location in locations},
        stock=stock,
        assigned=assigned_today(session, active, now),
        sales=daily_sales(session, tenant_id, skus, now),
        midnights={location.id: local_midnight(location.time_zone, now) for location in active},
    )


def _request(
    order: Order, lines: list[OrderLine], allocations: list[Allocation], channel: str, world: World
) -> RoutingRequest | None:
    """The order's full open quantity, routed against the world with its own footprint taken out."""
    demand = tuple(
        LineDemand(line.id, line.quantity - line.cancelled_quantity, {int(k): v for k, v in line.components.items()})
        for line in lines
    )
    if not any(line.quantity > 0 for line in demand):
        return None
    skus = {sku for line in demand for sku in line.components}
    stock = {
        (node.id, sku): world.stock[(node.id, sku)]
        for node in world.nodes
        for sku in skus
        if (node.id, sku) in world.stock
    }
    components = {line.id: line.components for line in lines}
    assigned = dict(world.assigned)
    for location_id in {
        row.location_id
        for row in allocations
        if row.location_id in world.midnights and row.created_at >= world.midnights[row.location_id]
    }:
        assigned[location_id] = max(assigned.get(location_id, 0) - 1, 0)
    for row in allocations:
        if row.quantity <= 0 or row.location_id not in world.midnights:
            continue  # nothing reserved any more, or a node that no longer ships
        for sku, per_unit in components[row.order_line_id].items():
            key = (row.location_id, int(sku))
            stock[key] = stock.get(key, 0) + row.quantity * per_unit
    address = order.shipping_address or {}
    return RoutingRequest(
        lines=demand,
        nodes=world.nodes,
        stock=stock,
        destination=Destination(
            address.get("latitude"), address.get("longitude"), address.get("province"), address.get("country")
        ),
        channel=channel,
        ship_by=order.ship_by,
        daily_sales=world.sales,
        assigned_today=assigned,
        order_reference=f"order:{order.id}",
    )


def _example(
    order: Order,
    channel: str,
    profile: RoutingProfile,
    before: RoutingDecision,
    after: RoutingDecision,
    codes: Mapping[int, str],
) -> dict[str, Any]:
    return {
        "order_id": order.id,
        "external_id": order.external_id,
        "channel": channel,
        "baseline": {
            "profile": f"{profile.name} v{profile.version}",
            "nodes": sorted(codes[node_id] for node_id in before.plan.node_ids),
            "outcome": before.plan.outcome.value,
            "explanation": before.explanation,
        },
        "draft": {
            "nodes": sorted(codes[node_id] for node_id in after.plan.node_ids),
            "outcome": after.plan.outcome.value,
            "explanation": after.explanation,
        },
    }


def _delta(baseline: Tally, draft: Tally) -> dict[str, Any]:
    before, after = baseline.view(), draft.view()
    currencies = sorted(set(baseline.cost) | set(draft.cost))
    return {
        "distance_km": round(after["distance_km"] - before["distance_km"], 3),  # of the totals shown
        "unknown_distance_shipments": draft.unknown_distance_shipments - baseline.unknown_distance_shipments,
        "cost": {c: str(draft.cost.get(c, Decimal(0)) - baseline.cost.get(c, Decimal(0))) for c in currencies},
        "split_orders": draft.split_orders - baseline.split_orders,
        **{
            name: None if before[name] is None else round(after[name] - before[name], 4)
            for name in ("average_shipments", "sla_feasible_share", "fully_routable_share")
        },
    }


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
