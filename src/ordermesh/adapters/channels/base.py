"""What every sales-channel adapter offers, in canonical terms.

An adapter is the only code that knows a marketplace's paths, signatures, envelopes and status names. The
services above it (intake, stock sync, fulfilment push) speak only the types below. Adapters raise
``TransientDeliveryError`` (retry later: 5xx, 429, timeouts) or ``PermanentDeliveryError`` (a 4xx the platform will
keep refusing) from ``ordermesh.adapters.outbound`` for every outbound call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, ClassVar, Protocol, runtime_checkable


class ChannelStatus(StrEnum):
    """The canonical order states of CHANNELS.md §9.1, as a platform reports them."""

    PENDING_PAYMENT = "pending_payment"
    ON_HOLD = "on_hold"
    READY_TO_FULFILL = "ready_to_fulfill"
    FULFILLING = "fulfilling"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ChannelAddress:
    name: str | None = None
    phone: str | None = None
    line1: str | None = None
    line2: str | None = None
    ward: str | None = None
    district: str | None = None
    province: str | None = None
    country: str | None = None  # ISO 3166-1 alpha-2
    postal_code: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelLine:
    """One order line, with per-unit lines already grouped into a quantity (Lazada, TikTok)."""

    line_ids: tuple[str, ...]  # the platform's line/item ids that make up this line (one per unit on Lazada/TikTok)
    seller_sku: str | None
    item_id: str | None  # product / item id on the platform
    variant_id: str | None  # variant / model / sku id on the platform
    quantity: int
    unit_price: Decimal  # price per unit before order-level discounts
    discount: Decimal = Decimal(0)  # total discount on this line (all units)
    title: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelOrder:
    external_id: str
    raw_status: str  # exactly as the platform says it
    status: ChannelStatus
    updated_at: datetime  # the platform's own update time (UTC); older updates never move an order back
    currency: str
    lines: tuple[ChannelLine, ...]
    placed_at: datetime | None = None
    paid_at: datetime | None = None
    ship_by: datetime | None = None  # Shopee ship_by_date, TikTok rts_sla_time, Lazada promised_shipping_time
    shipping_fee: Decimal = Decimal(0)
    total: Decimal | None = None
    cod: bool = False
    address: ChannelAddress | None = None
    buyer_note: str | None = None
    cancel_reason: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PushNotice:
    """What a verified push says. ``dedupe_key`` is the same for redeliveries of the same event."""

    dedupe_key: str
    topic: str  # "order" (created/updated), "cancel_request", "return", "other"
    order_ids: tuple[str, ...] = ()
    update_time: datetime | None = None
    order: ChannelOrder | None = None  # when the push carries the whole order (Shopify)


@dataclass(frozen=True, slots=True)
class Listing:
    """A sellable thing on the platform and where ordermesh's stock for it is pushed."""

    seller_sku: str | None
    item_id: str | None
    variant_id: str | None
    title: str | None = None
    location_id: str | None = None  # platform-side location (Shopify inventory location)
    inventory_item_id: str | None = None  # Shopify inventory item id


@dataclass(frozen=True, slots=True)
class StockUpdate:
    listing: Listing
    quantity: int
    previous: int | None = None  # the value last accepted by the platform (compare-and-set where supported)


@dataclass(frozen=True, slots=True)
class ShipmentNotice:
    external_order_id: str
    line_ids: tuple[str, ...]  # platform line ids shipped in this package (empty: the whole order)
    carrier: str
    tracking_number: str
    tracking_url: str | None = None


class ChannelAdapter(Protocol):
    kind: ClassVar[str]
    max_stock_batch: ClassVar[int]  # listings per stock call (Lazada 50)
    rate_per_second: ClassVar[float]  # conservative default request rate
    burst: ClassVar[int]

    def verify_push(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        """The platform's own signature check over the raw body, in constant time."""
        ...

    def parse_push(self, *, headers: Mapping[str, str], body: bytes) -> PushNotice: ...

    def fetch_orders(self, external_ids: Sequence[str]) -> list[ChannelOrder]: ...

    def orders_updated(self, since: datetime, until: datetime) -> Iterator[ChannelOrder]:
        """Every order updated in [since, until), walking the platform's windows and pages."""
        ...

    def listings(self) -> Iterator[Listing]: ...

    def set_stock(self, updates: Sequence[StockUpdate]) -> None: ...

    def confirm_shipment(self, notice: ShipmentNotice) -> None: ...

    def cancel_order(self, external_id: str, *, reason: str, line_ids: Sequence[str] = ()) -> None: ...

    def answer_cancel_request(self, external_id: str, *, accept: bool, reason: str | None = None) -> None: ...


@runtime_checkable
class RecoversLostPushes(Protocol):
    """Optional: a platform that keeps the pushes it could not deliver (Shopee ``get_lost_push_message``)."""

    def lost_pushes(self) -> tuple[list[PushNotice], str | None]:
        """The undelivered pushes, and the id that confirms them once handled (None: nothing to confirm)."""
        ...

    def confirm_lost_pushes(self, last_message_id: str) -> None: ...
