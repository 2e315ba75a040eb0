"""Shopify: webhooks signed with the app's client secret, orders read over REST Admin, stock and
fulfilments written with GraphQL Admin (CHANNELS.md §1).

Contract notes:
- ``set_stock`` uses ``inventorySetQuantities`` with compare-and-set: ``compareQuantity`` is the value
  ordermesh last pushed. When Shopify answers ``COMPARE_QUANTITY_STALE`` (a sale on Shopify moved the
  number since), the adapter reads the current quantity and sets again with that as the comparison:
  ordermesh is the source of truth for sellable stock, and the outbox never runs two pushes of one
  listing at once.
- Throttling (HTTP 429, GraphQL ``THROTTLED``) is a ``TransientDeliveryError``; other user errors are
  permanent.
- Shopify has no buyer cancellation requests, so ``answer_cancel_request`` has nothing to tell it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

import httpx

from ordermesh.adapters.channels.base import (
    ChannelAddress,
    ChannelLine,
    ChannelOrder,
    ChannelStatus,
    Listing,
    PushNotice,
    ShipmentNotice,
    StockUpdate,
)
from ordermesh.adapters.channels.common import digest, from_iso, mapping, money, required, text
from ordermesh.adapters.channels.signing import verify_shopify_webhook
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError, call

API_VERSION = "2024-10"
PAGE_LIMIT = 250
NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')

SET_QUANTITIES = """
mutation SetStock($input: InventorySetQuantitiesInput!) {
  inventorySetQuantities(input: $input) {
    inventoryAdjustmentGroup { id }
    userErrors { code field message }
  }
}"""
READ_QUANTITY = """
query Level($item: ID!, $location: ID!) {
  inventoryItem(id: $item) {
    inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }
  }
}"""
FULFILLMENT_ORDERS = """
query FulfillmentOrders($order: ID!) {
  order(id: $order) {
    fulfillmentOrders(first: 20) {
      nodes { id status lineItems(first: 100) { nodes { id remainingQuantity lineItem { id } } } }
    }
  }
}"""
CREATE_FULFILLMENT = """
mutation Fulfil($fulfillment: FulfillmentInput!) {
  fulfillmentCreate(fulfillment: $fulfillment) {
    fulfillment { id status }
    userErrors { field message }
  }
}"""
CANCEL_ORDER = """
mutation Cancel($orderId: ID!, $reason: OrderCancelReason!, $refund: Boolean!, $restock: Boolean!) {
  orderCancel(orderId: $orderId, reason: $reason, refund: $refund, restock: $restock, notifyCustomer: true) {
    orderCancelUserErrors { code field message }
  }
}"""
CANCEL_REASONS = {"customer": "CUSTOMER", "fraud": "FRAUD", "warehouse": "INVENTORY", "sla_breach": "INVENTORY"}


def gid(kind: str, value: str) -> str:
    return value if value.startswith("gid://") else f"gid://shopify/{kind}/{value}"


def numeric_id(value: str) -> str:
    return value.rsplit("/", 1)[-1]


def status_of(payload: Mapping[str, Any]) -> ChannelStatus:
    """§9.2: Shopify's order state is derived from several fields."""
    if payload.get("cancelled_at"):
        return ChannelStatus.CANCELLED
    if payload.get("closed_at"):
        return ChannelStatus.COMPLETED
    fulfillment = payload.get("fulfillment_status")
    if fulfillment == "fulfilled":
        return ChannelStatus.SHIPPED
    if fulfillment == "partial":
        return ChannelStatus.PARTIALLY_SHIPPED
    if payload.get("financial_status") in ("pending", "authorized"):
        return ChannelStatus.PENDING_PAYMENT
    return ChannelStatus.READY_TO_FULFILL


def raw_status_of(payload: Mapping[str, Any]) -> str:
    parts = [
        f"financial_status={payload.get('financial_status') or 'null'}",
        f"fulfillment_status={payload.get('fulfillment_status') or 'null'}",
    ]
    if payload.get("cancelled_at"):
        parts.append("cancelled")
    if payload.get("closed_at"):
        parts.append("closed")
    return ";".join(parts)


