"""Releasing orders to nodes and following shipments to delivery, through the real services on SQLite
and PostgreSQL: one shipment per location, shipping takes units out of on-hand and reserved together
through the ledger, and every transition of the order is allowed and recorded."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import (
    Allocation,
    InventoryLevel,
    InventoryMovement,
    Order,
    OrderEvent,
    OutboxMessage,
    Shipment,
)
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import IllegalTransition, InvalidInput, NotFound
from ordermesh.domain.lifecycle import OrderStatus, ShipmentStatus, is_allowed
from ordermesh.services import allocation, fulfilment, inventory, order_views, orders, tenants
from ordermesh.services.fulfilment import ShipmentUpdate
from ordermesh.services.unit_of_work import Caller
from tests.integration.shop import HANOI, open_shop, stock

SHIPPED = ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN", "GHN-0001")
DELIVERED = ShipmentUpdate(ShipmentStatus.DELIVERED)


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    return open_shop(app, caller)


def allocated_order(app: Application, caller: Caller, *lines: tuple[str, int], external_id: str = "o-1") -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine(sku, q, Decimal(1)) for sku, q in lines], HANOI)
    order_id = orders.capture_order(app.uow(), caller, new).order_id
    allocation.allocate_batch(app.uow())
    return order_id


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def shipment_ids(app: Application, caller: Caller, order_id: int) -> dict[str, int]:
    return {s["location"]: s["id"] for s in view(app, caller, order_id)["shipments"]}


def levels(app: Application, caller: Caller, sku: str = "A") -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) of ``sku`` by location code."""
    rows = inventory.sku_availability(app.read_uow(), caller, sku)["locations"]
    return {r["location"]: (r["on_hand"], r["reserved"]) for r in rows}


def shipment_lines(app: Application, caller: Caller, shipment_id: int) -> list[tuple[Any, ...]]:
    shipment = order_views.get_shipment(app.read_uow(), caller, shipment_id)
    return [
        (line["line_number"], line["sku"], line["quantity"], line["shipped_quantity"]) for line in shipment["lines"]
    ]


def snapshot(app: Application, tenant_id: int) -> dict[str, Any]:
    """Everything fulfilment can touch, for 'nothing changed' asserts."""
    with app.read_uow() as uow:
        session = uow.session

        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in session.execute(query))

        def count(table: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(table).where(table.tenant_id == tenant_id)))

        return {
            "orders": rows(select(Order.id, Order.status).where(Order.tenant_id == tenant_id)),
            "allocations": rows(
                select(Allocation.id, Allocation.quantity, Allocation.shipped_quantity, Allocation.shipment_id).where(
                    Allocation.tenant_id == tenant_id
                )
            ),
            "shipments": rows(
                select(Shipment.id, Shipment.status, Shipment.carrier, Shipment.tracking_number).where(
                    Shipment.tenant_id == tenant_id
                )
            ),
            "levels": rows(
                select(InventoryLevel.id, InventoryLevel.on_hand, InventoryLevel.reserved).where(
                    InventoryLevel.tenant_id == tenant_id
                )
            ),
            "movements": count(InventoryMovement),
            "events": count(OrderEvent),
            "outbox": count(OutboxMessage),
        }


