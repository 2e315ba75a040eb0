"""Ninja Van: OAuth client credentials, order create v4.2, HMAC-signed webhooks (CHANNELS.md §7).

``base_url`` is the host with the country prefix, e.g. ``https://api.ninjavan.co/vn`` (sandbox:
``https://api-sandbox.ninjavan.co/sg``). Tokens are cached per (base URL, client id) for every adapter
in the process, refreshed 5 minutes before they expire and after any 401. The VN reference has no
pull/status API, so ``detail`` returns None and only signed webhooks move a parcel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import quote

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
    status_of,
    to_decimal,
)
from ordermesh.adapters.outbound import PermanentDeliveryError, call

SIGNATURE_HEADER = "X-Ninjavan-Hmac-Sha256"
REFRESH_MARGIN_SECONDS = 300.0
SERVICE_LEVELS = ("Standard", "Express", "Sameday", "Nextday")
TRACKING_NUMBER_LENGTH = 20  # kept short: accounts with a prefix add theirs in front


def signature(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(client secret, raw body)): what Ninja Van sends in ``X-Ninjavan-Hmac-Sha256``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def map_event(event: str, on_rts_leg: bool = False) -> CarrierState | None:
    """The canonical state of a v2 webhook ``event`` (matched case-insensitively, as capitalisation varies)."""
    text = " ".join(event.lower().replace(",", " , ").split()).replace(" ,", ",")
    if text.startswith("returned to sender"):
        return CarrierState.RETURNED
    if text.startswith("cancelled"):
        return CarrierState.CANCELLED
    if text.startswith("return to shipper exception"):
        return CarrierState.EXCEPTION
    if text.startswith("delivery exception"):
        if "parcel lost" in text:
            return CarrierState.LOST
        if "parcel damaged" in text:
            return CarrierState.DAMAGED
        if "return to sender initiated" in text:
            return CarrierState.RETURNING
        return CarrierState.RETURNING if on_rts_leg else CarrierState.DELIVERY_FAILED
    if text.startswith("delivered"):
        return CarrierState.DELIVERED
    if on_rts_leg:
        return CarrierState.RETURNING
    if text.startswith("pickup exception"):
        return CarrierState.PICKUP_FAILED
    if text.startswith("pending pickup"):
        return CarrierState.LABEL_CREATED
    if text.startswith("driver dispatched for pickup"):
        return CarrierState.PICKING
    if text.startswith("picked up"):
        return CarrierState.PICKED_UP
    if text.startswith(("arrived at", "in transit to next sorting hub", "international transit")):
        return CarrierState.IN_TRANSIT
    if text.startswith(("on vehicle for delivery", "at pudo")):
        return CarrierState.OUT_FOR_DELIVERY
    return None  # "Parcel Measurements Update" and anything new: recorded, not applied


def requested_tracking_number(reference: str) -> str:
    """Our shipment reference in the pattern Ninja Van accepts (``^([a-zA-Z0-9]+[-])*[a-zA-Z0-9]+$``)."""
    parts = ["".join(c for c in part if c.isascii() and c.isalnum()) for part in reference.split("-")]
    return "-".join(p for p in parts if p)[:TRACKING_NUMBER_LENGTH].strip("-")


@dataclass
class _Token:
    value: str
    expires_at: float  # time.time() seconds


class TokenCache:
    """Access tokens shared by every adapter of the process, keyed by (base URL, client id)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._lock = threading.Lock()
        self.clock = clock

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            token = self._tokens.get(key)
            if token is None or token.expires_at - REFRESH_MARGIN_SECONDS <= self.clock():
                return None
            return token.value

    def put(self, key: tuple[str, str], value: str, expires_at: float) -> None:
        with self._lock:
            self._tokens[key] = _Token(value, expires_at)

    def forget(self, key: tuple[str, str], value: str) -> None:
        with self._lock:
            if (token := self._tokens.get(key)) is not None and token.value == value:
                del self._tokens[key]


TOKENS = TokenCache()