def order_from_payload(payload: Mapping[str, Any]) -> ChannelOrder:
    """A REST order (or an ``orders/*`` webhook body, the same shape) in canonical terms."""
    lines = []
    for item in payload.get("line_items") or []:
        discount = sum((money(d.get("amount")) for d in item.get("discount_allocations") or []), money(0))
        lines.append(
            ChannelLine(
                line_ids=(str(item.get("id")),),
                seller_sku=text(item.get("sku")),
                item_id=text(item.get("product_id")),
                variant_id=text(item.get("variant_id")),
                quantity=int(item.get("quantity") or 0),
                unit_price=money(item.get("price")),
                discount=discount or money(item.get("total_discount")),
                title=text(item.get("title")),
            )
        )
    ship = mapping(payload.get("shipping_address"))
    address = None
    if ship:
        name = text(ship.get("name")) or text(f"{ship.get('first_name') or ''} {ship.get('last_name') or ''}")
        address = ChannelAddress(
            name=name,
            phone=text(ship.get("phone")),
            line1=text(ship.get("address1")),
            line2=text(ship.get("address2")),
            district=text(ship.get("city")),
            province=text(ship.get("province")),
            country=text(ship.get("country_code")),
            postal_code=text(ship.get("zip")),
        )
    shipping_fee = money(mapping(mapping(payload.get("total_shipping_price_set")).get("shop_money")).get("amount"))
    if not shipping_fee:
        shipping_fee = sum((money(s.get("price")) for s in payload.get("shipping_lines") or []), money(0))
    gateways = " ".join(str(g).lower() for g in payload.get("payment_gateway_names") or [])
    updated = from_iso(payload.get("updated_at")) or from_iso(payload.get("created_at"))
    if updated is None:
        raise PermanentDeliveryError("Shopify order without updated_at/created_at")
    return ChannelOrder(
        external_id=str(payload.get("id")),
        raw_status=raw_status_of(payload),
        status=status_of(payload),
        updated_at=updated,
        currency=str(payload.get("currency") or "").upper(),
        lines=tuple(lines),
        placed_at=from_iso(payload.get("created_at")),
        paid_at=from_iso(payload.get("processed_at")) if payload.get("financial_status") == "paid" else None,
        shipping_fee=shipping_fee,
        total=money(payload.get("total_price")) if payload.get("total_price") is not None else None,
        cod="cash on delivery" in gateways or "(cod)" in gateways,
        address=address,
        buyer_note=text(payload.get("note")),
        cancel_reason=text(payload.get("cancel_reason")),
        raw=payload,
    )


