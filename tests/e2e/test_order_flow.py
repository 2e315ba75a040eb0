"""The happy path over HTTP, idempotency, partial cancellation, listing, and the system endpoints."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select

from ordermesh.adapters.store.tables import OutboxMessage
from tests.e2e.conftest import Api, assert_problem, order_body, row_counts, sqlite_only


def _shipment_event(api: Api, shipment_id: int, status: str, **extra: Any) -> dict[str, Any]:
    response = api.post(f"/v1/shipments/{shipment_id}/events", json={"status": status, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def _read_whole_feed(api: Api, page_size: int) -> tuple[list[dict[str, Any]], str]:
    """Every event, following ``next_cursor`` page by page; returns the events and the final cursor."""
    events: list[dict[str, Any]] = []
    cursor = "0"
    while True:
        response = api.get("/v1/events", params={"after": cursor, "limit": page_size})
        assert response.status_code == 200, response.text
        page = response.json()
        if not page["items"]:
            assert page["next_cursor"] == cursor
            return events, cursor
        assert len(page["items"]) <= page_size
        assert page["next_cursor"] == page["items"][-1]["cursor"]
        events += page["items"]
        cursor = page["next_cursor"]


def _outbox_rows(api: Api) -> int:
    with api.app.read_uow() as uow:
        return int(uow.session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


def _settled_feed(api: Api, *, after: str, count: int, seconds: float = 10.0) -> list[dict[str, Any]]:
    """The feed shows a row once every transaction older than its writer has ended, anywhere on the
    PostgreSQL server (another test process's transaction included): wait, boundedly, for ``count``."""
    deadline = time.monotonic() + seconds
    while True:
        items = api.get("/v1/events", params={"after": after, "limit": 1000}).json()["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return list(items)
        time.sleep(0.05)


def test_order_flows_from_capture_to_completion(stocked: Api) -> None:
    api = stocked
    body = order_body("SO-1001", [("TSHIRT-M", 12), ("CAP", 1)])

    created = api.post("/v1/orders", json=body)
    assert created.status_code == 201
    order = created.json()
    order_id = order["id"]
    assert created.headers["location"] == f"/v1/orders/{order_id}"
    assert order["status"] == "pending"
    assert order["total_amount"] == "1950000.0000"
    assert order["lines"][0]["unit_price"] == "150000.0000"
    assert [(line["sku"], line["quantity"], line["allocated_quantity"]) for line in order["lines"]] == [
        ("TSHIRT-M", 12, 0),
        ("CAP", 1, 0),
    ]

    repeated = api.post("/v1/orders", json=body)
    assert repeated.status_code == 200
    assert repeated.json()["id"] == order_id
    assert [o["id"] for o in api.all_orders()] == [order_id]

    # Neither warehouse holds 12 TSHIRT-M: the nearest (HN, the buyer is in Ha Noi) gives 10, HCM 2.
    api.drain()
    order = api.order(order_id)
    assert order["status"] == "allocated"
    assert [[(a["location"], a["quantity"]) for a in line["allocations"]] for line in order["lines"]] == [
        [("HN", 10), ("HCM", 2)],
        [("HN", 1)],
    ]
    assert api.level("HN", "TSHIRT-M") == {
        "location": "HN",
        "sku": "TSHIRT-M",
        "on_hand": 10,
        "reserved": 10,
        "safety_stock": 0,
        "available": 0,
    }
    assert (api.level("HCM", "TSHIRT-M")["on_hand"], api.level("HCM", "TSHIRT-M")["reserved"]) == (10, 2)

    released = api.post(f"/v1/orders/{order_id}/release")
    assert released.status_code == 200
    order = released.json()
    assert order["status"] == "released"
    shipments = {s["location"]: s for s in order["shipments"]}
    assert sorted(shipments) == ["HCM", "HN"]
    assert {s["status"] for s in shipments.values()} == {"pending"}
    hn, hcm = shipments["HN"]["id"], shipments["HCM"]["id"]

    assert _shipment_event(api, hn, "picked")["status"] == "picked"
    assert _shipment_event(api, hn, "packed")["status"] == "packed"
    shipped = _shipment_event(api, hn, "shipped", carrier="GHN", tracking_number="GHN123456")
    assert (shipped["status"], shipped["carrier"], shipped["tracking_number"]) == ("shipped", "GHN", "GHN123456")
    assert shipped["lines"] == [
        {"line_number": 1, "sku": "TSHIRT-M", "quantity": 10, "shipped_quantity": 10},
        {"line_number": 2, "sku": "CAP", "quantity": 1, "shipped_quantity": 1},
    ]
    assert api.order(order_id)["status"] == "partially_shipped"
    # Shipping takes the units out of on-hand and reserved together; HCM is untouched so far.
    assert (api.level("HN", "TSHIRT-M")["on_hand"], api.level("HN", "TSHIRT-M")["reserved"]) == (0, 0)
    assert (api.level("HN", "CAP")["on_hand"], api.level("HN", "CAP")["reserved"]) == (1, 0)
    assert (api.level("HCM", "TSHIRT-M")["on_hand"], api.level("HCM", "TSHIRT-M")["reserved"]) == (10, 2)

    _shipment_event(api, hcm, "shipped", carrier="GHTK", tracking_number="GHTK-9")
    assert api.order(order_id)["status"] == "shipped"
    assert (api.level("HCM", "TSHIRT-M")["on_hand"], api.level("HCM", "TSHIRT-M")["reserved"]) == (8, 0)
    stock = api.get("/v1/inventory/TSHIRT-M").json()
    assert stock["total"] == {"on_hand": 8, "reserved": 0, "safety_stock": 0, "available": 8}

    _shipment_event(api, hn, "delivered")
    assert api.order(order_id)["status"] == "shipped"
    _shipment_event(api, hcm, "delivered")
    assert api.order(order_id)["status"] == "delivered"

    completed = api.post(f"/v1/orders/{order_id}/complete")
    assert completed.status_code == 200
    order = completed.json()
    assert order["status"] == "completed"
    assert [(s["location"], s["status"], s["carrier"], s["tracking_number"]) for s in order["shipments"]] == [
        ("HN", "delivered", "GHN", "GHN123456"),
        ("HCM", "delivered", "GHTK", "GHTK-9"),
    ]

    transitions = [(e["from_status"], e["to_status"]) for e in order["events"] if e["type"] == "status_changed"]
    assert transitions == [
        ("pending", "allocated"),
        ("allocated", "released"),
        ("released", "partially_shipped"),
        ("partially_shipped", "shipped"),
        ("shipped", "delivered"),
        ("delivered", "completed"),
    ]
    types = [e["type"] for e in order["events"]]
    assert types[0] == "created"
    assert types.count("allocated") == 1
    assert types.count("shipment_created") == 2
    assert types.count("shipment_shipped") == 2
    assert types.count("shipment_delivered") == 2
    assert [e["id"] for e in order["events"]] == sorted(e["id"] for e in order["events"])

    everything = _settled_feed(api, after="0", count=_outbox_rows(api))
    paged, last_cursor = _read_whole_feed(api, page_size=7)
    assert paged == everything
    assert last_cursor == everything[-1]["cursor"]
    assert len({e["id"] for e in paged}) == len(paged)
    feed_types = {e["type"] for e in paged}
    assert {
        "order.created",
        "order.allocated",
        "order.status_changed",
        "order.shipment_shipped",
        "inventory.level_changed",
    } <= feed_types
    order_events = [e for e in paged if e["aggregate"] == {"type": "order", "id": str(order_id)}]
    assert len(order_events) == len(order["events"])
    # Nothing new after the last cursor; a new fact appears after it.
    assert api.get("/v1/events", params={"after": last_cursor}).json() == {"items": [], "next_cursor": last_cursor}
    api.set_stock("HN", "CAP", 5)
    fresh = _settled_feed(api, after=last_cursor, count=1)
    assert [e["type"] for e in fresh] == ["inventory.level_changed"]
    assert fresh[0]["payload"]["on_hand"] == 5


def test_order_history_records_who_did_what(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("CAP", 1)]))["id"]
    stocked.drain()
    events = stocked.order(order_id)["events"]
    assert [(e["type"], e["actor"]) for e in events] == [
        ("created", f"key:{stocked.key[:9]}"),  # the key's public prefix, never the key
        ("allocated", "worker:allocator"),
        ("status_changed", "worker:allocator"),
    ]
    assert events[2]["from_status"] == "pending"
    assert events[2]["to_status"] == "allocated"