class NinjaVanAdapter:
    kind: ClassVar[str] = "ninjavan"
    credential_names: ClassVar[tuple[str, ...]] = ("client_id", "client_secret", "country_code")
    has_detail_api: ClassVar[bool] = False

    def __init__(
        self,
        base_url: str,
        credentials: Mapping[str, str],
        client: httpx.Client,
        *,
        tokens: TokenCache | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.client_id = credentials["client_id"]
        self.client_secret = credentials["client_secret"]
        self.country_code = credentials.get("country_code", "VN").upper()
        self.client = client
        self.tokens = tokens or TOKENS

    # -- auth ---------------------------------------------------------------------------------
    @property
    def _key(self) -> tuple[str, str]:
        return (self.base_url, self.client_id)

    def access_token(self) -> str:
        cached = self.tokens.get(self._key)
        if cached is not None:
            return cached
        response = call(
            self.client,
            "POST",
            f"{self.base_url}/2.0/oauth/access_token",
            json={
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "grant_type": "client_credentials",
            },
        )
        data = response.json()
        token = data.get("access_token") if isinstance(data, dict) else None
        if not token:
            raise PermanentDeliveryError("Ninja Van issued no access_token")
        now = self.tokens.clock()
        expires = data.get("expires")
        expires_at = float(expires) if expires else now + float(data.get("expires_in") or 3600)
        self.tokens.put(self._key, str(token), expires_at)
        return str(token)

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """An authenticated call; a 401 drops the cached token and retries once with a new one."""
        for attempt in (1, 2):
            token = self.access_token()
            headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
            try:
                return call(self.client, method, f"{self.base_url}{path}", headers=headers, **kwargs)
            except PermanentDeliveryError as error:
                if status_of(error) != 401 or attempt == 2:
                    raise
                self.tokens.forget(self._key, token)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- requests -----------------------------------------------------------------------------
    def _address(self, address: Any) -> dict[str, Any]:
        return {
            "address1": address.line1,
            "address2": "",
            "ward": address.ward or "",
            "district": address.district or "",
            "city": address.province or "",
            "country": (address.country or self.country_code).upper(),
            "address_type": "home",
            **({"postcode": address.postal_code} if address.postal_code else {}),
        }

    def service_level(self, parcel: Parcel) -> str:
        wanted = (parcel.service or "Standard").capitalize()
        return wanted if wanted in SERVICE_LEVELS else "Standard"

    def create_body(self, parcel: Parcel) -> dict[str, Any]:
        return {
            "service_type": "Parcel",
            "service_level": self.service_level(parcel),
            "requested_tracking_number": requested_tracking_number(parcel.reference),
            "reference": {"merchant_order_number": parcel.order_reference or parcel.reference},
            "from": {
                "name": parcel.sender.name,
                "phone_number": parcel.sender.phone,
                "address": self._address(parcel.sender),
            },
            "to": {
                "name": parcel.recipient.name,
                "phone_number": parcel.recipient.phone,
                "address": self._address(parcel.recipient),
            },
            "parcel_job": {
                "is_pickup_required": True,
                "pickup_service_type": "Scheduled",
                "pickup_service_level": "Standard",
                "pickup_address": {
                    "name": parcel.sender.name,
                    "phone_number": parcel.sender.phone,
                    "address": self._address(parcel.sender),
                },
                "pickup_date": datetime.now(UTC).date().isoformat(),
                "pickup_timeslot": {"start_time": "09:00", "end_time": "18:00", "timezone": "Asia/Ho_Chi_Minh"},
                "delivery_start_date": datetime.now(UTC).date().isoformat(),
                "delivery_timeslot": {"start_time": "09:00", "end_time": "22:00", "timezone": "Asia/Ho_Chi_Minh"},
                "delivery_instructions": parcel.note or "",
                "allow_weekend_delivery": True,
                "cash_on_delivery": float(parcel.cod_amount) if parcel.cod_amount else None,
                "insured_value": float(parcel.declared_value) if parcel.declared_value else None,
                "dimensions": {
                    "weight": round(max(parcel.weight_grams, 1) / 1000, 3),  # kg
                    "length": parcel.length_cm,
                    "width": parcel.width_cm,
                    "height": parcel.height_cm,
                },
                "items": [
                    {"item_description": item.name, "quantity": item.quantity, "is_dangerous_good": False}
                    for item in parcel.items
                ],
            },
        }

    # -- the contract -------------------------------------------------------------------------
    def quote(self, parcel: Parcel) -> list[Quote]:
        # [U] Ninja Van publishes tariffs per contract, not a pricing endpoint we could confirm;
        # routing falls back to the account's rate cards for it.
        raise NotSupported("Ninja Van has no documented quote endpoint")

    def book(self, parcel: Parcel) -> Booking:
        requested = requested_tracking_number(parcel.reference)
        try:
            response = self._call("POST", "/4.2/orders", json=self.create_body(parcel))
        except PermanentDeliveryError as error:
            # The requested tracking number is our idempotency key: a 4xx saying it is taken means
            # the first (timed out) attempt created the order. [U] Ninja Van's exact duplicate error.
            if status_of(error) in (400, 409) and "exist" in str(error).lower():
                return Booking(tracking_number=requested, raw={"duplicate": True})
            raise
        data = response.json()
        return Booking(tracking_number=str(data.get("tracking_number") or requested), raw=data)

    def cancel(self, tracking_number: str, reference: str) -> None:
        self._call("DELETE", f"/2.2/orders/{quote(tracking_number)}")

    def return_to_sender(self, tracking_number: str, reference: str) -> None:
        raise NotSupported("Ninja Van's API has no return-to-sender request; ask Ninja Van support")

    def label(self, tracking_number: str) -> tuple[bytes, str]:
        response = self._call("GET", "/2.0/reports/waybill", params={"tids": tracking_number})
        return response.content, response.headers.get("content-type", "application/pdf").split(";")[0]

    def detail(self, tracking_number: str, reference: str) -> ParcelDetail | None:
        return None

    def verify_webhook(self, *, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, secret: str) -> bool:
        given = header(headers, SIGNATURE_HEADER)
        if not given:
            return False
        return hmac.compare_digest(given.encode(), signature(self.client_secret, body).encode())

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[TrackingUpdate]:
        payload = json.loads(body)
        if not isinstance(payload, dict) or not payload.get("tracking_id") or not payload.get("event"):
            raise ValueError("a Ninja Van webhook carries tracking_id and event")
        event = str(payload["event"])
        moment = _parse_time(payload.get("timestamp")) or datetime.now(UTC)
        state = map_event(event, bool(payload.get("is_parcel_on_rts_leg")))
        exception = payload.get("delivery_exception") or payload.get("pickup_exception") or {}
        cod = (
            (payload.get("delivery_information") or {}).get("cod_collected")
            if state is CarrierState.DELIVERED
            else None
        )
        return [
            TrackingUpdate(
                tracking_number=str(payload["tracking_id"]),
                reference=payload.get("shipper_order_ref_no") or None,
                raw_status=event,
                state=state,
                event_time=moment,
                dedupe_key=f"{payload['tracking_id']}:{event}:{payload.get('timestamp')}",
                note=exception.get("failure_reason") if isinstance(exception, dict) else None,
                cod_collected=to_decimal(cod),
            )
        ]


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