class ShopifyAdapter:
    kind: ClassVar[str] = "shopify"
    max_stock_batch: ClassVar[int] = 50
    rate_per_second: ClassVar[float] = 2.0  # REST Standard leak rate; GraphQL restores 100 points/s
    burst: ClassVar[int] = 40

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials)
        self.client = client

    # -- inbound -------------------------------------------------------------------------------------

    def verify_push(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        secret = self.credentials.get("client_secret") or ""
        return bool(secret) and verify_shopify_webhook(secret, body, _header(headers, "x-shopify-hmac-sha256"))

    def parse_push(self, *, headers: Mapping[str, str], body: bytes) -> PushNotice:
        topic = _header(headers, "x-shopify-topic") or ""
        key = _header(headers, "x-shopify-event-id") or _header(headers, "x-shopify-webhook-id") or digest(body)
        try:
            payload = json.loads(body)
        except ValueError as error:
            raise PermanentDeliveryError(f"Shopify webhook body is not JSON: {error}") from error
        if topic.startswith("orders/") and isinstance(payload, dict):
            order = order_from_payload(payload)
            return PushNotice(
                dedupe_key=f"{topic}:{key}",
                topic="order",
                order_ids=(order.external_id,),
                update_time=order.updated_at,
                order=order,
            )
        if topic == "refunds/create" and isinstance(payload, dict):
            return PushNotice(dedupe_key=f"{topic}:{key}", topic="return", order_ids=(str(payload.get("order_id")),))
        return PushNotice(dedupe_key=f"{topic}:{key}", topic="other")

    # -- reads ---------------------------------------------------------------------------------------

    def fetch_orders(self, external_ids: Sequence[str]) -> list[ChannelOrder]:
        found = []
        for external_id in external_ids:
            response = self._rest("GET", f"orders/{external_id}.json")
            found.append(order_from_payload(mapping(response.json().get("order"))))
        return found

    def orders_updated(self, since: datetime, until: datetime) -> Iterator[ChannelOrder]:
        params: dict[str, Any] | None = {
            "status": "any",
            "updated_at_min": since.isoformat(),
            "updated_at_max": until.isoformat(),
            "limit": PAGE_LIMIT,
        }
        url = f"{self._admin}/orders.json"
        while url:
            response = call(self.client, "GET", url, params=params, headers=self._headers)
            for payload in response.json().get("orders") or []:
                order = order_from_payload(payload)
                if since <= order.updated_at < until:
                    yield order
            url, params = _next_page(response), None

    def listings(self) -> Iterator[Listing]:
        locations = self._rest("GET", "locations.json").json().get("locations") or []
        active = [loc for loc in locations if loc.get("active", True)]
        location_id = str(active[0]["id"]) if active else None
        url: str | None = f"{self._admin}/products.json"
        params: dict[str, Any] | None = {"limit": PAGE_LIMIT}
        while url:
            response = call(self.client, "GET", url, params=params, headers=self._headers)
            for product in response.json().get("products") or []:
                for variant in product.get("variants") or []:
                    yield Listing(
                        seller_sku=text(variant.get("sku")),
                        item_id=str(product.get("id")),
                        variant_id=str(variant.get("id")),
                        title=text(f"{product.get('title') or ''} {variant.get('title') or ''}"),
                        location_id=location_id,
                        inventory_item_id=text(variant.get("inventory_item_id")),
                    )
            url, params = _next_page(response), None

    # -- writes --------------------------------------------------------------------------------------

    def set_stock(self, updates: Sequence[StockUpdate]) -> None:
        for update in updates:
            listing = update.listing
            if not (listing.inventory_item_id and listing.location_id):
                raise PermanentDeliveryError(
                    f"listing {listing.variant_id}: no inventory item/location to set stock on (import listings)"
                )
            compare = update.previous
            for _attempt in range(2):
                errors = self._set_quantity(listing, update.quantity, compare)
                if not errors:
                    break
                if any(e.get("code") == "COMPARE_QUANTITY_STALE" for e in errors):
                    compare = self._read_quantity(listing)
                    continue
                raise PermanentDeliveryError(f"inventorySetQuantities: {_describe(errors)}")
            else:
                raise TransientDeliveryError("inventorySetQuantities: quantity kept changing on Shopify")

    def _set_quantity(self, listing: Listing, quantity: int, compare: int | None) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {
            "inventoryItemId": gid("InventoryItem", str(listing.inventory_item_id)),
            "locationId": gid("Location", str(listing.location_id)),
            "quantity": quantity,
        }
        variables: dict[str, Any] = {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": f"gid://ordermesh/StockSync/{listing.variant_id}",
                "quantities": [entry],
            }
        }
        if compare is None:
            variables["input"]["ignoreCompareQuantity"] = True
        else:
            entry["compareQuantity"] = compare
        data = self._graphql(SET_QUANTITIES, variables)
        return list(mapping(data.get("inventorySetQuantities")).get("userErrors") or [])

    def _read_quantity(self, listing: Listing) -> int | None:
        data = self._graphql(
            READ_QUANTITY,
            {
                "item": gid("InventoryItem", str(listing.inventory_item_id)),
                "location": gid("Location", str(listing.location_id)),
            },
        )
        level = mapping(mapping(data.get("inventoryItem")).get("inventoryLevel"))
        for quantity in level.get("quantities") or []:
            if quantity.get("name") == "available":
                return int(quantity.get("quantity"))
        return None

    def confirm_shipment(self, notice: ShipmentNotice) -> None:
        data = self._graphql(FULFILLMENT_ORDERS, {"order": gid("Order", notice.external_order_id)})
        nodes = mapping(mapping(data.get("order")).get("fulfillmentOrders")).get("nodes") or []
        wanted = set(notice.line_ids)
        groups = []
        for node in nodes:
            if node.get("status") not in ("OPEN", "IN_PROGRESS"):
                continue
            group: dict[str, Any] = {"fulfillmentOrderId": node["id"]}
            if wanted:
                items = [
                    {"id": item["id"], "quantity": item["remainingQuantity"]}
                    for item in mapping(node.get("lineItems")).get("nodes") or []
                    if numeric_id(mapping(item.get("lineItem")).get("id", "")) in wanted and item["remainingQuantity"]
                ]
                if not items:
                    continue
                group["fulfillmentOrderLineItems"] = items
            groups.append(group)
        if not groups:
            return  # nothing left open to fulfil: already fulfilled (a repeat of this call)
        fulfillment = {
            "lineItemsByFulfillmentOrder": groups,
            "trackingInfo": {"company": notice.carrier, "number": notice.tracking_number, "url": notice.tracking_url},
            "notifyCustomer": True,
        }
        result = mapping(self._graphql(CREATE_FULFILLMENT, {"fulfillment": fulfillment}).get("fulfillmentCreate"))
        if result.get("userErrors"):
            raise PermanentDeliveryError(f"fulfillmentCreate: {_describe(result['userErrors'])}")

    def cancel_order(self, external_id: str, *, reason: str, line_ids: Sequence[str] = ()) -> None:
        if line_ids:
            raise PermanentDeliveryError("Shopify cancels whole orders only; part-cancellations are refunds")
        variables = {
            "orderId": gid("Order", external_id),
            "reason": CANCEL_REASONS.get(reason, "OTHER"),
            "refund": True,
            "restock": False,  # ordermesh owns the stock number and pushes it
        }
        result = mapping(self._graphql(CANCEL_ORDER, variables).get("orderCancel"))
        errors = result.get("orderCancelUserErrors") or []
        if errors and not all(e.get("code") == "ORDER_ALREADY_CANCELLED" for e in errors):
            raise PermanentDeliveryError(f"orderCancel: {_describe(errors)}")

    def answer_cancel_request(self, external_id: str, *, accept: bool, reason: str | None = None) -> None:
        """Shopify has no buyer cancellation requests to answer: nothing to send."""
        return

    # -- transport -----------------------------------------------------------------------------------

    @property
    def _admin(self) -> str:
        return f"{self.base_url}/admin/api/{API_VERSION}"

    @property
    def _headers(self) -> dict[str, str]:
        token = required(self.credentials, "access_token")["access_token"]
        return {"X-Shopify-Access-Token": token, "Content-Type": "application/json"}

    def _rest(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return call(self.client, method, f"{self._admin}/{path}", headers=self._headers, **kwargs)

    def _graphql(self, query: str, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        response = self._rest("POST", "graphql.json", json={"query": query, "variables": dict(variables)})
        body = response.json()
        errors = body.get("errors") or []
        if errors:
            if any(mapping(e.get("extensions")).get("code") == "THROTTLED" for e in errors):
                raise TransientDeliveryError("Shopify GraphQL: THROTTLED", retry_after=1.0)
            raise PermanentDeliveryError(f"Shopify GraphQL: {_describe(errors)}")
        return mapping(body.get("data"))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def _next_page(response: httpx.Response) -> str:
    match = NEXT_LINK.search(response.headers.get("link", ""))
    return match.group(1) if match else ""


def _describe(errors: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(f"{e.get('code') or ''} {e.get('message') or ''}".strip() for e in errors)[:500]
