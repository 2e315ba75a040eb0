"""GHN (Giao Hàng Nhanh): static ``Token`` + ``ShopId`` headers, JSON envelopes ``{code, message, data}``.

Facts from CHANNELS.md §5. GHN signs no webhook: the route checks a per-account secret in the URL, and
the tracking service re-reads every terminal state through ``detail`` before acting on it.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from ordermesh.adapters.carriers.base import (
    Booking,
    CarrierState,
    Inspection,
    NotSupported,
    Parcel,
    ParcelDetail,
    Quote,
    TrackingUpdate,
    to_decimal,
)
from ordermesh.adapters.outbound import PermanentDeliveryError, call

STATUS_MAP: dict[str, CarrierState] = {
    "ready_to_pick": CarrierState.LABEL_CREATED,
    "picking": CarrierState.PICKING,
    "money_collect_picking": CarrierState.PICKING,
    "picked": CarrierState.PICKED_UP,
    "storing": CarrierState.IN_TRANSIT,
    "transporting": CarrierState.IN_TRANSIT,
    "sorting": CarrierState.IN_TRANSIT,
    "delivering": CarrierState.OUT_FOR_DELIVERY,
    "money_collect_delivering": CarrierState.OUT_FOR_DELIVERY,
    "delivery_fail": CarrierState.DELIVERY_FAILED,
    "delivered": CarrierState.DELIVERED,
    "waiting_to_return": CarrierState.RETURNING,
    "return": CarrierState.RETURNING,
    "return_transporting": CarrierState.RETURNING,
    "return_sorting": CarrierState.RETURNING,
    "returning": CarrierState.RETURNING,
    "return_fail": CarrierState.EXCEPTION,
    "returned": CarrierState.RETURNED,
    "cancel": CarrierState.CANCELLED,
    "exception": CarrierState.EXCEPTION,
    "damage": CarrierState.DAMAGED,
    "lost": CarrierState.LOST,
}

REQUIRED_NOTE = {
    Inspection.TRY: "CHOTHUHANG",
    Inspection.VIEW: "CHOXEMHANGKHONGTHU",
    Inspection.NONE: "KHONGCHOXEMHANG",
}
DEFAULT_SERVICE_TYPE = 2  # e-commerce standard
MAX_WEIGHT_GRAMS = 50_000
MAX_SIDE_CM = 200
MAX_COD = Decimal(50_000_000)


def map_status(raw: str) -> CarrierState | None:
    return STATUS_MAP.get(raw.strip().lower())


def parse_time(value: Any) -> datetime | None:
    """GHN times are ISO 8601 (``Time``, ``expected_delivery_time``) or unix seconds (``leadtime``)."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


