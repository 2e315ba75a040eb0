"""A local Ninja Van: ``/{cc}/2.0/oauth/access_token`` (client credentials), ``/{cc}/4.2/orders`` (and
4.1), ``DELETE /{cc}/2.2/orders/{tracking}``, ``/{cc}/2.0/reports/waybill``; v2 webhooks pushed to
``push_url`` signed with ``X-Ninjavan-Hmac-Sha256`` (base64 HMAC-SHA256 of the body, key = client secret).

Control: ``POST /_sim/expire_tokens`` revokes every issued token (the next call answers 401);
``POST /_sim/advance`` and ``/_sim/control`` as in the GHN simulator; ``GET /_sim/orders``.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ordermesh.adapters.carriers.ninjavan import SIGNATURE_HEADER, signature
from ordermesh.simulators import parcels as p
from ordermesh.simulators.common import carrier_app

COUNTRIES = ("sg", "my", "th", "id", "vn", "ph", "mm")
TRACKING_PATTERN = re.compile(r"^([a-zA-Z0-9]+[-])*[a-zA-Z0-9]+$")
EVENTS = {
    p.CREATED: ("Pending Pickup", "Pending"),
    p.PICKING: ("Driver dispatched for Pickup", "Pending"),
    p.PICKED: ("Picked Up, In Transit to Origin Hub", "Transit"),
    p.IN_TRANSIT: ("Arrived at Transit Hub", "Transit"),
    p.DELIVERING: ("On Vehicle for Delivery", "Transit"),
    p.DELIVERED: ("Delivered, Received by Customer", "Completed"),
    p.DELIVERY_FAILED: ("Delivery Exception, Pending Reschedule", "Delivery Exception"),
    p.RETURNING: ("Delivery Exception, Return to Sender Initiated", "Return to Sender"),
    p.RETURNED: ("Returned to Sender", "Returned to Sender"),
    p.LOST: ("Delivery Exception, Parcel Lost", "Delivery Exception"),
    p.CANCELLED: ("Cancelled", "Cancelled"),
}
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def _error(status: int, title: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"title": title, "message": message}}, status_code=status)


def create_app(
    client_id: str = "nv-client",
    client_secret: str = "nv-secret",
    push_url: str | None = None,
    zones: Mapping[str, Mapping[str, int]] | None = None,
    token_ttl_seconds: int = 43200,
) -> FastAPI:
    app, pusher, control = carrier_app("Ninja Van simulator", push_url, tokens_issued=0)
    book = p.ParcelBook("NV")
    table = p.ZoneTable(zones or p.DEFAULT_ZONES)
    tokens: dict[str, float] = {}  # token -> expiry (time.time())
    app.state.book = book

    def unauthorised(request: Request) -> JSONResponse | None:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        expiry = tokens.get(value)
        if scheme.lower() != "bearer" or expiry is None or expiry <= time.time():
            return _error(401, "UNAUTHORIZED", "access token missing, invalid or expired")
        return None

    def rts_leg(step: str) -> bool:
        return step in (p.RETURNING, p.RETURNED)

    def push(parcel: p.SimParcel, step: str, when: datetime) -> None:
        url = control["push_url"]
        if not url or step.endswith("_report") or step == p.RECONCILED:
            return
        event, status = EVENTS[step]
        body: dict[str, Any] = {
            "tracking_id": parcel.tracking_number,
            "shipper_order_ref_no": parcel.reference,
            "timestamp": when.isoformat(),
            "event": event,
            "status": status,
            "is_parcel_on_rts_leg": rts_leg(step),
        }
        if step == p.DELIVERY_FAILED:
            body["delivery_exception"] = {"failure_reason": "Customer not at home"}
        if step == p.DELIVERED:
            body["delivery_information"] = {"cod_collected": parcel.cod_amount}
        raw = json.dumps(body).encode()
        pusher.send(url, raw, {"Content-Type": "application/json", SIGNATURE_HEADER: signature(client_secret, raw)})

    @app.post("/{cc}/2.0/oauth/access_token")
    async def access_token(cc: str, request: Request) -> JSONResponse:
        if cc not in COUNTRIES:
            return _error(404, "NOT_FOUND", f"unknown country {cc}")
        body = await request.json()
        if body.get("grant_type") != "client_credentials":
            return _error(400, "INVALID_GRANT", "grant_type must be client_credentials")
        if body.get("client_id") != client_id or body.get("client_secret") != client_secret:
            return _error(401, "INVALID_CLIENT", "client_id or client_secret is wrong")
        value = secrets.token_hex(16)
        expires = time.time() + token_ttl_seconds
        tokens[value] = expires
        control["tokens_issued"] += 1
        return JSONResponse(
            {"access_token": value, "expires": int(expires), "expires_in": token_ttl_seconds, "token_type": "bearer"}
        )

    def create_order(cc: str, body: dict[str, Any], request: Request) -> JSONResponse:
        if (answer := unauthorised(request)) is not None:
            return answer
        problems = [k for k in ("service_type", "service_level", "from", "to", "parcel_job") if not body.get(k)]
        requested = str(body.get("requested_tracking_number") or "")
        if requested and not TRACKING_PATTERN.match(requested):
            problems.append("requested_tracking_number")
        if problems:
            return _error(400, "REQUEST_ERR", f"invalid fields: {', '.join(problems)}")
        if requested and book.get(requested) is not None:
            return _error(400, "DUPLICATE_ORDER", f"requested_tracking_number {requested} already exists")
        job = body["parcel_job"]
        weight = int(float((job.get("dimensions") or {}).get("weight") or 0.5) * 1000)
        zone = table.zone(body["from"].get("address", {}).get("city"), body["to"].get("address", {}).get("city"))
        parcel = book.create(
            requested or secrets.token_hex(5),
            dict(body),
            table.fee(zone, weight),
            int(job.get("cash_on_delivery") or 0),
            tracking=requested or None,
        )
        push(parcel, p.CREATED, parcel.created_at)
        if control["slow_create_seconds"]:
            time.sleep(float(control["slow_create_seconds"]))
        return JSONResponse({**body, "tracking_number": parcel.tracking_number})

    @app.post("/{cc}/4.2/orders")
    def create_42(cc: str, body: dict[str, Any], request: Request) -> JSONResponse:
        return create_order(cc, body, request)

    @app.post("/{cc}/4.1/orders")
    def create_41(cc: str, body: dict[str, Any], request: Request) -> JSONResponse:
        return create_order(cc, body, request)

    @app.delete("/{cc}/2.2/orders/{tracking}")
    def cancel(cc: str, tracking: str, request: Request) -> JSONResponse:
        if (answer := unauthorised(request)) is not None:
            return answer
        parcel = book.get(tracking)
        if parcel is None:
            return _error(404, "NOT_FOUND", f"no order {tracking}")
        if parcel.step not in (p.CREATED, p.PICKING):
            return _error(400, "CANNOT_CANCEL", "order already picked up")
        push(parcel, p.CANCELLED, book.move(parcel, p.CANCELLED))
        return JSONResponse({"trackingId": tracking, "status": "Cancelled", "updatedAt": parcel.updated_at.isoformat()})

    @app.get("/{cc}/2.0/reports/waybill")
    def waybill(cc: str, request: Request, tids: str = "") -> Response:
        if (answer := unauthorised(request)) is not None:
            return answer
        if not tids or any(book.get(t) is None for t in tids.split(",")):
            return _error(404, "NOT_FOUND", "unknown tracking ids")
        return Response(PDF, media_type="application/pdf")

    @app.post("/_sim/expire_tokens")
    def expire_tokens() -> JSONResponse:
        tokens.clear()
        return JSONResponse({"expired": True})

    @app.post("/_sim/advance")
    async def advance(request: Request) -> JSONResponse:
        body = await request.json()
        parcel = book.get(str(body.get("tracking_number", "")))
        if parcel is None:
            return JSONResponse({"error": "no such parcel"}, status_code=404)
        try:
            done = book.advance(parcel, body.get("scenario"), body.get("steps"), push)
        except KeyError:
            return JSONResponse({"error": f"scenarios: {', '.join(p.SCENARIOS)}"}, status_code=422)
        return JSONResponse({"tracking_number": parcel.tracking_number, "event": EVENTS[parcel.step][0], "steps": done})

    @app.get("/_sim/orders")
    def orders() -> JSONResponse:
        return JSONResponse(
            {
                "created": book.created_count,
                "orders": [
                    {
                        "tracking_number": x.tracking_number,
                        "event": EVENTS.get(x.step, (x.step,))[0],
                        "cod": x.cod_amount,
                    }
                    for x in book.all()
                ],
            }
        )

    return app
