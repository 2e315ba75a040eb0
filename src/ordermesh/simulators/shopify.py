"""A local Shopify shop: REST Admin reads, GraphQL Admin writes, signed webhooks (CHANNELS.md §1).

Real paths (``/admin/api/<version>/...``), the ``X-Shopify-Access-Token`` header, Link-header paging,
a per-shop leaky bucket answering 429 with ``Retry-After``, ``inventorySetQuantities`` with
compare-and-set (``COMPARE_QUANTITY_STALE``), fulfilment orders and ``fulfillmentCreate``,
``orderCancel``, and webhooks signed with the app's client secret. Control API under ``/_sim``: add
products, place orders as a buyer, cancel them, read stock as last set.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ordermesh.adapters.channels.signing import shopify_webhook_signature
from ordermesh.simulators.common import Faults, install_push_control, simulator_app

API_PREFIX = "/admin/api/{version}"


class LeakyBucket:
    def __init__(self, capacity: int, leak_per_second: float) -> None:
        self.capacity, self.leak, self.level, self.at = capacity, leak_per_second, 0.0, time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float | None:
        """None when the request fits; else seconds to wait."""
        with self.lock:
            now = time.monotonic()
            self.level = max(0.0, self.level - (now - self.at) * self.leak)
            self.at = now
            if self.level + 1 > self.capacity:
                return (self.level + 1 - self.capacity) / self.leak
            self.level += 1
            return None


class Shop:
    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.lock = threading.RLock()
        self.ids = itertools.count(1001)
        self.location_id = 655441491
        self.products: dict[int, dict[str, Any]] = {}
        self.levels: dict[int, int] = {}  # inventory item id -> available at the one location
        self.orders: dict[int, dict[str, Any]] = {}
        self.fulfillment_orders: dict[int, list[dict[str, Any]]] = {}
        self.stock_sets: list[dict[str, Any]] = []

    def next_id(self) -> int:
        return next(self.ids)

    def variant_by_sku(self, sku: str) -> dict[str, Any] | None:
        for product in self.products.values():
            for variant in product["variants"]:
                if variant["sku"] == sku:
                    return variant
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def create_app(
    *,
    client_secret: str,
    access_token: str = "shpat_sim",
    shop_domain: str = "sim-shop.myshopify.com",
    push_url: str | None = None,
    bucket_size: int = 40,
    leak_rate: float = 2.0,
) -> FastAPI:
    faults = Faults()
    app = simulator_app("Shopify simulator", faults)
    # sell_beyond_stock False: checkout refuses a line above the variant's available quantity (Shopify's
    # "deny" inventory policy); True (the default) lets available go negative ("continue").
    state = {"sell_beyond_stock": True}
    target = install_push_control(app, faults, push_url, lazy=False, state_attr="sender", options=state)
    sender = target.sender
    assert sender is not None
    shop = Shop(shop_domain)
    bucket = LeakyBucket(bucket_size, leak_rate)
    app.state.shop = shop

    def guard(request: Request) -> Response | None:
        if request.headers.get("x-shopify-access-token") != access_token:
            return JSONResponse(
                {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
                status_code=401,
            )
        wait = bucket.take()
        if wait is not None:
            return JSONResponse(
                {"errors": "Exceeded 2 calls per second for api client. Reduce request rates to resume."},
                status_code=429,
                headers={"Retry-After": f"{max(wait, 1.0):.0f}"},
            )
        return None

    def webhook(topic: str, payload: dict[str, Any]) -> None:
        if not target.url:
            return
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": shopify_webhook_signature(client_secret, body),
            "X-Shopify-Shop-Domain": shop.domain,
            "X-Shopify-API-Version": "2024-10",
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "X-Shopify-Event-Id": str(uuid.uuid4()),
            "X-Shopify-Triggered-At": _now(),
        }
        sender.send(target.url, body, headers)

    # -- REST Admin --------------------------------------------------------------------------------

    @app.get(API_PREFIX + "/orders/{order_id}.json")
    def get_order(version: str, order_id: int, request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        with shop.lock:
            order = shop.orders.get(order_id)
            if order is None:
                return JSONResponse({"errors": "Not Found"}, status_code=404)
            return JSONResponse({"order": order})

    @app.get(API_PREFIX + "/orders.json")
    def list_orders(version: str, request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        query = request.query_params
        page_info = query.get("page_info")
        limit = min(int(query.get("limit", 50)), 250)
        if page_info:
            criteria = json.loads(page_info)
        else:
            criteria = {"min": query.get("updated_at_min"), "max": query.get("updated_at_max"), "offset": 0}
        with shop.lock:
            matching = sorted(
                (
                    o
                    for o in shop.orders.values()
                    if (not criteria["min"] or _parse(o["updated_at"]) >= _parse(criteria["min"]))
                    and (not criteria["max"] or _parse(o["updated_at"]) <= _parse(criteria["max"]))
                ),
                key=lambda o: (o["updated_at"], o["id"]),
            )
        page = matching[criteria["offset"] : criteria["offset"] + limit]
        headers = {}
        if criteria["offset"] + limit < len(matching):
            following = json.dumps({**criteria, "offset": criteria["offset"] + limit})
            base = request.url.remove_query_params(["updated_at_min", "updated_at_max", "status", "page_info"])
            headers["Link"] = f'<{base.include_query_params(page_info=following, limit=limit)}>; rel="next"'
        return JSONResponse({"orders": page}, headers=headers)

    @app.get(API_PREFIX + "/products.json")
    def list_products(version: str, request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        with shop.lock:
            return JSONResponse({"products": list(shop.products.values())})

    @app.get(API_PREFIX + "/locations.json")
    def list_locations(version: str, request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        return JSONResponse({"locations": [{"id": shop.location_id, "name": "Shop location", "active": True}]})

    # -- GraphQL Admin -----------------------------------------------------------------------------

    @app.post(API_PREFIX + "/graphql.json")
    async def graphql(version: str, request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        body = await request.json()
        query, variables = str(body.get("query") or ""), body.get("variables") or {}
        with shop.lock:
            if "inventorySetQuantities" in query:
                data = _set_quantities(shop, variables["input"])
            elif "inventoryItem(" in query:
                data = _read_level(shop, variables)
            elif "fulfillmentCreate" in query:
                data = _create_fulfillment(shop, variables["fulfillment"], webhook)
            elif "fulfillmentOrders" in query:
                data = _fulfillment_orders(shop, variables["order"])
            elif "orderCancel" in query:
                data = _cancel(shop, variables, webhook)
            else:
                return JSONResponse({"errors": [{"message": "Field is not supported by the simulator"}]})
        return JSONResponse({"data": data})

    # -- control -----------------------------------------------------------------------------------

    @app.post("/_sim/products")
    async def add_product(request: Request) -> dict[str, Any]:
        body = await request.json()
        with shop.lock:
            product_id = shop.next_id()
            variants = []
            for entry in body["variants"]:
                variant = {
                    "id": shop.next_id(),
                    "product_id": product_id,
                    "sku": entry["sku"],
                    "title": entry.get("title", entry["sku"]),
                    "price": str(entry.get("price", "10.00")),
                    "inventory_item_id": shop.next_id(),
                }
                shop.levels[variant["inventory_item_id"]] = int(entry.get("available", 0))
                variants.append(variant)
            product = {"id": product_id, "title": body.get("title", "Product"), "variants": variants}
            shop.products[product_id] = product
            return product

    @app.post("/_sim/orders")
    async def place_order(request: Request) -> Response:
        """A buyer checks out: available falls, the order exists, ``orders/create`` is sent."""
        body = await request.json()
        with shop.lock:
            items = []
            for entry in body["lines"]:
                variant = shop.variant_by_sku(entry["sku"])
                if variant is None:
                    return JSONResponse({"errors": f"no variant with SKU {entry['sku']}"}, status_code=422)
                items.append((variant, int(entry.get("quantity", 1))))
            for variant, quantity in items:
                available = shop.levels[variant["inventory_item_id"]]
                if not state["sell_beyond_stock"] and quantity > available:
                    return JSONResponse({"errors": f"{variant['sku']} has {available} available"}, status_code=409)
            for variant, quantity in items:
                shop.levels[variant["inventory_item_id"]] -= quantity
            order_id = shop.next_id()
            stamp = _now()
            line_items = [
                {
                    "id": shop.next_id(),
                    "variant_id": variant["id"],
                    "product_id": variant["product_id"],
                    "sku": variant["sku"],
                    "title": variant["title"],
                    "quantity": quantity,
                    "price": variant["price"],
                    "fulfillable_quantity": quantity,
                    "fulfillment_status": None,
                    "discount_allocations": [],
                }
                for variant, quantity in items
            ]
            total = sum((Decimal(v["price"]) * q for v, q in items), Decimal(0))
            order = {
                "id": order_id,
                "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
                "name": f"#{order_id}",
                "created_at": stamp,
                "updated_at": stamp,
                "processed_at": stamp,
                "cancelled_at": None,
                "cancel_reason": None,
                "closed_at": None,
                "currency": body.get("currency", "VND"),
                "financial_status": body.get("financial_status", "paid"),
                "fulfillment_status": None,
                "note": body.get("note"),
                "total_price": str(total),
                "payment_gateway_names": [body.get("gateway", "shopify_payments")],
                "line_items": line_items,
                "shipping_address": body.get(
                    "shipping_address",
                    {
                        "name": "Buyer",
                        "address1": "1 Hang Bai",
                        "city": "Hoan Kiem",
                        "province": "Ha Noi",
                        "zip": "100000",
                        "country_code": "VN",
                        "phone": "0900000000",
                    },
                ),
                "fulfillments": [],
            }
            shop.orders[order_id] = order
            shop.fulfillment_orders[order_id] = [
                {
                    "id": f"gid://shopify/FulfillmentOrder/{shop.next_id()}",
                    "status": "OPEN",
                    "lineItems": [
                        {
                            "id": f"gid://shopify/FulfillmentOrderLineItem/{shop.next_id()}",
                            "remainingQuantity": item["quantity"],
                            "lineItem": {"id": f"gid://shopify/LineItem/{item['id']}"},
                        }
                        for item in line_items
                    ],
                }
            ]
        webhook("orders/create", order)
        return JSONResponse(order)

    @app.post("/_sim/orders/{order_id}/cancel")
    def cancel_as_merchant(order_id: int) -> Response:
        with shop.lock:
            order = shop.orders.get(order_id)
            if order is None:
                return JSONResponse({"errors": "Not Found"}, status_code=404)
            _mark_cancelled(shop, order, "customer")
        webhook("orders/cancelled", order)
        return JSONResponse(order)

    @app.get("/_sim/orders/{order_id}")
    def read_order(order_id: int) -> Response:
        with shop.lock:
            order = shop.orders.get(order_id)
            return JSONResponse(order) if order else JSONResponse({"errors": "Not Found"}, status_code=404)

    @app.get("/_sim/stock")
    def read_stock() -> dict[str, Any]:
        with shop.lock:
            return {
                variant["sku"]: shop.levels[variant["inventory_item_id"]]
                for product in shop.products.values()
                for variant in product["variants"]
            }

    @app.get("/_sim/stock-sets")
    def read_stock_sets() -> list[dict[str, Any]]:
        with shop.lock:
            return list(shop.stock_sets)

    return app


def _parse(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _numeric(gid: str) -> int:
    return int(str(gid).rsplit("/", 1)[-1])


def _set_quantities(shop: Shop, data: dict[str, Any]) -> dict[str, Any]:
    errors = []
    if data.get("name") not in ("available", "on_hand"):
        errors.append(
            {"code": "INVALID_NAME", "field": ["input", "name"], "message": "name must be available or on_hand"}
        )
    changes = []
    for index, entry in enumerate(data.get("quantities") or []):
        item, location = _numeric(entry["inventoryItemId"]), _numeric(entry["locationId"])
        field = ["input", "quantities", str(index)]
        if item not in shop.levels:
            errors.append(
                {"code": "INVALID_INVENTORY_ITEM", "field": field, "message": "The inventory item is invalid."}
            )
        elif location != shop.location_id:
            errors.append({"code": "INVALID_LOCATION", "field": field, "message": "The location is invalid."})
        elif entry["quantity"] < 0:
            errors.append({"code": "INVALID_QUANTITY_NEGATIVE", "field": field, "message": "negative"})
        elif entry["quantity"] > 1_000_000_000:
            errors.append({"code": "INVALID_QUANTITY_TOO_HIGH", "field": field, "message": "too high"})
        elif not data.get("ignoreCompareQuantity") and entry.get("compareQuantity") != shop.levels[item]:
            errors.append(
                {
                    "code": "COMPARE_QUANTITY_STALE",
                    "field": field,
                    "message": "The compareQuantity argument no longer matches the persisted quantity.",
                }
            )
        else:
            changes.append((item, int(entry["quantity"])))
    if errors:
        return {"inventorySetQuantities": {"inventoryAdjustmentGroup": None, "userErrors": errors}}
    skus = {v["inventory_item_id"]: v["sku"] for p in shop.products.values() for v in p["variants"]}
    for item, quantity in changes:
        shop.levels[item] = quantity
        shop.stock_sets.append(
            {"inventory_item_id": item, "sku": skus.get(item), "quantity": quantity, "at": time.time()}
        )
    group = {"id": f"gid://shopify/InventoryAdjustmentGroup/{shop.next_id()}"}
    return {"inventorySetQuantities": {"inventoryAdjustmentGroup": group, "userErrors": []}}


def _read_level(shop: Shop, variables: dict[str, Any]) -> dict[str, Any]:
    item = _numeric(variables["item"])
    if item not in shop.levels:
        return {"inventoryItem": None}
    level = {"quantities": [{"name": "available", "quantity": shop.levels[item]}]}
    return {"inventoryItem": {"inventoryLevel": level}}


def _fulfillment_orders(shop: Shop, order_gid: str) -> dict[str, Any]:
    order_id = _numeric(order_gid)
    if order_id not in shop.orders:
        return {"order": None}
    nodes = [{**fo, "lineItems": {"nodes": fo["lineItems"]}} for fo in shop.fulfillment_orders.get(order_id, [])]
    return {"order": {"fulfillmentOrders": {"nodes": nodes}}}


def _create_fulfillment(shop: Shop, fulfillment: dict[str, Any], webhook: Any) -> dict[str, Any]:
    groups = fulfillment.get("lineItemsByFulfillmentOrder") or []
    if not groups:
        return {
            "fulfillmentCreate": {
                "fulfillment": None,
                "userErrors": [{"field": ["fulfillment"], "message": "lineItemsByFulfillmentOrder is required"}],
            }
        }
    touched: dict[int, dict[str, Any]] = {}
    for group in groups:
        found = next(
            (
                (oid, fo)
                for oid, fos in shop.fulfillment_orders.items()
                for fo in fos
                if fo["id"] == group["fulfillmentOrderId"]
            ),
            None,
        )
        if found is None or found[1]["status"] == "CLOSED":
            return {
                "fulfillmentCreate": {
                    "fulfillment": None,
                    "userErrors": [{"field": ["fulfillment"], "message": "Fulfillment order is not open"}],
                }
            }
        order_id, fo = found
        wanted = {i["id"]: i["quantity"] for i in group.get("fulfillmentOrderLineItems") or []}
        for item in fo["lineItems"]:
            take = wanted.get(item["id"], item["remainingQuantity"]) if wanted else item["remainingQuantity"]
            if item["id"] in wanted or not wanted:
                item["remainingQuantity"] -= min(take, item["remainingQuantity"])
        if all(i["remainingQuantity"] == 0 for i in fo["lineItems"]):
            fo["status"] = "CLOSED"
        touched[order_id] = shop.orders[order_id]
    tracking = fulfillment.get("trackingInfo") or {}
    fulfillment_id = shop.next_id()
    for order_id, order in touched.items():
        open_left = any(i["remainingQuantity"] for fo in shop.fulfillment_orders[order_id] for i in fo["lineItems"])
        order["fulfillment_status"] = "partial" if open_left else "fulfilled"
        order["updated_at"] = _now()
        order["fulfillments"].append(
            {
                "id": fulfillment_id,
                "tracking_company": tracking.get("company"),
                "tracking_number": tracking.get("number"),
            }
        )
        webhook("orders/updated", order)
    return {
        "fulfillmentCreate": {
            "fulfillment": {"id": f"gid://shopify/Fulfillment/{fulfillment_id}", "status": "SUCCESS"},
            "userErrors": [],
        }
    }


def _mark_cancelled(shop: Shop, order: dict[str, Any], reason: str) -> None:
    order["cancelled_at"] = order["updated_at"] = _now()
    order["cancel_reason"] = reason
    order["financial_status"] = "voided" if order["financial_status"] != "paid" else "refunded"
    for fo in shop.fulfillment_orders.get(order["id"], []):
        fo["status"] = "CLOSED"


def _cancel(shop: Shop, variables: dict[str, Any], webhook: Any) -> dict[str, Any]:
    order = shop.orders.get(_numeric(variables["orderId"]))
    if order is None:
        return {
            "orderCancel": {
                "orderCancelUserErrors": [{"code": "NOT_FOUND", "field": ["orderId"], "message": "Order not found"}]
            }
        }
    if order["cancelled_at"]:
        return {
            "orderCancel": {
                "orderCancelUserErrors": [
                    {"code": "ORDER_ALREADY_CANCELLED", "field": ["orderId"], "message": "already cancelled"}
                ]
            }
        }
    _mark_cancelled(shop, order, str(variables.get("reason", "OTHER")).lower())
    webhook("orders/cancelled", order)
    return {"orderCancel": {"orderCancelUserErrors": []}}
