"""Lazada and TikTok Shop through the channel framework, end to end over HTTP: their simulators push to
ordermesh's webhook routes and answer ordermesh's polling, stock, fulfilment and cancellation calls, with
Shopify and Shopee connected alongside. Every test runs for both platforms; the core flow (push intake and
the stock correction on every other channel) runs on both backends, the rest on SQLite to keep it quick."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from ordermesh.adapters.channels.units import push_signature
from ordermesh.adapters.store.types import utcnow
from ordermesh.bootstrap import Application
from ordermesh.services import channel_sync
from tests.e2e.channel_world_sea import LAZADA, TIKTOK, SeaWorld, sea_world
from tests.e2e.conftest import row_counts, sqlite_only

PLATFORMS = pytest.mark.parametrize("kind", ["lazada", "tiktok"])


@pytest.fixture
def sea(app: Application) -> Iterator[SeaWorld]:
    with sea_world(app) as connected:
        yield connected


def event_types(sea: SeaWorld, order_id: int) -> list[str]:
    return [event["type"] for event in sea.order(order_id)["events"]]


@PLATFORMS
def test_a_pushed_order_is_grouped_and_corrects_stock_on_every_other_channel(sea: SeaWorld, kind: str) -> None:
    # Start: TSHIRT-M 10 (HN 6 + HCM 4), CAP 3; Shopee keeps a buffer of 1.
    assert sea.lazada.sellable() == {"TSHIRT-M": 10, "XL-NOT-MAPPED": 0, "CAP": 3}
    assert sea.tiktok.sellable() == {"TSHIRT-M": 10, "XL-NOT-MAPPED": 0, "CAP": 3}
    market = sea.market(kind)
    external_id = market.place([("TSHIRT-M", 3), ("CAP", 1)], cod=True, payment_method="COD")
    sea.drain()
    order = sea.only_order(market.code)
    assert order["external_id"] == external_id
    assert order["status"] == "allocated"
    # Three unit rows of TSHIRT-M and one of CAP became two lines with quantities.
    assert sorted((line["sku"], line["quantity"]) for line in order["lines"]) == [("CAP", 1), ("TSHIRT-M", 3)]
    assert order["tags"] == ["cod"]
    platform_side = sea.api.get(f"/v1/channels/{market.code}/orders/{external_id}").json()
    assert platform_side["order_id"] == order["id"]
    assert platform_side["channel_status"] == "ready_to_fulfill"
    # Every channel, the one that sold included, now offers what is left: TSHIRT-M 7, CAP 2.
    assert sea.base.shopify.get("/_sim/stock").json() == {"TSHIRT-M": 7, "CAP": 2, "GIFT-SET": 2}
    assert sea.base.shopee.get("/_sim/stock").json() == {"TSHIRT-M": 6, "XL-NOT-MAPPED": 0, "CAP": 1}
    for other in (sea.lazada, sea.tiktok):
        assert other.sellable() == {"TSHIRT-M": 7, "XL-NOT-MAPPED": 0, "CAP": 2}, other.kind
    health = sea.api.get(f"/v1/channels/{market.code}/health").json()
    assert health["last_push_at"] is not None
    assert health["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
def test_a_sale_on_shopify_reaches_lazada_and_tiktok(sea: SeaWorld) -> None:
    placed = sea.base.shopify.post("/_sim/orders", json={"lines": [{"sku": "GIFT-SET", "quantity": 1}]})
    assert placed.status_code == 200, placed.text
    sea.drain()
    for market in (sea.lazada, sea.tiktok):
        assert market.sellable() == {"TSHIRT-M": 9, "XL-NOT-MAPPED": 0, "CAP": 2}, market.kind


@sqlite_only
@PLATFORMS
def test_a_forged_push_is_refused_and_nothing_is_stored(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    credentials = LAZADA if kind == "lazada" else TIKTOK
    if kind == "lazada":
        body = b'{"seller_id":"1000001","message_type":0,"data":{"trade_order_id":"1","order_status":"pending"}}'
    else:
        body = b'{"type":1,"tts_notification_id":"1","shop_id":"1","data":{"order_id":"1","order_status":"UNPAID"}}'
    before = row_counts(sea.app)
    forged = push_signature(credentials["app_key"], "not-the-secret", body)
    for headers in ({}, {"Authorization": forged}, {"Authorization": "0" * 64}):
        response = sea.api.post(market.webhook_path, content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"] == "application/problem+json"
    assert row_counts(sea.app) == before
    # The same body signed with the real secret is accepted by the same route (it names no known order).
    genuine = {"Authorization": push_signature(credentials["app_key"], credentials["app_secret"], body)}
    assert sea.api.post(market.webhook_path, content=body, headers=genuine).status_code == 200


@sqlite_only
@PLATFORMS
def test_lost_pushes_are_recovered_by_polling(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    market.faults({"push": {"drop": 1}})
    external_id = market.place([("CAP", 2)])
    sea.drain()
    assert sea.orders(market.code) == []
    # The scheduled poll a little later (it leaves the platform POLL_LAG to make recent updates listable).
    later = utcnow() + channel_sync.POLL_LAG + timedelta(seconds=2)
    assert channel_sync.poll_connection(sea.app, market.channel_id, now=later) == 1
    sea.drain()
    order = sea.only_order(market.code)
    assert (order["external_id"], order["status"]) == (external_id, "allocated")
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [("CAP", 2)]
    assert sea.base.shopify.get("/_sim/stock").json()["CAP"] == 1
    health = sea.api.get(f"/v1/channels/{market.code}/health").json()
    assert health["last_polled_at"] is not None
    # Polling the same window again (and the manual poll route) changes nothing.
    channel_sync.poll_connection(sea.app, market.channel_id, now=later)
    assert sea.api.post(f"/v1/channels/{market.code}/poll").status_code == 200
    sea.drain()
    assert len(sea.orders(market.code)) == 1
    assert event_types(sea, order["id"]).count("created") == 1


@sqlite_only
@PLATFORMS
def test_duplicate_and_reordered_pushes_have_the_effect_of_one(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    market.faults({"push": {"duplicate": 1}})
    external_id = market.place([("TSHIRT-M", 2)])
    sea.drain()
    order = sea.only_order(market.code)
    assert order["status"] == "allocated"
    assert event_types(sea, order["id"]).count("created") == 1
    sent = market.flush()
    first_push = sent[0]
    assert [status for _, status in sent[:2]] == [200, 200]  # delivered twice, stored once
    assert first_push[0].endswith(market.webhook_path)
    # The platform moves the order on, then cancels it; the two pushes arrive swapped.
    market.faults({"push": {"reorder": True}})
    market.set_status(external_id, "packed" if kind == "lazada" else "AWAITING_COLLECTION")
    market.set_status(external_id, "canceled" if kind == "lazada" else "CANCELLED")
    sea.drain()
    cancelled = sea.order(order["id"])
    assert cancelled["status"] == "cancelled"
    assert sea.base.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 10  # the reservation went back
    events = event_types(sea, order["id"])
    # A poll over the same orders changes nothing more.
    assert sea.api.post(f"/v1/channels/{market.code}/poll").status_code == 200
    sea.drain()
    assert sea.order(order["id"])["status"] == "cancelled"
    assert event_types(sea, order["id"]) == events


@sqlite_only
@PLATFORMS
def test_an_old_state_never_moves_the_order_back(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    external_id = market.place([("CAP", 1)])
    sea.drain()
    order = sea.only_order(market.code)
    market.set_status(external_id, "canceled" if kind == "lazada" else "CANCELLED")
    sea.drain()
    assert sea.order(order["id"])["status"] == "cancelled"
    events = event_types(sea, order["id"])
    record = sea.api.get(f"/v1/channels/{market.code}/orders/{external_id}").json()
    # An old push for this order arriving now (its own update time is older than the stored one).
    if kind == "lazada":
        body = (
            '{"seller_id":"1000001","message_type":0,"timestamp":1,"site":"lazada_vn","data":{"order_status":'
            f'"pending","trade_order_id":"{external_id}","trade_order_line_id":"9","status_update_time":1}}}}'
        ).encode()
        credentials = LAZADA
    else:
        body = (
            '{"type":1,"tts_notification_id":"old-1","shop_id":"7494726673780148744","timestamp":1,'
            f'"data":{{"order_id":"{external_id}","order_status":"AWAITING_SHIPMENT","update_time":1}}}}'
        ).encode()
        credentials = TIKTOK
    headers = {"Authorization": push_signature(credentials["app_key"], credentials["app_secret"], body)}
    assert sea.api.post(market.webhook_path, content=body, headers=headers).status_code == 200
    sea.drain()
    assert sea.order(order["id"])["status"] == "cancelled"
    assert event_types(sea, order["id"]) == events
    assert sea.api.get(f"/v1/channels/{market.code}/orders/{external_id}").json() == record


@sqlite_only
@PLATFORMS
def test_an_unmapped_sku_holds_the_order_with_a_clear_reason(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    # The seller lists a new variant on the platform (with stock set there), unknown to ordermesh.
    product = {"name": "Tee XXL", "skus": [{"seller_sku": "TEE-XXL", "quantity": 5}]}
    created = market.sim.post("/_sim/products", json=product)
    assert created.status_code == 200, created.text
    market.place([("TEE-XXL", 2), ("CAP", 1)])
    sea.drain()
    order = sea.only_order(market.code)
    assert order["status"] == "on_hold"
    assert "unmapped" in order["hold_reason"]
    assert "TEE-XXL" in order["hold_reason"]
    assert f"/v1/channels/{market.code}/listings" in order["hold_reason"]
    assert [(line["sku"], line["quantity"]) for line in order["lines"]] == [("CAP", 1)]
    assert sea.base.shopify.get("/_sim/stock").json()["CAP"] == 3  # a held order reserves nothing
    body = {"listings": [{"sku": "TSHIRT-M", "seller_sku": "TEE-XXL"}]}
    assert sea.api.put(f"/v1/channels/{market.code}/listings", json=body).status_code == 200
    sea.drain()
    mapped = sea.order(order["id"])
    assert mapped["status"] == "allocated"
    assert sorted((line["sku"], line["quantity"]) for line in mapped["lines"]) == [("CAP", 1), ("TSHIRT-M", 2)]


@sqlite_only
@PLATFORMS
def test_a_buyer_cancel_request_is_accepted_before_shipping(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    external_id = market.place([("TSHIRT-M", 2)])
    sea.drain()
    order = sea.only_order(market.code)
    market.buyer_cancels(external_id)
    sea.drain()
    assert sea.order(order["id"])["status"] == "cancelled"
    # The acceptance reached the platform: the order is cancelled there and no request is pending.
    assert market.statuses(external_id) == ({"canceled"} if kind == "lazada" else {"CANCELLED"})
    assert not market.cancel_pending(external_id)
    assert sea.base.shopify.get("/_sim/stock").json()["TSHIRT-M"] == 10
    assert sea.api.get(f"/v1/channels/{market.code}/health").json()["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
@PLATFORMS
def test_shipping_reaches_the_platform_and_a_later_cancel_request_is_refused(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    external_id = market.place([("TSHIRT-M", 2), ("CAP", 1)])
    sea.drain()
    order = sea.only_order(market.code)
    sea.base.ship(order["id"], "GHN-777")
    sea.drain()
    assert sea.order(order["id"])["status"] == "shipped"
    platform = market.platform_order(external_id)
    if kind == "lazada":
        # Packed, then ready to ship: every unit row is in one package, ready for Lazada's carrier.
        assert {item["status"] for item in platform["items"]} == {"ready_to_ship"}
        assert len({item["package_id"] for item in platform["items"]}) == 1
        assert all(item["package_id"] for item in platform["items"])
    else:
        # TikTok-shipped: the package was shipped (handed over to TikTok's carrier, awaiting collection).
        assert platform["status"] == "AWAITING_COLLECTION"
        assert all(line["tracking_number"] for line in platform["line_items"])
    assert sea.api.get(f"/v1/channels/{market.code}/health").json()["outbound"] == {"pending": 0, "dead": 0}
    before = market.statuses(external_id)
    market.buyer_cancels(external_id)
    sea.drain()
    assert sea.order(order["id"])["status"] == "shipped"
    # The refusal reached the platform: the request is closed and the order goes on as it was.
    assert not market.cancel_pending(external_id)
    assert market.statuses(external_id) == before
    assert sea.api.get(f"/v1/channels/{market.code}/health").json()["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
def test_a_seller_shipped_tiktok_order_carries_ordermeshs_carrier_and_tracking(sea: SeaWorld) -> None:
    external_id = sea.tiktok.place([("CAP", 1)], shipping_type="SELLER")
    sea.drain()
    order = sea.only_order(sea.tiktok.code)
    sea.base.ship(order["id"], "GHN-555")  # ordermesh's carrier code for Giao Hang Nhanh
    sea.drain()
    platform = sea.tiktok.platform_order(external_id)
    assert platform["status"] == "IN_TRANSIT"
    assert [line["tracking_number"] for line in platform["line_items"]] == ["GHN-555"]
    assert sea.api.get(f"/v1/channels/{sea.tiktok.code}/health").json()["outbound"] == {"pending": 0, "dead": 0}


@sqlite_only
@PLATFORMS
def test_an_operator_cancel_reaches_the_platform(sea: SeaWorld, kind: str) -> None:
    market = sea.market(kind)
    external_id = market.place([("TSHIRT-M", 1)])
    sea.drain()
    order = sea.only_order(market.code)
    cancelled = sea.api.post(f"/v1/orders/{order['id']}/cancel", json={"reason": "warehouse", "note": "damaged"})
    assert cancelled.status_code == 200, cancelled.text
    sea.drain()
    assert market.statuses(external_id) == ({"canceled"} if kind == "lazada" else {"CANCELLED"})
    assert sea.order(order["id"])["status"] == "cancelled"
    assert sea.api.get(f"/v1/channels/{market.code}/health").json()["outbound"] == {"pending": 0, "dead": 0}
