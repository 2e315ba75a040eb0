"""The Lazada adapter against the Lazada simulator over real HTTP (signed requests, /rest gateway, pushes)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ordermesh.adapters.channels.base import ChannelStatus, Listing, ShipmentNotice, StockUpdate
from ordermesh.adapters.channels.lazada import LazadaAdapter
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError
from ordermesh.simulators import lazada as simulator
from ordermesh.simulators.common import running
from tests.e2e.channel_sim import control, push_inbox

CREDENTIALS = {"app_key": "123456", "app_secret": "helloworld", "access_token": "seller-token"}


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def shop(http: httpx.Client) -> Iterator[str]:
    app = simulator.create_app(**CREDENTIALS, max_offset=100)
    with running(app) as base_url:
        control(
            http,
            base_url,
            "POST",
            "/_sim/products",
            {
                "name": "Ao thun",
                "skus": [
                    {"seller_sku": "TEE-S", "quantity": 20, "price": "150000.00"},
                    {"seller_sku": "TEE-M", "quantity": 20, "price": "150000.00"},
                ],
            },
        )
        yield base_url


def adapter_for(base_url: str, client: httpx.Client, **overrides: str) -> LazadaAdapter:
    return LazadaAdapter(base_url + "/rest", {**CREDENTIALS, **overrides}, client)


def place(http: httpx.Client, base_url: str, **spec: object) -> str:
    spec.setdefault("lines", [{"seller_sku": "TEE-S", "quantity": 3}, {"seller_sku": "TEE-M", "quantity": 1}])
    return str(control(http, base_url, "POST", "/_sim/orders", spec)["order_id"])


def test_fetch_orders_groups_unit_rows_and_maps_the_order(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop, payment_method="COD", buyer_note="goi truoc khi giao")
    [order] = adapter_for(shop, http).fetch_orders([order_id])
    assert order.external_id == order_id
    assert order.status is ChannelStatus.READY_TO_FULFILL
    assert sorted((line.seller_sku, line.quantity) for line in order.lines) == [("TEE-M", 1), ("TEE-S", 3)]
    assert all(len(line.line_ids) == line.quantity for line in order.lines)
    assert order.cod is True
    assert order.currency == "VND"
    assert str(order.total) == "600000.00"
    assert order.buyer_note == "goi truoc khi giao"
    assert order.ship_by is not None
    assert order.ship_by - order.placed_at == timedelta(days=2)  # type: ignore[operator]
    assert order.address is not None
    assert (order.address.province, order.address.district, order.address.country) == ("Ho Chi Minh", "Quan 1", "VN")


def test_base_url_without_rest_prefix_still_reaches_the_gateway(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    adapter = LazadaAdapter(shop, CREDENTIALS, http)
    assert [order.external_id for order in adapter.fetch_orders([order_id])] == [order_id]


def test_polling_walks_pages_and_restarts_windows_past_the_offset_ceiling(shop: str, http: httpx.Client) -> None:
    control(http, shop, "POST", "/_sim/products", {"name": "Bulk", "skus": [{"seller_sku": "BULK", "quantity": 1000}]})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    placed = []
    for index in range(235):
        stamp = (start + timedelta(seconds=index)).isoformat()
        placed.append(place(http, shop, lines=[{"seller_sku": "BULK", "quantity": 1}], updated_at=stamp))
    adapter = adapter_for(shop, http)
    adapter.max_offset = 100  # the simulator was built with the same ceiling: offset 200 would be refused
    seen = [order.external_id for order in adapter.orders_updated(start, start + timedelta(seconds=230))]
    assert seen == placed[:230]  # ascending, each once, the window's end excluded
    later = [
        order.external_id
        for order in adapter.orders_updated(start + timedelta(seconds=232), start + timedelta(hours=1))
    ]
    assert later == placed[232:]


def test_stock_push_batches_50_skus_per_call_and_sets_sellable(shop: str, http: httpx.Client) -> None:
    skus = [{"seller_sku": f"SKU-{n:03d}", "quantity": 0} for n in range(120)]
    control(http, shop, "POST", "/_sim/products", {"name": "Many", "skus": skus})
    listings = {listing.seller_sku: listing for listing in adapter_for(shop, http).listings()}
    assert len(listings) == 122
    place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 2}])  # locks 2 units on the platform
    updates = [StockUpdate(listings[f"SKU-{n:03d}"], quantity=n) for n in range(120)]
    updates.append(StockUpdate(listings["TEE-S"], quantity=5))
    adapter_for(shop, http).set_stock(updates)
    calls = control(http, shop, "GET", "/_sim/calls")
    assert [call["skus"] for call in calls] == [50, 50, 21]
    assert {call["path"] for call in calls} == {"/product/stock/sellable/update"}
    stock = control(http, shop, "GET", "/_sim/stock")
    assert stock["SKU-007"] == {"quantity": 7, "locked": 0, "sellable": 7}
    assert stock["TEE-S"] == {"quantity": 7, "locked": 2, "sellable": 5}


def test_the_simulator_refuses_more_than_50_skus_in_one_call(shop: str, http: httpx.Client) -> None:
    adapter = adapter_for(shop, http)
    payload = {"Request": {"Product": {"Skus": {"Sku": [{"SellerSku": "TEE-S", "SellableQuantity": 1}] * 51}}}}
    with pytest.raises(PermanentDeliveryError, match="at most 50"):
        adapter.request("POST", "/product/stock/sellable/update", {"payload": payload})
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"]["quantity"] == 20


def test_confirm_shipment_packs_then_marks_ready_to_ship_once(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    adapter = adapter_for(shop, http)
    notice = ShipmentNotice(external_order_id=order_id, line_ids=(), carrier="LEX VN", tracking_number="ignored")
    adapter.confirm_shipment(notice)
    items = control(http, shop, "GET", f"/_sim/orders/{order_id}")["items"]
    assert {item["status"] for item in items} == {"ready_to_ship"}
    assert len({item["package_id"] for item in items}) == 1
    adapter.confirm_shipment(notice)  # a retried outbox message changes nothing
    assert control(http, shop, "GET", f"/_sim/orders/{order_id}")["items"] == items
    assert adapter.fetch_orders([order_id])[0].status is ChannelStatus.FULFILLING


def test_seller_cancellation_cancels_the_items(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    adapter = adapter_for(shop, http)
    adapter.cancel_order(order_id, reason="out of stock")
    [order] = adapter.fetch_orders([order_id])
    assert order.status is ChannelStatus.CANCELLED
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"]["locked"] == 0
    adapter.cancel_order(order_id, reason="out of stock")  # already cancelled: nothing to send


@pytest.mark.parametrize(
    ("accept", "expected"), [(True, ChannelStatus.CANCELLED), (False, ChannelStatus.READY_TO_FULFILL)]
)
def test_buyer_cancel_request_is_seen_and_answered(
    shop: str, http: httpx.Client, accept: bool, expected: ChannelStatus
) -> None:
    order_id = place(http, shop)
    control(http, shop, "POST", f"/_sim/orders/{order_id}/cancel_request")
    adapter = adapter_for(shop, http)
    assert adapter.fetch_orders([order_id])[0].status is ChannelStatus.CANCEL_REQUESTED
    adapter.answer_cancel_request(order_id, accept=accept)
    assert adapter.fetch_orders([order_id])[0].status is expected
    with pytest.raises(PermanentDeliveryError, match="no open buyer cancellation"):
        adapter.answer_cancel_request(order_id, accept=accept)


def test_forged_signature_is_refused_by_the_simulator(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    forged = adapter_for(shop, http, app_secret="not-the-secret")
    with pytest.raises(PermanentDeliveryError, match="IncompleteSignature"):
        forged.fetch_orders([order_id])
    wrong_token = adapter_for(shop, http, access_token="someone-else")
    with pytest.raises(PermanentDeliveryError, match="IllegalAccessToken"):
        wrong_token.fetch_orders([order_id])


def test_pushes_are_signed_and_a_forged_push_fails_the_verifier(http: httpx.Client) -> None:
    with push_inbox() as (inbox, push_url):
        app = simulator.create_app(**CREDENTIALS, push_url=push_url)
        with running(app) as base_url:
            control(
                http, base_url, "POST", "/_sim/products", {"name": "T", "skus": [{"seller_sku": "A", "quantity": 5}]}
            )
            order_id = place(http, base_url, lines=[{"seller_sku": "A", "quantity": 2}])
            control(http, base_url, "POST", f"/_sim/orders/{order_id}/cancel_request")
            received = inbox.wait_for(2)
            adapter = adapter_for(base_url, http)
            notices = []
            for headers, body in received:
                assert adapter.verify_push(url=push_url, headers=headers, body=body)
                notices.append(adapter.parse_push(headers=headers, body=body))
            # Pushes travel on their own threads, so arrival order is not guaranteed (as on the platform).
            assert sorted((n.topic, n.order_ids) for n in notices) == [
                ("cancel_request", (order_id,)),
                ("order", (order_id,)),
            ]
            headers, body = received[0]
            tampered = json.dumps({**json.loads(body), "seller_id": "999"}).encode()
            assert not adapter.verify_push(url=push_url, headers=headers, body=tampered)
            impostor = adapter_for(base_url, http, app_secret="guess")
            assert not impostor.verify_push(url=push_url, headers=headers, body=body)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, TransientDeliveryError),
        (503, TransientDeliveryError),
        (500, TransientDeliveryError),
        (400, PermanentDeliveryError),
        (403, PermanentDeliveryError),
    ],
)
def test_http_failures_map_to_transient_or_permanent(
    shop: str, http: httpx.Client, status: int, error: type[Exception]
) -> None:
    adapter = adapter_for(shop, http)
    control(http, shop, "POST", "/_sim/faults", {"fail": [{"status": status, "count": 1, "path_prefix": "/rest"}]})
    with pytest.raises(error):
        adapter.set_stock([StockUpdate(Listing(seller_sku="TEE-S", item_id=None, variant_id=None), quantity=3)])
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"]["quantity"] == 20
    adapter.set_stock([StockUpdate(Listing(seller_sku="TEE-S", item_id=None, variant_id=None), quantity=3)])
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"]["quantity"] == 3


def test_a_duplicated_push_carries_the_same_dedupe_key(http: httpx.Client) -> None:
    with push_inbox() as (inbox, push_url), running(simulator.create_app(**CREDENTIALS, push_url=push_url)) as base_url:
        control(http, base_url, "POST", "/_sim/products", {"name": "T", "skus": [{"seller_sku": "A", "quantity": 5}]})
        control(http, base_url, "POST", "/_sim/faults", {"push": {"duplicate": 1}})
        order_id = place(http, base_url, lines=[{"seller_sku": "A", "quantity": 1}])
        received = inbox.wait_for(2)
        adapter = adapter_for(base_url, http)
        keys = {adapter.parse_push(headers=headers, body=body).dedupe_key for headers, body in received}
        assert len(keys) == 1
        assert order_id in keys.pop()


def test_adapters_for_the_same_seller_share_one_stock_rate_limit(shop: str, http: httpx.Client) -> None:
    first, second = adapter_for(shop, http), adapter_for(shop, http)
    other_seller = adapter_for(shop, http, access_token="another-seller")
    assert first.stock_limiter is second.stock_limiter
    assert first.stock_limiter is not other_seller.stock_limiter
    assert (first.stock_limiter.rate, first.max_stock_batch) == (50.0, 50)


def test_consecutive_polls_with_fractional_bounds_see_each_order_once(shop: str, http: httpx.Client) -> None:
    start = datetime(2026, 2, 1, tzinfo=UTC)
    placed = [place(http, shop, updated_at=(start + timedelta(seconds=s)).isoformat()) for s in (9, 10, 11)]
    adapter = adapter_for(shop, http)
    middle = start + timedelta(seconds=10, milliseconds=500)
    first = [o.external_id for o in adapter.orders_updated(start, middle)]
    second = [o.external_id for o in adapter.orders_updated(middle, start + timedelta(seconds=30))]
    assert (first, second) == (placed[:2], placed[2:])


def test_the_simulator_accepts_a_request_signed_by_hand_per_the_documented_algorithm(
    shop: str, http: httpx.Client
) -> None:
    # Independent of the adapter's signer: §3.1 written out (no /rest in the signed path, UPPER hex).
    params = {
        "app_key": "123456",
        "access_token": "seller-token",
        "sign_method": "sha256",
        "timestamp": str(int(time.time() * 1000)),
        "filter": "all",
        "offset": "0",
        "limit": "10",
    }
    base = "/products/get" + "".join(name + params[name] for name in sorted(params))
    params["sign"] = hmac.new(b"helloworld", base.encode(), hashlib.sha256).hexdigest().upper()
    answer = http.get(shop + "/rest/products/get", params=params).json()
    assert answer["code"] == "0"
    assert {sku["SellerSku"] for sku in answer["data"]["products"][0]["skus"]} == {"TEE-S", "TEE-M"}
    params["limit"] = "11"  # any change after signing breaks the signature
    assert http.get(shop + "/rest/products/get", params=params).json()["code"] == "IncompleteSignature"


def test_shipped_units_leave_the_total_and_cancelled_ones_return_to_sellable(shop: str, http: httpx.Client) -> None:
    shipped = place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 3}])
    cancelled = place(http, shop, lines=[{"seller_sku": "TEE-S", "quantity": 2}])
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"] == {"quantity": 20, "locked": 5, "sellable": 15}
    control(http, shop, "POST", f"/_sim/orders/{shipped}/status", {"status": "shipped"})
    adapter_for(shop, http).cancel_order(cancelled, reason="Out of stock")
    assert control(http, shop, "GET", "/_sim/stock")["TEE-S"] == {"quantity": 17, "locked": 0, "sellable": 17}


@pytest.mark.parametrize(
    ("path", "payload"),
    [("/_sim/orders", {"lines": [{"seller_sku": "TEE-S", "quantity": "many"}]}), ("/_sim/products", {"skus": [{}]})],
)
def test_malformed_control_input_is_a_422_and_changes_nothing(
    shop: str, http: httpx.Client, path: str, payload: object
) -> None:
    before = control(http, shop, "GET", "/_sim/stock")
    response = http.post(shop + path, json=payload)
    assert response.status_code == 422
    assert "invalid request" in response.json()["message"]
    assert control(http, shop, "GET", "/_sim/stock") == before


def test_an_unknown_order_id_is_left_out_of_a_batch_read(shop: str, http: httpx.Client) -> None:
    order_id = place(http, shop)
    fetched = adapter_for(shop, http).fetch_orders(["999", order_id])
    assert [order.external_id for order in fetched] == [order_id]
