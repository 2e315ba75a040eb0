"""The simulated TikTok Shop: products (SKUs, one warehouse), orders one line item per unit, cancellations."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from ordermesh.simulators.common import stock_report

MAX_TIMESTAMP_SKEW_S = 300  # [U] TikTok does not publish the allowed skew
WAREHOUSE_ID = "7068517275539719942"
DELIVERY_OPTION_ID = "7091146663229654785"
PROVIDERS = [
    {"id": "6617675021119438849", "name": "J&T Express"},
    {"id": "7129736293314594561", "name": "Giao Hang Nhanh"},
    {"id": "7129736293314594562", "name": "Giao Hang Tiet Kiem"},
]
OPEN_STATUSES = {"UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"}  # the seller may still cancel
LOCKING_STATUSES = OPEN_STATUSES | {"AWAITING_COLLECTION"}  # units held for the order until the carrier has them
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
        self.clock = 0

    def tick(self) -> int:
        """Now in unix seconds, but strictly later than the previous change (two changes in one second would
        otherwise carry the same ``update_time`` and look like one to a reader comparing them)."""
        self.clock = max(int(time.time()), self.clock + 1)
        return self.clock

    def next_id(self, base: int) -> str:
        return str(base + next(self.ids))

    def locked(self, seller_sku: str) -> int:
        return sum(
            1
            for order in self.orders.values()
            if order["status"] in LOCKING_STATUSES
            for line in order["line_items"]
            if line["seller_sku"] == seller_sku and line["display_status"] != "CANCELLED"
        )

    def stock(self) -> dict[str, dict[str, int]]:
        with self.lock:
            return stock_report(self.skus, self.locked)

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
            now = int(spec.get("update_time") or self.tick())
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
        if order["status"] in LOCKING_STATUSES and status not in LOCKING_STATUSES and status != "CANCELLED":
            for line in order["line_items"]:
                if line["display_status"] != "CANCELLED":
                    self.skus[line["seller_sku"]]["quantity"] -= 1  # the unit left the warehouse
        order["status"] = status
        order["update_time"] = when or max(self.tick(), int(order["update_time"]) + 1)
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
