"""Carrier accounts and the bookings made with them (one per shipment)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ordermesh.adapters.store.tables import Base, Id, _created, _id, _tenant
from ordermesh.adapters.store.types import JSONDocument, Money, UTCDateTime


class CarrierAccount(Base):
    """A tenant's contract with a carrier. ``credentials`` is sealed with the application's secret box
    and never leaves the server; ``webhook_id`` names the account in its webhook URL and
    ``webhook_secret`` is the proof GHN and GHTK (which sign nothing) send back in that URL."""

    __tablename__ = "carrier_accounts"
    __table_args__ = (UniqueConstraint("tenant_id", "code"), UniqueConstraint("webhook_id"))
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)  # ghn, ghtk, ninjavan
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    credentials: Mapped[str] = mapped_column(Text, nullable=False)  # sealed
    service_levels: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False)
    # location code -> {name, phone, line1, ward, district, province, country, district_id, ward_code}
    pickup_addresses: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    webhook_id: Mapped[str] = mapped_column(String(40), nullable=False)
    webhook_secret: Mapped[str] = mapped_column(String(80), nullable=False)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class CarrierBooking(Base):
    """A shipment booked (or being booked) with a carrier, its tracking state and its COD.

    ``status``: booking (reserved, carrier call in flight or to retry), booked, failed, cancelled,
    return_requested. ``carrier_status``: the canonical tracking state (CHANNELS.md §9.3),
    ``raw_status`` the carrier's own word, ``status_at`` the carrier's time of the last applied event:
    an older event never moves the booking back. ``cod_state``: none, owed (collected by the carrier,
    not yet paid over), reconciled."""

    __tablename__ = "carrier_bookings"
    __table_args__ = (
        UniqueConstraint("shipment_id"),
        Index("ix_carrier_bookings_tracking", "account_id", "tracking_number"),
        Index("ix_carrier_bookings_reference", "account_id", "reference"),
        Index("ix_carrier_bookings_cod", "tenant_id", "cod_state"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    shipment_id: Mapped[int] = mapped_column(Id, ForeignKey("shipments.id"), nullable=False)
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("carrier_accounts.id"), nullable=False)
    reference: Mapped[str] = mapped_column(String(64), nullable=False)  # our code at the carrier
    service: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    carrier_status: Mapped[str | None] = mapped_column(String(24))
    raw_status: Mapped[str | None] = mapped_column(String(120))
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    fee: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    expected_delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cod_amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    declared_value: Mapped[Decimal] = mapped_column(Money, nullable=False)
    inspection: Mapped[str] = mapped_column(String(10), nullable=False)
    cod_collected: Mapped[Decimal | None] = mapped_column(Money)
    cod_state: Mapped[str] = mapped_column(String(12), nullable=False, default="none")
    cod_reconciled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    label: Mapped[bytes | None] = mapped_column(LargeBinary)
    label_content_type: Mapped[str | None] = mapped_column(String(80))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class CarrierQuoteRecord(Base):
    """A carrier's live quote for one (account, pickup location, destination, weight step), cached so
    the allocator reads quotes in its transaction without calling anyone."""

    __tablename__ = "carrier_quotes"
    __table_args__ = (
        UniqueConstraint("account_id", "location_id", "destination_key", "weight_step", "service"),
        Index("ix_carrier_quotes_lookup", "tenant_id", "destination_key", "weight_step"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    account_id: Mapped[int] = mapped_column(Id, ForeignKey("carrier_accounts.id"), nullable=False)
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    destination_key: Mapped[str] = mapped_column(String(300), nullable=False)
    weight_step: Mapped[int] = mapped_column(Integer, nullable=False)  # started 500 g steps of the parcel
    carrier: Mapped[str] = mapped_column(String(20), nullable=False)
    service: Mapped[str] = mapped_column(String(40), nullable=False)
    fee: Mapped[Decimal] = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    lead_days: Mapped[int | None] = mapped_column(Integer)
    fetched_at: Mapped[datetime] = _created()
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
