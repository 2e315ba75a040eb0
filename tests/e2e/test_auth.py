"""Authentication, tenant isolation (invariant 6) and what each role may do, over HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.e2e.conftest import Api, assert_problem, bearer, new_key, order_body, row_counts, sqlite_only


def _assert_unauthenticated(response: Any) -> None:
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


@sqlite_only  # refused before any query
def test_missing_api_key_answers_401_problem_with_www_authenticate(api: Api) -> None:
    response = api.client.get("/v1/orders")

    _assert_unauthenticated(response)
    assert response.json()["instance"] == "/v1/orders"


@sqlite_only  # refused before any query
def test_malformed_authorization_answers_401(api: Api, subtests: pytest.Subtests) -> None:
    for authorization in ("Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "om_no_scheme", "Token om_abc", ""):
        with subtests.test(authorization=authorization):
            _assert_unauthenticated(api.client.get("/v1/orders", headers={"Authorization": authorization}))


def test_unknown_api_key_answers_401(api: Api) -> None:
    response = api.client.get("/v1/orders", headers=bearer("om_" + "x" * 43))
    _assert_unauthenticated(response)
    assert response.json()["detail"] == "unknown or revoked API key"


@sqlite_only  # refused before any query
def test_missing_key_writes_nothing(stocked: Api) -> None:
    before = row_counts(stocked.app)
    _assert_unauthenticated(stocked.client.post("/v1/orders", json=order_body()))
    _assert_unauthenticated(stocked.client.put("/v1/inventory/HN/CAP", json={"on_hand": 1, "reason": "count"}))
    assert row_counts(stocked.app) == before


# -- tenant isolation --------------------------------------------------------------------------------


@pytest.fixture
def other(stocked: Api, app: Application) -> dict[str, Any]:
    """A second tenant with its own HN warehouse, a SKU only it has, stock, and a released order."""
    other_tenant = tenants.create_tenant(app.uow(), "other-brand")
    them = stocked.as_key(other_tenant.api_key)
    them.put_location("HN", latitude=21.0, longitude=105.8)
    them.put_location("DN", latitude=16.05, longitude=108.2)
    them.create_skus("SECRET-SKU", "CAP")
    them.set_stock("DN", "SECRET-SKU", 7)
    them.set_stock("HN", "CAP", 40)
    order = them.create_order(order_body("THEIR-ORDER-1", [("SECRET-SKU", 2)]))
    them.drain()
    released = them.post(f"/v1/orders/{order['id']}/release")
    assert released.status_code == 200
    return {"api": them, "order": released.json(), "shipment_id": released.json()["shipments"][0]["id"]}


def test_other_tenants_order_answers_404(stocked: Api, other: dict[str, Any]) -> None:
    their_id = other["order"]["id"]

    response = stocked.get(f"/v1/orders/{their_id}")

    assert_problem(response, 404, "order_not_found")
    assert "THEIR-ORDER-1" not in response.text
    assert "SECRET-SKU" not in response.text


def test_other_tenants_orders_never_listed(stocked: Api, other: dict[str, Any]) -> None:
    mine = stocked.create_order(order_body("MY-ORDER", [("CAP", 1)]))
    assert [o["id"] for o in stocked.all_orders()] == [mine["id"]]
    listed = stocked.get("/v1/orders", params={"sku": "SECRET-SKU"})
    assert listed.json() == {"items": [], "next_cursor": None}
    assert [o["external_id"] for o in other["api"].all_orders()] == ["THEIR-ORDER-1"]


def test_cancelling_other_tenants_order_answers_404_and_changes_nothing(stocked: Api, other: dict[str, Any]) -> None:
    their_id = other["order"]["id"]
    before = row_counts(stocked.app)

    for action, body in (("cancel", {"reason": "fraud"}), ("hold", {"reason": "x"}), ("complete", None)):
        response = stocked.post(f"/v1/orders/{their_id}/{action}", json=body)
        assert_problem(response, 404, "order_not_found")

    assert row_counts(stocked.app) == before
    assert other["api"].order(their_id) == other["order"]


def test_other_tenants_shipment_answers_404_and_changes_nothing(stocked: Api, other: dict[str, Any]) -> None:
    shipment_id = other["shipment_id"]
    before = row_counts(stocked.app)

    read = stocked.get(f"/v1/shipments/{shipment_id}")
    write = stocked.post(
        f"/v1/shipments/{shipment_id}/events", json={"status": "shipped", "carrier": "GHN", "tracking_number": "X1"}
    )

    assert_problem(read, 404, "shipment_not_found")
    assert_problem(write, 404, "shipment_not_found")
    assert row_counts(stocked.app) == before
    assert other["api"].get(f"/v1/shipments/{shipment_id}").json()["status"] == "pending"
    assert other["api"].level("DN", "SECRET-SKU")["reserved"] == 2


def test_other_tenants_inventory_is_invisible_and_untouchable(stocked: Api, other: dict[str, Any]) -> None:
    them = other["api"]
    before = row_counts(stocked.app)

    assert_problem(stocked.get("/v1/inventory/SECRET-SKU"), 404, "sku_not_found")
    assert_problem(stocked.get("/v1/inventory/DN/SECRET-SKU"), 404, "location_not_found")
    assert_problem(stocked.get("/v1/skus/SECRET-SKU"), 404, "sku_not_found")
    assert_problem(
        stocked.put("/v1/inventory/DN/SECRET-SKU", json={"on_hand": 0, "reason": "steal"}), 404, "location_not_found"
    )
    assert_problem(
        stocked.post("/v1/inventory/DN/SECRET-SKU/adjustments", json={"delta": -7, "reason": "steal"}),
        404,
        "location_not_found",
    )
    assert row_counts(stocked.app) == before
    assert them.level("DN", "SECRET-SKU") == {
        "location": "DN",
        "sku": "SECRET-SKU",
        "on_hand": 7,
        "reserved": 2,
        "safety_stock": 0,
        "available": 5,
    }


def test_same_codes_in_two_tenants_stay_separate(stocked: Api, other: dict[str, Any]) -> None:
    # Both tenants have location HN and SKU CAP: each sees and changes only its own level.
    assert stocked.level("HN", "CAP")["on_hand"] == 2
    assert other["api"].level("HN", "CAP")["on_hand"] == 40
    assert stocked.set_stock("HN", "CAP", 9)["on_hand"] == 9
    assert other["api"].level("HN", "CAP")["on_hand"] == 40
    assert [loc["code"] for loc in stocked.get("/v1/locations").json()] == ["HCM", "HN"]
    availability = stocked.get("/v1/inventory/CAP").json()
    assert [(row["location"], row["on_hand"]) for row in availability["locations"]] == [("HCM", 0), ("HN", 9)]


def settled_feed(api: Api) -> list[dict[str, Any]]:
    """The feed on PostgreSQL shows an event once every older transaction on the server has ended (its
    horizon is server-wide), so a busy neighbour can hide it for a moment: wait for it, then read."""
    deadline = time.monotonic() + 30
    while True:
        items: list[dict[str, Any]] = api.get("/v1/events", params={"limit": 1000}).json()["items"]
        if items or time.monotonic() > deadline:
            return items
        time.sleep(0.1)


def test_event_feed_shows_only_own_tenants_events(stocked: Api, other: dict[str, Any]) -> None:
    mine = settled_feed(stocked)
    theirs = settled_feed(other["api"])

    assert mine
    assert theirs
    assert not {e["id"] for e in mine} & {e["id"] for e in theirs}
    assert str(other["order"]["id"]) not in {e["aggregate"]["id"] for e in mine if e["aggregate"]["type"] == "order"}
    assert "THEIR-ORDER-1" not in str(mine)


# -- roles ----------------------------------------------------------------------------------------------


@pytest.fixture
def order_id(stocked: Api) -> int:
    order = stocked.create_order(order_body("SO-ROLE", [("TSHIRT-M", 1)]))
    stocked.drain()
    return int(order["id"])


def test_viewer_can_read_everything(stocked: Api, app: Application, tenant: tenants.NewTenant, order_id: int) -> None:
    viewer = stocked.as_key(new_key(app, tenant, "viewer"))

    assert viewer.order(order_id)["external_id"] == "SO-ROLE"
    assert [o["id"] for o in viewer.all_orders()] == [order_id]
    assert viewer.level("HN", "TSHIRT-M")["reserved"] == 1
    assert viewer.get("/v1/inventory/TSHIRT-M").status_code == 200
    assert viewer.get("/v1/locations").status_code == 200
    assert viewer.get("/v1/skus").status_code == 200
    assert viewer.get("/v1/events").status_code == 200


def test_viewer_cannot_write(stocked: Api, app: Application, tenant: tenants.NewTenant, order_id: int) -> None:
    viewer = stocked.as_key(new_key(app, tenant, "viewer"))
    before, order_before = row_counts(app), stocked.order(order_id)

    attempts = [
        viewer.post("/v1/orders", json=order_body()),
        viewer.post(f"/v1/orders/{order_id}/cancel", json={"reason": "customer"}),
        viewer.post(f"/v1/orders/{order_id}/hold", json={"reason": "x"}),
        viewer.post(f"/v1/orders/{order_id}/release"),
        viewer.put("/v1/locations/NEW", json={"name": "New"}),
        viewer.post("/v1/skus", json={"skus": [{"code": "NEW", "name": "New"}]}),
        viewer.put("/v1/inventory/HN/CAP", json={"on_hand": 100, "reason": "count"}),
        viewer.post("/v1/inventory/HN/CAP/adjustments", json={"delta": 1, "reason": "found"}),
    ]

    for response in attempts:
        body = assert_problem(response, 403, "forbidden")
        assert body["role"] == "viewer"
    assert row_counts(app) == before
    assert stocked.order(order_id) == order_before


def test_integration_key_captures_orders_but_cannot_cancel(
    stocked: Api, app: Application, tenant: tenants.NewTenant, order_id: int
) -> None:
    integration = stocked.as_key(new_key(app, tenant, "integration"))

    captured = integration.post("/v1/orders", json=order_body("SO-FROM-SHOP", [("CAP", 1)]))
    assert captured.status_code == 201
    assert integration.set_stock("HCM", "CAP", 4)["on_hand"] == 4

    before, order_before = row_counts(app), stocked.order(order_id)
    for action, body in (
        ("cancel", {"reason": "customer"}),
        ("hold", {"reason": "x"}),
        ("release", None),
        ("complete", None),
    ):
        assert_problem(integration.post(f"/v1/orders/{order_id}/{action}", json=body), 403, "forbidden")
    assert row_counts(app) == before
    assert stocked.order(order_id) == order_before


@pytest.mark.parametrize("role", ["admin", "operator"])
def test_admin_and_operator_can_cancel(
    stocked: Api, app: Application, tenant: tenants.NewTenant, order_id: int, role: str
) -> None:
    manager = stocked.as_key(new_key(app, tenant, role))

    response = manager.post(f"/v1/orders/{order_id}/cancel", json={"reason": "customer"})

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 0
    cancelled = [e for e in response.json()["events"] if e["type"] == "lines_cancelled"]
    assert [e["actor"] for e in cancelled] == [f"key:{manager.key[:9]}"]


def test_only_admin_may_retry_dead_letters(stocked: Api, app: Application, tenant: tenants.NewTenant) -> None:
    operator = stocked.as_key(new_key(app, tenant, "operator"))
    assert_problem(operator.post("/v1/events/1/retry"), 403, "forbidden")
    assert_problem(stocked.post("/v1/events/999999/retry"), 404, "event_not_found")