def test_release_creates_one_shipment_per_location(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    stock(app, shop, "SG", "B", 1)
    # Line 1 splits over HN and SG; line 2 (B) is only at SG: two locations, so two shipments.
    order_id = allocated_order(app, shop, ("A", 2), ("B", 1))

    fulfilment.release(app.uow(), shop, order_id)

    released = view(app, shop, order_id)
    assert released["status"] == "released"
    assert [(s["location"], s["status"], s["carrier"]) for s in released["shipments"]] == [
        ("HN", "pending", None),
        ("SG", "pending", None),
    ]
    ids = shipment_ids(app, shop, order_id)
    assert [
        [(a["location"], a["quantity"], a["shipment_id"]) for a in line["allocations"]] for line in released["lines"]
    ] == [[("HN", 1, ids["HN"]), ("SG", 1, ids["SG"])], [("SG", 1, ids["SG"])]]
    assert [e["type"] for e in released["events"][-3:]] == ["status_changed", "shipment_created", "shipment_created"]
    assert shipment_lines(app, shop, ids["SG"]) == [(1, "A", 1, 0), (2, "B", 1, 0)]


def test_only_a_fully_allocated_order_can_be_released_and_nothing_changes(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    partial = allocated_order(app, shop, ("A", 2))
    pending = orders.capture_order(
        app.uow(), shop, orders.NewOrder("direct", "o-2", "VND", [orders.NewLine("A", 1, Decimal(1))], HANOI)
    ).order_id
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(IllegalTransition) as from_partial:
        fulfilment.release(app.uow(), shop, partial)
    with pytest.raises(IllegalTransition) as from_pending:
        fulfilment.release(app.uow(), shop, pending)

    assert from_partial.value.details["current"] == "partially_allocated"
    assert from_pending.value.details["current"] == "pending"
    assert snapshot(app, shop.tenant_id) == before


def test_shipping_takes_units_out_of_on_hand_and_reserved_together(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 10)
    stock(app, shop, "HN", "B", 10)
    order_id = allocated_order(app, shop, ("A", 3), ("KIT", 2))
    fulfilment.release(app.uow(), shop, order_id)
    [shipment_id] = shipment_ids(app, shop, order_id).values()
    assert levels(app, shop)["HN"] == (10, 7)

    fulfilment.record_shipment_event(app.uow(), shop, shipment_id, SHIPPED)

    assert levels(app, shop)["HN"] == (3, 0)
    assert levels(app, shop, "B")["HN"] == (8, 0)
    ship_movements = [
        (m["on_hand_delta"], m["reserved_delta"], m["reference"], m["actor"])
        for m in inventory.list_movements(app.read_uow(), shop, "HN", "A")
        if m["reason"] == "ship"
    ]
    assert ship_movements == [(-4, -4, f"shipment:{shipment_id}", "test"), (-3, -3, f"shipment:{shipment_id}", "test")]
    shipped = view(app, shop, order_id)
    assert shipped["status"] == "shipped"
    assert [(line["allocated_quantity"], line["shipped_quantity"]) for line in shipped["lines"]] == [(0, 3), (0, 2)]
    assert (shipped["shipments"][0]["carrier"], shipped["shipments"][0]["tracking_number"]) == ("GHN", "GHN-0001")


def test_a_shipped_report_without_carrier_and_tracking_is_refused_and_nothing_changes(
    app: Application, shop: Caller
) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = allocated_order(app, shop, ("A", 1))
    fulfilment.release(app.uow(), shop, order_id)
    [shipment_id] = shipment_ids(app, shop, order_id).values()
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id, ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN"))
    with pytest.raises(InvalidInput):
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id, ShipmentUpdate(ShipmentStatus.CANCELLED))

    assert raised.value.details == {"field": "tracking_number"}
    assert snapshot(app, shop.tenant_id) == before


def test_shipment_reports_out_of_lifecycle_order_are_refused_and_change_nothing(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 2)
    order_id = allocated_order(app, shop, ("A", 1))
    fulfilment.release(app.uow(), shop, order_id)
    [shipment_id] = shipment_ids(app, shop, order_id).values()
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(IllegalTransition):
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id, DELIVERED)  # not shipped yet
    assert snapshot(app, shop.tenant_id) == before

    fulfilment.record_shipment_event(app.uow(), shop, shipment_id, SHIPPED)
    shipped_once = snapshot(app, shop.tenant_id)
    with pytest.raises(IllegalTransition):
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id, SHIPPED)  # a repeated report
    with pytest.raises(IllegalTransition):
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id, ShipmentUpdate(ShipmentStatus.PICKED))

    assert snapshot(app, shop.tenant_id) == shipped_once
    assert levels(app, shop)["HN"] == (1, 0)  # taken out of stock once


