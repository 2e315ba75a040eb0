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
``GET /_sim/orders/{id}``, ``GET /_sim/calls`` (write calls received), ``POST /_sim/config`` (``push_url``),
``POST /_sim/flush`` (wait for queued pushes), plus the fault controls of ``simulators.common``. Error code names
other than ``IncompleteSignature`` are [U].
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ordermesh.adapters.channels.lazada import signing_path, verify_request
from ordermesh.adapters.channels.units import platform_time, push_signature
from ordermesh.simulators.common import (
    Faults,
    install_control_errors,
    install_push_control,
    install_shop_control,
    simulator_app,
)
from ordermesh.simulators.lazada_api import LazadaApi
from ordermesh.simulators.lazada_shop import (
    MAX_TIMESTAMP_SKEW_S,
    OPEN_STATUSES,
    STOCK_PATHS,
    LazadaError,
    LazadaShop,
    seller_time,
)


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
    faults = Faults()
    app = simulator_app("Lazada Open Platform simulator", faults, docs_url=None, redoc_url=None)
    # A sender owns a thread: it is started only once pushes have a target (here or via ``/_sim/config``).
    target = install_push_control(app, faults, push_url)

    def push(message: dict[str, Any]) -> None:
        sender, url = target.sender, target.url
        if sender is None or not url:
            return
        envelope = {"seller_id": seller_id, **message, "timestamp": int(time.time() * 1000), "site": site}
        body = json.dumps(envelope, separators=(",", ":")).encode()
        signature = push_signature(app_key, app_secret, body)
        sender.send(url, body, {"Authorization": signature, "Content-Type": "application/json"})

    shop = LazadaShop(app_key=app_key, app_secret=app_secret, push=push)
    api = LazadaApi(shop, max_offset=max_offset)
    app.state.shop = shop

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

    install_control_errors(app)

    install_shop_control(app, shop, LazadaError)

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
            order["updated_at"] = seller_time(shop.tick())
            if items:
                shop.push_reverse(order, items[0], "CANCEL_INIT")
            return {"reverse_order_id": reverse_id}

    return app
