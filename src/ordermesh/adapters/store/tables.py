"""Tables. Every row carries ``tenant_id`` and every natural key starts with it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ordermesh.adapters.store.types import JSONDocument, Money, UTCDateTime, utcnow

# Named constraints so Alembic migrations are stable and portable.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets 64-bit identities.
Id = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _id() -> Mapped[int]:
    return mapped_column(Id, primary_key=True, autoincrement=True)


def _tenant() -> Mapped[int]:
    return mapped_column(Id, ForeignKey("tenants.id"), nullable=False)


def _created() -> Mapped[datetime]:
    return mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[int] = _id()
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created()


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)  # shown in listings, not secret
    key_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = _created()
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Channel(Base):
    """A channel connection: one shop on one marketplace, or ``direct`` for API orders."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = _created()


class Sku(Base):
    __tablename__ = "skus"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(300), nullable=False)
    weight_grams: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class SkuComponent(Base):
    """A bundle SKU is made of component SKUs; stock is held only for components."""

    __tablename__ = "sku_components"
    __table_args__ = (CheckConstraint("quantity > 0", name="quantity_positive"),)
    tenant_id: Mapped[int] = _tenant()
    bundle_sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), primary_key=True)
    component_sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), primary_key=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)


class Location(Base):
    __tablename__ = "locations"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    code: Mapped[str] = mapped_column(String(64), nullable=False)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    kind: Mapped[str] = mapped_column(String(20), nullable=False)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    daily_capacity: Mapped[int | None] = mapped_column(Integer)
    cutoff_time: Mapped[str | None] = mapped_column(String(5))  # HH:MM, local time
    time_zone: Mapped[str] = mapped_column(String(64), nullable=False, default="UTC")
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2: public holidays, rate zones
    province: Mapped[str | None] = mapped_column(String(120))  # first-level division: rate zones
    # Channel codes this location may ship for (null: every channel).
    channels: Mapped[list[str] | None] = mapped_column(JSONDocument)
    # Weekdays it hands over to carriers, 0 = Monday (null: Monday to Saturday).
    working_weekdays: Mapped[list[int] | None] = mapped_column(JSONDocument)
    # ISO dates it is closed besides its country's public holidays (stock-takes, local events).
    closed_dates: Mapped[list[str] | None] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class RoutingProfileVersion(Base):
    """Every version of every routing profile, kept forever; the highest version of a name is in force.
    Restoring an old version writes it again as the newest."""

    __tablename__ = "routing_profiles"
    __table_args__ = (UniqueConstraint("tenant_id", "name", "version"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    channels: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False)  # orders of these channels use it
    tags: Mapped[list[str]] = mapped_column(JSONDocument, nullable=False, default=list)  # ... or carrying a tag
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = _created()


class RoutingDecisionRecord(Base):
    """Why an order's units went where they went: the engine's trace for one allocation attempt."""

    __tablename__ = "routing_decisions"
    __table_args__ = (Index("ix_routing_decisions_order", "order_id", "id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    profile_name: Mapped[str] = mapped_column(String(64), nullable=False)
    profile_version: Mapped[int] = mapped_column(Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(String(20), nullable=False)
    explanation: Mapped[str] = mapped_column(Text, nullable=False)
    # json, not jsonb: written once, read back whole, never queried inside (migration 0007).
    trace: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    created_at: Mapped[datetime] = _created()


class RerouteRequest(Base):
    """Reservations at a location to take back and route again: the location went offline (sku_id
    NULL: all of them) or a count left a level with fewer units than it promised. Written with the
    change; the worker handles it in its own transaction, taking order locks before level locks."""

    __tablename__ = "reroute_requests"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    sku_id: Mapped[int | None] = mapped_column(Id, ForeignKey("skus.id"))
    reason: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = _created()


class InventoryLevel(Base):
    __tablename__ = "inventory_levels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "location_id", "sku_id"),
        CheckConstraint("on_hand >= 0", name="on_hand_not_negative"),
        CheckConstraint("reserved >= 0", name="reserved_not_negative"),
        CheckConstraint("safety_stock >= 0", name="safety_stock_not_negative"),
        Index("ix_inventory_levels_sku", "tenant_id", "sku_id"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), nullable=False)
    on_hand: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reserved: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    safety_stock: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    updated_at: Mapped[datetime] = _created()


class InventoryMovement(Base):
    """Append-only ledger: every change to an inventory level, with why and what caused it."""

    __tablename__ = "inventory_movements"
    __table_args__ = (
        Index("ix_inventory_movements_level", "tenant_id", "location_id", "sku_id", "id"),
        # Recent demand per SKU for the router's days of cover (routing_inputs.daily_sales), read by
        # every allocation batch: without it each batch scanned the whole ledger.
        Index(
            "ix_inventory_movements_reserves",
            "tenant_id",
            "sku_id",
            "created_at",
            postgresql_where=text("reason = 'reserve'"),
            sqlite_where=text("reason = 'reserve'"),
        ),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), nullable=False)
    reason: Mapped[str] = mapped_column(String(20), nullable=False)
    on_hand_delta: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reserved_delta: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    safety_stock_delta: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reference: Mapped[str | None] = mapped_column(String(200))  # e.g. "order:42", "shipment:7"
    note: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    created_at: Mapped[datetime] = _created()


# The allocator's queue predicate, written the same in the partial index and in the claim
# (adapters/store/locks.py). Neither database uses a partial index unless the query states its
# predicate as written: the claim's "needs_allocation IS true" (SQLAlchemy's ``is_(True)``) never
# used it, and each claim sorted every order in the table.
ALLOCATION_QUEUE = "needs_allocation"


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "channel_id", "external_id"),
        Index("ix_orders_tenant_status", "tenant_id", "status", "id"),
        Index("ix_orders_tenant_created", "tenant_id", "created_at", "id"),
        # The allocator's queue: only rows that need work are in this index.
        Index(
            "ix_orders_allocation_queue",
            "ship_by",
            "placed_at",
            "id",
            postgresql_where=text(ALLOCATION_QUEUE),
            sqlite_where=text(ALLOCATION_QUEUE),
        ),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    channel_id: Mapped[int] = mapped_column(Id, ForeignKey("channels.id"), nullable=False)
    external_id: Mapped[str] = mapped_column(String(128), nullable=False)
    status: Mapped[str] = mapped_column(String(24), nullable=False)
    currency: Mapped[str] = mapped_column(String(3), nullable=False)
    total_amount: Mapped[Decimal] = mapped_column(Money, nullable=False)
    shipping_address: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    placed_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ship_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    needs_allocation: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str] | None] = mapped_column(JSONDocument)  # free labels: "vip", "pre-order", ...
    # Locations that could not pick this order's units (short picks): never routed to again for it.
    avoid_locations: Mapped[list[int] | None] = mapped_column(JSONDocument)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        UniqueConstraint("order_id", "line_number"),
        Index("ix_order_lines_sku", "tenant_id", "sku_id"),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("cancelled_quantity >= 0 AND cancelled_quantity <= quantity", name="cancelled_within_quantity"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    line_number: Mapped[int] = mapped_column(Integer, nullable=False)
    sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    unit_price: Mapped[Decimal] = mapped_column(Money, nullable=False)
    cancelled_quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # Snapshot of what one unit needs, {sku_id: quantity}, taken at capture so later catalogue edits
    # never change what an existing reservation means.
    components: Mapped[dict[str, int]] = mapped_column(JSONDocument, nullable=False)


class Allocation(Base):
    """Units of an order line promised at a location. ``quantity`` is still reserved there;
    ``shipped_quantity`` has left with a shipment."""

    __tablename__ = "allocations"
    __table_args__ = (
        Index("ix_allocations_order", "order_id"),
        # Orders assigned to a node today (routing_inputs.assigned_today), read by every batch.
        Index("ix_allocations_location_created", "location_id", "created_at"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        CheckConstraint("shipped_quantity >= 0", name="shipped_not_negative"),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    order_line_id: Mapped[int] = mapped_column(Id, ForeignKey("order_lines.id"), nullable=False)
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False)
    shipped_quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    shipment_id: Mapped[int | None] = mapped_column(Id, ForeignKey("shipments.id"))
    created_at: Mapped[datetime] = _created()


class Shipment(Base):
    __tablename__ = "shipments"
    __table_args__ = (Index("ix_shipments_order", "order_id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    location_id: Mapped[int] = mapped_column(Id, ForeignKey("locations.id"), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    carrier: Mapped[str | None] = mapped_column(String(64))
    tracking_number: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _created()


class OrderEvent(Base):
    """Audit trail: every transition and every other change of an order (who, when, why)."""

    __tablename__ = "order_events"
    __table_args__ = (Index("ix_order_events_order", "order_id", "id"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    order_id: Mapped[int] = mapped_column(Id, ForeignKey("orders.id"), nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(100), nullable=False)
    reason: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False, default=dict)
    created_at: Mapped[datetime] = _created()


class OutboxMessage(Base):
    """Facts to deliver to the outside world, written in the transaction that made them true."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_feed", "tenant_id", "transaction_id", "id"),
        # The dispatcher's claim (services/outbox.py): pending rows in id order, and whether an
        # aggregate has an earlier message not yet delivered. Partial, so neither walks the
        # delivered history (migration 0008).
        Index(
            "ix_outbox_due", "id", postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")
        ),
        Index(
            "ix_outbox_aggregate",
            "aggregate_type",
            "aggregate_id",
            "id",
            postgresql_where=text("status <> 'delivered'"),
            sqlite_where=text("status <> 'delivered'"),
        ),
    )
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    aggregate_type: Mapped[str] = mapped_column(String(40), nullable=False)
    aggregate_id: Mapped[str] = mapped_column(String(100), nullable=False)
    event_type: Mapped[str] = mapped_column(String(60), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    # PostgreSQL transaction id of the writer, so readers never skip a row committed late
    # (see services/events.py). NULL on SQLite, where writers are serialised.
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = _created()
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = _created()


class IdempotencyRecord(Base):
    """A POST that carried an Idempotency-Key: written in the same transaction as its effect, so a
    repeat finds it and answers with the resource it produced instead of acting again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)  # sha256 of method, path, body
    resource_type: Mapped[str] = mapped_column(String(40), nullable=False)
    resource_id: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = _created()


class StockArrival(Base):
    """A signal that units of a SKU became available somewhere. Written with the stock change; the
    allocator consumes it and re-queues backordered orders that want the SKU (in its own transaction,
    so a stock change never waits on an order row lock)."""

    __tablename__ = "stock_arrivals"
    id: Mapped[int] = _id()
    tenant_id: Mapped[int] = _tenant()
    sku_id: Mapped[int] = mapped_column(Id, ForeignKey("skus.id"), nullable=False)
    created_at: Mapped[datetime] = _created()


from ordermesh.adapters.store import tables_carriers as _tables_carriers  # noqa: E402, F401  (carrier accounts, bookings)
from ordermesh.adapters.store import tables_channels as _tables_channels  # noqa: E402, F401  (channel tables)
from ordermesh.adapters.store import tables_inbox as _tables_inbox  # noqa: E402, F401  (registers the inbox table)
from ordermesh.adapters.store import tables_sla_returns as _sla_returns  # noqa: E402,F401  (registers its tables)
