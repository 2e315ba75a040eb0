"""Shopify and Shopee end to end, through their simulators over HTTP: intake by push and by polling,
duplicates and out-of-order deliveries, a buyer's cancellation, a shipment confirmation, and stock on
the other channel corrected after a sale. The flows that touch storage differently per backend (intake,
dedupe, cancellation) run on both; the rest on SQLite to keep the suite quick."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ordermesh.adapters.channels.signing import shopify_webhook_signature
from ordermesh.bootstrap import Application
from tests.e2e.channel_world import SHOPIFY, World, world
from tests.e2e.conftest import row_counts, sqlite_only


@pytest.fixture
def shops(app: Application) -> Iterator[World]:
    with world(app) as connected:
        connected.drain()
        yield connected


@sqlite_only
def test_stock_is_pushed_with_each_channels_rules(shops: World) -> None:
    # TSHIRT-M 10 over HN+HCM, CAP 3, GIFT-SET = min(10, 3) = 3; Shopee keeps a buffer of 1.
    assert shops.shopify.get("/_sim/stock").json() == {"TSHIRT-M": 10, "CAP": 3, "GIFT-SET": 3}
    assert shops.shopee.get("/_sim/stock").json() == {"TSHIRT-M": 9, "XL-NOT-MAPPED": 0, "CAP": 2}
    listings = shops.api.get("/v1/channels/shopee-vn/listings").json()
    assert {(item["seller_sku"], item["sku"]) for item in listings} == {
        ("TSHIRT-M", "TSHIRT-M"),
        ("XL-NOT-MAPPED", None),
        ("CAP", "CAP"),
    }


def test_shopee_order_by_push_corrects_shopify_stock(shops: World) -> None:
    placed = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 2}], "cod": True})
    assert placed.status_code == 200
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    assert order["external_id"] == placed.json()["order_sn"]
    assert order["status"] == "allocated"
    assert order["ship_by"] is not None
    assert order["tags"] == ["cod"]
    assert shops.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 8
    assert shops.shopee.get("/_sim/stock").json()["TSHIRT-M"] == 7  # 8 - buffer 1
    events = [e["type"] for e in shops.order(order["id"])["events"]]
    assert events[0] == "created"
    platform_side = shops.api.get(f"/v1/channels/shopee-vn/orders/{order['external_id']}").json()
    assert (platform_side["raw_status"], platform_side["channel_status"]) == ("READY_TO_SHIP", "ready_to_fulfill")
    assert (platform_side["cod"], platform_side["order_id"]) == (True, order["id"])
    assert platform_side["shipping_fee"] == "15000.0000"


def test_duplicate_and_reordered_pushes_have_the_effect_of_one(shops: World) -> None:
    assert shops.shopee.post("/_sim/faults", json={"push": {"duplicate": 1}}).status_code == 200
    placed = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "CAP", "quantity": 1}]}).json()
    shops.drain()
    assert len(shops.orders("shopee-vn")) == 1
    # A buyer asks to cancel, then the cancellation completes; the two pushes arrive swapped.
    assert shops.shopee.post("/_sim/faults", json={"push": {"reorder": True}}).status_code == 200
    sn = placed["order_sn"]
    shops.shopee.post(f"/_sim/orders/{sn}/status", json={"status": "IN_CANCEL"})
    shops.shopee.post(f"/_sim/orders/{sn}/status", json={"status": "CANCELLED"})
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    assert order["status"] == "cancelled"
    assert shops.shopify.get("/_sim/stock").json()["CAP"] == 3  # the reservation went back


@sqlite_only
def test_buyer_cancel_request_is_accepted_before_shipping(shops: World) -> None:
    sn = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 1}]}).json()["order_sn"]
    shops.drain()
    shops.shopee.post(f"/_sim/orders/{sn}/status", json={"status": "IN_CANCEL"})
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    assert order["status"] == "cancelled"
    assert shops.shopee.get(f"/_sim/orders/{sn}").json()["order_status"] == "CANCELLED"  # ACCEPT was sent


@sqlite_only
def test_buyer_cancel_request_is_refused_once_shipped(shops: World) -> None:
    sn = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 1}]}).json()["order_sn"]
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    shops.ship(order["id"], "GHN123")
    shops.drain()
    platform = shops.shopee.get(f"/_sim/orders/{sn}").json()
    assert (platform["order_status"], platform["tracking_number"]) == ("PROCESSED", "GHN123")  # ship_order
    shops.shopee.post(f"/_sim/orders/{sn}/status", json={"status": "IN_CANCEL"})
    shops.drain()
    assert shops.order(order["id"])["status"] == "shipped"
    assert shops.shopee.get(f"/_sim/orders/{sn}").json()["order_status"] == "PROCESSED"  # REJECT restored it


@sqlite_only
def test_lost_pushes_are_recovered_by_polling(shops: World) -> None:
    assert shops.shopee.post("/_sim/faults", json={"push": {"drop": 1}}).status_code == 200
    sn = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "CAP", "quantity": 1}]}).json()["order_sn"]
    shops.drain()
    assert shops.orders("shopee-vn") == []
    polled = shops.api.post("/v1/channels/shopee-vn/poll")
    assert polled.status_code == 200, polled.text
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    assert order["external_id"] == sn
    health = shops.api.get("/v1/channels/shopee-vn/health").json()
    assert health["last_polled_at"] is not None
    assert health["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
def test_unmapped_line_holds_the_order_until_the_listing_is_mapped(shops: World) -> None:
    lines = [{"sku": "XL-NOT-MAPPED", "quantity": 1}, {"sku": "CAP", "quantity": 1}]
    shops.shopee.post("/_sim/orders", json={"lines": lines})
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    assert order["status"] == "on_hold"
    assert "XL-NOT-MAPPED" in shops.order(order["id"])["hold_reason"]
    listing = next(i for i in shops.api.get("/v1/channels/shopee-vn/listings").json() if i["sku"] is None)
    body = {"listings": [{"sku": "TSHIRT-M", "item_id": listing["item_id"], "variant_id": listing["variant_id"]}]}
    assert shops.api.put("/v1/channels/shopee-vn/listings", json=body).status_code == 200
    shops.drain()
    mapped = shops.order(order["id"])
    assert mapped["status"] == "allocated"
    assert sorted(line["sku"] for line in mapped["lines"]) == ["CAP", "TSHIRT-M"]


@sqlite_only
def test_shopify_order_fulfilment_and_stale_update(shops: World) -> None:
    placed = shops.shopify.post("/_sim/orders", json={"lines": [{"sku": "GIFT-SET", "quantity": 1}]}).json()
    shops.drain()
    (order,) = shops.orders("shopify-main")
    assert order["status"] == "allocated"
    assert shops.shopee.get("/_sim/stock").json()["CAP"] == 1  # CAP 3 - 1 in the gift set, minus Shopee's buffer
    # An older copy of the order arriving late (as cancelled) changes nothing.
    stale = {**placed, "cancelled_at": placed["created_at"], "updated_at": "2000-01-01T00:00:00+00:00"}
    body = json.dumps(stale).encode()
    headers = {
        "X-Shopify-Topic": "orders/cancelled",
        "X-Shopify-Hmac-Sha256": shopify_webhook_signature(SHOPIFY["client_secret"], body),
        "X-Shopify-Event-Id": "late-event",
    }
    url = f"/webhooks/shopify/{shops.channel_ids['shopify-main']}"
    assert shops.api.post(url, content=body, headers=headers).status_code == 200
    assert shops.order(order["id"])["status"] == "allocated"
    shops.ship(order["id"], "TRACK-1")
    shops.drain()
    platform = shops.shopify.get(f"/_sim/orders/{placed['id']}").json()
    assert platform["fulfillment_status"] == "fulfilled"
    assert platform["fulfillments"][0]["tracking_number"] == "TRACK-1"


@sqlite_only
def test_shopify_cancellation_cancels_in_ordermesh(shops: World) -> None:
    placed = shops.shopify.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 3}]}).json()
    shops.drain()
    assert shops.shopee.get("/_sim/stock").json()["TSHIRT-M"] == 6
    shops.shopify.post(f"/_sim/orders/{placed['id']}/cancel")
    shops.drain()
    (order,) = shops.orders("shopify-main")
    assert order["status"] == "cancelled"
    assert shops.shopee.get("/_sim/stock").json()["TSHIRT-M"] == 9


@sqlite_only
def test_bad_signature_is_refused_and_nothing_is_stored(shops: World) -> None:
    before = row_counts(shops.app)
    body = b'{"code":3,"shop_id":600000,"data":{"ordersn":"X","status":"READY_TO_SHIP","update_time":1}}'
    url = f"/webhooks/shopee/{shops.channel_ids['shopee-vn']}"
    for headers in ({}, {"Authorization": "0" * 64}):
        response = shops.api.post(url, content=body, headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
    assert row_counts(shops.app) == before


@sqlite_only
def test_operator_cancel_reaches_the_platform(shops: World) -> None:
    sn = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "CAP", "quantity": 1}]}).json()["order_sn"]
    shops.drain()
    (order,) = shops.orders("shopee-vn")
    cancelled = shops.api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "warehouse", "note": "damaged"})
    assert cancelled.status_code == 200, cancelled.text
    shops.drain()
    platform = shops.shopee.get(f"/_sim/orders/{sn}").json()
    assert (platform["order_status"], platform["cancel_reason"]) == ("CANCELLED", "OUT_OF_STOCK")


@sqlite_only
def test_a_refused_stock_push_is_a_dead_letter_with_a_retry_action(shops: World) -> None:
    fault = {"fail": [{"status": 400, "count": 1, "path_prefix": "/api/v2/product/update_stock"}]}
    assert shops.shopee.post("/_sim/faults", json=fault).status_code == 200
    shops.api.put("/v1/inventory/HN/CAP", json={"on_hand": 7, "reason": "cycle count"})
    shops.drain()
    health = shops.api.get("/v1/channels/shopee-vn/health").json()
    assert health["outbound"]["dead"] == 1
    (dead,) = health["dead_letters"]
    assert dead["type"] == "channel.stock_push"
    assert "400" in dead["error"]
    assert health["last_error"] is not None
    assert shops.shopee.get("/_sim/stock").json()["CAP"] == 2  # unchanged
    retry = shops.api.request(dead["retry"]["method"], dead["retry"]["path"])
    assert retry.status_code == 200, retry.text
    shops.drain()
    assert shops.shopee.get("/_sim/stock").json()["CAP"] == 6  # 7 - buffer 1
    assert shops.api.get("/v1/channels/shopee-vn/health").json()["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
def test_scenario_driver_places_orders_that_flow_in(shops: World) -> None:
    from ordermesh.simulators.scenario import Shop, run_scenario

    targets = [Shop("shopee", str(shops.shopee.base_url)), Shop("shopify", str(shops.shopify.base_url))]
    report = run_scenario(targets, ["TSHIRT-M"], orders=4, rate_per_second=1000, max_quantity=1, seed=7)
    assert report.total == 4
    assert report.refused == []
    shops.drain()
    assert len(shops.orders("shopee-vn")) == 2
    assert len(shops.orders("shopify-main")) == 2
    # 10 - 4 sold: both shops show what is left (Shopee minus its buffer).
    assert shops.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 6
    assert shops.shopee.get("/_sim/stock").json()["TSHIRT-M"] == 5


@sqlite_only
def test_a_sale_under_a_cap_is_topped_back_up_on_the_platform(shops: World) -> None:
    # Shopify may show at most 5 TSHIRT-M; a sale there lowers its own figure while ordermesh's desired
    # stays at the cap (10 - 2 is still above it), so ordermesh must push 5 again.
    body = {"kind": "shopify", "base_url": str(shops.shopify.base_url), "stock_rules": {"max_exposed": 5}}
    assert shops.api.put("/v1/channels/shopify-main", json=body).status_code == 200
    shops.drain()
    assert shops.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 5
    shops.shopify.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 2}]})
    shops.drain()
    assert shops.orders("shopify-main")[0]["status"] == "allocated"
    assert shops.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 5
    assert shops.shopee.get("/_sim/stock").json()["TSHIRT-M"] == 7  # 8 left - buffer 1


@sqlite_only
def test_simulated_shops_can_refuse_to_sell_beyond_their_stock(shops: World) -> None:
    for sim, line in ((shops.shopify, {"sku": "CAP", "quantity": 4}), (shops.shopee, {"sku": "CAP", "quantity": 3})):
        assert sim.post("/_sim/config", json={"sell_beyond_stock": False}).json()["sell_beyond_stock"] is False
        before = sim.get("/_sim/stock").json()
        assert sim.post("/_sim/orders", json={"lines": [line]}).status_code == 409
        assert sim.get("/_sim/stock").json() == before
    shops.drain()
    assert shops.orders("shopify-main") == shops.orders("shopee-vn") == []
