"""Request and response shapes of the public API."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("timestamps need a time zone offset, e.g. 2026-11-11T00:05:00+07:00")
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp is out of range") from None
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(BaseModel):
    model_config = ConfigDict(extra="allow")  # channels send more than we model; it is kept
    name: str = Field(min_length=1, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    address_lines: list[Annotated[str, Field(max_length=300)]] = Field(min_length=1, max_length=5)
    district: str | None = Field(default=None, max_length=120)
    province: str = Field(min_length=1, max_length=120)
    country: str = Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2, e.g. VN")
    postal_code: str | None = Field(default=None, max_length=20)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class OrderLineCreate(Strict):
    sku: Code
    quantity: int = Field(gt=0, le=100_000)
    unit_price: Decimal = Field(ge=0, max_digits=16, decimal_places=4)


class OrderCreate(Strict):
    channel: Code = "direct"
    external_id: str = Field(min_length=1, max_length=128)
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Za-z]{3}$")
    lines: list[OrderLineCreate] = Field(min_length=1, max_length=500)
    shipping_address: Address
    ship_by: AwareDatetime | None = None
    placed_at: AwareDatetime | None = None
    tags: list[Code] = Field(
        default_factory=list, max_length=20, description="labels that can select a routing profile"
    )
    discount: Decimal = Field(
        default=Decimal(0), ge=0, max_digits=20, decimal_places=4, description="order-level discount"
    )
    shipping_fee: Decimal = Field(
        default=Decimal(0), ge=0, max_digits=20, decimal_places=4, description="what the buyer paid for shipping"
    )


class AllocationPublic(BaseModel):
    location: str
    quantity: int
    shipped_quantity: int
    shipment_id: int | None


class OrderLinePublic(BaseModel):
    line_number: int
    sku: str
    quantity: int
    unit_price: str
    cancelled_quantity: int
    allocated_quantity: int
    shipped_quantity: int
    allocations: list[AllocationPublic]


class ShipmentPublic(BaseModel):
    id: int
    location: str
    status: str
    carrier: str | None
    tracking_number: str | None


class OrderEventPublic(BaseModel):
    id: int
    type: str
    from_status: str | None
    to_status: str | None
    actor: str
    reason: str | None
    data: dict[str, Any]
    at: datetime


class OrderSlaPublic(BaseModel):
    ship_by: datetime | None
    source: str | None = Field(description="marketplace or rule")
    state: str | None = Field(description="on_track, at_risk or breached; null until the SLA monitor saw it")
    location: str | None
    forecast_handover: datetime | None
    evaluated_at: datetime | None


class OrderReturnPublic(BaseModel):
    id: int
    status: str
    origin: str
    refund_amount: str | None


class OrderPublic(BaseModel):
    id: int
    channel: str
    external_id: str
    status: str
    hold_reason: str | None
    currency: str
    total_amount: str
    placed_at: datetime
    ship_by: datetime | None
    shipping_address: dict[str, Any]
    tags: list[str] = []
    lines: list[OrderLinePublic]
    shipments: list[ShipmentPublic]
    sla: OrderSlaPublic | None = None
    returns: list[OrderReturnPublic] = []
    has_open_return: bool = False
    created_at: datetime
    updated_at: datetime
    events: list[OrderEventPublic] | None = None


class OrderPage(BaseModel):
    items: list[OrderPublic]
    next_cursor: str | None


class CancelLineRequest(Strict):
    line_number: int = Field(ge=1)
    quantity: int = Field(gt=0)


class CancelRequestBody(Strict):
    reason: Literal["customer", "warehouse", "sla_breach", "fraud", "channel", "operator", "payment_failed"]
    note: str | None = Field(default=None, max_length=500)
    lines: list[CancelLineRequest] = Field(default_factory=list, description="empty: cancel everything not shipped")


class HoldRequest(Strict):
    reason: str = Field(min_length=1, max_length=500)


class ShipmentEventCreate(Strict):
    status: Literal["picked", "packed", "shipped", "delivered"]
    carrier: str | None = Field(default=None, max_length=64)
    tracking_number: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, max_length=500)


class ShortPickCreate(Strict):
    line_number: int = Field(ge=1)
    quantity: int = Field(gt=0, le=100_000)
    note: str | None = Field(default=None, max_length=500)


class SkuUpsert(Strict):
    code: Code
    name: str = Field(min_length=1, max_length=300)
    weight_grams: int = Field(default=0, ge=0, le=10_000_000)
    components: dict[str, Annotated[int, Field(gt=0, le=100_000)]] = Field(default_factory=dict)


class SkuBulkUpsert(Strict):
    skus: list[SkuUpsert] = Field(min_length=1, max_length=5000)


class SkuPublic(BaseModel):
    code: str
    name: str
    weight_grams: int
    components: dict[str, int]


class LocationPut(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["warehouse", "3pl", "store"] = "warehouse"
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    daily_capacity: int | None = Field(default=None, ge=0, le=1_000_000_000)
    cutoff_time: str | None = Field(default=None, pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="HH:MM local")
    time_zone: str = Field(default="UTC", max_length=64)
    active: bool = True
    country: str | None = Field(default=None, min_length=2, max_length=2, description="ISO 3166-1 alpha-2")
    province: str | None = Field(default=None, max_length=120)
    channels: list[Code] | None = Field(default=None, max_length=100, description="null: ships for every channel")
    working_weekdays: list[Annotated[int, Field(ge=0, le=6)]] | None = Field(
        default=None, max_length=7, description="0 = Monday; null: Monday to Saturday"
    )
    closed_dates: list[date] | None = Field(default=None, max_length=400, description="besides public holidays")


class LocationPublic(BaseModel):
    code: str
    name: str
    kind: str
    latitude: float | None
    longitude: float | None
    daily_capacity: int | None
    cutoff_time: str | None
    time_zone: str
    active: bool
    country: str | None = None
    province: str | None = None
    channels: list[str] | None = None
    working_weekdays: list[int] | None = None
    closed_dates: list[str] | None = None


class StockSet(Strict):
    on_hand: int = Field(ge=0, le=1_000_000_000)
    reason: str = Field(min_length=1, max_length=500, description="why the count overrides the books")
    safety_stock: int | None = Field(default=None, ge=0, le=1_000_000_000)
    reference: str | None = Field(default=None, max_length=200)


class StockAdjust(Strict):
    delta: int = Field(ge=-1_000_000_000, le=1_000_000_000)
    reason: str = Field(min_length=1, max_length=500)
    reference: str | None = Field(default=None, max_length=200)


class LevelPublic(BaseModel):
    location: str
    sku: str
    on_hand: int
    reserved: int
    safety_stock: int
    available: int


class EventPublic(BaseModel):
    id: int
    cursor: str
    type: str
    aggregate: dict[str, str]
    payload: dict[str, Any]
    idempotency_key: str
    delivery: dict[str, Any]
    created_at: datetime


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: str


class RoutingProfilePut(Strict):
    definition: dict[str, Any] = Field(
        default_factory=dict, description="weights, split, node_priorities, excluded_nodes, ... (missing: defaults)"
    )
    channels: list[Code] = Field(default_factory=list, description="orders of these channels use this profile")
    tags: list[Code] = Field(default_factory=list, description="orders with any of these tags use it (before channels)")
    note: str | None = Field(default=None, max_length=500)


class RoutingProfilePublic(BaseModel):
    name: str
    version: int
    channels: list[str]
    tags: list[str] = []
    definition: dict[str, Any]
    note: str | None
    actor: str
    created_at: datetime


class RoutingSimulationRequest(Strict):
    definition: dict[str, Any] = Field(
        default_factory=dict, description="the draft profile, as in PUT /v1/routing/profiles/{name} (missing: defaults)"
    )
    channel: Code | None = Field(default=None, description="only orders of this channel")
    last: int | None = Field(
        default=None, ge=1, le=5000, description="the newest N orders (default 200; 5000 with a time window)"
    )
    placed_after: AwareDatetime | None = Field(default=None, description="orders placed at or after this moment")
    placed_before: AwareDatetime | None = Field(default=None, description="orders placed before this moment")
