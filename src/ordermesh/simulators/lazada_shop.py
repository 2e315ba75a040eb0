"""The simulated Lazada seller account: products, stock (total, locked, sellable), orders one item row per unit."""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from ordermesh.adapters.channels.units import platform_time
from ordermesh.simulators.common import stock_report

SELLER_ZONE = timezone(timedelta(hours=7))  # lazada_vn
MAX_TIMESTAMP_SKEW_S = 7200
OPEN_STATUSES = {"unpaid", "pending", "repacked", "packed", "ready_to_ship_pending", "ready_to_ship", "topack"}
STOCK_PATHS = {"/product/price_quantity/update", "/product/stock/sellable/update"}


class LazadaError(Exception):
    def __init__(self, code: str, message: str, error_type: str = "ISV") -> None:
        super().__init__(message)
        self.code, self.message, self.error_type = code, message, error_type


def seller_time(moment: datetime) -> str:
    return moment.astimezone(SELLER_ZONE).isoformat(timespec="seconds")


def item_time(moment: datetime) -> str:
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
        self.clock = 0

    def tick(self) -> datetime:
        """Now, but strictly later than the previous change (Lazada's times have one-second resolution, and
        two changes in the same second would otherwise look like one to any reader comparing update times)."""
        self.clock = max(int(time.time()), self.clock + 1)
        return datetime.fromtimestamp(self.clock, UTC)

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
            return stock_report(self.skus, self.locked)

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
            now = platform_time(spec.get("updated_at")) or self.tick()
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
                            "promised_shipping_time": item_time(now + timedelta(days=2)),
                            "reason": "",
                            "reverse_order_id": "",
                            "is_cancel_pending": "false",
                            "created_at": item_time(now),
                            "updated_at": item_time(now),
                        }
                    )
            address = spec.get("address") or {}
            order = {
                "order_id": order_id,
                "order_number": str(order_id),
                "created_at": seller_time(now),
                "updated_at": seller_time(now),
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
        now = when or self.tick()
        for item in items:
            if item["status"] in OPEN_STATUSES and status not in OPEN_STATUSES and status != "canceled":
                self.skus[item["sku"]]["quantity"] -= 1  # the unit left the warehouse: no longer locked, gone
            item["status"] = status
            item["updated_at"] = item_time(now)
        order["updated_at"] = seller_time(now)
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
