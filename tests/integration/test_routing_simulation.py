"""Routing what-if on SQLite and PostgreSQL: a draft profile is decided over recent orders next to the
profiles in force, against the same stock (each order's own reservations added back), and nothing is
written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordermesh.bootstrap import Application
from ordermesh.domain.errors import InvalidInput
from ordermesh.services import allocation, catalog, inventory, orders, routing_profiles
from ordermesh.services.inventory import StockCount
from ordermesh.services.routing_simulation import simulate
from ordermesh.services.unit_of_work import Caller
from tests.e2e.conftest import row_counts

HANOI = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}
HANOI |= {"latitude": 21.02, "longitude": 105.84}
NEAR_KM = 1.521  # HN to the Hanoi address
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def stock_shop(app: Application, caller: Caller, *, hn: int, sg: int) -> None:
    """HN (near the customer) and SG (far), country VN, with ``hn`` and ``sg`` units of A."""
    for code, latitude, longitude, province in (("HN", 21.03, 105.85, "Ha Noi"), ("SG", 10.78, 106.70, "Ho Chi Minh")):
        fields = {"latitude": latitude, "longitude": longitude, "province": province}
        catalog.upsert_location(app.uow(), caller, code, catalog.LocationInput(code, country="VN", **fields))
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("A", "Apple")])
    inventory.set_on_hand(app.uow(), caller, "HN", "A", StockCount(hn, "count"))
    inventory.set_on_hand(app.uow(), caller, "SG", "A", StockCount(sg, "count"))


def place(app: Application, caller: Caller, external_id: str, quantity: int = 1, **extra: Any) -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine("A", quantity, Decimal(1))], HANOI, **extra)
    return orders.capture_order(app.uow(), caller, new).order_id


def run(app: Application, caller: Caller, draft: dict[str, Any], **selection: Any) -> dict[str, Any]:
    return simulate(app.read_uow(), caller, draft, **selection)


def moves(result: dict[str, Any]) -> list[tuple[str, list[str], list[str]]]:
    return [(e["external_id"], e["baseline"]["nodes"], e["draft"]["nodes"]) for e in result["examples"]]


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    stock_shop(app, caller, hn=5, sg=5)
    return caller


def test_excluding_the_near_node_moves_every_order_and_adds_distance(app: Application, shop: Caller) -> None:
    for number in range(3):
        place(app, shop, f"o-{number}", placed_at=START + timedelta(hours=number))
    allocation.allocate_batch(app.uow())

    result = run(app, shop, {"excluded_nodes": ["HN"]})

    assert (result["orders_selected"], result["orders_simulated"], result["moved"]) == (3, 3, 3)
    assert moves(result) == [("o-2", ["HN"], ["SG"]), ("o-1", ["HN"], ["SG"]), ("o-0", ["HN"], ["SG"])]
    assert (result["baseline"]["distance_km"], result["draft"]["distance_km"]) == (4.563, 3427.001)
    assert result["delta"]["distance_km"] == 3422.438
    assert result["baseline_profiles"] == {"default v1": 3}
    assert result["examples"][0]["draft"]["explanation"].startswith("SG ships everything")


def test_a_draft_identical_to_the_profile_in_force_moves_nothing(app: Application, shop: Caller) -> None:
    routing_profiles.put_profile(app.uow(), shop, "default", {"excluded_nodes": ["HN"]})
    place(app, shop, "o-1")
    place(app, shop, "o-2")
    allocation.allocate_batch(app.uow())

    result = run(app, shop, {"excluded_nodes": ["HN"]})

    assert (result["orders_simulated"], result["moved"], result["examples"]) == (2, 0, [])
    assert result["baseline"] == result["draft"]
    assert result["delta"] == {
        "distance_km": 0.0,
        "unknown_distance_shipments": 0,
        "cost": {"VND": "0"},
        "split_orders": 0,
        "average_shipments": 0.0,
        "sla_feasible_share": 0.0,
        "fully_routable_share": 0.0,
    }


def test_each_order_sees_its_own_reservations_as_available(app: Application, caller: Caller) -> None:
    stock_shop(app, caller, hn=1, sg=5)
    place(app, caller, "o-1")
    allocation.allocate_batch(app.uow())  # HN's only unit is now reserved for o-1

    result = run(app, caller, {"excluded_nodes": ["SG"]})

    assert (result["moved"], result["draft"]["fully_routable_share"]) == (0, 1.0)
    assert result["draft"]["distance_km"] == NEAR_KM


def test_a_huge_split_penalty_removes_splits_that_stock_forces(app: Application, caller: Caller) -> None:
    stock_shop(app, caller, hn=1, sg=2)
    routing_profiles.put_profile(app.uow(), caller, "default", {"split": {"penalty": 0}, "weights": {"cost": 0}})
    place(app, caller, "o-1", quantity=2)

    result = run(app, caller, {"split": {"penalty": 100}, "weights": {"cost": 0}})

    assert moves(result) == [("o-1", ["HN", "SG"], ["SG"])]
    assert (result["baseline"]["split_orders"], result["draft"]["split_orders"]) == (1, 0)
    assert (result["baseline"]["average_shipments"], result["draft"]["average_shipments"]) == (2.0, 1.0)
    assert result["delta"]["split_orders"] == -1
    assert result["delta"]["cost"] == {"VND": "-16500"}
    assert result["examples"][0]["baseline"]["outcome"] == "split"


def test_simulation_writes_nothing(app: Application, shop: Caller) -> None:
    place(app, shop, "o-1")
    allocation.allocate_batch(app.uow())
    before = row_counts(app)

    run(app, shop, {"excluded_nodes": ["HN"]})

    assert row_counts(app) == before


def test_last_takes_the_newest_orders_and_a_window_takes_orders_placed_in_it(app: Application, shop: Caller) -> None:
    for number in range(4):
        place(app, shop, f"o-{number}", placed_at=START + timedelta(days=number))
    draft = {"excluded_nodes": ["HN"]}

    newest = run(app, shop, draft, last=2)
    window = run(app, shop, draft, placed_after=START + timedelta(days=1), placed_before=START + timedelta(days=3))

    assert [e["external_id"] for e in newest["examples"]] == ["o-3", "o-2"]
    assert [e["external_id"] for e in window["examples"]] == ["o-2", "o-1"]
    assert (newest["selection"]["last"], window["selection"]["last"]) == (2, 5000)
    assert run(app, shop, draft, channel="shopee")["orders_selected"] == 0
    assert run(app, shop, draft, channel="direct")["orders_selected"] == 4


def test_a_cancelled_order_is_skipped(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, "o-1")
    place(app, shop, "o-2")
    orders.cancel(app.uow(), shop, order_id, orders.CancelRequest(orders.CancelReason.CUSTOMER))

    result = run(app, shop, {"excluded_nodes": ["HN"]})

    assert (result["orders_selected"], result["orders_simulated"], result["orders_skipped"]) == (2, 1, 1)
    assert moves(result) == [("o-2", ["HN"], ["SG"])]


def test_an_order_with_nowhere_to_ship_counts_against_routable_and_sla_shares(app: Application, shop: Caller) -> None:
    place(app, shop, "o-1", ship_by=datetime.now(UTC) + timedelta(days=3))
    place(app, shop, "o-2")

    result = run(app, shop, {"excluded_nodes": ["HN", "SG"]})

    assert (result["baseline"]["fully_routable_share"], result["draft"]["fully_routable_share"]) == (1.0, 0.0)
    assert (result["baseline"]["sla_feasible_share"], result["draft"]["sla_feasible_share"]) == (1.0, 0.5)
    assert result["draft"]["cost"] == {}
    assert result["delta"]["cost"] == {"VND": str(-Decimal(result["baseline"]["cost"]["VND"]))}


def test_an_invalid_draft_is_refused_with_every_problem(app: Application, shop: Caller) -> None:
    with pytest.raises(InvalidInput) as raised:
        run(app, shop, {"weights": {"distance": -1}, "split": {"max_shipments": 0}})
    assert raised.value.details["problems"] == [
        "weights.distance must be a finite number >= 0",
        "split.max_shipments must be an integer >= 1",
    ]
    with pytest.raises(InvalidInput) as raised:
        run(app, shop, {"speed": 9})
    assert raised.value.details["problems"] == ["speed"]
    with pytest.raises(InvalidInput, match="name and version"):
        run(app, shop, {"name": "mine"})
    with pytest.raises(InvalidInput, match="last must be between 1 and 5000"):
        run(app, shop, {}, last=5001)
    with pytest.raises(InvalidInput, match="placed_after must be before placed_before"):
        run(app, shop, {}, placed_after=START, placed_before=START)


def test_another_tenant_simulates_none_of_your_orders(app: Application, shop: Caller) -> None:
    place(app, shop, "o-1")
    stranger = Caller(shop.tenant_id + 999, "admin", "test")

    result = run(app, stranger, {"excluded_nodes": ["HN"]})

    assert (result["orders_selected"], result["moved"], result["examples"]) == (0, 0, [])
    assert result["baseline"]["average_shipments"] is None
