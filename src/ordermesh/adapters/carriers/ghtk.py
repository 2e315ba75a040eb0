"""GHTK (Giao Hàng Tiết Kiệm): ``Token`` + ``X-Client-Source`` headers, ``{success, message, ...}`` envelopes.

Facts from CHANNELS.md §6. Webhooks are form-encoded POSTs authenticated only by the ``hash`` query
parameter we registered (no HMAC). Shipper-report codes (123, 127, 128, 45, 49, 410) are recorded,
never applied as states.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote

import httpx

from ordermesh.adapters.carriers.base import (
    Booking,
    CarrierState,
    NotSupported,
    Parcel,
    ParcelDetail,
    Quote,
    TrackingUpdate,
    header,
    to_decimal,
)
from ordermesh.adapters.outbound import PermanentDeliveryError, call

STATUS_MAP: dict[int, CarrierState] = {
    -1: CarrierState.CANCELLED,
    1: CarrierState.LABEL_CREATED,
    2: CarrierState.LABEL_CREATED,
    12: CarrierState.PICKING,
    8: CarrierState.PICKING,  # pickup delayed
    7: CarrierState.PICKUP_FAILED,
    3: CarrierState.PICKED_UP,
    10: CarrierState.IN_TRANSIT,  # delivery delayed
    4: CarrierState.OUT_FOR_DELIVERY,
    9: CarrierState.DELIVERY_FAILED,
    5: CarrierState.DELIVERED,
    6: CarrierState.DELIVERED,  # delivered and COD reconciled
    20: CarrierState.RETURNING,
    21: CarrierState.RETURNED,
    11: CarrierState.RETURNED,  # return debt reconciled
    13: CarrierState.LOST,  # compensation (lost or damaged)
}
SHIPPER_REPORTS = frozenset({123, 127, 128, 45, 49, 410})
RECONCILED = 6
CANCELLABLE = frozenset({1, 2, 12})
_VIETNAM = timezone(timedelta(hours=7))


def map_status(code: int) -> CarrierState | None:
    """The canonical state of a GHTK ``status_id``; None for shipper reports and unknown codes."""
    return None if code in SHIPPER_REPORTS else STATUS_MAP.get(code)


def parse_time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    for candidate in (text.replace("Z", "+00:00"), text.replace(" ", "T")):
        try:
            moment = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if moment.tzinfo is None:  # GHTK's own clock is Vietnam time
            moment = moment.replace(tzinfo=_VIETNAM)
        return moment.astimezone(UTC)
    return None


class GhtkAdapter:
    kind: ClassVar[str] = "ghtk"
    credential_names: ClassVar[tuple[str, ...]] = ("token", "client_source")
    has_detail_api: ClassVar[bool] = True

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = credentials["token"]
        self.client_source = credentials["client_source"]
        self.client = client

    def _headers(self) -> dict[str, str]:
        return {"Token": self.token, "X-Client-Source": self.client_source}

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = call(self.client, method, f"{self.base_url}{path}", headers=self._headers(), **kwargs)
        envelope = response.json()
        if not isinstance(envelope, dict):
            raise PermanentDeliveryError(f"GHTK {path}: unexpected answer")
        if envelope.get("success") is False:
            error = envelope.get("error") or {}
            code = error.get("code") if isinstance(error, dict) else None
            raise GhtkRefused(f"GHTK {path}: {envelope.get('message') or 'refused'}", code=code)
        return envelope

    def create_body(self, parcel: Parcel) -> dict[str, Any]:
        sender, recipient = parcel.sender, parcel.recipient
        return {
            "products": [
                {
                    "name": item.name,
                    "weight": round(max(item.weight_grams, 1) / 1000, 3),  # kg
                    "quantity": item.quantity,
                    "product_code": item.code,
                    "price": int(item.price),
                }
                for item in parcel.items
            ],
            "order": {
                "id": parcel.reference,
                "pick_name": sender.name,
                "pick_address": sender.line1,
                "pick_province": sender.province or "",
                "pick_district": sender.district or "",
                "pick_ward": sender.ward or "",
                "pick_tel": sender.phone,
                "name": recipient.name,
                "tel": recipient.phone,
                "address": recipient.line1,
                "province": recipient.province or "",
                "district": recipient.district or "",
                "ward": recipient.ward or "",
                "hamlet": "Khác",
                "is_freeship": "1",  # the shop pays the fee; pick_money is only the goods
                "pick_money": int(parcel.cod_amount),
                "value": int(parcel.declared_value),
                "note": parcel.note or "",
                "transport": "fly" if (parcel.service or "").lower() == "fly" else "road",
                "pick_option": "cod",
                "deliver_option": "none",
            },
        }

    def quote(self, parcel: Parcel) -> list[Quote]:
        transport = "fly" if (parcel.service or "").lower() == "fly" else "road"
        params: dict[str, str | int] = {
            "pick_province": parcel.sender.province or "",
            "pick_district": parcel.sender.district or "",
            "province": parcel.recipient.province or "",
            "district": parcel.recipient.district or "",
            "weight": max(1, parcel.weight_grams),
            "value": int(parcel.declared_value),
            "transport": transport,
            "deliver_option": "none",
        }
        envelope = self._request("GET", "/services/shipment/fee", params=params)
        fee = envelope.get("fee") or {}
        if not fee.get("delivery", True):
            return []
        return [Quote(service=transport, fee=Decimal(int(fee.get("fee", 0))))]

    def book(self, parcel: Parcel) -> Booking:
        try:
            envelope = self._request("POST", "/services/shipment/order/?ver=1.5", json=self.create_body(parcel))
        except PermanentDeliveryError:
            # A retry after a lost answer: GHTK refuses the repeated id (ORDER_ID_EXIST; [U] whether as
            # HTTP 200 with success false or as a 4xx). If the first attempt created it, that is the booking.
            try:
                order = self._status(f"partner_id:{parcel.reference}")
            except PermanentDeliveryError:
                order = {}
            if not order.get("label_id"):
                raise
            return Booking(tracking_number=str(order["label_id"]), fee=to_decimal(order.get("ship_money")), raw=order)
        order = envelope.get("order") or {}
        return Booking(
            tracking_number=str(order["label"]),
            fee=to_decimal(order.get("fee")),
            expected_delivery_at=parse_time(order.get("estimated_deliver_time")),
            raw=order,
        )

    def _status(self, key: str) -> dict[str, Any]:
        order = self._request("GET", f"/services/shipment/v2/{quote(key, safe=':')}").get("order")
        if not isinstance(order, dict):
            raise PermanentDeliveryError(f"GHTK has no order {key}")
        return order

    def cancel(self, tracking_number: str, reference: str) -> None:
        self._request("POST", f"/services/shipment/cancel/{quote(tracking_number)}")

    def return_to_sender(self, tracking_number: str, reference: str) -> None:
        raise NotSupported("GHTK offers no return request through its API; ask GHTK support")

    def label(self, tracking_number: str) -> tuple[bytes, str]:
        response = call(
            self.client, "GET", f"{self.base_url}/services/label/{quote(tracking_number)}", headers=self._headers()
        )
        return response.content, response.headers.get("content-type", "application/pdf").split(";")[0]

    def detail(self, tracking_number: str, reference: str) -> ParcelDetail | None:
        order = self._status(tracking_number)
        code = int(order.get("status", 0))
        return ParcelDetail(
            tracking_number=str(order.get("label_id", tracking_number)),
            raw_status=str(code),
            state=map_status(code),
            updated_at=parse_time(order.get("modified")),
            cod_collected=to_decimal(order.get("pick_money")) if code in (5, 6) else None,
            cod_reconciled=code == RECONCILED,
        )

    def verify_webhook(self, *, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        # GHTK signs nothing: the ``hash`` we registered in the URL is the only proof.
        return hmac.compare_digest(query.get("hash", "").encode(), secret.encode())

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[TrackingUpdate]:
        content_type = (header(headers, "content-type") or "").lower()
        fields: dict[str, Any]
        if "json" in content_type:
            fields = dict(json.loads(body))
        else:
            fields = {k: v[-1] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
        if not fields.get("label_id") or fields.get("status_id") in (None, ""):
            raise ValueError("a GHTK webhook carries label_id and status_id")
        code = int(fields["status_id"])
        moment = parse_time(fields.get("action_time")) or datetime.now(UTC)
        return [
            TrackingUpdate(
                tracking_number=str(fields["label_id"]),
                reference=str(fields.get("partner_id") or "") or None,
                raw_status=str(code),
                state=map_status(code),
                event_time=moment,
                dedupe_key=f"{fields['label_id']}:{code}:{fields.get('action_time')}",
                note=str(fields.get("reason") or "") or None,
                cod_collected=to_decimal(fields.get("pick_money")) if code in (5, 6) else None,
                cod_reconciled=code == RECONCILED,
                fee=to_decimal(fields.get("fee")),
            )
        ]


class GhtkRefused(PermanentDeliveryError):
    """GHTK answered ``success: false``; ``code`` is its error code when it gives one."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code
