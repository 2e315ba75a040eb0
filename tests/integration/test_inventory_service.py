"""Stock levels through the real inventory service, on SQLite and PostgreSQL: every change is a
ledger movement with its reason, reference and actor, and a level always equals its ledger's sum."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import InventoryLevel, InventoryMovement, OutboxMessage, Shipment, StockArrival
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import IdempotencyKeyReused, InsufficientStock, InvalidInput, NotFound
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.services import allocation, catalog, fulfilment, inventory, orders, tenants
from ordermesh.services.inventory import StockAdjustment, StockCount
from ordermesh.services.unit_of_work import Caller, IdempotencyKey, IdempotentReplay, ResourceRef, UnitOfWork
from tests.integration.shop import levels_and_ledger

ADDRESS = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}


@pytest.fixture
def stocked(app: Application, caller: Caller) -> Caller:
    """A tenant with one location HN and SKUs A, B and the bundle KIT = 2 x A + 1 x B."""
    catalog.upsert_location(app.uow(), caller, "HN", catalog.LocationInput("Ha Noi"))
    catalog.upsert_skus(
        app.uow(),
        caller,
        [
            catalog.SkuInput("A", "Apple"),
            catalog.SkuInput("B", "Banana"),
            catalog.SkuInput("KIT", "Kit", 0, {"A": 2, "B": 1}),
        ],
    )
    return caller


def snapshot(app: Application, tenant_id: int) -> dict[str, Any]:
    """Everything a stock change can touch, for 'nothing changed' asserts."""
    with app.read_uow() as uow:
        session = uow.session
        return {
            "levels": sorted(
                (r.location_id, r.sku_id, r.on_hand, r.reserved, r.safety_stock)
                for r in session.scalars(select(InventoryLevel).where(InventoryLevel.tenant_id == tenant_id))
            ),
            "movements": session.scalar(
                select(func.count()).select_from(InventoryMovement).where(InventoryMovement.tenant_id == tenant_id)
            ),
            "outbox": session.scalar(
                select(func.count()).select_from(OutboxMessage).where(OutboxMessage.tenant_id == tenant_id)
            ),
            "arrivals": session.scalar(
                select(func.count()).select_from(StockArrival).where(StockArrival.tenant_id == tenant_id)
            ),
        }


def assert_levels_equal_ledger(app: Application, tenant_id: int) -> None:
    levels, sums = levels_and_ledger(app, tenant_id)
    assert set(sums) <= set(levels)
    assert levels == {key: sums.get(key, (0, 0, 0)) for key in levels}


def movements(app: Application, caller: Caller, sku: str = "A") -> list[dict[str, object]]:
    """The ledger of HN/sku, oldest first, without ids and timestamps."""
    rows = inventory.list_movements(app.read_uow(), caller, "HN", sku)
    return [
        {
            k: row[k]
            for k in ("reason", "on_hand_delta", "reserved_delta", "safety_stock_delta", "reference", "note", "actor")
        }
        for row in reversed(rows)
    ]


def level(app: Application, caller: Caller, sku: str = "A") -> dict[str, object]:
    return inventory.get_level(app.read_uow(), caller, "HN", sku)


def test_set_on_hand_records_a_count_movement_with_reason_reference_and_actor(
    app: Application, stocked: Caller
) -> None:
    view = inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(12, "stock take", reference="ST-1"))

    assert view == {"location": "HN", "sku": "A", "on_hand": 12, "reserved": 0, "safety_stock": 0, "available": 12}
    assert movements(app, stocked) == [
        {
            "reason": "count",
            "on_hand_delta": 12,
            "reserved_delta": 0,
            "safety_stock_delta": 0,
            "reference": "ST-1",
            "note": "stock take",
            "actor": "test",
        }
    ]
    assert_levels_equal_ledger(app, stocked.tenant_id)


def test_count_records_the_difference_to_the_books_not_the_counted_value(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(12, "stock take"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(9, "cycle count", reference="CC-7"))

    assert level(app, stocked)["on_hand"] == 9
    assert [(m["reason"], m["on_hand_delta"], m["reference"]) for m in movements(app, stocked)] == [
        ("count", 12, None),
        ("count", -3, "CC-7"),
    ]
    assert_levels_equal_ledger(app, stocked.tenant_id)


def test_count_equal_to_the_books_writes_nothing(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(5, "stock take"))
    before = snapshot(app, stocked.tenant_id)

    view = inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(5, "recount"))

    assert view["on_hand"] == 5
    assert snapshot(app, stocked.tenant_id) == before


def test_count_can_set_safety_stock_which_available_excludes(app: Application, stocked: Caller) -> None:
    view = inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(10, "stock take", safety_stock=3))

    assert view == {"location": "HN", "sku": "A", "on_hand": 10, "reserved": 0, "safety_stock": 3, "available": 7}
    assert [(m["reason"], m["on_hand_delta"], m["safety_stock_delta"]) for m in movements(app, stocked)] == [
        ("count", 10, 0),
        ("safety_stock", 0, 3),
    ]
    assert_levels_equal_ledger(app, stocked.tenant_id)


def test_adjust_applies_the_delta_and_records_an_adjustment(app: Application, stocked: Caller) -> None:
    inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(7, "receipt", "PO-1"))
    view = inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(-2, "damaged", "RMA-9"))

    assert view["on_hand"] == 5
    assert movements(app, stocked) == [
        {
            "reason": "adjustment",
            "on_hand_delta": 7,
            "reserved_delta": 0,
            "safety_stock_delta": 0,
            "reference": "PO-1",
            "note": "receipt",
            "actor": "test",
        },
        {
            "reason": "adjustment",
            "on_hand_delta": -2,
            "reserved_delta": 0,
            "safety_stock_delta": 0,
            "reference": "RMA-9",
            "note": "damaged",
            "actor": "test",
        },
    ]
    assert_levels_equal_ledger(app, stocked.tenant_id)


def test_adjust_below_zero_on_hand_is_refused_and_changes_nothing(app: Application, stocked: Caller) -> None:
    inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(2, "receipt"))
    before = snapshot(app, stocked.tenant_id)

    with pytest.raises(InsufficientStock):
        inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(-3, "damaged"))

    assert snapshot(app, stocked.tenant_id) == before


INVALID_CHANGES = {
    "delta": lambda app, c: inventory.adjust(app.uow(), c, "HN", "A", StockAdjustment(0, "nothing")),
    "reason": lambda app, c: inventory.adjust(app.uow(), c, "HN", "A", StockAdjustment(1, "   ")),
    "on_hand": lambda app, c: inventory.set_on_hand(app.uow(), c, "HN", "A", StockCount(-1, "count")),
    "safety_stock": lambda app, c: inventory.set_on_hand(app.uow(), c, "HN", "A", StockCount(1, "c", safety_stock=-1)),
}


def test_invalid_stock_change_is_refused_and_changes_nothing(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(4, "stock take"))
    before = snapshot(app, stocked.tenant_id)
    refused = {}

    for field, change in INVALID_CHANGES.items():
        with pytest.raises(InvalidInput) as raised:
            change(app, stocked)
        refused[field] = raised.value.details["field"]
    with pytest.raises(InvalidInput) as too_long:
        inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(1, "x" * 501))

    assert refused == {field: field for field in INVALID_CHANGES}
    assert too_long.value.details["field"] == "reason"
    assert snapshot(app, stocked.tenant_id) == before


def test_stock_change_for_unknown_location_or_sku_is_not_found_and_changes_nothing(
    app: Application, stocked: Caller
) -> None:
    before = snapshot(app, stocked.tenant_id)

    with pytest.raises(NotFound) as no_location:
        inventory.adjust(app.uow(), stocked, "NOPE", "A", StockAdjustment(1, "receipt"))
    with pytest.raises(NotFound) as no_sku:
        inventory.set_on_hand(app.uow(), stocked, "HN", "NOPE", StockCount(1, "stock take"))

    assert (no_location.value.code, no_sku.value.code) == ("location_not_found", "sku_not_found")
    assert snapshot(app, stocked.tenant_id) == before


def test_bundle_keeps_no_stock_of_its_own(app: Application, stocked: Caller) -> None:
    before = snapshot(app, stocked.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        inventory.set_on_hand(app.uow(), stocked, "HN", "KIT", StockCount(3, "stock take"))
    with pytest.raises(InvalidInput):
        inventory.adjust(app.uow(), stocked, "HN", "KIT", StockAdjustment(3, "receipt"))

    assert raised.value.code == "bundle_has_no_stock"
    assert snapshot(app, stocked.tenant_id) == before


def test_bundle_availability_is_whole_bundles_buildable_from_components(app: Application, stocked: Caller) -> None:
    catalog.upsert_location(app.uow(), stocked, "SG", catalog.LocationInput("Sai Gon"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(7, "stock take"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "B", StockCount(10, "stock take"))
    inventory.set_on_hand(app.uow(), stocked, "SG", "A", StockCount(10, "stock take"))
    inventory.set_on_hand(app.uow(), stocked, "SG", "B", StockCount(1, "stock take", safety_stock=1))

    view = inventory.sku_availability(app.read_uow(), stocked, "KIT")

    assert view == {
        "sku": "KIT",
        "bundle": True,
        "locations": [
            {"location": "HN", "active": True, "available": 3},  # A: 7 // 2 = 3, B: 10
            {"location": "SG", "active": True, "available": 0},  # B: 1 on hand, 1 safety stock
        ],
        "total": {"available": 3},
    }


def test_plain_sku_availability_lists_every_location_and_the_total(app: Application, stocked: Caller) -> None:
    catalog.upsert_location(app.uow(), stocked, "SG", catalog.LocationInput("Sai Gon"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(7, "stock take", safety_stock=2))

    view = inventory.sku_availability(app.read_uow(), stocked, "A")

    assert view["total"] == {"on_hand": 7, "reserved": 0, "safety_stock": 2, "available": 5}
    assert view["locations"] == [
        {"location": "HN", "sku": "A", "on_hand": 7, "reserved": 0, "safety_stock": 2, "available": 5, "active": True},
        {"location": "SG", "sku": "A", "on_hand": 0, "reserved": 0, "safety_stock": 0, "available": 0, "active": True},
    ]


def test_reservation_and_shipment_movements_keep_levels_equal_to_the_ledger(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(10, "stock take"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "B", StockCount(10, "stock take"))
    new = orders.NewOrder(
        "direct",
        "o-1",
        "VND",
        [orders.NewLine("A", 3, Decimal(1)), orders.NewLine("KIT", 2, Decimal(5))],
        ADDRESS,
    )
    order_id = orders.capture_order(app.uow(), stocked, new).order_id
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), stocked, order_id)
    with app.read_uow() as uow:
        shipment_id = uow.session.scalar(select(Shipment.id).where(Shipment.order_id == order_id))
    fulfilment.record_shipment_event(
        app.uow(), stocked, shipment_id, fulfilment.ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN", "T1")
    )
    inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(-1, "damaged"))

    # A: 3 for the line + 2 x 2 for the kits = 7 shipped; B: 2 for the kits.
    assert level(app, stocked, "A") == {
        "location": "HN",
        "sku": "A",
        "on_hand": 2,
        "reserved": 0,
        "safety_stock": 0,
        "available": 2,
    }
    assert level(app, stocked, "B")["on_hand"] == 8
    assert [(m["reason"], m["on_hand_delta"], m["reserved_delta"]) for m in movements(app, stocked)] == [
        ("count", 10, 0),
        ("reserve", 0, 3),
        ("reserve", 0, 4),
        ("ship", -3, -3),
        ("ship", -4, -4),
        ("adjustment", -1, 0),
    ]
    assert_levels_equal_ledger(app, stocked.tenant_id)


def test_every_level_change_writes_a_level_changed_event(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(10, "stock take", safety_stock=2))

    with app.read_uow() as uow:
        rows = [
            (r.event_type, r.aggregate_type, r.aggregate_id, r.payload)
            for r in uow.session.scalars(
                select(OutboxMessage).where(OutboxMessage.tenant_id == stocked.tenant_id).order_by(OutboxMessage.id)
            )
        ]
        [(location_id, sku_id)] = uow.session.execute(
            select(InventoryLevel.location_id, InventoryLevel.sku_id).where(
                InventoryLevel.tenant_id == stocked.tenant_id
            )
        ).all()
    # One event per touched level and transaction (not per movement), with the level after the change.
    assert rows == [
        (
            "inventory.level_changed",
            "inventory",
            f"{location_id}:{sku_id}",
            {
                "location_id": location_id,
                "sku_id": sku_id,
                "on_hand": 10,
                "reserved": 0,
                "safety_stock": 2,
                "available": 8,
            },
        )
    ]


def test_only_a_rise_in_availability_signals_a_stock_arrival(app: Application, stocked: Caller) -> None:
    inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(5, "receipt"))
    assert snapshot(app, stocked.tenant_id)["arrivals"] == 1
    assert app.allocator_wakeup.is_set()

    app.allocator_wakeup.clear()
    inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(-1, "damaged"))
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(4, "stock take", safety_stock=1))

    assert snapshot(app, stocked.tenant_id)["arrivals"] == 1
    assert not app.allocator_wakeup.is_set()


def test_movements_are_listed_newest_first_and_page_with_before(app: Application, stocked: Caller) -> None:
    for delta in (1, 2, 3, 4):
        inventory.adjust(app.uow(), stocked, "HN", "A", StockAdjustment(delta, "receipt"))

    first = inventory.list_movements(app.read_uow(), stocked, "HN", "A", limit=3)
    second = inventory.list_movements(app.read_uow(), stocked, "HN", "A", limit=3, before=int(str(first[-1]["id"])))

    assert [m["on_hand_delta"] for m in first] == [4, 3, 2]
    assert [m["on_hand_delta"] for m in second] == [1]


def test_a_tenant_never_sees_or_changes_another_tenants_stock(app: Application, stocked: Caller) -> None:
    inventory.set_on_hand(app.uow(), stocked, "HN", "A", StockCount(10, "stock take"))
    other = tenants.create_tenant(app.uow(), "other-tenant")
    intruder = Caller(other.tenant_id, "admin", "intruder")
    before = snapshot(app, stocked.tenant_id)

    with pytest.raises(NotFound):
        inventory.get_level(app.read_uow(), intruder, "HN", "A")
    with pytest.raises(NotFound):
        inventory.adjust(app.uow(), intruder, "HN", "A", StockAdjustment(-10, "theft"))

    assert snapshot(app, stocked.tenant_id) == before


def test_an_adjustment_repeated_with_its_idempotency_key_is_applied_once(app: Application, stocked: Caller) -> None:
    def keyed(fingerprint: str) -> UnitOfWork:
        return app.uow(idempotency=(stocked.tenant_id, IdempotencyKey("receipt-PO-1", fingerprint)))

    inventory.adjust(keyed("body-1"), stocked, "HN", "A", StockAdjustment(5, "receipt", "PO-1"))
    before = snapshot(app, stocked.tenant_id)

    with pytest.raises(IdempotentReplay) as replay:
        inventory.adjust(keyed("body-1"), stocked, "HN", "A", StockAdjustment(5, "receipt", "PO-1"))
    with pytest.raises(IdempotencyKeyReused):
        inventory.adjust(keyed("body-2"), stocked, "HN", "A", StockAdjustment(7, "receipt", "PO-1"))

    assert replay.value.resource == ResourceRef("inventory_level", "HN/A")
    assert snapshot(app, stocked.tenant_id) == before
    assert level(app, stocked)["on_hand"] == 5
