"""A local Shopee shop: Open Platform v2 paths, the partner-key signature on every call, the
``{request_id, error, message, response}`` envelope, the 15-day/100-row/50-order limits, and order
status pushes signed over ``callback_url|body`` (CHANNELS.md §2). Control API under ``/_sim``: add
items, place orders as a buyer, move an order's status (as the buyer, the carrier or Shopee would),
read stock as last set.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ordermesh.adapters.channels.signing import (
    same,
    shopee_public_sign,
    shopee_push_signature,
    shopee_shop_sign,
)
from ordermesh.simulators.common import Faults, install_push_control, simulator_app
from ordermesh.simulators.shopee_shop import SimulatorRefusal, Store

SIGN_VALID_SECONDS = 300
MAX_WINDOW = 15 * 86400
OrderHandler = Callable[[dict[str, Any], dict[str, Any]], Response]
PUBLIC_PATHS = ("/api/v2/push/", "/api/v2/shop/auth_partner", "/api/v2/auth/")


def create_app(
    *,
    partner_id: str,
    partner_key: str,
    shop_id: str = "600000",
    access_token: str = "sim_access_token",
    push_url: str | None = None,
) -> FastAPI:
    faults = Faults()
    app = simulator_app("Shopee simulator", faults)
    # sell_beyond_stock False: a buyer cannot order more than the item/model's stock (409); True (the
    # default) lets stock go negative, as tests of unmapped listings with no stock rely on.
    state = {"sell_beyond_stock": True}
    target = install_push_control(app, faults, push_url, lazy=False, state_attr="sender", options=state)
    sender = target.sender
    assert sender is not None
    store = Store()
    app.state.store = store

    def envelope(response: Any = None, error: str = "", message: str = "", status: int = 200) -> Response:
        body = {"request_id": uuid.uuid4().hex, "error": error, "message": message}
        if response is not None:
            body["response"] = response
        return JSONResponse(body, status_code=status)

    def refuse(request: Request) -> Response | None:
        query = request.query_params
        path = request.url.path
        try:
            timestamp = int(query.get("timestamp", ""))
            given_partner = int(query.get("partner_id", ""))
        except ValueError:
            return envelope(error="error_param", message="partner_id and timestamp are required", status=400)
        if str(given_partner) != str(partner_id):
            return envelope(error="error_auth", message="Invalid partner_id.", status=403)
        if abs(time.time() - timestamp) > SIGN_VALID_SECONDS:
            return envelope(error="error_auth", message="Invalid timestamp.", status=403)
        if path.startswith(PUBLIC_PATHS):
            expected = shopee_public_sign(partner_key, partner_id, path, timestamp)
        else:
            if query.get("access_token") != access_token or query.get("shop_id") != str(shop_id):
                return envelope(error="error_auth", message="Invalid access_token.", status=403)
            expected = shopee_shop_sign(partner_key, partner_id, path, timestamp, access_token, shop_id)
        if not same(expected, query.get("sign")):
            return envelope(error="error_auth", message="Wrong sign.", status=403)
        return None

    def push(order: dict[str, Any]) -> None:
        data = {
            "items": [],
            "ordersn": order["order_sn"],
            "status": order["order_status"],
            "completed_scenario": "",
            "update_time": order["update_time"],
        }
        message = {"data": data, "shop_id": int(shop_id), "code": 3, "timestamp": order["update_time"]}
        store.pushes.append({"id": len(store.pushes) + 1, **message})
        if not target.url:
            store.pushes[-1]["lost"] = True  # no callback URL set: nothing could be delivered
            return
        body = json.dumps(message, separators=(",", ":")).encode()
        signature = shopee_push_signature(partner_key, target.url, body)
        dropped = len(sender.dropped)
        sender.send(target.url, body, {"Content-Type": "application/json", "Authorization": signature})
        if len(sender.dropped) > dropped:  # lost on the way: Shopee keeps it for get_lost_push_message
            store.pushes[-1]["lost"] = True

    def set_status(order: dict[str, Any], status: str) -> None:
        order["order_status"] = status
        order["update_time"] = store.tick()
        push(order)

    def order_call(path: str) -> Callable[[OrderHandler], OrderHandler]:
        """A shop-authorised POST naming an order by ``order_sn``; ``handle(body, order)`` runs under the store lock."""

        def register(handle: OrderHandler) -> OrderHandler:
            async def endpoint(request: Request) -> Response:
                refused = refuse(request)
                if refused:
                    return refused
                body = await request.json()
                with store.lock:
                    order = store.orders.get(str(body.get("order_sn")))
                    if order is None:
                        return envelope(error="error_not_found", message="order not found")
                    return handle(body, order)

            app.add_api_route(path, endpoint, methods=["POST"], name=handle.__name__)
            return handle

        return register

    # -- orders ------------------------------------------------------------------------------------

    @app.get("/api/v2/order/get_order_list")
    def get_order_list(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        query = request.query_params
        try:
            time_from, time_to = int(query["time_from"]), int(query["time_to"])
            page_size = int(query["page_size"])
        except (KeyError, ValueError):
            return envelope(error="error_param", message="time_from, time_to and page_size are required")
        if time_to - time_from > MAX_WINDOW or time_to < time_from:
            return envelope(error="error_param", message="time_to - time_from must be within 15 days")
        if not 1 <= page_size <= 100:
            return envelope(error="error_param", message="page_size must be 1 to 100")
        field = query.get("time_range_field", "create_time")
        offset = int(query.get("cursor") or 0)
        with store.lock:
            matching = sorted(
                (o for o in store.orders.values() if time_from <= o[field] <= time_to),
                key=lambda o: (o[field], o["order_sn"]),
            )
        page = matching[offset : offset + page_size]
        more = offset + page_size < len(matching)
        return envelope(
            {
                "more": more,
                "next_cursor": str(offset + page_size) if more else "",
                "order_list": [{"order_sn": o["order_sn"], "order_status": o["order_status"]} for o in page],
            }
        )

    @app.get("/api/v2/order/get_order_detail")
    def get_order_detail(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        numbers = [n for n in request.query_params.get("order_sn_list", "").split(",") if n]
        if not 1 <= len(numbers) <= 50:
            return envelope(error="error_param", message="order_sn_list must name 1 to 50 orders")
        with store.lock:
            found = [json.loads(json.dumps(store.orders[n])) for n in numbers if n in store.orders]
        return envelope({"order_list": found})

    @order_call("/api/v2/order/cancel_order")
    def cancel_order(body: dict[str, Any], order: dict[str, Any]) -> Response:
        if body.get("cancel_reason") not in (
            "OUT_OF_STOCK",
            "CUSTOMER_REQUEST",
            "UNDELIVERABLE_AREA",
            "COD_NOT_SUPPORTED",
        ):
            return envelope(error="error_param", message="invalid cancel_reason")
        if body["cancel_reason"] == "OUT_OF_STOCK" and not body.get("item_list"):
            return envelope(error="error_param", message="item_list is required for OUT_OF_STOCK")
        if order["order_status"] not in ("UNPAID", "READY_TO_SHIP", "RETRY_SHIP"):
            return envelope(error="error_status", message=f"cannot cancel an order in {order['order_status']}")
        order["cancel_by"], order["cancel_reason"] = "seller", body["cancel_reason"]
        set_status(order, "CANCELLED")
        return envelope({"update_time": order["update_time"]})

    @order_call("/api/v2/order/handle_buyer_cancellation")
    def handle_buyer_cancellation(body: dict[str, Any], order: dict[str, Any]) -> Response:
        if order["order_status"] != "IN_CANCEL":
            return envelope(error="error_status", message="the order has no cancellation to handle")
        if body.get("operation") == "ACCEPT":
            order["cancel_by"] = "buyer"
            set_status(order, "CANCELLED")
        elif body.get("operation") == "REJECT":
            set_status(order, order.get("_before_cancel", "READY_TO_SHIP"))
        else:
            return envelope(error="error_param", message="operation must be ACCEPT or REJECT")
        return envelope({"update_time": order["update_time"]})

    @order_call("/api/v2/logistics/ship_order")
    def ship_order(body: dict[str, Any], order: dict[str, Any]) -> Response:
        modes = [m for m in ("pickup", "dropoff", "non_integrated") if m in body]
        if len(modes) != 1:
            return envelope(error="error_param", message="send exactly one of pickup, dropoff, non_integrated")
        if order["order_status"] not in ("READY_TO_SHIP", "RETRY_SHIP"):
            return envelope(error="logistics.ship_order_status_invalid", message=f"order is {order['order_status']}")
        order["tracking_number"] = (body[modes[0]] or {}).get("tracking_number")
        set_status(order, "PROCESSED")
        return envelope({})

    # -- products ----------------------------------------------------------------------------------

    @app.get("/api/v2/product/get_item_list")
    def get_item_list(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        offset, size = int(request.query_params.get("offset", 0)), int(request.query_params.get("page_size", 10))
        if not 1 <= size <= 100:
            return envelope(error="error_param", message="page_size must be 1 to 100")
        with store.lock:
            ids = sorted(store.items)
        page = ids[offset : offset + size]
        more = offset + size < len(ids)
        return envelope(
            {
                "item": [{"item_id": i, "item_status": "NORMAL"} for i in page],
                "total_count": len(ids),
                "has_next_page": more,
                "next_offset": offset + size if more else 0,
            }
        )

    @app.get("/api/v2/product/get_item_base_info")
    def get_item_base_info(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        ids = [int(i) for i in request.query_params.get("item_id_list", "").split(",") if i]
        if not 1 <= len(ids) <= 50:
            return envelope(error="error_param", message="item_id_list must name 1 to 50 items")
        with store.lock:
            found = [
                {
                    "item_id": i,
                    "item_name": store.items[i]["item_name"],
                    "item_sku": store.items[i]["item_sku"],
                    "has_model": bool(store.items[i]["models"]),
                }
                for i in ids
                if i in store.items
            ]
        return envelope({"item_list": found})

    @app.get("/api/v2/product/get_model_list")
    def get_model_list(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        with store.lock:
            item = store.items.get(int(request.query_params.get("item_id", 0)))
            if item is None:
                return envelope(error="error_item_not_found", message="item not found")
            models = [
                {"model_id": m["model_id"], "model_sku": m["model_sku"], "model_name": m["model_name"]}
                for m in item["models"].values()
            ]
        return envelope({"model": models})

    @app.post("/api/v2/product/update_stock")
    async def update_stock(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        body = await request.json()
        with store.lock:
            item = store.items.get(int(body.get("item_id", 0)))
            if item is None:
                return envelope(error="error_item_not_found", message="item not found")
            success, failure = [], []
            for entry in body.get("stock_list") or []:
                model_id = int(entry.get("model_id", 0))
                stock = sum(int(s.get("stock", 0)) for s in entry.get("seller_stock") or [])
                target = item if model_id == 0 and not item["models"] else item["models"].get(model_id)
                if target is None:
                    failure.append({"model_id": model_id, "failed_reason": "model not found"})
                    continue
                target["stock"] = stock
                sku = target.get("model_sku") or target.get("item_sku")
                entry = {"item_id": item["item_id"], "model_id": model_id, "sku": sku, "quantity": stock}
                store.stock_sets.append({**entry, "at": time.time()})
                success.append({"model_id": model_id, "stock": stock})
        return envelope({"success_list": success, "failure_list": failure})

    # -- pushes Shopee could not deliver -----------------------------------------------------------

    @app.get("/api/v2/push/get_lost_push_message")
    def get_lost_push_message(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        with store.lock:
            lost = [p for p in store.pushes if p["id"] > store.lost_after and p.get("lost")][:100]
        return envelope(
            {
                "push_message_list": [
                    {
                        "shop_id": p["shop_id"],
                        "code": p["code"],
                        "timestamp": p["timestamp"],
                        "data": json.dumps(p["data"]),
                    }
                    for p in lost
                ],
                "has_next_page": False,
                "last_message_id": lost[-1]["id"] if lost else 0,
            }
        )

    @app.post("/api/v2/push/confirm_consumed_lost_push_message")
    async def confirm_lost(request: Request) -> Response:
        refused = refuse(request)
        if refused:
            return refused
        body = await request.json()
        with store.lock:
            store.lost_after = max(store.lost_after, int(body.get("last_message_id", 0)))
        return envelope({})

    # -- control -----------------------------------------------------------------------------------

    @app.post("/_sim/items")
    async def add_item(request: Request) -> dict[str, Any]:
        """``{"item_name", "item_sku", "stock"?, "models": [{"model_sku", "model_name"?, "stock"?}]}``"""
        body = await request.json()
        with store.lock:
            return store.add_item(body)

    @app.post("/_sim/orders")
    async def place_order(request: Request) -> Response:
        """A buyer places (and pays for) an order: stock falls, a push says READY_TO_SHIP (or UNPAID)."""
        body = await request.json()
        with store.lock:
            try:
                order = store.place_order(body, sell_beyond_stock=state["sell_beyond_stock"])
            except SimulatorRefusal as refusal:
                return JSONResponse({"error": refusal.message}, status_code=refusal.status)
            push(order)
            return JSONResponse(order)

    @app.post("/_sim/orders/{order_sn}/status")
    async def move_order(order_sn: str, request: Request) -> Response:
        """Move an order as the buyer (``IN_CANCEL``), the carrier (``SHIPPED``) or Shopee would."""
        body = await request.json()
        with store.lock:
            order = store.orders.get(order_sn)
            if order is None:
                return JSONResponse({"error": "order not found"}, status_code=404)
            if body["status"] == "IN_CANCEL":
                order["_before_cancel"] = order["order_status"]
                order["buyer_cancel_reason"] = body.get("reason", "Need to change delivery address")
            set_status(order, body["status"])
            return JSONResponse(order)

    @app.post("/_sim/pushes/lose")
    async def lose_pushes(request: Request) -> dict[str, Any]:
        """Mark pushes as undelivered (what ``get_lost_push_message`` returns): all after ``after_id``."""
        body = await request.json()
        with store.lock:
            for p in store.pushes:
                if p["id"] > int(body.get("after_id", 0)):
                    p["lost"] = True
            return {"lost": sum(1 for p in store.pushes if p.get("lost"))}

    @app.get("/_sim/orders/{order_sn}")
    def read_order(order_sn: str) -> Response:
        with store.lock:
            order = store.orders.get(order_sn)
            return JSONResponse(order) if order else JSONResponse({"error": "order not found"}, status_code=404)

    @app.get("/_sim/stock")
    def read_stock() -> dict[str, int]:
        with store.lock:
            return store.stock()

    @app.get("/_sim/stock-sets")
    def read_stock_sets() -> list[dict[str, Any]]:
        """Every update_stock accepted, in order: item, model, sku, quantity, at (unix seconds)."""
        with store.lock:
            return list(store.stock_sets)

    return app
