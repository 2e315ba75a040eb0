"""The simulated Shopee shop's state: items with their models and stock, orders, the pushes sent
(``get_lost_push_message`` returns the ones not delivered), and every stock update accepted. The
HTTP side (Open Platform paths, signatures, envelope) is ``simulators/shopee.py``."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from typing import Any

DEFAULT_ADDRESS = {
    "name": "Nguyen Van B",
    "phone": "84900000000",
    "town": "Phuong Ben Nghe",
    "district": "Quan 1",
    "city": "Ho Chi Minh",
    "state": "Ho Chi Minh",
    "region": "VN",
    "zipcode": "700000",
    "full_address": "1 Le Loi, Phuong Ben Nghe, Quan 1, Ho Chi Minh",
}


class SimulatorRefusal(Exception):
    """A control call the shop cannot do, with the HTTP status the control API answers."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message, self.status = message, status


class Store:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.ids = itertools.count(100_001)
        self.items: dict[int, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.pushes: list[dict[str, Any]] = []  # every push, with an id: what get_lost_push_message can return
        self.lost_after = 0  # pushes with an id above this were not confirmed consumed
        self.stock_sets: list[dict[str, Any]] = []
        self.clock = 0

    def tick(self) -> int:
        """A strictly increasing update_time, close to now."""
        self.clock = max(int(time.time()), self.clock + 1)
        return self.clock

    def model_of(self, sku: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        for item in self.items.values():
            if not item["models"] and item["item_sku"] == sku:
                return item, None
            for model in item["models"].values():
                if model["model_sku"] == sku:
                    return item, model
        return None

    def add_item(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"item_name", "item_sku", "stock"?, "price"?, "models": [{"model_sku", "model_name"?, "stock"?}]}``;
        call under ``lock``."""
        item_id = next(self.ids)
        models = {}
        for entry in body.get("models") or []:
            model_id = next(self.ids)
            models[model_id] = {
                "model_id": model_id,
                "model_sku": entry["model_sku"],
                "model_name": entry.get("model_name", entry["model_sku"]),
                "stock": int(entry.get("stock", 0)),
                "price": float(entry.get("price", 100000)),
            }
        item = {
            "item_id": item_id,
            "item_name": body.get("item_name", "Item"),
            "item_sku": body.get("item_sku", ""),
            "stock": int(body.get("stock", 0)),
            "price": float(body.get("price", 100000)),
            "models": models,
        }
        self.items[item_id] = item
        return {**item, "models": list(models.values())}

    def place_order(self, body: dict[str, Any], *, sell_beyond_stock: bool) -> dict[str, Any]:
        """A buyer places (and pays for) an order: stock falls. Raises ``SimulatorRefusal`` (409 not
        enough stock, 422 unknown SKU) and changes nothing then. Call under ``lock``."""
        if not sell_beyond_stock:
            for entry in body["lines"]:
                found = self.model_of(entry["sku"])
                holder = None if found is None else (found[1] if found[1] is not None else found[0])
                if holder is not None and int(entry.get("quantity", 1)) > holder["stock"]:
                    raise SimulatorRefusal(f"{entry['sku']} has {holder['stock']} in stock", 409)
        lines = []
        for entry in body["lines"]:
            found = self.model_of(entry["sku"])
            if found is None:
                raise SimulatorRefusal(f"no item or model with SKU {entry['sku']}", 422)
            lines.append((found, int(entry.get("quantity", 1))))
        item_list, total = [], 0.0
        for (item, model), quantity in lines:
            holder = model if model is not None else item
            holder["stock"] -= quantity
            price = holder["price"]
            total += price * quantity
            item_list.append(
                {
                    "item_id": item["item_id"],
                    "item_name": item["item_name"],
                    "item_sku": item["item_sku"],
                    "model_id": model["model_id"] if model else 0,
                    "model_name": model["model_name"] if model else "",
                    "model_sku": model["model_sku"] if model else "",
                    "model_quantity_purchased": quantity,
                    "model_original_price": price,
                    "model_discounted_price": price,
                }
            )
        now = self.tick()
        status = body.get("status", "READY_TO_SHIP")
        order_sn = body.get("order_sn") or f"{time.strftime('%y%m%d')}{uuid.uuid4().hex[:8].upper()}"
        order = {
            "order_sn": order_sn,
            "region": "VN",
            "currency": "VND",
            "cod": bool(body.get("cod", False)),
            "total_amount": total,
            "order_status": status,
            "message_to_seller": body.get("note", ""),
            "create_time": now,
            "update_time": now,
            "pay_time": now if status != "UNPAID" else None,
            "days_to_ship": 2,
            "ship_by_date": now + 2 * 86400,
            "estimated_shipping_fee": 15000.0,
            "recipient_address": body.get("recipient_address", DEFAULT_ADDRESS),
            "item_list": item_list,
            "cancel_by": "",
            "cancel_reason": "",
            "buyer_cancel_reason": "",
        }
        self.orders[order_sn] = order
        return order

    def stock(self) -> dict[str, int]:
        """Stock by SKU (an item without models, or a model), as last set. Call under ``lock``."""
        stock: dict[str, int] = {}
        for item in self.items.values():
            if not item["models"]:
                stock[item["item_sku"]] = item["stock"]
            for model in item["models"].values():
                stock[model["model_sku"]] = model["stock"]
        return stock