def test_an_order_follows_its_shipments_to_delivered_and_is_then_completed(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    order_id = allocated_order(app, shop, ("A", 2))
    fulfilment.release(app.uow(), shop, order_id)
    ids = shipment_ids(app, shop, order_id)
    statuses = []

    for shipment, update in [
        ("HN", ShipmentUpdate(ShipmentStatus.PICKED)),
        ("HN", ShipmentUpdate(ShipmentStatus.PACKED)),
        ("HN", SHIPPED),
        ("SG", ShipmentUpdate(ShipmentStatus.SHIPPED, "GHTK", "GHTK-9")),
        ("HN", DELIVERED),
        ("SG", DELIVERED),
    ]:
        fulfilment.record_shipment_event(app.uow(), shop, ids[shipment], update)
        statuses.append(view(app, shop, order_id)["status"])
    orders.complete(app.uow(), shop, order_id)

    assert statuses == ["released", "released", "partially_shipped", "shipped", "shipped", "delivered"]
    events = view(app, shop, order_id)["events"]
    transitions = [(e["from_status"], e["to_status"]) for e in events if e["type"] == "status_changed"]
    assert transitions == [
        ("pending", "allocated"),
        ("allocated", "released"),
        ("released", "partially_shipped"),
        ("partially_shipped", "shipped"),
        ("shipped", "delivered"),
        ("delivered", "completed"),
    ]
    assert all(is_allowed(OrderStatus(a), OrderStatus(b)) for a, b in transitions)
    assert [e["type"] for e in events if e["type"].startswith("shipment_")] == [
        "shipment_created",
        "shipment_created",
        "shipment_picked",
        "shipment_packed",
        "shipment_shipped",
        "shipment_shipped",
        "shipment_delivered",
        "shipment_delivered",
    ]
    assert levels(app, shop) == {"HN": (0, 0), "SG": (0, 0)}
    with app.read_uow() as uow:
        outbox_types = list(
            uow.session.scalars(
                select(OutboxMessage.event_type)
                .where(OutboxMessage.aggregate_type == "order", OutboxMessage.aggregate_id == str(order_id))
                .order_by(OutboxMessage.id)
            )
        )
    # Every recorded order event is also a fact for the outside world, in the same order.
    assert outbox_types == [f"order.{e['type']}" for e in events]


def test_an_order_is_completed_only_once_shipped(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = allocated_order(app, shop, ("A", 1))
    fulfilment.release(app.uow(), shop, order_id)
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(IllegalTransition):
        orders.complete(app.uow(), shop, order_id)
    assert snapshot(app, shop.tenant_id) == before

    [shipment_id] = shipment_ids(app, shop, order_id).values()
    fulfilment.record_shipment_event(app.uow(), shop, shipment_id, SHIPPED)
    orders.complete(app.uow(), shop, order_id)  # shipped -> completed is allowed without a delivery report
    assert view(app, shop, order_id)["status"] == "completed"


def test_unknown_or_foreign_shipments_and_orders_are_not_found(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = allocated_order(app, shop, ("A", 1))
    fulfilment.release(app.uow(), shop, order_id)
    [shipment_id] = shipment_ids(app, shop, order_id).values()
    intruder = Caller(tenants.create_tenant(app.uow(), "other-tenant").tenant_id, "admin", "intruder")
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(NotFound):
        fulfilment.record_shipment_event(app.uow(), intruder, shipment_id, SHIPPED)
    with pytest.raises(NotFound):
        fulfilment.release(app.uow(), intruder, order_id)
    with pytest.raises(NotFound):
        order_views.get_shipment(app.read_uow(), intruder, shipment_id)
    with pytest.raises(NotFound):
        fulfilment.record_shipment_event(app.uow(), shop, shipment_id + 1000, SHIPPED)

    assert snapshot(app, shop.tenant_id) == before