def test_repeated_idempotency_key_replays_the_order_without_a_second_one(stocked: Api) -> None:
    body = order_body("SO-IDEM")
    first = stocked.post("/v1/orders", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers

    again = stocked.post("/v1/orders", json=body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["external_id"] == "SO-IDEM"
    assert [o["id"] for o in stocked.all_orders()] == [first.json()["id"]]


def test_idempotency_key_reused_with_another_body_answers_409(stocked: Api) -> None:
    stocked.post("/v1/orders", json=order_body("SO-A"), headers={"Idempotency-Key": "k-2"})
    before = row_counts(stocked.app)

    reused = stocked.post("/v1/orders", json=order_body("SO-B"), headers={"Idempotency-Key": "k-2"})

    assert_problem(reused, 409, "idempotency_key_reused")
    assert row_counts(stocked.app) == before
    assert [o["external_id"] for o in stocked.all_orders()] == ["SO-A"]


def test_repeated_adjustment_with_idempotency_key_applies_once(stocked: Api) -> None:
    url = "/v1/inventory/HN/TSHIRT-M/adjustments"
    body = {"delta": 5, "reason": "receipt", "reference": "PO-77"}
    first = stocked.post(url, json=body, headers={"Idempotency-Key": "rcpt-77"})
    assert first.status_code == 201
    assert first.json()["on_hand"] == 15
    ledger = stocked.movements("HN", "TSHIRT-M")

    again = stocked.post(url, json=body, headers={"Idempotency-Key": "rcpt-77"})
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert stocked.level("HN", "TSHIRT-M")["on_hand"] == 15
    assert stocked.movements("HN", "TSHIRT-M") == ledger

    before = row_counts(stocked.app)
    other = stocked.post(url, json={**body, "delta": 6}, headers={"Idempotency-Key": "rcpt-77"})
    assert_problem(other, 409, "idempotency_key_reused")
    assert row_counts(stocked.app) == before
    assert stocked.level("HN", "TSHIRT-M")["on_hand"] == 15


def test_adjustment_without_idempotency_key_applies_each_time(stocked: Api) -> None:
    url = "/v1/inventory/HCM/CAP/adjustments"
    for _ in range(2):
        assert stocked.post(url, json={"delta": 2, "reason": "receipt"}).status_code == 201
    assert stocked.level("HCM", "CAP")["on_hand"] == 4
    assert [m["on_hand_delta"] for m in stocked.movements("HCM", "CAP")] == [2, 2]


def test_partial_cancel_releases_only_the_cancelled_units(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("TSHIRT-M", 3), ("CAP", 1)]))["id"]
    stocked.drain()
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 3

    response = stocked.post(
        f"/v1/orders/{order_id}/cancel",
        json={"reason": "customer", "note": "wants one", "lines": [{"line_number": 1, "quantity": 2}]},
    )

    assert response.status_code == 200
    order = response.json()
    assert order["status"] == "allocated"
    line = order["lines"][0]
    assert (line["quantity"], line["cancelled_quantity"], line["allocated_quantity"]) == (3, 2, 1)
    assert order["lines"][1]["cancelled_quantity"] == 0
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 1
    assert stocked.level("HN", "CAP")["reserved"] == 1
    cancelled = [e for e in order["events"] if e["type"] == "lines_cancelled"]
    assert [(e["reason"], e["data"]["lines"]) for e in cancelled] == [("customer", [{"line_number": 1, "quantity": 2}])]


