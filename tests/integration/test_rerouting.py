"""Rerouting when the world changes, on SQLite and PostgreSQL: a short pick, a node going offline, a
count below what was promised. Units move with events and no stock leaks (levels = ledger, reserved
= what live allocations promise)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import Allocation, InventoryLevel, InventoryMovement
from ordermesh.bootstrap import Application
from ordermesh.services import cancellations, catalog, fulfilment, inventory, order_views, orders, routing_profiles
from ordermesh.services.inventory import StockCount
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import drain

HANOI = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}
HANOI |= {"latitude": 21.02, "longitude": 105.84}
PLACES = {"HN": (21.03, 105.85, "Ha Noi"), "SG": (10.78, 106.70, "Ho Chi Minh")}


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    """HN (near the Ha Noi customer) and SG (far), 5 of A at each."""
    for code, (latitude, longitude, province) in PLACES.items():
        catalog.upsert_location(
            app.uow(),
            caller,
            code,
            catalog.LocationInput(code, latitude=latitude, longitude=longitude, province=province, country="VN"),
        )
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("A", "Apple")])
    for code in PLACES:
        inventory.set_on_hand(app.uow(), caller, code, "A", StockCount(5, "count"))
    return caller


def place(app: Application, caller: Caller, external_id: str, quantity: int = 1) -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine("A", quantity, Decimal(1))], HANOI)
    return orders.capture_order(app.uow(), caller, new).order_id


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def reserved_at(app: Application, caller: Caller, order_id: int) -> dict[str, int]:
    return {
        a["location"]: a["quantity"]
        for line in view(app, caller, order_id)["lines"]
        for a in line["allocations"]
        if a["quantity"]
    }


def levels(app: Application, caller: Caller) -> dict[str, tuple[int, int]]:
    codes = {1: "HN", 2: "SG"}
    with app.read_uow() as uow:
        rows = uow.session.scalars(select(InventoryLevel).where(InventoryLevel.tenant_id == caller.tenant_id)).all()
        return {codes.get(r.location_id, str(r.location_id)): (r.on_hand, r.reserved) for r in rows}


def assert_no_stock_leaked(app: Application, caller: Caller) -> None:
    with app.read_uow() as uow:
        session = uow.session
        for level in session.scalars(select(InventoryLevel).where(InventoryLevel.tenant_id == caller.tenant_id)):
            ledger = session.execute(
                select(func.sum(InventoryMovement.on_hand_delta), func.sum(InventoryMovement.reserved_delta)).where(
                    InventoryMovement.location_id == level.location_id, InventoryMovement.sku_id == level.sku_id
                )
            ).one()
            promised = session.scalar(
                select(func.coalesce(func.sum(Allocation.quantity), 0)).where(
                    Allocation.location_id == level.location_id
                )
            )
            assert (level.on_hand, level.reserved) == (ledger[0], ledger[1])
            assert level.reserved == promised


def released_order(app: Application, caller: Caller, quantity: int = 1) -> tuple[int, int]:
    order_id = place(app, caller, "o-1", quantity)
    drain(app)
    fulfilment.release(app.uow(), caller, order_id)
    [shipment] = view(app, caller, order_id)["shipments"]
    return order_id, shipment["id"]


def test_reroutes_short_pick_to_next_best_node(app: Application, shop: Caller) -> None:
    order_id, shipment_id = released_order(app, shop)
    assert reserved_at(app, shop, order_id) == {"HN": 1}

    fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 1, "bin empty"))
    drain(app)

    order = view(app, shop, order_id)
    assert order["status"] == "allocated"
    assert reserved_at(app, shop, order_id) == {"SG": 1}  # never HN again, though HN still has 4
    assert [s["status"] for s in order["shipments"]] == ["cancelled"]
    assert levels(app, shop) == {"HN": (4, 0), "SG": (5, 1)}  # the missing unit left HN's books
    [event] = [e for e in order["events"] if e["type"] == "short_picked"]
    assert event["data"]["policy"] == "reroute"
    assert_no_stock_leaked(app, shop)


def test_a_short_pick_in_a_split_order_ships_the_rest_and_adds_a_shipment(app: Application, shop: Caller) -> None:
    inventory.set_on_hand(app.uow(), shop, "HN", "A", StockCount(2, "count"))
    order_id, shipment_id = released_order(app, shop, quantity=2)

    fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 1))
    drain(app)

    order = view(app, shop, order_id)
    assert order["status"] == "released"
    assert reserved_at(app, shop, order_id) == {"HN": 1, "SG": 1}
    assert sorted((s["location"], s["status"]) for s in order["shipments"]) == [("HN", "pending"), ("SG", "pending")]
    assert_no_stock_leaked(app, shop)


def test_a_short_pick_waits_for_stock_under_the_backorder_policy(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "default", {"short_pick": "backorder"})
    order_id, shipment_id = released_order(app, shop)

    fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 1))
    drain(app)

    assert view(app, shop, order_id)["status"] == "backordered"
    assert reserved_at(app, shop, order_id) == {}
    assert_no_stock_leaked(app, shop)


def test_the_cancel_policy_reroutes_first_when_another_node_has_stock(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "default", {"short_pick": "cancel"})
    order_id, shipment_id = released_order(app, shop)

    fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 1))
    drain(app)
    assert cancellations.settle_short_picks(app.uow()) == 0

    order = view(app, shop, order_id)
    assert (order["status"], order["lines"][0]["cancelled_quantity"]) == ("allocated", 0)
    assert reserved_at(app, shop, order_id) == {"SG": 1}
    assert levels(app, shop) == {"HN": (4, 0), "SG": (5, 1)}
    assert_no_stock_leaked(app, shop)


def test_the_cancel_policy_cancels_only_units_no_node_can_take(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "default", {"short_pick": "cancel"})
    inventory.set_on_hand(app.uow(), shop, "SG", "A", StockCount(1, "count"))
    order_id, shipment_id = released_order(app, shop, quantity=3)  # all 3 at HN

    fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 3))
    drain(app)  # SG takes 1 of the 3
    assert cancellations.settle_short_picks(app.uow()) == 2
    assert cancellations.settle_short_picks(app.uow()) == 0  # settled once

    order = view(app, shop, order_id)
    assert (order["status"], order["lines"][0]["cancelled_quantity"]) == ("allocated", 2)
    assert reserved_at(app, shop, order_id) == {"SG": 1}
    [event] = [e for e in order["events"] if e["type"] == "lines_cancelled"]
    assert (event["reason"], event["data"]["lines"]) == ("warehouse", [{"line_number": 1, "quantity": 2}])
    assert event["data"]["refund"] == "2"
    assert levels(app, shop) == {"HN": (2, 0), "SG": (1, 1)}
    assert_no_stock_leaked(app, shop)


def test_a_short_pick_of_more_than_the_shipment_carries_changes_nothing(app: Application, shop: Caller) -> None:
    order_id, shipment_id = released_order(app, shop)
    before = (view(app, shop, order_id), levels(app, shop))

    with pytest.raises(orders.InvalidInput):
        fulfilment.report_short_pick(app.uow(), shop, shipment_id, fulfilment.ShortPick(1, 2))

    assert (view(app, shop, order_id), levels(app, shop)) == before


def test_an_offline_node_gives_its_unreleased_reservations_to_another(app: Application, shop: Caller) -> None:
    unreleased = place(app, shop, "o-1")
    released = place(app, shop, "o-2")
    drain(app)
    fulfilment.release(app.uow(), shop, released)
    drain(app)

    catalog.upsert_location(
        app.uow(), shop, "HN", catalog.LocationInput("HN", latitude=21.03, longitude=105.85, country="VN", active=False)
    )
    drain(app)

    assert reserved_at(app, shop, unreleased) == {"SG": 1}
    assert reserved_at(app, shop, released) == {"HN": 1}  # released work stays with its node
    [event] = [e for e in view(app, shop, unreleased)["events"] if e["type"] == "rerouted"]
    assert event["reason"] == "location HN went offline"
    assert_no_stock_leaked(app, shop)


def test_a_count_below_what_was_promised_reroutes_the_newest_reservations(app: Application, shop: Caller) -> None:
    older, newer = place(app, shop, "o-1"), place(app, shop, "o-2")
    drain(app)
    assert (reserved_at(app, shop, older), reserved_at(app, shop, newer)) == ({"HN": 1}, {"HN": 1})

    inventory.set_on_hand(app.uow(), shop, "HN", "A", StockCount(1, "cycle count found one"))
    drain(app)

    assert (reserved_at(app, shop, older), reserved_at(app, shop, newer)) == ({"HN": 1}, {"SG": 1})
    assert levels(app, shop) == {"HN": (1, 1), "SG": (5, 1)}
    assert_no_stock_leaked(app, shop)
