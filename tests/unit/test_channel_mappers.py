"""Marketplace payloads -> canonical channel orders. Fixtures: tests/fixtures/channels/README.md."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from ordermesh.adapters.channels.base import ChannelStatus
from ordermesh.adapters.channels.shopee import notice_from_push, order_from_detail
from ordermesh.adapters.channels.shopify import order_from_payload, status_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "channels"


def load(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


def test_shopify_order_maps_money_lines_address_and_status() -> None:
    order = order_from_payload(load("shopify_order.json"))
    assert order.external_id == "450789469"
    assert order.status is ChannelStatus.READY_TO_FULFILL
    assert order.raw_status == "financial_status=paid;fulfillment_status=null"
    assert order.currency == "USD"
    assert order.total == Decimal("598.94")
    assert order.shipping_fee == Decimal("10.00")
    assert order.updated_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert [(line.seller_sku, line.variant_id, line.quantity, line.unit_price) for line in order.lines] == [
        ("IPOD2008GREEN", "39072856", 1, Decimal("199.00")),
        ("IPOD2008RED", "49148385", 1, Decimal("199.00")),
        ("IPOD2008BLACK", "457924702", 1, Decimal("199.00")),
    ]
    assert order.lines[0].discount == Decimal("3.34")
    assert order.lines[0].line_ids == ("466157049",)
    assert order.address is not None
    assert (order.address.name, order.address.province, order.address.country) == ("Bob Norman", "Kentucky", "US")
    assert order.cod is False


def test_shopify_cancelled_order_is_cancelled_with_its_reason() -> None:
    order = order_from_payload(load("shopify_order_cancelled.json"))
    assert order.status is ChannelStatus.CANCELLED
    assert order.cancel_reason == "customer"
    assert "cancelled" in order.raw_status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"financial_status": "pending"}, ChannelStatus.PENDING_PAYMENT),
        ({"financial_status": "authorized"}, ChannelStatus.PENDING_PAYMENT),
        ({"financial_status": "paid", "fulfillment_status": "partial"}, ChannelStatus.PARTIALLY_SHIPPED),
        ({"financial_status": "paid", "fulfillment_status": "fulfilled"}, ChannelStatus.SHIPPED),
        ({"financial_status": "paid", "closed_at": "2024-01-01T00:00:00Z"}, ChannelStatus.COMPLETED),
        ({"financial_status": "paid", "cancelled_at": "2024-01-01T00:00:00Z"}, ChannelStatus.CANCELLED),
    ],
)
def test_shopify_status_follows_the_mapping_table(fields: dict, status: ChannelStatus) -> None:
    assert status_of(fields) is status


def test_shopee_detail_maps_ship_by_money_model_sku_and_note() -> None:
    detail = load("shopee_order_detail.json")["response"]["order_list"][0]
    order = order_from_detail(detail)
    assert order.external_id == "201218V2Y6E59M"
    assert order.status is ChannelStatus.READY_TO_FULFILL
    assert order.raw_status == "READY_TO_SHIP"
    assert order.ship_by == datetime.fromtimestamp(1608530632, tz=UTC)
    assert order.updated_at == datetime.fromtimestamp(1608271560, tz=UTC)
    assert order.total == Decimal("12.8")
    assert order.shipping_fee == Decimal("1.99")
    assert order.currency == "SGD"
    assert order.buyer_note == "please pack well"
    (line,) = order.lines
    assert (line.seller_sku, line.item_id, line.variant_id, line.quantity) == ("TSHIRT-M", "2600144043", "10003", 2)
    assert line.unit_price == Decimal("5.9")
    assert line.discount == Decimal("1.0")
    assert line.line_ids == ("2600144043:10003",)
    assert order.address is not None
    assert order.address.line1 == "1 Example Road, #01-01, Singapore 123456"


def test_shopee_item_without_models_uses_item_sku() -> None:
    detail = load("shopee_order_detail.json")["response"]["order_list"][0]
    detail["item_list"][0].update(model_id=0, model_sku="")
    assert order_from_detail(detail).lines[0].seller_sku == "TSHIRT"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("UNPAID", ChannelStatus.PENDING_PAYMENT),
        ("PROCESSED", ChannelStatus.FULFILLING),
        ("RETRY_SHIP", ChannelStatus.READY_TO_FULFILL),
        ("IN_CANCEL", ChannelStatus.CANCEL_REQUESTED),
        ("CANCELLED", ChannelStatus.CANCELLED),
        ("TO_CONFIRM_RECEIVE", ChannelStatus.DELIVERED),
    ],
)
def test_shopee_status_follows_the_mapping_table(raw: str, status: ChannelStatus) -> None:
    detail = load("shopee_order_detail.json")["response"]["order_list"][0]
    detail["order_status"] = raw
    assert order_from_detail(detail).status is status


def test_shopee_push_names_the_order_and_dedupes_on_status_and_time() -> None:
    notice = notice_from_push((FIXTURES / "shopee_push_order_status.json").read_bytes())
    assert notice.order_ids == ("220810QSK8S7BX",)
    assert notice.topic == "order"
    assert notice.dedupe_key == "3:220810QSK8S7BX:PROCESSED:1660123127"
    assert notice.update_time == datetime.fromtimestamp(1660123127, tz=UTC)