def test_cancelling_more_units_than_open_answers_422_and_changes_nothing(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("TSHIRT-M", 3)]))["id"]
    stocked.drain()
    before, order_before = row_counts(stocked.app), stocked.order(order_id)

    response = stocked.post(
        f"/v1/orders/{order_id}/cancel", json={"reason": "customer", "lines": [{"line_number": 1, "quantity": 4}]}
    )

    body = assert_problem(response, 422, "not_cancellable", field="lines.0.quantity")
    assert body["cancellable"] == 3
    assert row_counts(stocked.app) == before
    assert stocked.order(order_id) == order_before
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 3


def test_full_cancel_releases_every_reservation(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("TSHIRT-M", 2), ("CAP", 1)]))["id"]
    stocked.drain()

    response = stocked.post(f"/v1/orders/{order_id}/cancel", json={"reason": "fraud"})

    assert response.status_code == 200
    order = response.json()
    assert order["status"] == "cancelled"
    assert [(line["cancelled_quantity"], line["allocated_quantity"]) for line in order["lines"]] == [(2, 0), (1, 0)]
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 0
    assert stocked.level("HN", "CAP")["reserved"] == 0
    again = stocked.post(f"/v1/orders/{order_id}/cancel", json={"reason": "fraud"})
    assert_problem(again, 409, "illegal_transition")


