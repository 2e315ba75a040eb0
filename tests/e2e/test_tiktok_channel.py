"""The TikTok Shop adapter against the TikTok Shop simulator over real HTTP (202309 signing, webhooks)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ordermesh.adapters.channels.base import ChannelStatus, ShipmentNotice, StockUpdate
from ordermesh.adapters.channels.tiktok import TikTokShopAdapter
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError
from ordermesh.simulators import tiktok as simulator
from ordermesh.simulators.common import running
from tests.e2e.channel_sim import control, push_inbox

CREDENTIALS = {
    "app_key": "app_key",
    "app_secret": "app_secret",
    "access_token": "seller-token",
    "shop_cipher": "ROW_abc",
}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def shop(http: httpx.Client) -> Iterator[str]:
    with running(simulator.create_app(**CREDENTIALS)) as base_url:
        control(
            http,
            base_url,
            "POST",
            "/_sim/products",
            {
                "name": "Ao thun",
                "skus": [
                    {"seller_sku": "TEE-S", "quantity": 20, "price": "150000"},
                    {"seller_sku": "TEE-M", "quantity": 20, "price": "150000"},
                ],
            },
        )
        yield base_url


def adapter_for(base_url: str, client: httpx.Client, **overrides: str) -> TikTokShopAdapter:
    return TikTokShopAdapter(base_url, {**CREDENTIALS, **overrides}, client)


def place(http: httpx.Client, base_url: str, **spec: object) -> str:
    spec.setdefault("lines", [{"seller_sku": "TEE-S", "quantity": 3}, {"seller_sku": "TEE-M", "quantity": 1}])
    return str(control(http, base_url, "POST", "/_sim/orders", spec)["id"])


def test_fetch_orders_groups_line_items_and_maps_the_order(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop, cod=True, buyer_note="giao buoi sang", shipping_fee="15000")
    [order] = adapter_for(shop, http).fetch_orders([order_id])
    assert order.external_id == order_id
    assert (order.status, order.raw_status) == (ChannelStatus.READY_TO_FULFILL, "AWAITING_SHIPMENT")
    assert sorted((line.seller_sku, line.quantity) for line in order.lines) == [("TEE-M", 1), ("TEE-S", 3)]
    assert order.cod is True
    assert (order.currency, str(order.total), str(order.shipping_fee)) == ("VND", "615000", "15000")
    assert order.buyer_note == "giao buoi sang"
    assert order.ship_by is not None
    assert order.placed_at is not None
    assert (order.ship_by - order.placed_at).days == 2
    assert order.address is not None
    assert (order.address.province, order.address.district, order.address.ward) == ("Ha Noi", "Hoan Kiem", "Hang Bac")


def test_polling_follows_page_tokens_within_the_window(shop: str, http: httpx.Client) -> None:
    control(http, shop, "POST", "/_sim/products", {"name": "Bulk", "skus": [{"seller_sku": "BULK", "quantity": 1000}]})
    start = 1_767_225_600  # 2026-01-01T00:00:00Z
    placed = [
        place(http, shop, lines=[{"seller_sku": "BULK", "quantity": 1}], update_time=start + index)
        for index in range(230)
    ]
    since, until = datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(start + 220, UTC)
    seen = [order.external_id for order in adapter_for(shop, http).orders_updated(since, until)]
    assert seen == placed[:220]


def test_stock_update_sends_one_call_per_product_with_the_default_warehouse(shop: str, http: httpx.Client) -> None:
    adapter = adapter_for(shop, http)
    listings = {listing.seller_sku: listing for listing in adapter.listings()}
    assert set(listings) == {"TEE-S", "TEE-M"}
    assert listings["TEE-S"].location_id == simulator.WAREHOUSE_ID
    place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 2}])
    updates = [
        StockUpdate(replace(listings["TEE-S"], location_id=None), quantity=5),
        StockUpdate(replace(listings["TEE-M"], location_id=None), quantity=9),
    ]
    adapter.set_stock(updates)  # no warehouse on the listing: the shop's default one is used
    calls = control(http, shop, "GET", "/_sim/calls")
    assert [call["skus"] for call in calls] == [2]
    stock = control(http, shop, "GET", "/_sim/stock")
    assert stock["TEE-S"] == {"quantity": 7, "locked": 2, "sellable": 5}
    assert stock["TEE-M"] == {"quantity": 9, "locked": 0, "sellable": 9}


def test_stock_update_for_an_unknown_product_is_permanent(shop: str, http: httpx.Client) -> None:
    listing = next(iter(adapter_for(shop, http).listings()))
    stray = replace(listing, item_id="999999")
    with pytest.raises(PermanentDeliveryError, match="not found"):
        adapter_for(shop, http).set_stock([StockUpdate(stray, quantity=1)])


def test_tiktok_shipped_order_ships_its_package_once(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    adapter = adapter_for(shop, http)
    notice = ShipmentNotice(external_order_id=order_id, line_ids=(), carrier="J&T", tracking_number="unused")
    adapter.confirm_shipment(notice)
    assert adapter.fetch_orders([order_id])[0].status is ChannelStatus.FULFILLING
    adapter.confirm_shipment(notice)  # a retried outbox message changes nothing
    ship_calls = [call for call in control(http, shop, "GET", "/_sim/calls") if call["path"].endswith("/ship")]
    assert len(ship_calls) == 1


def test_seller_shipped_order_sends_tracking_with_the_matching_provider(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop, shipping_type="SELLER")
    adapter = adapter_for(shop, http)
    adapter.confirm_shipment(
        ShipmentNotice(external_order_id=order_id, line_ids=(), carrier="Giao Hang Nhanh", tracking_number="GHN123")
    )
    raw = control(http, shop, "GET", f"/_sim/orders/{order_id}")
    assert raw["status"] == "IN_TRANSIT"
    assert {line["tracking_number"] for line in raw["line_items"]} == {"GHN123"}
    other = place(http, shop, shipping_type="SELLER")
    with pytest.raises(PermanentDeliveryError, match="no shipping provider"):
        adapter.confirm_shipment(
            ShipmentNotice(external_order_id=other, line_ids=(), carrier="Pigeon Post", tracking_number="P1")
        )
    assert control(http, shop, "GET", f"/_sim/orders/{other}")["status"] == "AWAITING_SHIPMENT"


def test_seller_cancellation(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    adapter = adapter_for(shop, http)
    adapter.cancel_order(order_id, reason="Out of stock")
    [order] = adapter.fetch_orders([order_id])
    assert (order.status, order.cancel_reason) == (ChannelStatus.CANCELLED, "Out of stock")
    adapter.cancel_order(order_id, reason="Out of stock")  # already cancelled: nothing to send


@pytest.mark.parametrize(
    ("accept", "expected"), [(True, ChannelStatus.CANCELLED), (False, ChannelStatus.READY_TO_FULFILL)]
)
def test_buyer_cancel_request_is_seen_and_answered(
    shop: str, http: httpx.Client, accept: bool, expected: ChannelStatus
) -> None:
    order_id = place(http, shop)
    control(http, shop, "POST", f"/_sim/orders/{order_id}/cancel_request", {"reason": "Changed my mind"})
    adapter = adapter_for(shop, http)
    assert adapter.fetch_orders([order_id])[0].status is ChannelStatus.CANCEL_REQUESTED
    adapter.answer_cancel_request(order_id, accept=accept, reason="Already packed")
    assert adapter.fetch_orders([order_id])[0].status is expected
    with pytest.raises(PermanentDeliveryError, match="no pending cancellation"):
        adapter.answer_cancel_request(order_id, accept=accept)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"app_secret": "forged"}, "Invalid signature"),
        ({"access_token": "other"}, "access_token"),
        ({"shop_cipher": "ROW_other"}, "shop_cipher"),
        ({"app_key": "other"}, "app_key"),
    ],
)
def test_the_simulator_refuses_bad_credentials(
    shop: str, http: httpx.Client, override: dict[str, str], message: str
) -> None:
    order_id = place(http, shop)
    with pytest.raises(PermanentDeliveryError, match=message):
        adapter_for(shop, http, **override).fetch_orders([order_id])


def test_webhooks_are_signed_deduplicable_and_a_forgery_fails(http: httpx.Client) -> None:
    with push_inbox() as (inbox, push_url), running(simulator.create_app(**CREDENTIALS, push_url=push_url)) as base_url:
        control(http, base_url, "POST", "/_sim/products", {"name": "T", "skus": [{"seller_sku": "A", "quantity": 5}]})
        order_id = place(http, base_url, lines=[{"seller_sku": "A", "quantity": 2}])
        control(http, base_url, "POST", f"/_sim/orders/{order_id}/cancel_request")
        received = inbox.wait_for(2)
        adapter = adapter_for(base_url, http)
        notices = []
        for headers, body in received:
            assert adapter.verify_push(url=push_url, headers=headers, body=body)
            notices.append(adapter.parse_push(headers=headers, body=body))
        assert sorted((n.topic, n.order_ids) for n in notices) == [
            ("cancel_request", (order_id,)),
            ("order", (order_id,)),
        ]
        assert all(
            n.dedupe_key == "tiktok:" + json.loads(b)["tts_notification_id"]
            for n, (_, b) in zip(notices, received, strict=True)
        )
        headers, body = received[0]
        tampered = body.replace(order_id.encode(), b"1")
        assert not adapter.verify_push(url=push_url, headers=headers, body=tampered)
        assert not adapter_for(base_url, http, app_secret="guess").verify_push(url=push_url, headers=headers, body=body)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, TransientDeliveryError),
        (502, TransientDeliveryError),
        (400, PermanentDeliveryError),
        (404, PermanentDeliveryError),
    ],
)
def test_http_failures_map_to_transient_or_permanent(
    shop: str, http: httpx.Client, status: int, error: type[Exception]
) -> None:
    order_id = place(http, shop)
    adapter = adapter_for(shop, http)
    control(http, shop, "POST", "/_sim/faults", {"fail": [{"status": status, "count": 1, "path_prefix": "/order"}]})
    with pytest.raises(error):
        adapter.fetch_orders([order_id])
    assert [order.external_id for order in adapter.fetch_orders([order_id])] == [order_id]


def test_an_order_whose_webhook_was_lost_is_found_by_polling(http: httpx.Client) -> None:
    with push_inbox() as (inbox, push_url), running(simulator.create_app(**CREDENTIALS, push_url=push_url)) as base_url:
        control(http, base_url, "POST", "/_sim/products", {"name": "T", "skus": [{"seller_sku": "A", "quantity": 5}]})
        control(http, base_url, "POST", "/_sim/faults", {"push": {"drop": 1}})
        lost = place(http, base_url, lines=[{"seller_sku": "A", "quantity": 1}])
        delivered = place(http, base_url, lines=[{"seller_sku": "A", "quantity": 1}])
        [(headers, body)] = inbox.wait_for(1)
        adapter = adapter_for(base_url, http)
        assert adapter.parse_push(headers=headers, body=body).order_ids == (delivered,)
        now = datetime.now(UTC)
        polled = {
            order.external_id
            for order in adapter.orders_updated(now - timedelta(minutes=5), now + timedelta(minutes=1))
        }
        assert polled == {lost, delivered}


def test_consecutive_polls_with_fractional_bounds_see_each_order_once(shop: str, http: httpx.Client) -> None:
    start = 1_769_904_000  # 2026-02-01T00:00:00Z
    placed = [place(http, shop, update_time=start + s) for s in (9, 10, 11)]
    adapter = adapter_for(shop, http)
    begin = datetime.fromtimestamp(start, UTC)
    middle = begin + timedelta(seconds=10, milliseconds=500)
    first = [o.external_id for o in adapter.orders_updated(begin, middle)]
    second = [o.external_id for o in adapter.orders_updated(middle, begin + timedelta(seconds=30))]
    assert (first, second) == (placed[:2], placed[2:])


def test_the_simulator_accepts_a_request_signed_by_hand_per_the_documented_algorithm(
    shop: str, http: httpx.Client
) -> None:
    # Independent of the adapter's signer: §4.1 written out (secret-wrapped base, body appended, hex).
    path = "/product/202309/products/search"
    query = {"app_key": "app_key", "timestamp": str(int(time.time())), "shop_cipher": "ROW_abc", "page_size": "10"}
    body = '{"status":"ACTIVATE"}'
    base = path + "".join(key + query[key] for key in sorted(query)) + body
    query["sign"] = hmac.new(b"app_secret", f"app_secret{base}app_secret".encode(), hashlib.sha256).hexdigest()
    headers = {"x-tts-access-token": "seller-token", "content-type": "application/json"}
    answer = http.post(shop + path, params=query, content=body, headers=headers).json()
    assert answer["code"] == 0
    assert {sku["seller_sku"] for sku in answer["data"]["products"][0]["skus"]} == {"TEE-S", "TEE-M"}
    tampered = http.post(shop + path, params=query, content=body.replace("ACTIVATE", "DRAFT"), headers=headers)
    assert tampered.json()["message"] == "Invalid signature"


def test_collected_units_leave_the_total_and_cancelled_ones_return(shop: str, http: httpx.Client) -> None:
    shipped = place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 3}])
    cancelled = place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 2}])
    adapter = adapter_for(shop, http)
    adapter.confirm_shipment(ShipmentNotice(external_order_id=shipped, line_ids=(), carrier="J&T", tracking_number="-"))
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"] == {
        "quantity": 20,
        "locked": 5,
        "sellable": 15,
    }  # awaiting collection
    control(http, shop, "POST", f"/_sim/orders/{shipped}/status", {"status": "IN_TRANSIT"})
    adapter.cancel_order(cancelled, reason="Out of stock")
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"] == {"quantity": 17, "locked": 0, "sellable": 17}
