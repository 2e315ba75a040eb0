"""Cancelling orders through the real services, on SQLite and PostgreSQL: whole or partial, always
releasing reservations through the ledger, never touching shipped units, withdrawing shipments
left with nothing to ship, and changing nothing when refused."""

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
    OrderLine,
    OutboxMessage,
    Shipment,
)
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import IllegalTransition, InvalidInput, NotFound
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.services import allocation, fulfilment, inventory, order_views, orders, tenants
from ordermesh.services.orders import CancelLine, CancelReason, CancelRequest
from ordermesh.services.unit_of_work import Caller
from tests.integration.shop import HANOI, open_shop, stock

WHOLE = CancelRequest(CancelReason.CUSTOMER)


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    return open_shop(app, caller)


def place(app: Application, caller: Caller, external_id: str, *lines: tuple[str, int]) -> int:
    new = orders.NewOrder(
        "direct",
        external_id,
        "VND",
        [orders.NewLine(sku, quantity, Decimal(1)) for sku, quantity in lines],
        HANOI,
    )
    return orders.capture_order(app.uow(), caller, new).order_id


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def levels(app: Application, caller: Caller, sku: str = "A") -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) of ``sku`` by location code."""
    rows = inventory.sku_availability(app.read_uow(), caller, sku)["locations"]
    return {r["location"]: (r["on_hand"], r["reserved"]) for r in rows}


def shipments(app: Application, caller: Caller, order_id: int) -> dict[str, str]:
    """Shipment status by location code."""
    return {s["location"]: s["status"] for s in view(app, caller, order_id)["shipments"]}


def ship(app: Application, caller: Caller, order_id: int, location: str) -> None:
    [shipment_id] = [s["id"] for s in view(app, caller, order_id)["shipments"] if s["location"] == location]
    update = fulfilment.ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN", f"TRACK-{shipment_id}")
    fulfilment.record_shipment_event(app.uow(), caller, shipment_id, update)


def snapshot(app: Application, tenant_id: int) -> dict[str, Any]:
    """Everything a cancellation can touch, for 'nothing changed' asserts."""
    with app.read_uow() as uow:
        session = uow.session

        def rows(query: Any) -> list[tuple[Any, ...]]:
            return sorted(tuple(row) for row in session.execute(query))

        def count(table: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(table).where(table.tenant_id == tenant_id)))

        return {
            "orders": rows(select(Order.id, Order.status, Order.needs_allocation).where(Order.tenant_id == tenant_id)),
            "lines": rows(select(OrderLine.id, OrderLine.cancelled_quantity).where(OrderLine.tenant_id == tenant_id)),
            "allocations": rows(
                select(Allocation.id, Allocation.quantity, Allocation.shipped_quantity).where(
                    Allocation.tenant_id == tenant_id
                )
            ),
            "shipments": rows(select(Shipment.id, Shipment.status).where(Shipment.tenant_id == tenant_id)),
            "levels": rows(
                select(InventoryLevel.id, InventoryLevel.on_hand, InventoryLevel.reserved).where(
                    InventoryLevel.tenant_id == tenant_id
                )
            ),
            "movements": count(InventoryMovement),
            "events": count(OrderEvent),
            "outbox": count(OutboxMessage),
        }


def release_movements(app: Application, caller: Caller, location: str, sku: str = "A") -> list[tuple[Any, ...]]:
    return [
        (m["reserved_delta"], m["on_hand_delta"], m["reference"], m["note"], m["actor"])
        for m in inventory.list_movements(app.read_uow(), caller, location, sku)
        if m["reason"] == "release"
    ]


def test_cancelling_a_whole_allocated_order_releases_every_reservation(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 2))
    allocation.allocate_batch(app.uow())
    assert levels(app, shop) == {"HN": (1, 1), "SG": (1, 1)}

    orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.CUSTOMER, note="changed mind"))

    cancelled = view(app, shop, order_id)
    assert cancelled["status"] == "cancelled"
    assert cancelled["lines"][0]["cancelled_quantity"] == 2
    assert cancelled["lines"][0]["allocated_quantity"] == 0
    assert levels(app, shop) == {"HN": (1, 0), "SG": (1, 0)}
    expected = (-1, 0, f"order:{order_id}", "cancelled: customer", "test")
    assert release_movements(app, shop, "HN") == [expected]
    assert release_movements(app, shop, "SG") == [expected]
    assert [(e["type"], e["from_status"], e["to_status"], e["reason"]) for e in cancelled["events"][-3:]] == [
        ("lines_cancelled", None, None, "customer"),
        ("status_changed", "allocated", "cancelled", "customer"),
        ("cancelled", None, None, "customer"),
    ]
    assert cancelled["events"][-3]["data"]["note"] == "changed mind"
    assert allocation.allocate_batch(app.uow()).claimed == 0


def test_stock_released_by_a_cancellation_goes_to_a_waiting_backorder(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    first = place(app, shop, "o-1", ("A", 1))
    waiting = place(app, shop, "o-2", ("A", 1))
    allocation.allocate_batch(app.uow())
    assert view(app, shop, waiting)["status"] == "backordered"

    orders.cancel(app.uow(), shop, first, WHOLE)
    assert allocation.requeue_backorders(app.uow()) == 1
    allocation.allocate_batch(app.uow())

    assert view(app, shop, waiting)["status"] == "allocated"
    assert levels(app, shop)["HN"] == (1, 1)


def test_a_partial_cancel_releases_only_the_cancelled_units(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 10)
    stock(app, shop, "HN", "B", 5)
    order_id = place(app, shop, "o-1", ("A", 3), ("KIT", 2))
    allocation.allocate_batch(app.uow())
    assert levels(app, shop)["HN"] == (10, 3 + 2 * 2)

    request = CancelRequest(CancelReason.CHANNEL, lines=[CancelLine(1, 1), CancelLine(2, 1)])
    orders.cancel(app.uow(), shop, order_id, request)

    after = view(app, shop, order_id)
    assert after["status"] == "allocated"
    assert [(line["cancelled_quantity"], line["allocated_quantity"]) for line in after["lines"]] == [(1, 2), (1, 1)]
    assert levels(app, shop)["HN"] == (10, 2 + 1 * 2)
    assert levels(app, shop, "B")["HN"] == (5, 1)
    assert [r[0] for r in release_movements(app, shop, "HN")] == [-2, -1]  # newest first: kit's A, then A
    assert release_movements(app, shop, "HN", "B") == [(-1, 0, f"order:{order_id}", "cancelled: channel", "test")]


def test_cancelling_unreserved_units_keeps_the_reserved_ones(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 2)
    order_id = place(app, shop, "o-1", ("A", 5))
    allocation.allocate_batch(app.uow())
    assert view(app, shop, order_id)["status"] == "partially_allocated"

    orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.OPERATOR, lines=[CancelLine(1, 3)]))

    after = view(app, shop, order_id)
    assert after["status"] == "allocated"
    assert (after["lines"][0]["cancelled_quantity"], after["lines"][0]["allocated_quantity"]) == (3, 2)
    assert levels(app, shop)["HN"] == (2, 2)
    assert release_movements(app, shop, "HN") == []


def test_a_cancelled_pending_order_is_never_allocated(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 5)
    order_id = place(app, shop, "o-1", ("A", 1))

    orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.FRAUD))

    assert allocation.allocate_batch(app.uow()).claimed == 0
    assert view(app, shop, order_id)["status"] == "cancelled"
    assert levels(app, shop)["HN"] == (5, 0)


def test_cancelling_a_released_orders_unshipped_units_withdraws_their_shipment(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 2))
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), shop, order_id)
    assert shipments(app, shop, order_id) == {"HN": "pending", "SG": "pending"}

    # The newest reservation goes first: SG's (HN, the nearest, was filled first).
    orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.WAREHOUSE, lines=[CancelLine(1, 1)]))
    assert shipments(app, shop, order_id) == {"HN": "pending", "SG": "cancelled"}
    assert view(app, shop, order_id)["status"] == "released"
    assert levels(app, shop) == {"HN": (1, 1), "SG": (1, 0)}

    orders.cancel(app.uow(), shop, order_id, WHOLE)
    assert shipments(app, shop, order_id) == {"HN": "cancelled", "SG": "cancelled"}
    assert view(app, shop, order_id)["status"] == "cancelled"
    assert levels(app, shop) == {"HN": (1, 0), "SG": (1, 0)}


def test_shipped_units_cannot_be_cancelled_and_nothing_changes(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 2))
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), shop, order_id)
    ship(app, shop, order_id, "HN")
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.CUSTOMER, lines=[CancelLine(1, 2)]))

    assert (raised.value.code, raised.value.details) == (
        "not_cancellable",
        {"field": "lines.0.quantity", "cancellable": 1},
    )
    assert snapshot(app, shop.tenant_id) == before


def test_cancelling_the_rest_of_a_partially_shipped_order_leaves_it_shipped(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 2))
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), shop, order_id)
    ship(app, shop, order_id, "HN")
    assert view(app, shop, order_id)["status"] == "partially_shipped"

    orders.cancel(app.uow(), shop, order_id, WHOLE)

    after = view(app, shop, order_id)
    assert after["status"] == "shipped"
    assert (after["lines"][0]["cancelled_quantity"], after["lines"][0]["shipped_quantity"]) == (1, 1)
    assert shipments(app, shop, order_id) == {"HN": "shipped", "SG": "cancelled"}
    assert levels(app, shop) == {"HN": (0, 0), "SG": (1, 0)}


def test_a_fully_shipped_order_cannot_be_cancelled_and_nothing_changes(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 1))
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), shop, order_id)
    ship(app, shop, order_id, "HN")
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(IllegalTransition) as raised:
        orders.cancel(app.uow(), shop, order_id, WHOLE)

    assert (raised.value.details["current"], raised.value.details["target"]) == ("shipped", "cancelled")
    assert snapshot(app, shop.tenant_id) == before


def test_a_cancelled_order_cannot_be_cancelled_again(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, "o-1", ("A", 1))
    orders.cancel(app.uow(), shop, order_id, WHOLE)
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(IllegalTransition):
        orders.cancel(app.uow(), shop, order_id, WHOLE)

    assert snapshot(app, shop.tenant_id) == before


def test_an_impossible_partial_cancel_is_refused_and_nothing_changes(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 5)
    order_id = place(app, shop, "o-1", ("A", 2), ("A", 1))
    allocation.allocate_batch(app.uow())
    before = snapshot(app, shop.tenant_id)
    cases = {
        "lines.1.line_number": [CancelLine(1, 1), CancelLine(9, 1)],
        "lines.0.quantity": [CancelLine(2, 0)],
        "lines.1.quantity": [CancelLine(1, 1), CancelLine(2, 2)],  # line 2 has one unit
    }
    refused = {}

    for field, lines in cases.items():
        with pytest.raises(InvalidInput) as raised:
            orders.cancel(app.uow(), shop, order_id, CancelRequest(CancelReason.CUSTOMER, lines=lines))
        refused[field] = raised.value.details["field"]

    assert refused == {field: field for field in cases}
    assert snapshot(app, shop.tenant_id) == before


def test_another_tenants_order_cannot_be_cancelled(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 1))
    allocation.allocate_batch(app.uow())
    other = tenants.create_tenant(app.uow(), "other-tenant")
    before = snapshot(app, shop.tenant_id)

    with pytest.raises(NotFound):
        orders.cancel(app.uow(), Caller(other.tenant_id, "admin", "intruder"), order_id, WHOLE)

    assert snapshot(app, shop.tenant_id) == before
