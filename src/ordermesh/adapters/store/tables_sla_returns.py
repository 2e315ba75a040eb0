"""Tables of SLAs, cancellations, refunds and returns (RMA)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ordermesh.adapters.store.tables import Base, Id
from ordermesh.adapters.store.types import JSONDocument, Money, UTCDateTime, utcnow


def _tenant() -> Mapped[int]:
    return mapped_column(Id, ForeignKey("tenants.id"), nullable=False)


class SlaPolicy(Base):
    """A channel connection's SLA policy (see domain/sla.py), keyed by the channel's code."""

    __tablename__ = "sla_policies"
    __table_args__ = (UniqueConstraint("tenant_id", "channel_code"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    channel_code: Mapped[str] = mapped_column(String(64), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class OrderSla(Base):
    """An order's deadline and its last evaluated SLA state, kept by the SLA monitor."""

    __tablename__ = "order_slas"
    __table_args__ = (Index("ix_order_slas_board", "tenant_id", "state", "ship_by"),)
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), primary_key=True)
    tenant_id: Mapped[int] = _tenant()
    ship_by: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String(20), nullable=False)  # marketplace | rule
    state: Mapped[str] = mapped_column(String(20), nullable=False)  # on_track | at_risk | breached
    location_id: Mapped[int | None] = mapped_column(Id, ForeignKey("locations.id"))  # the node it waits on
    forecast_handover: Mapped[datetime | None] = mapped_column(UTCDateTime)
    is_open: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=True
    )  # false once shipped, cancelled or closed
    evaluated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class OrderCharges(Base):
    """Money of an order beyond its lines: an order-level discount and the shipping fee paid."""

    __tablename__ = "order_charges"
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), primary_key=True)
    tenant_id: Mapped[int] = _tenant()
    discount: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal(0))
    shipping_fee: Mapped[Decimal] = mapped_column(Money, nullable=False, default=Decimal(0))


class Cancellation(Base):
    """One cancellation of some units of an order: why, who asked, and the refund it gave."""

    __tablename__ = "cancellations"
    __table_args__ = (Index("ix_cancellations_order", "order_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    reason: Mapped[str] = mapped_column(String(20), nullable=False)
    lines: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument, nullable=False)
    refund_amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Return(Base):
    """A return (RMA) of some shipped units of an order."""

    __tablename__ = "returns"
    __table_args__ = (
        UniqueConstraint("tenant_id", "origin", "external_ref"),
        Index("ix_returns_tenant_status", "tenant_id", "status", "id"),
        Index("ix_returns_order", "order_id", "id"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    origin: Mapped[str] = mapped_column(String(20), nullable=False)  # operator | channel | carrier
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    note: Mapped[str | None] = mapped_column(Text)
    external_ref: Mapped[str | None] = mapped_column(String(128))  # the channel's return id, or shipment:<id>
    refund_amount: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class ReturnLine(Base):
    __tablename__ = "return_lines"
    __table_args__ = (
        UniqueConstraint("return_id", "order_line_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("received_quantity >= 0 AND received_quantity <= quantity", name="received_within_quantity"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    return_id: Mapped[int] = mapped_column(Id, ForeignKey("returns.id"), nullable=False)
    order_line_id: Mapped[int] = mapped_column(Id, ForeignKey("order_lines.id"), nullable=False)
    line_number: Mapped[int] = mapped_column(Integer, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    received_quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    refund_amount: Mapped[Decimal | None] = mapped_column(Money)


class ReturnReceipt(Base):
    """Units of a return line that arrived at a location, and what was done with them."""

    __tablename__ = "return_receipts"
    __table_args__ = (
        Index("ix_return_receipts_return", "return_id", "id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    return_id: Mapped[int] = mapped_column(Id, ForeignKey("returns.id"), nullable=False)
    return_line_id: Mapped[int] = mapped_column(Id, ForeignKey("return_lines.id"), nullable=False)
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    disposition: Mapped[str] = mapped_column(String(20), nullable=False)  # restock | quarantine | dispose
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class PendingWarehouseCancel(Base):
    """Units a node could not pick, under a policy that cancels them: the allocator first tries to
    route them elsewhere; whatever it could not place is then cancelled (reason warehouse)."""

    __tablename__ = "pending_warehouse_cancels"
    __table_args__ = (Index("ix_pending_warehouse_cancels_order", "order_id", "id"),)
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    line_number: Mapped[int] = mapped_column(Integer, nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
