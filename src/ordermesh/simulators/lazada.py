"""A local Lazada Open Platform seller account (CHANNELS.md §3) for tests, demos and benchmarks.

Serves the real API under ``/rest`` with Lazada's envelopes (``{code: "0", data, request_id}``; errors
``{code, type, message, request_id}`` with HTTP 200, as the gateway answers), checks every request's signature with
the same function the adapter signs with (§3.1, vector 1 of §10), keeps products, stock, orders (one item row per
unit) and packages in memory, and sends signed pushes (§3.6) for new orders and status changes to ``push_url``.

Stock follows Lazada's model: ``quantity`` is the total, units in open orders are locked, and sellable =
quantity - locked. ``/product/price_quantity/update`` sets the total; ``/product/stock/sellable/update`` sets the
sellable figure. Both accept at most 50 SKUs a call, and the inventory APIs allow 50 calls a second per seller.

Control API (not Lazada's): ``POST /_sim/products``, ``GET /_sim/stock``, ``POST /_sim/orders`` (a buyer places an
order), ``POST /_sim/orders/{id}/status``, ``POST /_sim/orders/{id}/cancel_request`` (buyer asks to cancel),
``GET /_sim/orders/{id}``, ``GET /_sim/calls`` (write calls received), plus the fault controls of
``simulators.common``. Error code names other than ``IncompleteSignature`` are [U].
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ordermesh.adapters.channels.lazada import signing_path, verify_request
from ordermesh.adapters.channels.units import platform_time, push_signature
from ordermesh.simulators.common import Faults, PushSender, install_faults

SELLER_ZONE = timezone(timedelta(hours=7))  # lazada_vn
MAX_TIMESTAMP_SKEW_S = 7200
OPEN_STATUSES = {"unpaid", "pending", "repacked", "packed", "ready_to_ship_pending", "ready_to_ship", "topack"}
STOCK_PATHS = {"/product/price_quantity/update", "/product/stock/sellable/update"}


class LazadaError(Exception):
    def __init__(self, code: str, message: str, error_type: str = "ISV") -> None:
        super().__init__(message)
        self.code, self.message, self.error_type = code, message, error_type


def _iso(moment: datetime) -> str:
    return moment.astimezone(SELLER_ZONE).isoformat(timespec="seconds")


def _item_time(moment: datetime) -> str:
    return moment.astimezone(SELLER_ZONE).strftime("%Y-%m-%d %H:%M:%S %z")


class LazadaShop:
    """The seller account's state; every method runs under one lock."""

    def __init__(self, *, app_key: str, app_secret: str, push: Callable[[dict[str, Any]], None]) -> None:
        self.app_key, self.app_secret = app_key, app_secret
        self.lock = threading.RLock()
        self.push = push
        self.products: dict[int, dict[str, Any]] = {}
        self.skus: dict[str, dict[str, Any]] = {}  # by SellerSku
        self.orders: dict[int, dict[str, Any]] = {}
        self.calls: list[dict[str, Any]] = []
        self.stock_call_times: deque[float] = deque()
        self.ids = itertools.count(1)
        self.order_ids = itertools.count(260422900198363)
        self.item_ids = itertools.count(260422900298363)

    # -- state helpers ------------------------------------------------------------------------------------------

    def locked(self, seller_sku: str) -> int:
        return sum(
            1
            for order in self.orders.values()
            for item in order["items"]
            if item["sku"] == seller_sku and item["status"] in OPEN_STATUSES
        )

    def stock(self) -> dict[str, dict[str, int]]:
        with self.lock:
            result = {}
            for seller_sku, sku in self.skus.items():
                locked = self.locked(seller_sku)
                result[seller_sku] = {
                    "quantity": sku["quantity"],
                    "locked": locked,
                    "sellable": max(sku["quantity"] - locked, 0),
                }
            return result

    def add_product(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            item_id = int(spec.get("item_id") or 3000000 + next(self.ids))
            skus = []
            for sku_spec in spec.get("skus") or []:
                seller_sku = str(sku_spec["seller_sku"])
                sku = {
                    "SkuId": int(sku_spec.get("sku_id") or 5000000 + next(self.ids)),
                    "SellerSku": seller_sku,
                    "quantity": int(sku_spec.get("quantity", 0)),
                    "price": str(sku_spec.get("price", "100000.00")),
                    "item_id": item_id,
                }
                self.skus[seller_sku] = sku
                skus.append(sku)
            self.products[item_id] = {"item_id": item_id, "attributes": {"name": spec.get("name", "")}, "skus": skus}
            return {"item_id": item_id, "skus": [{"seller_sku": s["SellerSku"], "sku_id": s["SkuId"]} for s in skus]}

    def place_order(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            lines = spec.get("lines") or []
            if not lines:
                raise LazadaError("InvalidParameter", "an order needs lines")
            for line in lines:
                seller_sku = str(line.get("seller_sku"))
                if seller_sku not in self.skus:
                    raise LazadaError("SkuNotFound", f"unknown seller sku {seller_sku}")
                sellable = self.skus[seller_sku]["quantity"] - self.locked(seller_sku)
                if sellable < int(line.get("quantity", 1)):
                    raise LazadaError("OutOfStock", f"{seller_sku} has {sellable} sellable")
            now = platform_time(spec.get("updated_at")) or datetime.now(UTC)
            order_id = next(self.order_ids)
            status = str(spec.get("status", "pending"))
            items = []
            total = Decimal(0)
            for line in lines:
                sku = self.skus[str(line["seller_sku"])]
                for _ in range(int(line.get("quantity", 1))):
                    price = Decimal(str(line.get("price", sku["price"])))
                    total += price
                    items.append(
                        {
                            "order_item_id": next(self.item_ids),
                            "order_id": order_id,
                            "sku": sku["SellerSku"],
                            "shop_sku": f"{sku['item_id']}_{sku['SkuId']}",
                            "sku_id": str(sku["SkuId"]),
                            "product_id": str(sku["item_id"]),
                            "name": self.products[sku["item_id"]]["attributes"]["name"],
                            "variation": "",
                            "item_price": f"{price:.2f}",
                            "paid_price": f"{price:.2f}",
                            "currency": spec.get("currency", "VND"),
                            "status": status,
                            "tracking_code": "",
                            "shipment_provider": "",
                            "package_id": "",
                            "shipping_type": "Dropshipping",
                            "promised_shipping_time": _item_time(now + timedelta(days=2)),
                            "reason": "",
                            "reverse_order_id": "",
                            "is_cancel_pending": "false",
                            "created_at": _item_time(now),
                            "updated_at": _item_time(now),
                        }
                    )
            address = spec.get("address") or {}
            order = {
                "order_id": order_id,
                "order_number": str(order_id),
                "created_at": _iso(now),
                "updated_at": _iso(now),
                "price": f"{total:.2f}",
                "shipping_fee": str(spec.get("shipping_fee", "0.00")),
                "payment_method": spec.get("payment_method", "COD"),
                "buyer_note": spec.get("buyer_note", ""),
                "remarks": "",
                "items_count": len(items),
                "need_cancel_confirm": "false",
                "is_cancel_pending": "false",
                "warehouse_code": "dropshipping",
                "address_shipping": {
                    "first_name": address.get("name", "Nguyen Van A"),
                    "last_name": "",
                    "phone": address.get("phone", "0901234567"),
                    "address1": address.get("line1", "12 Nguyen Hue"),
                    "address2": "",
                    "address3": address.get("province", "Ho Chi Minh"),
                    "address4": address.get("district", "Quan 1"),
                    "address5": address.get("ward", "Phuong Ben Nghe"),
                    "city": address.get("province", "Ho Chi Minh"),
                    "post_code": address.get("postal_code", ""),
                    "country": "Vietnam",
                },
                "items": items,
            }
            self.orders[order_id] = order
            self._push_order(order, items[0], now)
            return self.public_order(order)

    def public_order(self, order: Mapping[str, Any]) -> dict[str, Any]:
        public = {key: value for key, value in order.items() if key != "items"}
        public["statuses"] = sorted({item["status"] for item in order["items"]})
        return public

    def touch(
        self, order: dict[str, Any], items: list[dict[str, Any]], status: str, when: datetime | None = None
    ) -> None:
        now = when or datetime.now(UTC)
        for item in items:
            item["status"] = status
            item["updated_at"] = _item_time(now)
        order["updated_at"] = _iso(now)
        if items:
            self._push_order(order, items[0], now)

    def _push_order(self, order: Mapping[str, Any], item: Mapping[str, Any], now: datetime) -> None:
        self.push(
            {
                "message_type": 0,
                "data": {
                    "order_status": item["status"],
                    "trade_order_id": str(order["order_id"]),
                    "trade_order_line_id": str(item["order_item_id"]),
                    "status_update_time": int(now.timestamp()),
                },
            }
        )

    def push_reverse(self, order: Mapping[str, Any], item: Mapping[str, Any], reverse_status: str) -> None:
        self.push(
            {
                "message_type": 10,
                "data": {
                    "trade_order_id": str(order["order_id"]),
                    "trade_order_line_id": str(item["order_item_id"]),
                    "reverse_order_id": str(item["reverse_order_id"]),
                    "reverse_order_line_id": str(item["order_item_id"]),
                    "reverse_status": reverse_status,
                    "status_update_time": int(time.time()),
                },
            }
        )

    def order(self, order_id: Any) -> dict[str, Any]:
        try:
            return self.orders[int(order_id)]
        except (KeyError, ValueError, TypeError):
            raise LazadaError("16", f"E016: Invalid Order ID {order_id}") from None


def _json_param(params: Mapping[str, str], name: str) -> Any:
    try:
        return json.loads(params[name])
    except KeyError:
        raise LazadaError("MissingParameter", f"{name} is required") from None
    except ValueError:
        raise LazadaError("InvalidParameter", f"{name} is not valid JSON") from None


def _payload_skus(payload: str) -> list[dict[str, str]]:
    """UpdatePriceQuantity-style payloads, JSON (since 2022) or the original XML."""
    text = payload.strip()
    if text.startswith("<"):
        try:
            root = ElementTree.fromstring(text)
        except ElementTree.ParseError:
            raise LazadaError("InvalidParameter", "payload is not valid XML") from None
        return [{child.tag: (child.text or "") for child in sku} for sku in root.iter("Sku")]
    try:
        skus = json.loads(text)["Request"]["Product"]["Skus"]["Sku"]
    except (ValueError, KeyError, TypeError):
        raise LazadaError("InvalidParameter", "payload must be Request.Product.Skus.Sku") from None
    return [skus] if isinstance(skus, dict) else list(skus)


class LazadaApi:
    """The ``/rest`` handlers: (shop, business params) → the ``data``/``result`` part of the answer."""

    def __init__(self, shop: LazadaShop, *, max_offset: int) -> None:
        self.shop = shop
        self.max_offset = max_offset
        self.routes: dict[str, Callable[[dict[str, str]], dict[str, Any]]] = {
            "/orders/get": self.get_orders,
            "/order/get": self.get_order,
            "/order/items/get": self.get_order_items,
            "/orders/items/get": self.get_multiple_order_items,
            "/products/get": self.get_products,
            "/product/price_quantity/update": self.update_price_quantity,
            "/product/stock/sellable/update": self.update_sellable,
            "/order/shipment/providers/get": self.shipment_providers,
            "/order/fulfill/pack": self.pack,
            "/order/package/rts": self.ready_to_ship,
            "/order/reverse/cancel/validate": self.cancel_validate,
            "/order/reverse/cancel/create": self.cancel_create,
            "/order/reverse/cancel/seller/decide": self.seller_decide,
        }

    def get_orders(self, params: dict[str, str]) -> dict[str, Any]:
        limit, offset = int(params.get("limit", 100)), int(params.get("offset", 0))
        if not 1 <= limit <= 100:
            raise LazadaError("InvalidParameter", "limit must be between 1 and 100")
        if offset > self.max_offset:
            raise LazadaError("InvalidParameter", f"offset must not exceed {self.max_offset}")
        after = platform_time(params.get("update_after"))
        created_after = platform_time(params.get("created_after"))
        if after is None and created_after is None:
            raise LazadaError("MissingParameter", "created_after or update_after is required")
        before = platform_time(params.get("update_before"))
        field = "updated_at" if params.get("sort_by", "updated_at") == "updated_at" else "created_at"
        with self.shop.lock:
            chosen = []
            for order in self.shop.orders.values():
                updated = platform_time(order["updated_at"])
                created = platform_time(order["created_at"])
                if updated is None or created is None:
                    continue
                if after is not None and updated < after:
                    continue
                if before is not None and updated >= before:
                    continue
                if created_after is not None and created < created_after:
                    continue
                if params.get("status") and params["status"] not in {i["status"] for i in order["items"]}:
                    continue
                chosen.append(order)
            chosen.sort(
                key=lambda o: (platform_time(o[field]), o["order_id"]), reverse=params.get("sort_direction") == "DESC"
            )
            page = chosen[offset : offset + limit]
            return {
                "data": {
                    "countTotal": len(chosen),
                    "count": len(page),
                    "orders": [self.shop.public_order(o) for o in page],
                }
            }

    def get_order(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            return {"data": self.shop.public_order(self.shop.order(params.get("order_id")))}

    def get_order_items(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            return {"data": [dict(item) for item in self.shop.order(params.get("order_id"))["items"]]}

    def get_multiple_order_items(self, params: dict[str, str]) -> dict[str, Any]:
        ids = _json_param(params, "order_ids")
        if not isinstance(ids, list) or not 1 <= len(ids) <= 50:
            raise LazadaError("InvalidParameter", "order_ids must list 1 to 50 orders")
        with self.shop.lock:
            data = []
            for order_id in ids:
                order = self.shop.order(order_id)
                data.append(
                    {
                        "order_id": order["order_id"],
                        "order_number": order["order_number"],
                        "order_items": [dict(i) for i in order["items"]],
                    }
                )
            return {"data": data}

    def get_products(self, params: dict[str, str]) -> dict[str, Any]:
        limit, offset = int(params.get("limit", 10)), int(params.get("offset", 0))
        if not 1 <= limit <= 50:
            raise LazadaError("InvalidParameter", "limit must be between 1 and 50")
        with self.shop.lock:
            products = list(self.shop.products.values())[offset : offset + limit]
            stock = self.shop.stock()
            answer = []
            for product in products:
                skus = [
                    {
                        "SkuId": sku["SkuId"],
                        "SellerSku": sku["SellerSku"],
                        "quantity": sku["quantity"],
                        "sellableStock": stock[sku["SellerSku"]]["sellable"],
                        "price": sku["price"],
                    }
                    for sku in product["skus"]
                ]
                answer.append({"item_id": product["item_id"], "attributes": product["attributes"], "skus": skus})
            return {"data": {"total_products": len(self.shop.products), "products": answer}}

    def _stock_skus(self, params: dict[str, str], path: str, field: str) -> list[tuple[dict[str, Any], int]]:
        skus = _payload_skus(params.get("payload") or "")
        if not skus:
            raise LazadaError("InvalidParameter", "payload lists no SKU")
        if len(skus) > 50:
            raise LazadaError("InvalidParameter", "at most 50 SKUs per request")
        by_id = {str(s["SkuId"]): s for s in self.shop.skus.values()}
        resolved = []
        for entry in skus:
            sku = self.shop.skus.get(str(entry.get("SellerSku"))) or by_id.get(str(entry.get("SkuId")))
            if sku is None:
                raise LazadaError("SkuNotFound", f"no SKU {entry.get('SellerSku') or entry.get('SkuId')}")
            try:
                quantity = int(entry[field])
            except (KeyError, ValueError, TypeError):
                raise LazadaError("InvalidParameter", f"{field} is required and must be an integer") from None
            if quantity < 0:
                raise LazadaError("InvalidParameter", f"{field} cannot be negative")
            resolved.append((sku, quantity))
        self.shop.calls.append({"path": path, "skus": len(resolved)})
        return resolved

    def update_price_quantity(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            resolved = self._stock_skus(params, "/product/price_quantity/update", "Quantity")
            for sku, quantity in resolved:
                if quantity < self.shop.locked(sku["SellerSku"]):
                    raise LazadaError("InvalidParameter", f"{sku['SellerSku']}: quantity below the locked amount")
            for sku, quantity in resolved:
                sku["quantity"] = quantity
            return {}

    def update_sellable(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            for sku, sellable in self._stock_skus(params, "/product/stock/sellable/update", "SellableQuantity"):
                sku["quantity"] = sellable + self.shop.locked(sku["SellerSku"])
            return {}

    def shipment_providers(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            self.shop.order(params.get("order_id"))
        return {
            "result": {
                "success": True,
                "data": {"shipping_allocate_type": "TFS", "shipment_providers": [{"name": "LEX VN", "cod": True}]},
            }
        }

    def pack(self, params: dict[str, str]) -> dict[str, Any]:
        request = _json_param(params, "packReq")
        if request.get("delivery_type") != "dropship":
            raise LazadaError("InvalidParameter", "delivery_type must be dropship")
        orders = request.get("pack_order_list") or []
        if not 1 <= len(orders) <= 20:
            raise LazadaError("InvalidParameter", "pack_order_list must hold 1 to 20 orders")
        answer: list[dict[str, Any]] = []
        with self.shop.lock:
            for entry in orders:
                order = self.shop.order(entry.get("order_id"))
                wanted = {int(i) for i in entry.get("order_item_list") or []}
                items = [item for item in order["items"] if item["order_item_id"] in wanted]
                package = f"FP{next(self.shop.ids):010d}"
                tracking = f"LEXVN{order['order_id']}{len(answer)}"
                results = []
                packed = []
                for item in items:
                    if item["status"] not in {"pending", "repacked"}:
                        results.append(
                            {
                                "order_item_id": item["order_item_id"],
                                "msg": f"item status {item['status']} cannot be packed",
                                "item_err_code": "82",
                                "retry": False,
                            }
                        )
                        continue
                    item.update(package_id=package, tracking_code=tracking, shipment_provider="LEX VN")
                    packed.append(item)
                    results.append(
                        {
                            "order_item_id": item["order_item_id"],
                            "msg": "success",
                            "item_err_code": "0",
                            "tracking_number": tracking,
                            "shipment_provider": "LEX VN",
                            "package_id": package,
                            "retry": False,
                        }
                    )
                self.shop.touch(order, packed, "packed")
                answer.append({"order_id": order["order_id"], "order_item_list": results})
        return {"result": {"success": True, "data": {"pack_order_list": answer}}}

    def ready_to_ship(self, params: dict[str, str]) -> dict[str, Any]:
        request = _json_param(params, "readyToShipReq")
        packages = [str(p.get("package_id")) for p in request.get("packages") or []]
        if not packages:
            raise LazadaError("InvalidParameter", "packages is required")
        answer: list[dict[str, Any]] = []
        with self.shop.lock:
            for package in packages:
                found = [
                    (order, item)
                    for order in self.shop.orders.values()
                    for item in order["items"]
                    if item["package_id"] == package
                ]
                if not found:
                    answer.append(
                        {"package_id": package, "item_err_code": "84", "msg": "package not found", "retry": False}
                    )
                    continue
                order = found[0][0]
                ready = [item for _, item in found if item["status"] == "packed"]
                self.shop.touch(order, ready, "ready_to_ship")
                answer.append({"package_id": package, "item_err_code": "0", "msg": "success", "retry": False})
        return {"result": {"success": True, "data": {"packages": answer}}}

    def _items(self, params: dict[str, str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        order = self.shop.order(params.get("order_id"))
        wanted = {int(i) for i in _json_param(params, "order_item_id_list")}
        items = [item for item in order["items"] if item["order_item_id"] in wanted]
        if len(items) != len(wanted):
            raise LazadaError("InvalidParameter", "order_item_id_list names items outside the order")
        return order, items

    def cancel_validate(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            _, items = self._items(params)
            if any(item["status"] not in {"unpaid", "pending", "repacked", "packed"} for item in items):
                raise LazadaError("CancelNotAllowed", "items past packing cannot be cancelled by the seller")
        return {
            "data": {
                "reason_options": [
                    {"reason_id": 1, "reason_name": "Out of stock"},
                    {"reason_id": 2, "reason_name": "Pricing error"},
                    {"reason_id": 3, "reason_name": "Unable to ship"},
                ]
            }
        }

    def cancel_create(self, params: dict[str, str]) -> dict[str, Any]:
        with self.shop.lock:
            order, items = self._items(params)
            if any(item["status"] not in {"unpaid", "pending", "repacked", "packed"} for item in items):
                raise LazadaError("CancelNotAllowed", "items past packing cannot be cancelled by the seller")
            if "reason_id" not in params:
                raise LazadaError("MissingParameter", "reason_id is required")
            for item in items:
                item.update(reason="seller cancelled", cancel_return_initiator="cancellation-seller")
            self.shop.touch(order, items, "canceled")
        return {"data": {}}

    def seller_decide(self, params: dict[str, str]) -> dict[str, Any]:
        reverse_id = params.get("reverse_order_id")
        action = params.get("action")
        if action not in {"agree", "refuse"}:
            raise LazadaError("InvalidParameter", "action must be agree or refuse")
        with self.shop.lock:
            found = [
                (order, item)
                for order in self.shop.orders.values()
                for item in order["items"]
                if reverse_id and item["reverse_order_id"] == reverse_id and item["is_cancel_pending"] == "true"
            ]
            if not found:
                raise LazadaError("ReverseOrderNotFound", f"no pending cancellation {reverse_id}")
            order = found[0][0]
            items = [item for _, item in found]
            for item in items:
                item["is_cancel_pending"] = "false"
            order["need_cancel_confirm"] = order["is_cancel_pending"] = "false"
            if action == "agree":
                for item in items:
                    item.update(reason="buyer cancelled", cancel_return_initiator="cancellation-customer")
                self.shop.touch(order, items, "canceled")
                self.shop.push_reverse(order, items[0], "CANCEL_SUCCESS")
            else:
                order["updated_at"] = _iso(datetime.now(UTC))
                self.shop.push_reverse(order, items[0], "REJECT_CANCEL_ORDER")
        return {"data": {}}


def create_app(
    *,
    app_key: str,
    app_secret: str,
    access_token: str | None = None,
    push_url: str | None = None,
    seller_id: str = "1000001",
    site: str = "lazada_vn",
    max_offset: int = 5000,
) -> FastAPI:
    """A Lazada seller account verifying ``app_key``/``app_secret`` (and ``access_token`` when given)."""
    app = FastAPI(title="Lazada Open Platform simulator", docs_url=None, redoc_url=None)
    faults = Faults()
    sender = PushSender(faults) if push_url else None  # a sender owns a thread: only when pushes have a target

    def push(message: dict[str, Any]) -> None:
        if sender is None or not push_url:
            return
        envelope = {"seller_id": seller_id, **message, "timestamp": int(time.time() * 1000), "site": site}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        signature = push_signature(app_key, app_secret, body)
        sender.send(push_url, body, {"Authorization": signature, "Content-Type": "application/json"})

    shop = LazadaShop(app_key=app_key, app_secret=app_secret, push=push)
    api = LazadaApi(shop, max_offset=max_offset)
    app.state.shop, app.state.faults, app.state.pushes = shop, faults, sender
    install_faults(app, faults)

    def error(exc: LazadaError) -> JSONResponse:
        return JSONResponse(
            {"code": exc.code, "type": exc.error_type, "message": exc.message, "request_id": uuid.uuid4().hex}
        )

    @app.api_route("/rest/{api_path:path}", methods=["GET", "POST"])
    async def gateway(api_path: str, request: Request) -> JSONResponse:
        params = dict(request.query_params)
        if request.method == "POST":
            # Form fields (application/x-www-form-urlencoded) are request parameters and are signed as such.
            params.update(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        path = signing_path("/" + api_path)
        try:
            if params.get("app_key") != app_key:
                raise LazadaError("InvalidAppKey", "app_key is missing or unknown")
            if params.get("sign_method", "sha256") != "sha256":
                raise LazadaError("InvalidSignMethod", "sign_method must be sha256")
            stamp = platform_time(params.get("timestamp"))
            if stamp is None or abs((datetime.now(UTC) - stamp).total_seconds()) > MAX_TIMESTAMP_SKEW_S:
                raise LazadaError("InvalidTimestamp", "timestamp must be within 7200 s of now")
            if not verify_request(path, params, app_secret):
                raise LazadaError("IncompleteSignature", "The request signature does not conform to platform standards")
            if not params.get("access_token") or (access_token and params["access_token"] != access_token):
                raise LazadaError("IllegalAccessToken", "The specified access token is invalid or expired")
            handler = api.routes.get(path)
            if handler is None:
                raise LazadaError("InvalidApiPath", f"The specified API path {path} is invalid")
            if path in STOCK_PATHS:
                with shop.lock:
                    now = time.monotonic()
                    while shop.stock_call_times and now - shop.stock_call_times[0] > 1.0:
                        shop.stock_call_times.popleft()
                    if len(shop.stock_call_times) >= 50:
                        raise LazadaError("ApiCallLimit", "inventory APIs allow 50 calls per second", "ISP")
                    shop.stock_call_times.append(now)
            data = handler(params)
        except LazadaError as exc:
            return error(exc)
        except (ValueError, TypeError) as exc:
            return error(LazadaError("InvalidParameter", str(exc)))
        return JSONResponse({"code": "0", "request_id": uuid.uuid4().hex, **data})

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
        except LazadaError as exc:
            return JSONResponse({"code": exc.code, "message": exc.message}, status_code=409)

    @app.get("/_sim/orders/{order_id}", response_model=None)
    def read_order(order_id: int) -> dict[str, Any] | JSONResponse:
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"code": "16", "message": "no such order"}, status_code=404)
            return json.loads(json.dumps(shop.orders[order_id]))

    @app.post("/_sim/orders/{order_id}/status", response_model=None)
    async def advance(order_id: int, request: Request) -> dict[str, Any] | JSONResponse:
        spec = await request.json()
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"code": "16", "message": "no such order"}, status_code=404)
            order = shop.orders[order_id]
            wanted = {int(i) for i in spec.get("item_ids") or []}
            items = [item for item in order["items"] if not wanted or item["order_item_id"] in wanted]
            shop.touch(order, items, str(spec["status"]), platform_time(spec.get("updated_at")))
            return shop.public_order(order)

    @app.post("/_sim/orders/{order_id}/cancel_request", response_model=None)
    def buyer_cancel(order_id: int) -> dict[str, Any] | JSONResponse:
        with shop.lock:
            if order_id not in shop.orders:
                return JSONResponse({"code": "16", "message": "no such order"}, status_code=404)
            order = shop.orders[order_id]
            reverse_id = str(next(shop.ids) + 704947701379000)
            items = [item for item in order["items"] if item["status"] in OPEN_STATUSES]
            for item in items:
                item.update(reverse_order_id=reverse_id, is_cancel_pending="true")
            order["need_cancel_confirm"] = order["is_cancel_pending"] = "true"
            order["updated_at"] = _iso(datetime.now(UTC))
            if items:
                shop.push_reverse(order, items[0], "CANCEL_INIT")
            return {"reverse_order_id": reverse_id}

    return app
