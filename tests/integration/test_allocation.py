"""Batch allocation through the real services, on SQLite and PostgreSQL: priority (earliest ship-by,
then first placed), routing (nearest single location, else fewest locations, else partial),
backorders allocated automatically when stock arrives, and never a unit promised twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from ordermesh.bootstrap import Application
from ordermesh.domain.lifecycle import OrderStatus, is_allowed
from ordermesh.services import allocation, catalog, inventory, order_views, orders
from ordermesh.services.inventory import StockAdjustment, StockCount
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import drain
from tests.integration.shop import levels_and_ledger

# Locations (latitude, longitude) and a customer in Ha Noi: HN is nearest, then DN, then SG.
LOCATIONS = {"HN": (21.03, 105.85), "DN": (16.05, 108.20), "SG": (10.78, 106.70)}
HANOI = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}
HANOI |= {"latitude": 21.02, "longitude": 105.84}
SAIGON = {**HANOI, "province": "Ho Chi Minh", "latitude": 10.77, "longitude": 106.69}
T0 = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    """Locations HN, DN, SG with coordinates; SKUs A, B and KIT = 2 x A + 1 x B; no stock yet."""
    for code, (latitude, longitude) in LOCATIONS.items():
        catalog.upsert_location(
            app.uow(), caller, code, catalog.LocationInput(code, latitude=latitude, longitude=longitude)
        )
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


def stock(app: Application, caller: Caller, location: str, sku: str, on_hand: int, safety_stock: int = 0) -> None:
    inventory.set_on_hand(app.uow(), caller, location, sku, StockCount(on_hand, "stock take", safety_stock))


def place(
    app: Application,
    caller: Caller,
    external_id: str,
    *lines: tuple[str, int],
    address: dict[str, Any] = HANOI,
    **extra: Any,
) -> int:
    new = orders.NewOrder(
        "direct",
        external_id,
        "VND",
        [orders.NewLine(sku, quantity, Decimal(1)) for sku, quantity in (lines or [("A", 1)])],
        address,
        **extra,
    )
    return orders.capture_order(app.uow(), caller, new).order_id


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def status(app: Application, caller: Caller, order_id: int) -> str:
    return str(view(app, caller, order_id)["status"])


def reserved_at(app: Application, caller: Caller, order_id: int) -> dict[str, int]:
    """Units this order has reserved, by location code (all lines together)."""
    totals: dict[str, int] = {}
    for line in view(app, caller, order_id)["lines"]:
        for allocation_view in line["allocations"]:
            totals[allocation_view["location"]] = (
                totals.get(allocation_view["location"], 0) + allocation_view["quantity"]
            )
    return totals


def levels(app: Application, caller: Caller, sku: str = "A") -> dict[str, tuple[int, int]]:
    """(on_hand, reserved) of ``sku`` by location code, where either is non-zero."""
    rows = inventory.sku_availability(app.read_uow(), caller, sku)["locations"]
    return {r["location"]: (r["on_hand"], r["reserved"]) for r in rows if r["on_hand"] or r["reserved"]}


def assert_stock_invariants(app: Application, tenant_id: int) -> None:
    """Invariants 1 and 2: 0 <= reserved <= on_hand - safety_stock, and levels equal the ledger."""
    rows, sums = levels_and_ledger(app, tenant_id)
    for on_hand, reserved, safety in rows.values():
        assert 0 <= reserved <= on_hand - safety
    assert rows == {key: sums.get(key, (0, 0, 0)) for key in rows}


def test_scarce_stock_goes_to_the_earliest_ship_by_within_one_batch(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 2)
    # Captured out of priority order; orders without a ship-by come after those with one.
    ids = {
        "later": place(app, shop, "later", ship_by=T0 + timedelta(days=3)),
        "no-deadline": place(app, shop, "no-deadline", placed_at=T0 - timedelta(days=9)),
        "first": place(app, shop, "first", ship_by=T0 + timedelta(days=1)),
        "second": place(app, shop, "second", ship_by=T0 + timedelta(days=2)),
    }

    outcome = allocation.allocate_batch(app.uow())

    assert outcome.claimed == 4
    assert dict(outcome.by_status) == {"allocated": 2, "backordered": 2}
    assert {name: status(app, shop, order_id) for name, order_id in ids.items()} == {
        "first": "allocated",
        "second": "allocated",
        "later": "backordered",
        "no-deadline": "backordered",
    }
    assert levels(app, shop) == {"HN": (2, 2)}
    assert_stock_invariants(app, shop.tenant_id)


def test_equal_ship_by_goes_to_the_first_placed(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    deadline = T0 + timedelta(days=1)
    placed_later = place(app, shop, "placed-later", ship_by=deadline, placed_at=T0)
    placed_first = place(app, shop, "placed-first", ship_by=deadline, placed_at=T0 - timedelta(minutes=1))

    allocation.allocate_batch(app.uow())

    assert (status(app, shop, placed_first), status(app, shop, placed_later)) == ("allocated", "backordered")


def test_allocates_from_the_nearest_location_that_can_ship_everything(app: Application, shop: Caller) -> None:
    for location in LOCATIONS:
        stock(app, shop, location, "A", 5)
    from_hanoi = place(app, shop, "hanoi", ("A", 2), address=HANOI)
    from_saigon = place(app, shop, "saigon", ("A", 2), address=SAIGON)

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, from_hanoi) == {"HN": 2}
    assert reserved_at(app, shop, from_saigon) == {"SG": 2}
    [allocated] = [e for e in view(app, shop, from_hanoi)["events"] if e["type"] == "allocated"]
    assert (allocated["actor"], allocated["data"]["outcome"], allocated["data"]["trace"]) == (
        "worker:allocator",
        "single_node",
        f"/v1/orders/{from_hanoi}/routing",
    )
    assert allocated["reason"].startswith("HN"), allocated["reason"]


def test_one_farther_location_beats_splitting_across_nearer_ones(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "DN", "A", 1)
    stock(app, shop, "SG", "A", 2)
    order_id = place(app, shop, "o-1", ("A", 2))

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"SG": 2}
    assert levels(app, shop) == {"HN": (1, 0), "DN": (1, 0), "SG": (2, 2)}


def test_splits_across_the_fewest_and_nearest_locations_when_none_has_everything(
    app: Application, shop: Caller
) -> None:
    stock(app, shop, "HN", "A", 2)
    stock(app, shop, "DN", "A", 2)
    stock(app, shop, "SG", "A", 3)
    order_id = place(app, shop, "o-1", ("A", 5))

    allocation.allocate_batch(app.uow())

    # Two locations suffice (HN + SG, or DN + SG); HN + SG is the nearer pair for a Ha Noi customer.
    assert status(app, shop, order_id) == "allocated"
    assert reserved_at(app, shop, order_id) == {"HN": 2, "SG": 3}
    [allocated] = [e for e in view(app, shop, order_id)["events"] if e["type"] == "allocated"]
    assert allocated["data"]["outcome"] == "split"


def test_a_bundle_line_reserves_all_its_components_at_one_location(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 10)  # the nearest has plenty of A but no B
    stock(app, shop, "SG", "A", 2)
    stock(app, shop, "SG", "B", 1)
    order_id = place(app, shop, "o-1", ("KIT", 1))

    allocation.allocate_batch(app.uow())

    assert status(app, shop, order_id) == "allocated"
    assert reserved_at(app, shop, order_id) == {"SG": 1}
    assert levels(app, shop, "A") == {"HN": (10, 0), "SG": (2, 2)}
    assert levels(app, shop, "B") == {"SG": (1, 1)}
    assert_stock_invariants(app, shop.tenant_id)


def test_bundle_units_split_across_locations_only_as_whole_bundles(app: Application, shop: Caller) -> None:
    for location in ("HN", "SG"):
        stock(app, shop, location, "A", 3)  # enough A for one kit here, 1.5 kits in all
        stock(app, shop, location, "B", 1)
    order_id = place(app, shop, "o-1", ("KIT", 2))

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"HN": 1, "SG": 1}
    assert levels(app, shop, "A") == {"HN": (3, 2), "SG": (3, 2)}
    assert levels(app, shop, "B") == {"HN": (1, 1), "SG": (1, 1)}
    assert_stock_invariants(app, shop.tenant_id)


def test_partial_allocation_reserves_what_there_is_and_the_rest_follows_the_stock(
    app: Application, shop: Caller
) -> None:
    stock(app, shop, "HN", "A", 2)
    order_id = place(app, shop, "o-1", ("A", 5))

    allocation.allocate_batch(app.uow())
    assert status(app, shop, order_id) == "partially_allocated"
    assert reserved_at(app, shop, order_id) == {"HN": 2}

    inventory.adjust(app.uow(), shop, "SG", "A", StockAdjustment(3, "receipt", "PO-1"))
    assert allocation.requeue_backorders(app.uow()) == 1
    allocation.allocate_batch(app.uow())

    assert status(app, shop, order_id) == "allocated"
    assert reserved_at(app, shop, order_id) == {"HN": 2, "SG": 3}
    assert_stock_invariants(app, shop.tenant_id)


def test_a_backorder_is_allocated_once_stock_arrives(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, "o-1", ("A", 2))
    allocation.allocate_batch(app.uow())
    assert status(app, shop, order_id) == "backordered"
    assert allocation.allocate_batch(app.uow()).claimed == 0  # parked until stock arrives

    inventory.adjust(app.uow(), shop, "HN", "A", StockAdjustment(2, "receipt"))
    requeued = allocation.requeue_backorders(app.uow())
    outcome = allocation.allocate_batch(app.uow())

    assert (requeued, outcome.claimed, outcome.units_reserved) == (1, 1, 2)
    assert status(app, shop, order_id) == "allocated"
    assert allocation.requeue_backorders(app.uow()) == 0  # the arrival signal was consumed


def test_arriving_stock_goes_to_backorders_in_priority_order(app: Application, shop: Caller) -> None:
    ids = {
        name: place(app, shop, name, ship_by=T0 + timedelta(days=days))
        for name, days in (("third", 3), ("first", 1), ("fourth", 4), ("second", 2))
    }
    drain(app, timeout=30)
    assert {status(app, shop, order_id) for order_id in ids.values()} == {"backordered"}

    inventory.adjust(app.uow(), shop, "DN", "A", StockAdjustment(2, "receipt"))
    drain(app, timeout=30)

    assert {name: status(app, shop, order_id) for name, order_id in ids.items()} == {
        "first": "allocated",
        "second": "allocated",
        "third": "backordered",
        "fourth": "backordered",
    }
    assert levels(app, shop) == {"DN": (2, 2)}
    assert_stock_invariants(app, shop.tenant_id)


def test_safety_stock_is_never_promised(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 3, safety_stock=2)
    first = place(app, shop, "o-1")
    second = place(app, shop, "o-2")

    allocation.allocate_batch(app.uow())

    assert (status(app, shop, first), status(app, shop, second)) == ("allocated", "backordered")
    assert levels(app, shop) == {"HN": (3, 1)}


def test_an_inactive_location_is_never_used(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 5)
    catalog.upsert_location(app.uow(), shop, "HN", catalog.LocationInput("HN", active=False))
    order_id = place(app, shop, "o-1")

    allocation.allocate_batch(app.uow())

    assert status(app, shop, order_id) == "backordered"
    assert levels(app, shop) == {"HN": (5, 0)}


def test_small_batches_never_promise_more_than_there_is(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 3)
    stock(app, shop, "SG", "A", 2)
    ids = [place(app, shop, f"o-{n}", ("A", 1 + n % 2)) for n in range(8)]

    claimed = []
    while outcome := allocation.allocate_batch(app.uow(), limit=3):
        if not outcome.claimed:
            break
        claimed.append(outcome.claimed)

    assert claimed == [3, 3, 2]
    reserved = sum(sum(reserved_at(app, shop, order_id).values()) for order_id in ids)
    assert reserved == 5
    assert {status(app, shop, order_id) for order_id in ids} <= {"allocated", "partially_allocated", "backordered"}
    assert_stock_invariants(app, shop.tenant_id)


def test_a_held_order_is_left_alone_until_released_from_hold(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = place(app, shop, "o-1")
    orders.hold(app.uow(), shop, order_id, "fraud check")

    assert allocation.allocate_batch(app.uow()).claimed == 0
    assert status(app, shop, order_id) == "on_hold"

    orders.release_hold(app.uow(), shop, order_id, "looks fine")
    allocation.allocate_batch(app.uow())

    assert status(app, shop, order_id) == "allocated"


def test_auto_release_hands_fully_allocated_orders_to_their_locations(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    stock(app, shop, "SG", "A", 1)
    split = place(app, shop, "split", ("A", 2), ship_by=T0 + timedelta(days=1))
    short = place(app, shop, "short", ("A", 1), ship_by=T0 + timedelta(days=2))

    allocation.allocate_batch(app.uow(), auto_release=True)

    assert status(app, shop, split) == "released"
    assert sorted(s["location"] for s in view(app, shop, split)["shipments"]) == ["HN", "SG"]
    assert status(app, shop, short) == "backordered"
    assert view(app, shop, short)["shipments"] == []


def test_every_allocation_step_is_an_allowed_recorded_transition(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 1)
    order_id = place(app, shop, "o-1", ("A", 3))
    allocation.allocate_batch(app.uow())
    inventory.adjust(app.uow(), shop, "HN", "A", StockAdjustment(2, "receipt"))
    drain(app, timeout=30)

    events = view(app, shop, order_id)["events"]
    transitions = [(e["from_status"], e["to_status"]) for e in events if e["type"] == "status_changed"]

    assert transitions == [("pending", "partially_allocated"), ("partially_allocated", "allocated")]
    assert all(is_allowed(OrderStatus(a), OrderStatus(b)) for a, b in transitions)
    assert [e["type"] for e in events] == ["created", "allocated", "status_changed", "allocated", "status_changed"]
    assert [e["data"]["allocations"] for e in events if e["type"] == "allocated"] == [
        [{"line_number": 1, "location_id": events[1]["data"]["allocations"][0]["location_id"], "units": 1}],
        [{"line_number": 1, "location_id": events[1]["data"]["allocations"][0]["location_id"], "units": 2}],
    ]


def test_a_batch_stores_every_order_status_with_one_update_per_status(app: Application, shop: Caller) -> None:
    served = [place(app, shop, f"s-{n}") for n in range(5)]
    short = place(app, shop, "short", ("A", 2))  # one unit left for it after the five
    late = [place(app, shop, f"late-{n}") for n in range(4)]
    stock(app, shop, "HN", "A", 6)  # 6 units: five orders of one, one of the short order's two
    statements: list[str] = []  # one entry per execution on the server (an executemany is many)

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, many: bool) -> None:
        statements.extend([statement] * (len(parameters) if many else 1))

    event.listen(app.engine, "before_cursor_execute", seen)
    try:
        outcome = allocation.allocate_batch(app.uow())
    finally:
        event.remove(app.engine, "before_cursor_execute", seen)

    assert outcome.claimed == 10
    assert [status(app, shop, order_id) for order_id in served] == ["allocated"] * 5
    assert status(app, shop, short) == "partially_allocated"
    assert [status(app, shop, order_id) for order_id in late] == ["backordered"] * 4
    for order_id in [*served, short, *late]:
        order = view(app, shop, order_id)
        assert order["updated_at"] >= order["events"][-1]["at"]
    # The claim's queue flag, then the new statuses: one statement per status, none per order.
    order_updates = [text for text in statements if text.lstrip().upper().startswith("UPDATE ORDERS")]
    assert len(order_updates) == 4, order_updates
    assert_stock_invariants(app, shop.tenant_id)


def test_a_bundle_backorder_is_allocated_when_its_missing_component_arrives(app: Application, shop: Caller) -> None:
    stock(app, shop, "HN", "A", 2)
    order_id = place(app, shop, "o-1", ("KIT", 1))
    drain(app, timeout=30)  # also consumes the arrival signal of A
    assert status(app, shop, order_id) == "backordered"

    inventory.adjust(app.uow(), shop, "HN", "B", StockAdjustment(1, "receipt"))
    drain(app, timeout=30)

    assert status(app, shop, order_id) == "allocated"
    assert levels(app, shop, "B") == {"HN": (1, 1)}


def test_a_bundle_backorder_waits_for_the_components_it_was_captured_with(app: Application, shop: Caller) -> None:
    """An order line keeps the components its bundle had at capture; a later catalogue edit must
    not strand the backorder when those components arrive."""
    catalog.upsert_skus(app.uow(), shop, [catalog.SkuInput("C", "Cherry")])
    stock(app, shop, "HN", "A", 2)
    order_id = place(app, shop, "o-1", ("KIT", 1))  # KIT = 2 x A + 1 x B
    drain(app, timeout=30)  # backordered; also consumes the arrival signal of A
    catalog.upsert_skus(app.uow(), shop, [catalog.SkuInput("KIT", "Kit", 0, {"A": 2, "C": 1})])

    inventory.adjust(app.uow(), shop, "HN", "B", StockAdjustment(1, "receipt"))
    drain(app, timeout=30)

    assert status(app, shop, order_id) == "allocated"
    assert levels(app, shop, "B") == {"HN": (1, 1)}
