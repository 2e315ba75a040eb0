"""The routing engine inside the allocator, on SQLite and PostgreSQL: profiles (validated, versioned,
restorable, applied to the next batch), node rules from the location record (channels, capacity,
cut-off and calendar), and a stored trace for every decision."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordermesh.bootstrap import Application
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.services import allocation, catalog, inventory, order_views, orders, routing_profiles, routing_views
from ordermesh.services.inventory import StockCount
from ordermesh.services.routing_inputs import node_of, public_holidays
from ordermesh.services.unit_of_work import Caller

HANOI = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}
HANOI |= {"latitude": 21.02, "longitude": 105.84}


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    """HN (near the customer) and SG (far), both stocked with 5 of A, country VN."""
    for code, latitude, longitude, province in (("HN", 21.03, 105.85, "Ha Noi"), ("SG", 10.78, 106.70, "Ho Chi Minh")):
        location(app, caller, code, latitude=latitude, longitude=longitude, province=province)
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("A", "Apple")])
    for code in ("HN", "SG"):
        inventory.set_on_hand(app.uow(), caller, code, "A", StockCount(5, "count"))
    return caller


def location(app: Application, caller: Caller, code: str, **fields: Any) -> None:
    catalog.upsert_location(app.uow(), caller, code, catalog.LocationInput(code, country="VN", **fields))


def place(app: Application, caller: Caller, external_id: str, **extra: Any) -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine("A", 1, Decimal(1))], HANOI, **extra)
    return orders.capture_order(app.uow(), caller, new).order_id


def reserved_at(app: Application, caller: Caller, order_id: int) -> dict[str, int]:
    lines = order_views.get_order(app.read_uow(), caller, order_id)["lines"]
    return {a["location"]: a["quantity"] for line in lines for a in line["allocations"]}


def test_allocation_uses_the_nearest_node_and_stores_its_trace(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, "o-1")

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"HN": 1}
    [decision] = routing_views.decisions_for_order(app.read_uow(), shop, order_id)["decisions"]
    assert (decision["outcome"], decision["profile"]) == ("single_node", {"name": "default", "version": 1})
    trace = decision["trace"]["trace"]
    assert trace["profile_version"] == 1
    assert {candidate["code"] for candidate in trace["candidates"]} == {"HN", "SG"}
    assert decision["trace"]["plan"]["shipments"][0]["node_code"] == "HN"


def test_a_profile_change_applies_to_the_next_batch(app: Application, shop: Caller) -> None:
    first = place(app, shop, "o-1")
    allocation.allocate_batch(app.uow())
    routing_profiles.put_profile(app.uow(), shop, "default", {"excluded_nodes": ["HN"]}, note="HN stock-take")
    second = place(app, shop, "o-2")

    allocation.allocate_batch(app.uow())

    assert (reserved_at(app, shop, first), reserved_at(app, shop, second)) == ({"HN": 1}, {"SG": 1})
    [decision] = routing_views.decisions_for_order(app.read_uow(), shop, second)["decisions"]
    assert decision["profile"] == {"name": "default", "version": 1}
    excluded = {e["code"]: e["reason"] for e in decision["trace"]["trace"]["excluded"]}
    assert excluded == {"HN": "excluded_by_profile"}


def test_a_channel_profile_serves_only_its_channel(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "marketplaces", {"excluded_nodes": ["HN"]}, channels=["shopee"])
    order_id = place(app, shop, "o-1")  # a direct order: the default applies

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"HN": 1}


def test_a_tagged_profile_wins_over_the_channel_and_the_default(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "default", {})
    routing_profiles.put_profile(app.uow(), shop, "vip", {"excluded_nodes": ["HN"]}, tags=["vip"])
    plain = place(app, shop, "o-1")
    vip = place(app, shop, "o-2", tags=["vip", "gift"])

    allocation.allocate_batch(app.uow())

    assert (reserved_at(app, shop, plain), reserved_at(app, shop, vip)) == ({"HN": 1}, {"SG": 1})
    [decision] = routing_views.decisions_for_order(app.read_uow(), shop, vip)["decisions"]
    assert decision["profile"] == {"name": "vip", "version": 1}
    assert order_views.get_order(app.read_uow(), shop, vip)["tags"] == ["gift", "vip"]


def test_profiles_keep_every_version_and_restore_an_old_one(app: Application, caller: Caller) -> None:
    first = routing_profiles.put_profile(app.uow(), caller, "default", {"split": {"penalty": 2.0}})
    second = routing_profiles.put_profile(app.uow(), caller, "default", {"split": {"penalty": 0.0}})
    restored = routing_profiles.restore_profile(app.uow(), caller, "default", 1)

    assert (first["version"], second["version"], restored["version"]) == (1, 2, 3)
    assert restored["definition"]["split"]["penalty"] == 2.0
    assert restored["note"] == "restored from version 1"
    versions = routing_profiles.list_versions(app.read_uow(), caller, "default")
    assert [v["version"] for v in versions] == [3, 2, 1]
    [current] = routing_profiles.list_profiles(app.read_uow(), caller)
    assert current["version"] == 3


def test_an_invalid_profile_is_refused_with_every_problem_and_nothing_stored(app: Application, caller: Caller) -> None:
    with pytest.raises(InvalidInput) as raised:
        routing_profiles.put_profile(
            app.uow(), caller, "default", {"weights": {"distance": -1}, "split": {"max_shipments": 0}, "speed": 9}
        )
    assert raised.value.details["problems"] == ["speed"]
    with pytest.raises(InvalidInput) as raised:
        routing_profiles.put_profile(
            app.uow(), caller, "default", {"weights": {"distance": -1}, "split": {"max_shipments": 0}}
        )
    assert raised.value.details["problems"] == [
        "weights.distance must be a finite number >= 0",
        "split.max_shipments must be an integer >= 1",
    ]
    assert routing_profiles.list_profiles(app.read_uow(), caller) == []
    with pytest.raises(NotFound):
        routing_profiles.get_profile(app.read_uow(), caller, "default")


def test_a_channel_belongs_to_one_profile(app: Application, caller: Caller) -> None:
    routing_profiles.put_profile(app.uow(), caller, "campaign", {}, channels=["shopee"])
    with pytest.raises(Conflict) as raised:
        routing_profiles.put_profile(app.uow(), caller, "other", {}, channels=["shopee", "lazada"])
    assert raised.value.code == "channel_has_profile"
    assert [p["name"] for p in routing_profiles.list_profiles(app.read_uow(), caller)] == ["campaign"]


def test_a_node_that_does_not_serve_the_channel_is_skipped(app: Application, shop: Caller) -> None:
    location(app, shop, "HN", latitude=21.03, longitude=105.85, province="Ha Noi", channels=["shopee"])
    order_id = place(app, shop, "o-1")

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"SG": 1}


def test_a_full_node_takes_no_more_orders_today(app: Application, shop: Caller) -> None:
    location(app, shop, "HN", latitude=21.03, longitude=105.85, province="Ha Noi", daily_capacity=1)
    first, second = place(app, shop, "o-1"), place(app, shop, "o-2")

    allocation.allocate_batch(app.uow())

    assert (reserved_at(app, shop, first), reserved_at(app, shop, second)) == ({"HN": 1}, {"SG": 1})
    [decision] = routing_views.decisions_for_order(app.read_uow(), shop, second)["decisions"]
    assert {e["code"]: e["reason"] for e in decision["trace"]["trace"]["excluded"]} == {"HN": "capacity_full"}


def test_skips_node_past_cutoff_when_sla_would_breach(app: Application, shop: Caller) -> None:
    # HN hands over only on Sundays: its next handover is days away; SG (no cut-off) ships at once.
    location(
        app,
        shop,
        "HN",
        latitude=21.03,
        longitude=105.85,
        province="Ha Noi",
        cutoff_time="10:00",
        time_zone="Asia/Ho_Chi_Minh",
        working_weekdays=[(datetime.now(UTC).weekday() + 3) % 7],
    )
    order_id = place(app, shop, "o-1", ship_by=datetime.now(UTC) + timedelta(hours=30))

    allocation.allocate_batch(app.uow())

    assert reserved_at(app, shop, order_id) == {"SG": 1}
    [decision] = routing_views.decisions_for_order(app.read_uow(), shop, order_id)["decisions"]
    assert {e["code"]: e["reason"] for e in decision["trace"]["trace"]["excluded"]} == {"HN": "sla_breach"}


def test_another_tenants_order_has_no_routing_to_show(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, "o-1")
    allocation.allocate_batch(app.uow())
    stranger = Caller(shop.tenant_id + 999, "admin", "test")
    with pytest.raises(NotFound):
        routing_views.decisions_for_order(app.read_uow(), stranger, order_id)


def test_nodes_close_on_public_holidays_and_their_own_closed_days() -> None:
    from ordermesh.adapters.store.tables import Location

    row = Location(
        id=1,
        code="HN",
        active=True,
        latitude=21.0,
        longitude=105.8,
        country="VN",
        province="Ha Noi",
        cutoff_time="15:00",
        time_zone="Asia/Ho_Chi_Minh",
        channels=None,
        working_weekdays=None,
        closed_dates=["2026-12-31"],
        daily_capacity=None,
    )
    node = node_of(row, datetime(2026, 11, 27, tzinfo=UTC))
    assert node.calendar is not None
    assert date(2026, 12, 31) in node.calendar.closed_dates  # the tenant's own closed day
    assert date(2027, 1, 1) in node.calendar.closed_dates  # New Year, from the holidays package
    assert public_holidays("VN", 2027) <= node.calendar.closed_dates
    assert node.calendar.working_weekdays == frozenset(range(6))
