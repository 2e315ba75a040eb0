"""Channel connections (a marketplace shop's credentials, feeding locations and stock rules), the
listings that map its items to SKUs and carry the stock-sync state, and each channel order's platform
side (raw status, platform update time). The ``channels`` table stays the order's channel; these
tables extend it one-to-one and one-to-many."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ordermesh.adapters.store.tables import Base, Id
from ordermesh.adapters.store.types import JSONDocument, Money, UTCDateTime, utcnow


class ChannelConnection(Base):
    __tablename__ = "channel_connections"
    __table_args__ = (
        CheckConstraint("stock_buffer >= 0", name="buffer_not_negative"),
        CheckConstraint("stock_share_percent >= 0 AND stock_share_percent <= 100", name="share_is_percent"),
        CheckConstraint("stock_max_exposed IS NULL OR stock_max_exposed >= 0", name="max_not_negative"),
    )
    channel_id: Mapped[int] = mapped_column(Id, ForeignKey("channels.id"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(Id, ForeignKey("tenants.id"), nullable=False)
    base_url: Mapped[str] = mapped_column(String(500), nullable=False)
    credentials: Mapped[str] = mapped_column(Text, nullable=False)  # sealed with the app's SecretBox
    push_url: Mapped[str | None] = mapped_column(String(500))  # the callback URL exactly as registered (Shopee)
    locations: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False, default=list)  # [] = every location
    stock_buffer: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    stock_share_percent: Mapped[int] = mapped_column(Integer, nullable=False, default=100)
    stock_max_exposed: Mapped[int | None] = mapped_column(Integer)
    poll_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime)  # orders updated before it are in
    last_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_push_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # last verified webhook/push
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChannelListing(Base):
    """A channel's item/variant (or seller SKU) and the SKU it sells; stock sync keeps ``desired``
    (what the channel should show) and ``pushed`` (what it last accepted) side by side."""

    __tablename__ = "channel_listings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel_id", "listing_key"),
        Index("ix_channel_listings_sku", "tenant_id", "sku_id"),
        Index("ix_channel_listings_seller_sku", "channel_id", "seller_sku"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Id, ForeignKey("tenants.id"), nullable=False)
    channel_id: Mapped[int] = mapped_column(Id, ForeignKey("channels.id"), nullable=False)
    listing_key: Mapped[str] = mapped_column(String(300), nullable=False)  # "item:variant" or "sku:<seller sku>"
    sku_id: Mapped[int | None] = mapped_column(Id, ForeignKey("skus.id"))  # null: imported, not mapped yet
    seller_sku: Mapped[str | None] = mapped_column(String(200))
    item_id: Mapped[str | None] = mapped_column(String(100))
    variant_id: Mapped[str | None] = mapped_column(String(100))
    title: Mapped[str | None] = mapped_column(String(500))
    platform_location_id: Mapped[str | None] = mapped_column(String(100))
    inventory_item_id: Mapped[str | None] = mapped_column(String(100))
    desired_quantity: Mapped[int | None] = mapped_column(Integer)
    pushed_quantity: Mapped[int | None] = mapped_column(Integer)
    push_queued: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    pushed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ChannelOrderRecord(Base):
    """The platform's side of one channel order: its raw status and update time (older updates never
    move the order back), money and notes as the platform states them, and which platform lines
    make up each order line."""

    __tablename__ = "channel_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel_id", "external_id"),
        Index("ix_channel_orders_order", "order_id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Id, ForeignKey("tenants.id"), nullable=False)
    channel_id: Mapped[int] = mapped_column(Id, ForeignKey("channels.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    order_id: Mapped[int | None] = mapped_column(Id, ForeignKey("orders.id"))  # null: first seen cancelled
    raw_status: Mapped[str] = mapped_column(String(120), nullable=False)
    channel_status: Mapped[str] = mapped_column(String(24), nullable=False)
    platform_updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    total: Mapped[Decimal | None] = mapped_column(Money)
    shipping_fee: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal(0))
    cod: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    buyer_note: Mapped[str | None] = mapped_column(Text)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, nullable=False, default=list)
    cancel_request: Mapped[str | None] = mapped_column(String(20))  # accepted | refused
    # Set with every accepted platform update, cleared once its effects (cancel, release, answer) ran.
    effects_pending: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