class GhnAdapter:
    kind: ClassVar[str] = "ghn"
    credential_names: ClassVar[tuple[str, ...]] = ("token", "shop_id")
    has_detail_api: ClassVar[bool] = True

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = credentials["token"]
        self.shop_id = str(credentials["shop_id"])
        self.client = client

    # -- plumbing ---------------------------------------------------------------------------
    def _post(self, path: str, body: Mapping[str, Any], *, shop: bool = True) -> Any:
        headers = {"Token": self.token, "Content-Type": "application/json"}
        if shop:
            headers["ShopId"] = self.shop_id
        response = call(self.client, "POST", f"{self.base_url}{path}", headers=headers, content=json.dumps(body))
        envelope = response.json()
        if not isinstance(envelope, dict) or envelope.get("code") != 200:
            message = envelope.get("message") if isinstance(envelope, dict) else None
            raise PermanentDeliveryError(f"GHN {path}: {message or 'unexpected answer'}")
        return envelope.get("data")

    # -- requests ----------------------------------------------------------------------------
    def service_type_id(self, parcel: Parcel) -> int:
        try:
            return int(parcel.service) if parcel.service else DEFAULT_SERVICE_TYPE
        except ValueError:
            return DEFAULT_SERVICE_TYPE

    def create_body(self, parcel: Parcel) -> dict[str, Any]:
        if parcel.weight_grams > MAX_WEIGHT_GRAMS:
            raise PermanentDeliveryError(f"GHN takes parcels up to {MAX_WEIGHT_GRAMS} g")
        if parcel.cod_amount > MAX_COD:
            raise PermanentDeliveryError(f"GHN collects at most {MAX_COD} VND on delivery")
        sender, recipient = parcel.sender, parcel.recipient
        body: dict[str, Any] = {
            "payment_type_id": 1,  # the shop pays the fee; the buyer pays cod_amount
            "required_note": REQUIRED_NOTE[parcel.inspection],
            "client_order_code": parcel.reference[:50],
            "note": parcel.note or "",
            "from_name": sender.name,
            "from_phone": sender.phone,
            "from_address": sender.line1,
            "from_ward_name": sender.ward or "",
            "from_district_name": sender.district or "",
            "from_province_name": sender.province or "",
            "to_name": recipient.name,
            "to_phone": recipient.phone,
            "to_address": recipient.line1,
            "to_province_name": recipient.province or "",
            "cod_amount": int(parcel.cod_amount),
            "insurance_value": int(parcel.declared_value),
            "content": ", ".join(item.name for item in parcel.items)[:2000],
            "weight": max(1, parcel.weight_grams),
            "length": min(parcel.length_cm, MAX_SIDE_CM),
            "width": min(parcel.width_cm, MAX_SIDE_CM),
            "height": min(parcel.height_cm, MAX_SIDE_CM),
            "service_type_id": self.service_type_id(parcel),
            "items": [
                {
                    "name": item.name,
                    "code": item.code,
                    "quantity": item.quantity,
                    "price": int(item.price),
                    "weight": item.weight_grams,
                }
                for item in parcel.items
            ],
        }
        # Master-data codes when known, names otherwise (GHN accepts either).
        if recipient.district_id is not None:
            body["to_district_id"] = recipient.district_id
        else:
            body["to_district_name"] = recipient.district or ""
        if recipient.ward_code:
            body["to_ward_code"] = recipient.ward_code
        else:
            body["to_ward_name"] = recipient.ward or ""
        return body

    # -- the contract ------------------------------------------------------------------------
    def quote(self, parcel: Parcel) -> list[Quote]:
        if parcel.recipient.district_id is None or not parcel.recipient.ward_code:
            raise NotSupported(
                "GHN quotes need the destination's district id and ward code (ghn_district_id, ghn_ward_code)"
            )
        route = {
            "from_district_id": parcel.sender.district_id,
            "from_ward_code": parcel.sender.ward_code,
            "to_district_id": parcel.recipient.district_id,
            "to_ward_code": parcel.recipient.ward_code,
        }
        route = {k: v for k, v in route.items() if v is not None}
        service_type = self.service_type_id(parcel)
        fee = self._post(
            "/v2/shipping-order/fee",
            {
                **route,
                "service_type_id": service_type,
                "weight": max(1, parcel.weight_grams),
                "length": parcel.length_cm,
                "width": parcel.width_cm,
                "height": parcel.height_cm,
                "insurance_value": int(min(parcel.declared_value, Decimal(5_000_000))),
                "cod_value": int(parcel.cod_amount),
            },
        )
        lead = self._post("/v2/shipping-order/leadtime", {**route, "service_type_id": service_type})
        return [
            Quote(
                service=str(service_type),
                fee=Decimal(int((fee or {}).get("total", 0))),
                expected_delivery_at=parse_time((lead or {}).get("leadtime")),
            )
        ]

    def book(self, parcel: Parcel) -> Booking:
        try:
            data = self._post("/v2/shipping-order/create", self.create_body(parcel))
        except PermanentDeliveryError:
            # A retry after a lost answer: GHN refuses the repeated client_order_code. If the first
            # attempt created the order, that order is the booking.
            existing = self._find_by_reference(parcel.reference)
            if existing is None:
                raise
            return existing
        return Booking(
            tracking_number=str(data["order_code"]),
            fee=to_decimal(data.get("total_fee")),
            expected_delivery_at=parse_time(data.get("expected_delivery_time")),
            raw=data,
        )

    def _find_by_reference(self, reference: str) -> Booking | None:
        try:
            data = self._post("/v2/shipping-order/detail-by-client-code", {"client_order_code": reference[:50]})
        except PermanentDeliveryError:
            return None
        if not data or not data.get("order_code"):
            return None
        return Booking(
            tracking_number=str(data["order_code"]),
            fee=to_decimal(data.get("total_fee")),
            expected_delivery_at=parse_time(data.get("leadtime") or data.get("expected_delivery_time")),
            raw=data,
        )

    def _switch(self, path: str, tracking_number: str) -> None:
        results = self._post(path, {"order_codes": [tracking_number]}) or []
        for result in results:
            if str(result.get("order_code")) == tracking_number and not result.get("result"):
                raise PermanentDeliveryError(f"GHN {path}: {result.get('message') or 'refused'}")

    def cancel(self, tracking_number: str, reference: str) -> None:
        self._switch("/v2/switch-status/cancel", tracking_number)

    def return_to_sender(self, tracking_number: str, reference: str) -> None:
        self._switch("/v2/switch-status/return", tracking_number)

    def label(self, tracking_number: str) -> tuple[bytes, str]:
        data = self._post("/v2/a5/gen-token", {"order_codes": [tracking_number]}, shop=False)
        token = (data or {}).get("token")
        if not token:
            raise PermanentDeliveryError("GHN gen-token answered without a token")
        # The token opens the printable A5 label (valid about 30 minutes). [U] The print page lives on the
        # gateway's host beside the API prefix, not under it.
        origin = self.base_url.removesuffix("/shiip/public-api")
        response = call(self.client, "GET", f"{origin}/a5/public-api/printA5", params={"token": token})
        return response.content, response.headers.get("content-type", "text/html").split(";")[0]

    def detail(self, tracking_number: str, reference: str) -> ParcelDetail | None:
        data = self._post("/v2/shipping-order/detail", {"order_code": tracking_number})
        raw = str(data.get("status", ""))
        return ParcelDetail(
            tracking_number=str(data.get("order_code", tracking_number)),
            raw_status=raw,
            state=map_status(raw),
            updated_at=parse_time(data.get("updated_date")),
            cod_collected=to_decimal(data.get("cod_amount")) if map_status(raw) is CarrierState.DELIVERED else None,
            cod_reconciled=bool(data.get("cod_transfer_date")),
        )

    def verify_webhook(self, *, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        # GHN signs nothing: the secret registered in the webhook URL is the only proof.
        return hmac.compare_digest(query.get("token", "").encode(), secret.encode())

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[TrackingUpdate]:
        payload = json.loads(body)
        if not isinstance(payload, dict) or not payload.get("OrderCode"):
            raise ValueError("a GHN webhook carries OrderCode")
        raw = str(payload.get("Status", ""))
        kind = str(payload.get("Type", "switch_status")).lower()
        moment = parse_time(payload.get("Time")) or datetime.now(UTC)
        # Only status switches (and creation) move a parcel; weight, COD and fee updates are facts.
        state = map_status(raw) if kind in ("switch_status", "create") else None
        transfer = payload.get("CODTransferDate")
        return [
            TrackingUpdate(
                tracking_number=str(payload["OrderCode"]),
                reference=payload.get("ClientOrderCode") or None,
                raw_status=raw if kind == "switch_status" else f"{kind}:{raw}",
                state=state,
                event_time=moment,
                dedupe_key=f"{payload['OrderCode']}:{kind}:{raw}:{payload.get('Time')}",
                note=payload.get("Reason") or payload.get("Description") or None,
                cod_collected=to_decimal(payload.get("CODAmount")) if state is CarrierState.DELIVERED else None,
                cod_reconciled=bool(transfer),
                fee=to_decimal(payload.get("TotalFee")),
            )
        ]
