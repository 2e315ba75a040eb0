"""What every carrier adapter offers, in canonical terms.

A carrier adapter is the only code that knows a carrier's paths, auth, envelopes and status names
(CHANNELS.md §5-7); the booking and tracking services above it speak only the types below.

Contract:
- ``book`` is idempotent by ``Parcel.reference`` (our shipment's code, sent as the carrier's client
  order code / requested tracking number): booking the same reference twice returns the first
  booking instead of creating a second parcel.
- Every outbound call raises ``TransientDeliveryError`` (timeouts, 408, 429, 5xx: retry later) or
  ``PermanentDeliveryError`` (any other 4xx, or an error envelope the carrier will keep returning),
  both from ``ordermesh.adapters.outbound``. Callers retry the first and dead-letter the second.
- ``detail`` re-reads a parcel from the carrier; it returns None when the carrier has no pull API
  (Ninja Van VN), in which case only signed webhooks are trusted.
- ``verify_webhook`` checks the carrier's own proof (Ninja Van's HMAC header, or the per-account
  secret in the URL for GHN and GHTK, which sign nothing) in constant time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol


class CarrierState(StrEnum):
    """The canonical shipment states of CHANNELS.md §9.1 as a carrier reports them."""

    LABEL_CREATED = "label_created"  # booked, tracking allocated, not yet collected
    PICKING = "picking"  # a driver is on the way to collect
    PICKUP_FAILED = "pickup_failed"  # collection attempted and failed (retried by the carrier)
    PICKED_UP = "picked_up"  # collected: the parcel has left the node
    IN_TRANSIT = "in_transit"  # between hubs
    OUT_FOR_DELIVERY = "out_for_delivery"  # on a vehicle or at a pickup point
    DELIVERY_FAILED = "delivery_failed"  # an attempt failed; the carrier retries
    DELIVERED = "delivered"  # received by the buyer (terminal)
    RETURNING = "returning"  # on its way back to the sender
    RETURNED = "returned"  # back at the sender (terminal)
    CANCELLED = "cancelled"  # booking withdrawn before pickup (terminal)
    LOST = "lost"  # lost by the carrier (terminal)
    DAMAGED = "damaged"  # damaged by the carrier (terminal)
    EXCEPTION = "exception"  # needs a human (return failed, COD rejected...)


TERMINAL_STATES = frozenset(
    {CarrierState.DELIVERED, CarrierState.RETURNED, CarrierState.CANCELLED, CarrierState.LOST, CarrierState.DAMAGED}
)
# States that mean the carrier has the parcel (or had it): the node has handed it over.
HANDED_OVER_STATES = frozenset(
    {
        CarrierState.PICKED_UP,
        CarrierState.IN_TRANSIT,
        CarrierState.OUT_FOR_DELIVERY,
        CarrierState.DELIVERY_FAILED,
        CarrierState.DELIVERED,
        CarrierState.RETURNING,
        CarrierState.RETURNED,
        CarrierState.LOST,
        CarrierState.DAMAGED,
    }
)


class Inspection(StrEnum):
    """What the buyer may do with the parcel at the door (GHN ``required_note``)."""

    TRY = "try"  # open and try the goods
    VIEW = "view"  # open and look, not try
    NONE = "none"  # no opening before paying


@dataclass(frozen=True, slots=True)
class CarrierAddress:
    name: str
    phone: str
    line1: str
    ward: str | None = None
    district: str | None = None
    province: str | None = None
    country: str = "VN"
    postal_code: str | None = None
    # Carrier master-data codes when the address carries them (GHN district id / ward code).
    district_id: int | None = None
    ward_code: str | None = None


@dataclass(frozen=True, slots=True)
class ParcelItem:
    name: str
    code: str
    quantity: int
    price: Decimal
    weight_grams: int = 0


@dataclass(frozen=True, slots=True)
class Parcel:
    """One shipment to book. ``reference`` is our idempotency key at the carrier."""

    reference: str
    sender: CarrierAddress
    recipient: CarrierAddress
    weight_grams: int
    items: tuple[ParcelItem, ...]
    service: str | None = None  # the account's service level (GHN service_type_id, NV Standard/Express...)
    cod_amount: Decimal = Decimal(0)
    declared_value: Decimal = Decimal(0)
    inspection: Inspection = Inspection.VIEW
    length_cm: int = 10
    width_cm: int = 10
    height_cm: int = 10
    note: str | None = None
    order_reference: str | None = None  # the merchant's order number, shown on the label


@dataclass(frozen=True, slots=True)
class Booking:
    tracking_number: str
    fee: Decimal | None = None
    expected_delivery_at: datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quote:
    service: str
    fee: Decimal
    expected_delivery_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class TrackingUpdate:
    """One tracking event from a webhook or a detail call. ``state`` is None for events that are
    recorded but never change state (GHTK shipper reports, weight or fee updates)."""

    tracking_number: str | None
    reference: str | None  # our client order code, when the carrier echoes it
    raw_status: str
    state: CarrierState | None
    event_time: datetime
    dedupe_key: str
    note: str | None = None
    cod_collected: Decimal | None = None  # what the carrier says it collected
    cod_reconciled: bool = False  # the carrier has paid the COD over (GHTK 6, GHN COD transfer date)
    fee: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ParcelDetail:
    tracking_number: str
    raw_status: str
    state: CarrierState | None
    updated_at: datetime | None = None
    cod_collected: Decimal | None = None
    cod_reconciled: bool = False


class NotSupported(Exception):
    """The carrier offers no such operation (for example a return request after pickup)."""


class CarrierAdapter(Protocol):
    kind: ClassVar[str]
    credential_names: ClassVar[tuple[str, ...]]  # what ``credentials`` must hold, in the carrier's terms
    has_detail_api: ClassVar[bool]

    def quote(self, parcel: Parcel) -> list[Quote]:
        """Fee (and, where the carrier says, expected delivery) for each enabled service."""
        ...

    def book(self, parcel: Parcel) -> Booking:
        """Create the parcel; idempotent by ``parcel.reference``."""
        ...

    def cancel(self, tracking_number: str, reference: str) -> None:
        """Withdraw a booking not yet picked up."""
        ...

    def return_to_sender(self, tracking_number: str, reference: str) -> None:
        """Ask the carrier to bring a collected parcel back; ``NotSupported`` where it cannot."""
        ...

    def label(self, tracking_number: str) -> tuple[bytes, str]:
        """The printable label document and its content type."""
        ...

    def detail(self, tracking_number: str, reference: str) -> ParcelDetail | None: ...

    def verify_webhook(
        self, *, query: Mapping[str, str], headers: Mapping[str, str], body: bytes, secret: str
    ) -> bool: ...

    def parse_webhook(self, *, headers: Mapping[str, str], body: bytes) -> list[TrackingUpdate]: ...


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, whatever its case (stored inbox headers are a plain dict)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def status_of(error: BaseException) -> int | None:
    """The HTTP status an outbound error carries, if any."""
    for name in ("status", "status_code"):
        value = getattr(error, name, None)
        if isinstance(value, int):
            return value
    return None


def to_decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except ArithmeticError:
        return None
