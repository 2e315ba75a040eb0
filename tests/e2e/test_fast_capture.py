"""``POST /v1/orders`` answered before FastAPI routes it (``api/fast_capture.py``): the common case
is answered there, byte for byte as the route answers it, and every other case reaches the route."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ordermesh.api.routes import orders as order_routes
from tests.e2e.conftest import Api, assert_problem, order_body

VARYING = {"id", "external_id", "created_at", "updated_at", "placed_at", "at"}


def comparable(value: Any) -> Any:
    """The answer without what differs between two orders captured a moment apart."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items() if key not in VARYING}
    if isinstance(value, list):
        return [comparable(item) for item in value]
    return value


def body_with_everything(external_id: str) -> dict[str, Any]:
    return order_body(
        external_id,
        lines=[("TSHIRT-M", 2), ("MUG", 1)],
        tags=["vip", "11-11"],
        ship_by="2026-11-13T17:00:00+07:00",
        discount="15000.5",
        shipping_fee="30000",
    ) | {"shipping_address": {**order_body()["shipping_address"], "district": "Hoan Kiem", "gift_note": "kept"}}


def test_the_fast_path_answers_exactly_as_the_route_does(stocked: Api) -> None:
    stocked.create_skus("MUG")
    fast = stocked.post("/v1/orders", json=body_with_everything("fast-1"))
    # An Idempotency-Key sends the request through the route (and its non-grouped capture).
    routed = stocked.post("/v1/orders", json=body_with_everything("routed-1"), headers={"Idempotency-Key": "k-1"})

    assert fast.status_code == routed.status_code == 201, (fast.text, routed.text)
    assert fast.headers["content-type"] == routed.headers["content-type"]
    assert fast.headers["location"] == f"/v1/orders/{fast.json()['id']}"
    assert comparable(fast.json()) == comparable(routed.json())
    # Same serialization too: key order, number and date formats.
    assert json.dumps(comparable(json.loads(fast.content))) == json.dumps(comparable(json.loads(routed.content)))


def test_a_valid_capture_does_not_go_through_the_route(stocked: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def route_reached(*_: Any) -> Any:
        raise AssertionError("the route was called")

    monkeypatch.setattr(order_routes, "new_order_of", route_reached)
    response = stocked.post("/v1/orders", json=order_body("fast-2"))
    assert response.status_code == 201, response.text
    assert stocked.order(response.json()["id"])["external_id"] == "fast-2"


def test_repeats_and_invalid_bodies_are_answered_by_the_route(stocked: Api) -> None:
    first = stocked.post("/v1/orders", json=order_body("again-1"))
    assert first.status_code == 201
    repeat = stocked.post("/v1/orders", json=order_body("again-1"))
    assert repeat.status_code == 200
    assert repeat.json()["id"] == first.json()["id"]

    assert_problem(stocked.post("/v1/orders", json=order_body(currency="VNDX")), 422, "validation_failed")
    malformed = stocked.post("/v1/orders", content=b'{"external_id": ', headers={"Content-Type": "application/json"})
    assert_problem(malformed, 400, "malformed_json")


def test_refusals_get_the_applications_own_answer_without_capturing_twice(
    stocked: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown SKU or key is answered by the handler the route's error would reach, not by
    handing the request to the route (which would capture it a second time)."""

    def route_reached(*_: Any) -> Any:
        raise AssertionError("the route was called")

    monkeypatch.setattr(order_routes, "new_order_of", route_reached)
    assert_problem(stocked.post("/v1/orders", json=order_body(lines=[("NOPE", 1)])), 422, "unknown_sku")
    assert_problem(stocked.as_key("om_unknown").post("/v1/orders", json=order_body()), 401, "unauthenticated")
