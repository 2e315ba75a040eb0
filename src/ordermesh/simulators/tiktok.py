"""A local TikTok Shop (Partner API 202309, CHANNELS.md §4) for tests, demos and benchmarks.

Serves the real 202309 paths with the ``{code: 0, message, request_id, data}`` envelope, checks ``app_key``,
``timestamp``, ``shop_cipher``, the ``x-tts-access-token`` header and ``sign`` with the same function the adapter
signs with (§4.1, vectors 2 and 4 of §10), keeps products (SKUs with per-warehouse inventory), orders (one line
item per unit, packages) and cancellations in memory, and sends signed webhooks (§4.4: type 1 order status,
type 11 cancellation status) to ``push_url``. Error codes and HTTP statuses of failures are [U]: errors answer
HTTP 200 with a non-zero ``code`` and ``data: {}``.

Control API (not TikTok's): ``POST /_sim/products``, ``GET /_sim/stock``, ``POST /_sim/orders``,
``POST /_sim/orders/{id}/status``, ``POST /_sim/orders/{id}/cancel_request``, ``GET /_sim/orders/{id}``,
``GET /_sim/calls``, ``POST /_sim/config`` (``push_url``), ``POST /_sim/flush`` (wait for queued pushes), plus
the fault controls of ``simulators.common``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ordermesh.adapters.channels.tiktok import verify_request
from ordermesh.adapters.channels.units import push_signature
from ordermesh.simulators.common import (
    Faults,
    install_control_errors,
    install_push_control,
    install_shop_control,
    simulator_app,
)
from ordermesh.simulators.tiktok_api import TikTokApi
from ordermesh.simulators.tiktok_shop import MAX_TIMESTAMP_SKEW_S, UNSCOPED, WAREHOUSE_ID, TikTokError, TikTokShop

__all__ = ["WAREHOUSE_ID", "create_app"]


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
    faults = Faults()
    app = simulator_app("TikTok Shop Partner API simulator", faults, docs_url=None, redoc_url=None)
    # A sender owns a thread: it is started only once pushes have a target (here or via ``/_sim/config``).
    target = install_push_control(app, faults, push_url)

    def push(kind: int, data: dict[str, Any]) -> None:
        sender, url = target.sender, target.url
        if sender is None or not url:
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
        sender.send(url, body, headers)

    shop = TikTokShop(push)
    api = TikTokApi(shop)
    app.state.shop = shop

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

    install_control_errors(app)

    install_shop_control(app, shop, TikTokError)

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
            now = max(shop.tick(), int(order["update_time"]) + 1)
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
