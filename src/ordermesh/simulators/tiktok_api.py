"""The simulated TikTok Shop 202309 API: routes by method and path, answering the envelope's ``data``."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

from ordermesh.adapters.channels.tiktok import VERSION
from ordermesh.simulators.tiktok_shop import (
    OPEN_STATUSES,
    PROVIDERS,
    WAREHOUSE_ID,
    TikTokError,
    TikTokShop,
)


def _page(items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str]:
    size = int(query.get("page_size", 0))
    if not 1 <= size <= 100:
        raise TikTokError(36009001, "page_size must be between 1 and 100")
    token = query.get("page_token") or ""
    try:
        start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
    except ValueError:
        raise TikTokError(36009001, "invalid page_token") from None
    page = items[start : start + size]
    more = start + size < len(items)
    return page, base64.urlsafe_b64encode(str(start + size).encode()).decode() if more else ""


class TikTokApi:
    def __init__(self, shop: TikTokShop) -> None:
        self.shop = shop

    def dispatch(self, method: str, path: str, query: Mapping[str, str], body: dict[str, Any]) -> dict[str, Any]:
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[1] != VERSION:
            raise TikTokError(36009002, f"path {path} not found")
        area, rest = parts[0], parts[2:]
        route = (method, area, *["{}" if part.isdigit() else part for part in rest])
        ids = [part for part in rest if part.isdigit()]
        handlers: dict[tuple[str, ...], Callable[[], dict[str, Any]]] = {
            ("GET", "order", "orders"): lambda: self.order_detail(query),
            ("POST", "order", "orders", "search"): lambda: self.order_search(query, body),
            ("POST", "product", "products", "search"): lambda: self.product_search(query),
            ("POST", "product", "products", "{}", "inventory", "update"): lambda: self.inventory(ids[0], body),
            ("GET", "logistics", "warehouses"): lambda: {
                "warehouses": [{"id": WAREHOUSE_ID, "is_default": True, "type": "SALES_WAREHOUSE", "name": "Main"}]
            },
            ("GET", "logistics", "delivery_options", "{}", "shipping_providers"): lambda: {
                "shipping_providers": PROVIDERS
            },
            ("POST", "fulfillment", "packages", "{}", "ship"): lambda: self.ship_package(ids[0], body),
            ("POST", "fulfillment", "orders", "{}", "packages"): lambda: self.seller_ship(ids[0], body),
            ("POST", "return_refund", "cancellations"): lambda: self.seller_cancel(body),
            ("POST", "return_refund", "cancellations", "search"): lambda: self.cancel_search(body),
            ("POST", "return_refund", "cancellations", "{}", "approve"): lambda: self.decide(ids[0], True),
            ("POST", "return_refund", "cancellations", "{}", "reject"): lambda: self.decide(ids[0], False),
        }
        handler = handlers.get(route)
        if handler is None:
            raise TikTokError(36009002, f"path {path} not found")
        with self.shop.lock:
            return handler()

    def order_detail(self, query: Mapping[str, str]) -> dict[str, Any]:
        ids = [i for i in (query.get("ids") or "").split(",") if i]
        if not 1 <= len(ids) <= 50:
            raise TikTokError(36009001, "ids must list 1 to 50 orders")
        return {"orders": [json.loads(json.dumps(self.shop.orders[i])) for i in ids if i in self.shop.orders]}

    def order_search(self, query: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, Any]:
        def keep(order: Mapping[str, Any]) -> bool:
            checks = [
                ("update_time_ge", lambda v: order["update_time"] >= v),
                ("update_time_lt", lambda v: order["update_time"] < v),
                ("create_time_ge", lambda v: order["create_time"] >= v),
                ("create_time_lt", lambda v: order["create_time"] < v),
                ("order_status", lambda v: order["status"] == v),
            ]
            return all(test(body[name]) for name, test in checks if body.get(name) is not None)

        field = query.get("sort_field", "create_time")
        chosen = sorted(
            (o for o in self.shop.orders.values() if keep(o)),
            key=lambda o: (o[field], o["id"]),
            reverse=query.get("sort_order", "DESC") == "DESC",
        )
        page, token = _page(chosen, query)
        return {"orders": json.loads(json.dumps(page)), "next_page_token": token, "total_count": len(chosen)}

    def product_search(self, query: Mapping[str, str]) -> dict[str, Any]:
        products = list(self.shop.products.values())
        page, token = _page(products, query)
        answer = [
            {
                "id": product["id"],
                "title": product["title"],
                "status": "ACTIVATE",
                "skus": [
                    {
                        "id": sku["id"],
                        "seller_sku": sku["seller_sku"],
                        "inventory": [{"warehouse_id": WAREHOUSE_ID, "quantity": sku["quantity"]}],
                    }
                    for sku in product["skus"]
                ],
            }
            for product in page
        ]
        return {"products": answer, "next_page_token": token, "total_count": len(products)}

    def inventory(self, product_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        product = self.shop.products.get(product_id)
        if product is None:
            raise TikTokError(12019001, f"product {product_id} not found")
        skus = body.get("skus") or []
        if not skus:
            raise TikTokError(36009001, "skus is required")
        by_id = {sku["id"]: sku for sku in product["skus"]}
        updates = []
        for entry in skus:
            sku = by_id.get(str(entry.get("id")))
            if sku is None:
                raise TikTokError(12019002, f"sku {entry.get('id')} is not part of product {product_id}")
            inventory = entry.get("inventory") or []
            if len(inventory) != 1 or inventory[0].get("warehouse_id") != WAREHOUSE_ID:
                raise TikTokError(12019003, "inventory must name the shop's warehouse")
            quantity = inventory[0].get("quantity")
            if not isinstance(quantity, int) or quantity < 0:
                raise TikTokError(36009001, "quantity must be a non-negative integer")
            updates.append((sku, quantity))
        for sku, quantity in updates:
            # TikTok's figure is what may be sold; open orders already hold their units, as in ordermesh.
            sku["quantity"] = quantity + self.shop.locked(sku["seller_sku"])
        self.shop.calls.append(
            {"path": f"/product/{VERSION}/products/{product_id}/inventory/update", "skus": len(updates)}
        )
        return {}

    def ship_package(self, package_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("handover_method") not in {"PICKUP", "DROP_OFF"}:
            raise TikTokError(36009001, "handover_method must be PICKUP or DROP_OFF")
        order = next((o for o in self.shop.orders.values() if any(p["id"] == package_id for p in o["packages"])), None)
        if order is None:
            raise TikTokError(21011002, f"package {package_id} not found")
        if order["status"] != "AWAITING_SHIPMENT":
            raise TikTokError(21011003, f"order status {order['status']} cannot ship")
        for line in order["line_items"]:
            line["tracking_number"] = f"TTVN{package_id[-8:]}"
            line["shipping_provider_name"] = "J&T Express"
        self.shop.set_status(order, "AWAITING_COLLECTION")
        self.shop.calls.append({"path": f"/fulfillment/{VERSION}/packages/{package_id}/ship", "skus": 0})
        return {}

    def seller_ship(self, order_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        order = self.shop.order(order_id)
        if order["status"] not in {"AWAITING_SHIPMENT", "PARTIALLY_SHIPPING"}:
            raise TikTokError(21011003, f"order status {order['status']} cannot ship")
        if not body.get("tracking_number") or body.get("shipping_provider_id") not in {p["id"] for p in PROVIDERS}:
            raise TikTokError(36009001, "tracking_number and a known shipping_provider_id are required")
        wanted = set(body.get("order_line_item_ids") or [])
        for line in order["line_items"]:
            if not wanted or line["id"] in wanted:
                line["tracking_number"] = body["tracking_number"]
                line["package_status"] = "PROCESSING"
        shipped_all = all(line["package_status"] != "TO_FULFILL" for line in order["line_items"])
        self.shop.set_status(order, "IN_TRANSIT" if shipped_all else "PARTIALLY_SHIPPING")
        return {"package_id": order["packages"][0]["id"]}

    def seller_cancel(self, body: Mapping[str, Any]) -> dict[str, Any]:
        order = self.shop.order(str(body.get("order_id")))
        if not body.get("cancel_reason"):
            raise TikTokError(36009001, "cancel_reason is required")
        if order["status"] not in OPEN_STATUSES:
            raise TikTokError(21011004, f"order status {order['status']} cannot be cancelled by the seller")
        cancel_id = self.shop.next_id(4035318504086000000)
        order["cancel_reason"] = str(body["cancel_reason"])
        order["cancellation_initiator"] = "SELLER"
        self.shop.set_status(order, "CANCELLED")
        return {"cancel_id": cancel_id, "cancel_status": "CANCELLATION_REQUEST_COMPLETE"}

    def cancel_search(self, body: Mapping[str, Any]) -> dict[str, Any]:
        wanted = {str(i) for i in body.get("order_ids") or []}
        found = [
            {k: v for k, v in c.items() if k != "role"}
            for c in self.shop.cancellations.values()
            if not wanted or c["order_id"] in wanted
        ]
        return {"cancellations": found, "total_count": len(found)}

    def decide(self, cancel_id: str, approve: bool) -> dict[str, Any]:
        cancellation = self.shop.cancellations.get(cancel_id)
        if cancellation is None or cancellation["cancel_status"] != "CANCELLATION_REQUEST_PENDING":
            raise TikTokError(25001001, f"cancellation {cancel_id} is not pending")
        order = self.shop.order(cancellation["order_id"])
        cancellation["update_time"] = max(self.shop.tick(), int(order["update_time"]) + 1)
        order["is_buyer_request_cancel"] = False
        if approve:
            cancellation["cancel_status"] = "CANCELLATION_REQUEST_COMPLETE"
            order["cancel_reason"] = cancellation.get("cancel_reason", "Buyer requested")
            order["cancellation_initiator"] = "BUYER"
            self.shop.set_status(order, "CANCELLED")
        else:
            cancellation["cancel_status"] = "CANCELLATION_REQUEST_CANCEL"
            self.shop.set_status(order, order["status"])
        self.shop.push_cancellation(cancellation)
        return {}
