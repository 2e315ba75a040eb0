"""The simulated Lazada ``/rest`` API: one handler per API path, answering the ``data``/``result`` part."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from typing import Any

from ordermesh.adapters.channels.units import platform_time
from ordermesh.simulators.lazada_shop import LazadaError, LazadaShop, seller_time


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
                order["updated_at"] = seller_time(self.shop.tick())
                self.shop.push_reverse(order, items[0], "REJECT_CANCEL_ORDER")
        return {"data": {}}
