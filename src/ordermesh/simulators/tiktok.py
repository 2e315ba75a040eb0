"""A local TikTok Shop (Partner API 202309, CHANNELS.md §4) for tests, demos and benchmarks.

Serves the real 202309 paths with the ``{code: 0, message, request_id, data}`` envelope, checks ``app_key``,
``timestamp``, ``shop_cipher``, the ``x-tts-access-token`` header and ``sign`` with the same function the adapter
signs with (§4.1, vectors 2 and 4 of §10), keeps products (SKUs with per-warehouse inventory), orders (one line
item per unit, packages) and cancellations in memory, and sends signed webhooks (§4.4: type 1 order status,
type 11 cancellation status) to ``push_url``. Error codes and HTTP statuses of failures are [U]: errors answer
HTTP 200 with a non-zero ``code`` and ``data: {}``.

Control API (not TikTok's): ``POST /_sim/products``, ``GET /_sim/stock``, ``POST /_sim/orders``,
``POST /_sim/orders/{id}/status``, ``POST /_sim/orders/{id}/cancel_request``, ``GET /_sim/orders/{id}``,
``GET /_sim/calls``, plus the fault controls of ``simulators.common``.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ordermesh.adapters.channels.tiktok import VERSION, verify_request
from ordermesh.adapters.channels.units import push_signature
from ordermesh.simulators.common import Faults, PushSender, install_faults

MAX_TIMESTAMP_SKEW_S = 300  # [U] TikTok does not publish the allowed skew
WAREHOUSE_ID = "7068517275539719942"
DELIVERY_OPTION_ID = "7091146663229654785"
PROVIDERS = [
    {"id": "6617675021119438849", "name": "J&T Express"},
    {"id": "7129736293314594561", "name": "Giao Hang Nhanh"},
    {"id": "7129736293314594562", "name": "Giao Hang Tiet Kiem"},
]
OPEN_STATUSES = {"UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"}
UNSCOPED = ("/authorization/", "/seller/")


class TikTokError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class TikTokShop:
    def __init__(self, push: Callable[[int, dict[str, Any]], None]) -> None:
        self.lock = threading.RLock()
        self.push = push
        self.products: dict[str, dict[str, Any]] = {}
        self.skus: dict[str, dict[str, Any]] = {}  # by seller_sku
        self.orders: dict[str, dict[str, Any]] = {}
        self.cancellations: dict[str, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.ids = itertools.count(1)

    def next_id(self, base: int) -> str:
        return str(base + next(self.ids))

    def locked(self, seller_sku: str) -> int:
        return sum(
            1
            for order in self.orders.values()
            if order["status"] in OPEN_STATUSES
            for line in order["line_items"]
            if line["seller_sku"] == seller_sku and line["display_status"] != "CANCELLED"
        )

    def stock(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return {
                seller_sku: {"quantity": sku["quantity"], "locked": self.locked(seller_sku)}
                for seller_sku, sku in self.skus.items()
            }

    def add_product(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            product_id = str(spec.get("product_id") or self.next_id(1729592969712207000))
            skus = []
            for sku_spec in spec.get("skus") or []:
                sku: dict[str, Any] = {
                    "id": str(sku_spec.get("sku_id") or self.next_id(1729592969712208000)),
                    "seller_sku": str(sku_spec["seller_sku"]),
                    "quantity": int(sku_spec.get("quantity", 0)),
                    "price": str(sku_spec.get("price", "100000")),
                    "product_id": product_id,
                }
                self.skus[sku["seller_sku"]] = sku
                skus.append(sku)
            self.products[product_id] = {"id": product_id, "title": spec.get("name", ""), "skus": skus}
            return {
                "product_id": product_id,
                "skus": [{"seller_sku": s["seller_sku"], "sku_id": s["id"]} for s in skus],
            }

    def place_order(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            lines = spec.get("lines") or []
            if not lines:
                raise TikTokError(36009001, "an order needs lines")
            for line in lines:
                sku = self.skus.get(str(line.get("seller_sku")))
                if sku is None:
                    raise TikTokError(12052048, f"unknown seller sku {line.get('seller_sku')}")
                sellable = sku["quantity"] - self.locked(sku["seller_sku"])
                if sellable < int(line.get("quantity", 1)):
                    raise TikTokError(12052700, f"{sku['seller_sku']} has {sellable} in stock")
            now = int(spec.get("update_time") or time.time())
            order_id = self.next_id(576461413038785000)
            package_id = self.next_id(1152321127278713000)
            currency = spec.get("currency", "VND")
            items = []
            total = Decimal(0)
            for line in lines:
                sku = self.skus[str(line["seller_sku"])]
                product = self.products[sku["product_id"]]
                for _ in range(int(line.get("quantity", 1))):
                    price = Decimal(str(line.get("price", sku["price"])))
                    total += price
                    items.append(
                        {
                            "id": self.next_id(577086512123755000),
                            "sku_id": sku["id"],
                            "seller_sku": sku["seller_sku"],
                            "product_id": sku["product_id"],
                            "product_name": product["title"],
                            "sku_name": sku["seller_sku"],
                            "sale_price": str(price),
                            "original_price": str(price),
                            "currency": currency,
                            "display_status": "TO_SHIP",
                            "package_id": package_id,
                            "package_status": "TO_FULFILL",
                            "tracking_number": "",
                            "shipping_provider_name": "",
                            "is_gift": False,
                        }
                    )
            shipping_fee = Decimal(str(spec.get("shipping_fee", "0")))
            address = spec.get("address") or {}
            order = {
                "id": order_id,
                "status": str(spec.get("status", "AWAITING_SHIPMENT")),
                "create_time": now,
                "update_time": now,
                "paid_time": now,
                "rts_sla_time": now + 2 * 86400,
                "tts_sla_time": now + 3 * 86400,
                "shipping_due_time": now + 2 * 86400,
                "collection_due_time": now + 3 * 86400,
                "is_on_hold_order": False,
                "is_buyer_request_cancel": False,
                "is_cod": bool(spec.get("cod", False)),
                "payment_method_name": "COD" if spec.get("cod") else "CCDC",
                "buyer_message": spec.get("buyer_note", ""),
                "cancel_reason": "",
                "shipping_type": spec.get("shipping_type", "TIKTOK"),
                "delivery_option_id": DELIVERY_OPTION_ID,
                "fulfillment_type": "FULFILLMENT_BY_SELLER",
                "warehouse_id": WAREHOUSE_ID,
                "payment": {
                    "currency": currency,
                    "sub_total": str(total),
                    "shipping_fee": str(shipping_fee),
                    "total_amount": str(total + shipping_fee),
                },
                "recipient_address": {
                    "name": address.get("name", "Nguyen Van B"),
                    "phone_number": address.get("phone", "(+84)90***4567"),
                    "address_line1": address.get("line1", "1 Le Loi"),
                    "full_address": address.get("line1", "1 Le Loi"),
                    "postal_code": address.get("postal_code", ""),
                    "region_code": "VN",
                    "district_info": [
                        {"address_level_name": "Country", "address_name": "Viet Nam"},
                        {"address_level_name": "Province", "address_name": address.get("province", "Ha Noi")},
                        {"address_level_name": "District", "address_name": address.get("district", "Hoan Kiem")},
                        {"address_level_name": "Ward", "address_name": address.get("ward", "Hang Bac")},
                    ],
                },
                "packages": [{"id": package_id}],
                "line_items": items,
            }
            self.orders[order_id] = order
            self.push_status(order)
            return json.loads(json.dumps(order))

    def set_status(self, order: dict[str, Any], status: str, when: int | None = None) -> None:
        order["status"] = status
        order["update_time"] = when or max(int(time.time()), int(order["update_time"]))
        display = {
            "AWAITING_COLLECTION": "TO_SHIP",
            "IN_TRANSIT": "SHIPPED",
            "DELIVERED": "DELIVERED",
            "COMPLETED": "COMPLETED",
            "CANCELLED": "CANCELLED",
        }.get(status)
        for line in order["line_items"]:
            if display:
                line["display_status"] = display
            if status in {"AWAITING_COLLECTION", "IN_TRANSIT", "DELIVERED", "COMPLETED"}:
                line["package_status"] = "PROCESSING" if status == "AWAITING_COLLECTION" else "FULFILLING"
        self.push_status(order)

    def push_status(self, order: Mapping[str, Any]) -> None:
        self.push(
            1,
            {
                "order_id": order["id"],
                "order_status": order["status"],
                "is_on_hold_order": order["is_on_hold_order"],
                "update_time": order["update_time"],
            },
        )

    def push_cancellation(self, cancellation: Mapping[str, Any]) -> None:
        self.push(
            11,
            {
                "order_id": cancellation["order_id"],
                "cancellations_role": cancellation["role"],
                "cancel_status": cancellation["cancel_status"],
                "cancel_id": cancellation["cancel_id"],
                "update_time": cancellation["update_time"],
            },
        )

    def order(self, order_id: str) -> dict[str, Any]:
        if order_id not in self.orders:
            raise TikTokError(21011001, f"order {order_id} not found")
        return self.orders[order_id]


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
        cancellation["update_time"] = max(int(time.time()), int(order["update_time"]))
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


def create_app(
    *,
    app_key: str,
    app_secret: str,
    access_token: str | None = None,
    shop_cipher: str | None = None,
    push_url: str | None = None,
    shop_id: str = "7494726673780148744",
) -> FastAPI:
    """A TikTok Shop verifying ``app_key``/``app_secret`` (and the token and cipher when given)."""
    app = FastAPI(title="TikTok Shop Partner API simulator", docs_url=None, redoc_url=None)
    faults = Faults()
    sender = PushSender(faults) if push_url else None  # a sender owns a thread: only when pushes have a target

    def push(kind: int, data: dict[str, Any]) -> None:
        if sender is None or not push_url:
            return
        envelope = {
            "type": kind,
            "tts_notification_id": uuid.uuid4().hex[:19],
            "shop_id": shop_id,
            "timestamp": int(time.time()),
            "data": data,
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        headers = {"Authorization": push_signature(app_key, app_secret, body), "Content-Type": "application/json"}
        sender.send(push_url, body, headers)

    shop = TikTokShop(push)
    api = TikTokApi(shop)
    app.state.shop, app.state.faults, app.state.pushes = shop, faults, sender
    install_faults(app, faults)

    def answer(code: int, message: str, data: Any) -> JSONResponse:
        return JSONResponse({"code": code, "message": message, "request_id": uuid.uuid4().hex, "data": data})

    async def gateway(request: Request) -> JSONResponse:
        path = request.url.path
        query = dict(request.query_params)
        raw = await request.body()
        try:
            if query.get("app_key") != app_key:
                raise TikTokError(106001, "app_key is missing or invalid")
            try:
                skew = abs(time.time() - int(query.get("timestamp", "")))
            except ValueError:
                raise TikTokError(106002, "timestamp is missing or invalid") from None
            if skew > MAX_TIMESTAMP_SKEW_S:
                raise TikTokError(106002, "timestamp is expired")
            body_text = None if request.method == "GET" else raw.decode()
            if not verify_request(path, query, app_secret, body_text):
                raise TikTokError(106001, "Invalid signature")
            token = request.headers.get("x-tts-access-token")
            if not token or (access_token and token != access_token):
                raise TikTokError(105002, "Invalid access_token")
            if not path.startswith(UNSCOPED) and (
                not query.get("shop_cipher") or (shop_cipher and query["shop_cipher"] != shop_cipher)
            ):
                raise TikTokError(106011, "shop_cipher is missing or invalid")
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                raise TikTokError(36009001, "body is not valid JSON") from None
            data = api.dispatch(request.method, path, query, body if isinstance(body, dict) else {})
        except TikTokError as exc:
            return answer(exc.code, exc.message, {})
        except (ValueError, TypeError, KeyError) as exc:
            return answer(36009001, f"invalid request: {exc}", {})
        return answer(0, "Success", data)

    for area in ("order", "product", "logistics", "fulfillment", "return_refund"):
        app.add_api_route(f"/{area}/{{rest:path}}", gateway, methods=["GET", "POST"])

    @app.post("/_sim/products")
    async def add_product(request: Request) -> dict[str, Any]:
        return shop.add_product(await request.json())

    @app.get("/_sim/stock")
    def read_stock() -> dict[str, Any]:
        return shop.stock()

    @app.get("/_sim/calls")
    def read_calls() -> list[dict[str, Any]]:
        with shop.lock:
            return list(shop.calls)

    @app.post("/_sim/orders", response_model=None)
    async def place_order(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            return shop.place_order(await request.json())
        except TikTokError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=409)

    @app.get("/_sim/orders/{order_id}", response_model=None)
    def read_order(order_id: str) -> dict[str, Any] | JSONResponse:
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"message": "no such order"}, status_code=404)
            return json.loads(json.dumps(shop.orders[order_id]))

    @app.post("/_sim/orders/{order_id}/status", response_model=None)
    async def advance(order_id: str, request: Request) -> dict[str, Any] | JSONResponse:
        spec = await request.json()
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"message": "no such order"}, status_code=404)
            order = shop.orders[order_id]
            shop.set_status(order, str(spec["status"]), spec.get("update_time"))
            return {"id": order_id, "status": order["status"], "update_time": order["update_time"]}

    @app.post("/_sim/orders/{order_id}/cancel_request", response_model=None)
    async def buyer_cancel(order_id: str, request: Request) -> dict[str, Any] | JSONResponse:
        spec = await request.json() if await request.body() else {}
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"message": "no such order"}, status_code=404)
            order = shop.orders[order_id]
            cancel_id = shop.next_id(4035318504086000000)
            now = max(int(time.time()), int(order["update_time"]))
            cancellation = {
                "cancel_id": cancel_id,
                "order_id": order_id,
                "cancel_status": "CANCELLATION_REQUEST_PENDING",
                "cancel_reason": spec.get("reason", "Changed my mind"),
                "role": "BUYER",
                "create_time": now,
                "update_time": now,
            }
            shop.cancellations[cancel_id] = cancellation
            order["is_buyer_request_cancel"] = True
            order["update_time"] = now
            shop.push_cancellation(cancellation)
            return {"cancel_id": cancel_id}

    return app