def _listed(api: Api, **params: Any) -> list[str]:
    response = api.get("/v1/orders", params=params)
    assert response.status_code == 200, response.text
    return [o["external_id"] for o in response.json()["items"]]


def test_list_filters_by_status_sku_channel_and_placed_time(stocked: Api) -> None:
    for name, sku, quantity, placed in (
        ("a", "CAP", 1, "2026-11-10T10:00:00+07:00"),
        ("b", "TSHIRT-M", 1, "2026-11-11T00:05:00+07:00"),
        ("c", "TSHIRT-L", 100, "2026-11-11T09:00:00+07:00"),
    ):
        stocked.create_order(order_body(f"SO-{name}", [(sku, quantity)], placed_at=placed))
    stocked.drain()
    b = next(o for o in stocked.all_orders() if o["external_id"] == "SO-b")
    assert stocked.post(f"/v1/orders/{b['id']}/hold", json={"reason": "fraud check"}).status_code == 200

    assert _listed(stocked) == ["SO-c", "SO-b", "SO-a"]
    assert _listed(stocked, status="allocated") == ["SO-a"]
    assert _listed(stocked, status="on_hold") == ["SO-b"]
    assert _listed(stocked, status="partially_allocated") == ["SO-c"]
    assert _listed(stocked, status="cancelled") == []
    assert _listed(stocked, sku="TSHIRT-M") == ["SO-b"]
    assert _listed(stocked, sku="NO-SUCH-SKU") == []
    assert _listed(stocked, channel="direct") == ["SO-c", "SO-b", "SO-a"]
    assert _listed(stocked, channel="shopee") == []
    assert _listed(stocked, placed_after="2026-11-11T00:00:00+07:00") == ["SO-c", "SO-b"]
    assert _listed(stocked, placed_after="2026-11-10T17:05:00Z") == ["SO-c", "SO-b"]  # inclusive
    assert _listed(stocked, placed_before="2026-11-11T00:00:00+07:00") == ["SO-a"]
    assert _listed(stocked, placed_after="2026-11-10T00:00:00+07:00", placed_before="2026-11-11T09:00:00+07:00") == [
        "SO-b",
        "SO-a",
    ]
    assert _listed(stocked, status="on_hold", sku="CAP") == []


def test_cursor_pagination_walks_every_order_once_newest_first(stocked: Api) -> None:
    for n in range(5):
        stocked.create_order(order_body(f"SO-{n}", [("CAP", 1)]))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = stocked.get("/v1/orders", params=params).json()
        seen += [o["external_id"] for o in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["SO-4", "SO-3", "SO-2", "SO-1", "SO-0"]
    assert pages == 3


def test_healthz_reports_the_database(api: Api, db_url: str) -> None:
    response = api.client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")


@sqlite_only
def test_metrics_are_prometheus_text(api: Api) -> None:
    assert api.get("/v1/orders").status_code == 200
    response = api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE ordermesh_http_requests_total counter" in response.text
    assert 'ordermesh_http_requests_total{method="GET",route="/v1/orders",status="200"}' in response.text
    assert "ordermesh_http_request_seconds_bucket" in response.text


@sqlite_only
def test_openapi_schema_and_docs_load(api: Api) -> None:
    response = api.client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "ordermesh"
    for path in ("/v1/orders", "/v1/orders/{order_id}", "/v1/orders/{order_id}/cancel", "/v1/events", "/healthz"):
        assert path in schema["paths"]
    assert "OrderCreate" in schema["components"]["schemas"]
    docs = api.client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
