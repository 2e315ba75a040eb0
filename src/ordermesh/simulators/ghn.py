"""A local GHN: the public-api paths under ``/shiip/public-api``, ``Token``/``ShopId`` headers, GHN's
``{code, message, data}`` envelopes, and JSON status webhooks pushed to ``push_url``.

Control (``/_sim/...``, besides the shared fault routes): ``POST /_sim/advance`` moves a parcel along a
scenario (deliver, fail_then_return, lost) and pushes a webhook per step; ``POST /_sim/control``
sets ``slow_create_seconds`` (answer a create only after that long: a client that times out has
still booked); ``GET /_sim/orders`` lists parcels.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse

from ordermesh.simulators import parcels as p
from ordermesh.simulators.common import carrier_app

PREFIX = "/shiip/public-api"
MAX_WEIGHT_GRAMS = 50_000
MAX_COD = 50_000_000
# Neutral step -> GHN status (reports are not GHN statuses: GHN has none, they are skipped).
STATUS = {
    p.CREATED: "ready_to_pick",
    p.PICKING: "picking",
    p.PICKED: "picked",
    p.IN_TRANSIT: "transporting",
    p.DELIVERING: "delivering",
    p.DELIVERED: "delivered",
    p.DELIVERY_FAILED: "delivery_fail",
    p.RETURNING: "returning",
    p.RETURNED: "returned",
    p.LOST: "lost",
    p.CANCELLED: "cancel",
}


def _answer(code: int, message: str, data: Any = None) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "data": data}, status_code=code)


def create_app(
    token: str = "ghn-token",
    shop_id: str = "1001",
    push_url: str | None = None,
    zones: Mapping[str, Mapping[str, int]] | None = None,
) -> FastAPI:
    app, pusher, control = carrier_app("GHN simulator", push_url)
    book = p.ParcelBook("GHN")
    table = p.ZoneTable(zones or p.DEFAULT_ZONES)
    label_tokens: dict[str, list[str]] = {}
    app.state.book = book

    def refused(request: Request, *, shop: bool) -> JSONResponse | None:
        if request.headers.get("token") != token:
            return _answer(401, "Token is not valid")
        if shop and request.headers.get("shopid") != str(shop_id):
            return _answer(400, "ShopId is not valid")
        return None

    def view(parcel: p.SimParcel) -> dict[str, Any]:
        fields = parcel.fields
        delivered = parcel.step in (p.DELIVERED, p.RECONCILED)
        return {
            "order_code": parcel.tracking_number,
            "client_order_code": parcel.reference,
            "status": STATUS.get(parcel.step, "delivered" if parcel.step == p.RECONCILED else parcel.step),
            "to_name": fields.get("to_name"),
            "to_address": fields.get("to_address"),
            "cod_amount": parcel.cod_amount,
            "total_fee": parcel.fee,
            "weight": fields.get("weight"),
            "leadtime": fields.get("leadtime"),
            "updated_date": parcel.updated_at.isoformat(),
            "cod_transfer_date": parcel.updated_at.isoformat() if parcel.step == p.RECONCILED else None,
            "log": [{"status": STATUS.get(s, s), "updated_date": t.isoformat()} for s, t in parcel.history],
            "is_cod_collected": delivered and parcel.cod_amount > 0,
        }

    def push(parcel: p.SimParcel, step: str, when: datetime) -> None:
        url = control["push_url"]
        if not url or step.endswith("_report"):
            return
        reconciled = step == p.RECONCILED
        body = {
            "OrderCode": parcel.tracking_number,
            "ClientOrderCode": parcel.reference,
            "ShopID": int(shop_id),
            "Status": "delivered" if reconciled else STATUS[step],
            "Type": "update_cod" if reconciled else ("create" if step == p.CREATED else "switch_status"),
            "Description": step,
            "Reason": "Không liên lạc được người nhận" if step == p.DELIVERY_FAILED else "",
            "ReasonCode": "GHN-DFC1A0" if step == p.DELIVERY_FAILED else "",
            "Time": when.isoformat(),
            "CODAmount": parcel.cod_amount,
            "CODTransferDate": when.isoformat() if reconciled else None,
            "TotalFee": parcel.fee,
            "Weight": parcel.fields.get("weight"),
        }
        pusher.send(url, json.dumps(body).encode(), {"Content-Type": "application/json"})

    @app.post(f"{PREFIX}/v2/shipping-order/fee")
    async def fee(request: Request) -> JSONResponse:
        if (answer := refused(request, shop=True)) is not None:
            return answer
        body = await request.json()
        if not body.get("to_district_id"):
            return _answer(400, "to_district_id is required")
        same = body.get("from_district_id") and body.get("from_district_id") == body.get("to_district_id")
        zone = "same_province" if same else "other"
        total = table.fee(zone, int(body.get("weight") or 0))
        return _answer(200, "Success", {"total": total, "service_fee": total, "insurance_fee": 0, "cod_fee": 0})

    @app.post(f"{PREFIX}/v2/shipping-order/leadtime")
    async def leadtime(request: Request) -> JSONResponse:
        if (answer := refused(request, shop=True)) is not None:
            return answer
        body = await request.json()
        same = body.get("from_district_id") and body.get("from_district_id") == body.get("to_district_id")
        now = book.now()
        moment = table.delivery_at("same_province" if same else "other", now)
        return _answer(200, "Success", {"leadtime": int(moment.timestamp()), "order_date": int(now.timestamp())})

    @app.post(f"{PREFIX}/v2/shipping-order/create")
    def create(body: dict[str, Any], request: Request) -> JSONResponse:
        if (answer := refused(request, shop=True)) is not None:
            return answer
        missing = [k for k in ("to_name", "to_phone", "to_address", "weight", "required_note") if not body.get(k)]
        if missing:
            return _answer(400, f"{', '.join(missing)} is required")
        if int(body["weight"]) > MAX_WEIGHT_GRAMS or int(body.get("cod_amount") or 0) > MAX_COD:
            return _answer(400, "weight or cod_amount over GHN's limit")
        reference = str(body.get("client_order_code") or "")
        if reference and book.by_reference(reference) is not None:
            return _answer(400, "Mã đơn hàng của shop đã tồn tại (client_order_code already exists)")
        zone = table.zone(body.get("from_province_name"), body.get("to_province_name"))
        fee_total = table.fee(zone, int(body["weight"]))
        expected = table.delivery_at(zone, book.clock)
        parcel = book.create(
            reference or secrets.token_hex(6),
            {**body, "leadtime": expected.isoformat()},
            fee_total,
            int(body.get("cod_amount") or 0),
        )
        push(parcel, p.CREATED, parcel.created_at)
        if control["slow_create_seconds"]:
            time.sleep(float(control["slow_create_seconds"]))
        return _answer(
            200,
            "Success",
            {
                "order_code": parcel.tracking_number,
                "sort_code": "190-G-01-A1",
                "trans_type": "truck",
                "total_fee": fee_total,
                "expected_delivery_time": expected.isoformat(),
                "fee": {"main_service": fee_total, "insurance": 0, "station_do": 0, "station_pu": 0, "coupon": 0},
            },
        )

    @app.post(f"{PREFIX}/v2/shipping-order/detail")
    async def detail(request: Request) -> JSONResponse:
        if (answer := refused(request, shop=True)) is not None:
            return answer
        parcel = book.get(str((await request.json()).get("order_code", "")))
        return _answer(200, "Success", view(parcel)) if parcel else _answer(400, "order not found")

    @app.post(f"{PREFIX}/v2/shipping-order/detail-by-client-code")
    async def detail_by_client_code(request: Request) -> JSONResponse:
        if (answer := refused(request, shop=True)) is not None:
            return answer
        parcel = book.by_reference(str((await request.json()).get("client_order_code", "")))
        return _answer(200, "Success", view(parcel)) if parcel else _answer(400, "order not found")

    def switch(allowed: frozenset[str], target: str) -> Any:
        async def handler(request: Request) -> JSONResponse:
            if (answer := refused(request, shop=True)) is not None:
                return answer
            results = []
            for code in (await request.json()).get("order_codes", []):
                parcel = book.get(str(code))
                ok = parcel is not None and parcel.step in allowed
                if ok and parcel is not None:
                    push(parcel, target, book.move(parcel, target))
                results.append({"order_code": code, "result": ok, "message": "OK" if ok else "not allowed now"})
            return _answer(200, "Success", results)

        return handler

    app.add_api_route(
        f"{PREFIX}/v2/switch-status/cancel", switch(frozenset({p.CREATED, p.PICKING}), p.CANCELLED), methods=["POST"]
    )
    app.add_api_route(
        f"{PREFIX}/v2/switch-status/return",
        switch(frozenset({p.PICKED, p.IN_TRANSIT, p.DELIVERING, p.DELIVERY_FAILED}), p.RETURNING),
        methods=["POST"],
    )

    @app.post(f"{PREFIX}/v2/a5/gen-token")
    async def gen_token(request: Request) -> JSONResponse:
        if (answer := refused(request, shop=False)) is not None:
            return answer
        codes = [str(c) for c in (await request.json()).get("order_codes", [])]
        if not codes or any(book.get(c) is None for c in codes):
            return _answer(400, "order_codes not found")
        label = secrets.token_hex(8)
        label_tokens[label] = codes
        return _answer(200, "Success", {"token": label})

    @app.get("/a5/public-api/printA5")
    def print_a5(token: str = "") -> HTMLResponse:
        codes = label_tokens.get(token)
        if not codes:
            return HTMLResponse("<p>token expired</p>", status_code=400)
        rows = "".join(f"<h1>{c}</h1><p>{book.get(c).fields.get('to_name')}</p>" for c in codes)  # type: ignore[union-attr]
        return HTMLResponse(f"<html><body>{rows}</body></html>")

    @app.post("/_sim/advance")
    async def advance(request: Request) -> JSONResponse:
        body = await request.json()
        parcel = book.get(str(body.get("order_code", ""))) or book.by_reference(str(body.get("client_order_code", "")))
        if parcel is None:
            return JSONResponse({"error": "no such parcel"}, status_code=404)
        try:
            done = book.advance(parcel, body.get("scenario"), body.get("steps"), push)
        except KeyError:
            return JSONResponse({"error": f"scenarios: {', '.join(p.SCENARIOS)}"}, status_code=422)
        return JSONResponse({"order_code": parcel.tracking_number, "status": view(parcel)["status"], "steps": done})

    @app.get("/_sim/orders")
    def orders() -> JSONResponse:
        return JSONResponse({"created": book.created_count, "orders": [view(x) for x in book.all()]})

    return app
