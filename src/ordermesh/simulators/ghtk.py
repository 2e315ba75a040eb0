"""A local GHTK: ``/services/...`` paths, ``Token`` + ``X-Client-Source`` headers, ``{success, message}``
envelopes, and form-encoded status webhooks pushed to ``push_url`` (which carries ``?hash=``).

Shipper reports (123, 45, 49) are pushed like statuses, as GHTK does; the order's ``status`` never
takes them. Control routes as in the GHN simulator.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ordermesh.simulators import parcels as p
from ordermesh.simulators.common import carrier_app

STATUS = {
    p.CREATED: 2,
    p.PICKING: 12,
    p.PICKED: 3,
    p.IN_TRANSIT: 10,
    p.DELIVERING: 4,
    p.DELIVERED: 5,
    p.RECONCILED: 6,
    p.DELIVERY_FAILED: 9,
    p.RETURNING: 20,
    p.RETURNED: 21,
    p.LOST: 13,
    p.CANCELLED: -1,
    p.PICKUP_REPORT: 123,
    p.DELIVERY_REPORT: 45,
    p.FAILURE_REPORT: 49,
}
CANCELLABLE = frozenset({p.CREATED, p.PICKING})
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _fail(message: str, status: int = 200, code: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"success": False, "message": message}
    if code:
        body["error"] = {"code": code}
    return JSONResponse(body, status_code=status)


def create_app(
    token: str = "ghtk-token",
    client_source: str = "S1",
    push_url: str | None = None,
    zones: Mapping[str, Mapping[str, int]] | None = None,
) -> FastAPI:
    app, pusher, control = carrier_app("GHTK simulator", push_url)
    book = p.ParcelBook("S1.A1.")
    table = p.ZoneTable(zones or p.DEFAULT_ZONES)
    app.state.book = book

    def refused(request: Request) -> JSONResponse | None:
        if request.headers.get("token") != token or request.headers.get("x-client-source") != client_source:
            return _fail("Token hoặc X-Client-Source không hợp lệ", status=401)
        return None

    def find(key: str) -> p.SimParcel | None:
        if key.startswith("partner_id:"):
            return book.by_reference(key.removeprefix("partner_id:"))
        return book.get(key)

    def view(parcel: p.SimParcel) -> dict[str, Any]:
        order = parcel.fields.get("order", {})
        return {
            "label_id": parcel.tracking_number,
            "partner_id": parcel.reference,
            "status": str(STATUS[parcel.step]),
            "status_text": parcel.step,
            "created": parcel.created_at.isoformat(),
            "modified": parcel.updated_at.isoformat(),
            "customer_fullname": order.get("name"),
            "customer_tel": order.get("tel"),
            "address": order.get("address"),
            "ship_money": parcel.fee,
            "insurance": 0,
            "value": order.get("value", 0),
            "pick_money": parcel.cod_amount,
            "is_freeship": int(order.get("is_freeship") or 0),
        }

    def push(parcel: p.SimParcel, step: str, when: datetime) -> None:
        url = control["push_url"]
        if not url:
            return
        fields = {
            "label_id": parcel.tracking_number,
            "partner_id": parcel.reference,
            "status_id": STATUS[step],
            "action_time": when.isoformat(),
            "reason_code": "" if step != p.DELIVERY_FAILED else "130",
            "reason": "" if step != p.DELIVERY_FAILED else "Không liên lạc được với người nhận",
            "weight": parcel.fields.get("weight_kg", 0.5),
            "fee": parcel.fee,
            "pick_money": parcel.cod_amount,
            "return_part_package": 0,
        }
        pusher.send(url, urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"})

    @app.get("/services/shipment/fee")
    def fee(request: Request) -> JSONResponse:
        if (answer := refused(request)) is not None:
            return answer
        query = request.query_params
        if not query.get("province") or not query.get("pick_province") or not query.get("weight"):
            return _fail("pick_province, province and weight are required")
        zone = table.zone(query.get("pick_province"), query.get("province"))
        total = table.fee(zone, int(query["weight"]))
        return JSONResponse(
            {"success": True, "message": "", "fee": {"name": zone, "fee": total, "insurance_fee": 0, "delivery": True}}
        )

    @app.post("/services/shipment/order/")
    def create(body: dict[str, Any], request: Request) -> JSONResponse:
        if (answer := refused(request)) is not None:
            return answer
        order, products = body.get("order") or {}, body.get("products") or []
        missing = [k for k in ("id", "name", "tel", "address", "province", "pick_province") if not order.get(k)]
        if missing or not products:
            return _fail(f"thiếu {', '.join(missing) or 'products'}")
        if book.by_reference(str(order["id"])) is not None:
            return _fail("Mã đơn hàng đã tồn tại", code="ORDER_ID_EXIST")
        weight_kg = sum(float(x.get("weight") or 0) * int(x.get("quantity") or 1) for x in products)
        zone = table.zone(order.get("pick_province"), order.get("province"))
        total = table.fee(zone, int(weight_kg * 1000))
        expected = table.delivery_at(zone, book.clock)
        parcel = book.create(
            str(order["id"]), {**body, "weight_kg": weight_kg}, total, int(order.get("pick_money") or 0)
        )
        push(parcel, p.CREATED, parcel.created_at)
        if control["slow_create_seconds"]:
            time.sleep(float(control["slow_create_seconds"]))
        return JSONResponse(
            {
                "success": True,
                "message": "",
                "order": {
                    "partner_id": parcel.reference,
                    "label": parcel.tracking_number,
                    "area": "1",
                    "fee": str(total),
                    "insurance_fee": "0",
                    "estimated_pick_time": "Sáng hôm nay",
                    "estimated_deliver_time": expected.isoformat(),
                    "products": [],
                    "status_id": STATUS[p.CREATED],
                    "tracking_id": parcel.tracking_number,
                    "sorting_code": "A1",
                },
            }
        )

    @app.get("/services/shipment/v2/{key}")
    def status(key: str, request: Request) -> JSONResponse:
        if (answer := refused(request)) is not None:
            return answer
        parcel = find(key)
        if parcel is None:
            return _fail("Không tìm thấy đơn hàng", code="ORDER_NOT_FOUND")
        return JSONResponse({"success": True, "message": "", "order": view(parcel)})

    @app.post("/services/shipment/cancel/{key}")
    def cancel(key: str, request: Request) -> JSONResponse:
        if (answer := refused(request)) is not None:
            return answer
        parcel = find(key)
        if parcel is None:
            return _fail("Không tìm thấy đơn hàng", code="ORDER_NOT_FOUND")
        if parcel.step not in CANCELLABLE:
            return _fail("Đơn hàng đã lấy, không thể hủy")
        push(parcel, p.CANCELLED, book.move(parcel, p.CANCELLED))
        return JSONResponse({"success": True, "message": "", "log_id": parcel.tracking_number})

    @app.get("/services/label/{label}")
    def label(label: str, request: Request) -> Response:
        if (answer := refused(request)) is not None:
            return answer
        if book.get(label) is None:
            return _fail("Không tìm thấy đơn hàng", code="ORDER_NOT_FOUND")
        return Response(PDF, media_type="application/pdf")

    @app.post("/_sim/advance")
    async def advance(request: Request) -> JSONResponse:
        body = await request.json()
        parcel = find(str(body.get("label") or f"partner_id:{body.get('partner_id', '')}"))
        if parcel is None:
            return JSONResponse({"error": "no such parcel"}, status_code=404)
        try:
            done = book.advance(parcel, body.get("scenario"), body.get("steps"), push)
        except KeyError:
            return JSONResponse({"error": f"scenarios: {', '.join(p.SCENARIOS)}"}, status_code=422)
        return JSONResponse({"label": parcel.tracking_number, "status": STATUS[parcel.step], "steps": done})

    @app.get("/_sim/orders")
    def orders() -> JSONResponse:
        return JSONResponse({"created": book.created_count, "orders": [view(x) for x in book.all()]})

    return app
