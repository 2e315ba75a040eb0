"""Capturing orders and the operator's actions on them: cancel, hold, release from hold, complete."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Channel, Order, OrderLine, Sku, SkuComponent
from ordermesh.adapters.store.tables_sla_returns import Cancellation, OrderCharges
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import IllegalTransition, InvalidInput, NotFound
from ordermesh.domain.lifecycle import CANCELLABLE, OrderStatus, ShipmentStatus
from ordermesh.domain.returns import line_refunds
from ordermesh.services import order_history, refunds
from ordermesh.services.order_state import OrderState
from ordermesh.services.order_views import build_order_view
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_TOTAL = Decimal(10) ** 16  # total_amount is NUMERIC(20, 4)
MONEY_SCALE = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class NewLine:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class NewOrder:
    channel: str
    external_id: str
    currency: str
    lines: Sequence[NewLine]
    shipping_address: dict[str, Any]
    placed_at: datetime | None = None
    ship_by: datetime | None = None
    tags: Sequence[str] = ()
    discount: Decimal = Decimal(0)  # order-level discount, shared by the lines by value when refunding
    shipping_fee: Decimal = Decimal(0)  # what the buyer paid for shipping


@dataclass(frozen=True, slots=True)
class Captured:
    order_id: int
    created: bool
    view: dict[str, Any] | None = None  # the new order's public view, built without another query


@dataclass(frozen=True, slots=True)
class _Resolved:
    """What capture needs to know before it writes: looked up outside the write transaction."""

    channel_id: int
    channel_code: str
    existing_id: int | None
    sku_ids: dict[str, int]
    components: dict[int, dict[str, int]]  # bundle SKU id -> {component SKU id: units per bundle}


def capture_order(uow: UnitOfWork, caller: Caller, new: NewOrder, *, lookup: UnitOfWork | None = None) -> Captured:
    """Store a canonical order exactly once per (channel, external id). A repeat returns the order
    already stored and changes nothing (invariant 3).

    ``lookup``: a read-only unit of work for the reads that come first (channel, SKUs, an existing
    order), so the write transaction holds only the inserts; without it they run in ``uow``."""
    _check_order(new)
    if lookup is not None:
        with lookup:
            resolved = _resolve(lookup, caller, new)
        if resolved.existing_id is not None and not uow.has_idempotency_key:
            return Captured(resolved.existing_id, created=False)
    try:
        with uow:  # an Idempotency-Key already used answers here, before anything else
            if lookup is None:
                resolved = _resolve(uow, caller, new)
            if resolved.existing_id is not None:
                uow.record_result("order", resolved.existing_id)
                uow.commit()
                return Captured(resolved.existing_id, created=False)
            return _insert(uow, caller, new, resolved)
    except IntegrityError:
        # The same (channel, external id) committed concurrently: answer with that order.
        with uow:
            existing = _find(uow, caller.tenant_id, resolved.channel_id, new.external_id)
            if existing is None:
                raise
            return Captured(existing, created=False)


def _resolve(uow: UnitOfWork, caller: Caller, new: NewOrder) -> _Resolved:
    session = uow.session
    channel = session.execute(
        select(Channel.id, Channel.code).where(Channel.tenant_id == caller.tenant_id, Channel.code == new.channel)
    ).first()
    if channel is None:
        raise InvalidInput(f"unknown channel {new.channel!r}", code="unknown_channel", field="channel")
    existing = _find(uow, caller.tenant_id, channel.id, new.external_id)
    codes = sorted({line.sku for line in new.lines})
    sku_ids = dict(
        session.execute(select(Sku.code, Sku.id).where(Sku.tenant_id == caller.tenant_id, Sku.code.in_(codes))).all()
    )
    if existing is None:
        for index, line in enumerate(new.lines):
            if line.sku not in sku_ids:
                raise InvalidInput(
                    f"unknown SKU {line.sku!r}", code="unknown_sku", field=f"lines.{index}.sku", sku=line.sku
                )
    components: dict[int, dict[str, int]] = {}
    for bundle_id, component_id, quantity in session.execute(
        select(SkuComponent.bundle_sku_id, SkuComponent.component_sku_id, SkuComponent.quantity).where(
            SkuComponent.bundle_sku_id.in_(list(sku_ids.values()))
        )
    ):
        components.setdefault(bundle_id, {})[str(component_id)] = quantity
    return _Resolved(channel.id, channel.code, existing, sku_ids, components)


def _insert(uow: UnitOfWork, caller: Caller, new: NewOrder, resolved: _Resolved) -> Captured:
    session = uow.session
    now = utcnow()
    order = Order(
        tenant_id=caller.tenant_id,
        channel_id=resolved.channel_id,
        external_id=new.external_id,
        status=OrderStatus.PENDING.value,
        currency=new.currency.upper(),
        total_amount=_money(sum((line.unit_price * line.quantity for line in new.lines), Decimal(0))),
        shipping_address=new.shipping_address,
        placed_at=new.placed_at or now,
        ship_by=new.ship_by,
        tags=sorted(set(new.tags)) or None,
        needs_allocation=True,
        created_at=now,
        updated_at=now,
    )
    session.add(order)
    session.flush()
    lines = [
        OrderLine(
            tenant_id=caller.tenant_id,
            order_id=order.id,
            line_number=number,
            sku_id=resolved.sku_ids[line.sku],
            quantity=line.quantity,
            unit_price=_money(line.unit_price),
            cancelled_quantity=0,
            components=resolved.components.get(resolved.sku_ids[line.sku], {str(resolved.sku_ids[line.sku]): 1}),
        )
        for number, line in enumerate(new.lines, start=1)
    ]
    session.add_all(lines)
    if new.discount or new.shipping_fee:
        session.add(
            OrderCharges(
                tenant_id=caller.tenant_id,
                order_id=order.id,
                discount=_money(new.discount),
                shipping_fee=_money(new.shipping_fee),
            )
        )
    created = order_history.record(
        session,
        order,
        "created",
        caller.actor,
        to_status=OrderStatus.PENDING.value,
        data={"channel": resolved.channel_code, "lines": len(new.lines)},
    )
    uow.record_result("order", order.id)
    uow.wake_allocator = True
    uow.commit()
    view = build_order_view(
        order,
        channel_code=resolved.channel_code,
        lines=lines,
        sku_codes={sku_id: code for code, sku_id in resolved.sku_ids.items()},
        allocations={},
        location_codes={},
        shipments=[],
        events=[created],
    )
    return Captured(order.id, created=True, view=view)


def _money(amount: Decimal) -> Decimal:
    """Money as the database keeps it: NUMERIC(20, 4)."""
    return amount.quantize(MONEY_SCALE)


def _find(uow: UnitOfWork, tenant_id: int, channel_id: int, external_id: str) -> int | None:
    return uow.session.scalar(
        select(Order.id).where(
            Order.tenant_id == tenant_id, Order.channel_id == channel_id, Order.external_id == external_id
        )
    )


def _check_order(new: NewOrder) -> None:
    if not new.external_id or len(new.external_id) > 128:
        raise InvalidInput("external_id must be 1 to 128 characters", field="external_id")
    if len(new.currency) != 3 or not new.currency.isalpha():
        raise InvalidInput("currency must be an ISO 4217 code such as VND", field="currency")
    if not new.lines:
        raise InvalidInput("an order needs at least one line", field="lines")
    for index, line in enumerate(new.lines):
        if line.quantity <= 0:
            raise InvalidInput("quantity must be positive", field=f"lines.{index}.quantity")
        if line.unit_price < 0:
            raise InvalidInput("unit_price cannot be negative", field=f"lines.{index}.unit_price")
    gross = sum((line.unit_price * line.quantity for line in new.lines), Decimal(0))
    if gross >= MAX_TOTAL:
        raise InvalidInput(f"the order total must be below {MAX_TOTAL}", field="lines")
    if new.discount < 0 or new.discount > gross:
        raise InvalidInput("discount must be between 0 and the lines' total", field="discount")
    if new.shipping_fee < 0 or new.shipping_fee >= MAX_TOTAL:
        raise InvalidInput(f"shipping_fee must be 0 to below {MAX_TOTAL}", field="shipping_fee")


class CancelReason(StrEnum):
    CUSTOMER = "customer"  # the buyer asked
    WAREHOUSE = "warehouse"  # the node cannot ship (short pick, damage)
    SLA_BREACH = "sla_breach"  # the ship-by deadline cannot be met
    FRAUD = "fraud"
    CHANNEL = "channel"  # the marketplace cancelled it
    OPERATOR = "operator"
    PAYMENT_FAILED = "payment_failed"


@dataclass(frozen=True, slots=True)
class CancelLine:
    line_number: int
    quantity: int


@dataclass(frozen=True, slots=True)
class CancelRequest:
    reason: CancelReason
    note: str | None = None
    lines: Sequence[CancelLine] = field(default_factory=tuple)  # empty: everything not yet shipped


@dataclass(frozen=True, slots=True)
class Cancelled:
    """What one cancellation did: the units per line number, and the refund it recorded."""

    order_id: int
    cancellation_id: int
    units: dict[int, int]
    refund: Decimal
    order_status: str


def cancel(uow: UnitOfWork, caller: Caller, order_id: int, request: CancelRequest) -> int:
    """Cancel the whole order, or some units of some lines. Units already handed to a carrier cannot
    be cancelled; everything else is released back to stock in the same transaction, and the refund
    (line price less its discount share, plus its shipping share) is recorded."""
    with uow:
        order = _lock(uow, caller, order_id)
        cancel_locked(uow, caller, order, request)
        uow.record_result("order", order.id)
        uow.commit()
        return order.id


def cancel_locked(uow: UnitOfWork, caller: Caller, order: Order, request: CancelRequest) -> Cancelled:
    """``cancel`` inside a unit of work that already holds the order's lock; the caller commits."""
    session = uow.session
    status = OrderStatus(order.status)
    if status not in CANCELLABLE:
        raise IllegalTransition(status.value, OrderStatus.CANCELLED.value, subject="order", subject_id=order.id)
    state = OrderState.load(session, order)
    wanted = cancellable_units(state, request.lines)
    if not wanted:
        raise IllegalTransition(status.value, OrderStatus.CANCELLED.value, subject="order", subject_id=order.id)

    ledger = StockLedger(session, caller.tenant_id, caller.actor)
    ledger.lock(state.component_keys())
    released_units: list[dict[str, int]] = []
    by_line = {line.id: line for line in state.lines}
    for line_id, units in wanted.items():
        line = by_line[line_id]
        # Units nobody reserved go first; then reservations not yet released, then released ones.
        from_unreserved = min(units, max(state.unreserved(line), 0))
        line.cancelled_quantity += units
        units -= from_unreserved
        allocations = sorted(
            (a for a in state.allocations if a.order_line_id == line_id and a.quantity > 0),
            key=lambda a: (a.shipment_id is not None, -a.id),
        )
        for allocation in allocations:
            if units == 0:
                break
            take = min(units, allocation.quantity)
            allocation.quantity -= take
            units -= take
            for sku_id, per_unit in line.components.items():
                key = (allocation.location_id, int(sku_id))
                movement = level_of(ledger.levels[key]).release(take * per_unit)
                ledger.apply(
                    key,
                    movement,
                    reference=f"order:{order.id}",
                    note=f"cancelled: {request.reason.value}",
                )
            released_units.append(
                {"line_number": line.line_number, "location_id": allocation.location_id, "units": take}
            )
    for shipment in state.unshipped_shipments():
        if not any(a.quantity > 0 for a in state.allocations if a.shipment_id == shipment.id):
            shipment.status, shipment.updated_at = ShipmentStatus.CANCELLED.value, utcnow()
    units_by_number = {by_line[k].line_number: v for k, v in wanted.items()}
    cancellation = _record_refund(session, caller, order, state, request.reason, units_by_number)
    order_history.record(
        session,
        order,
        "lines_cancelled",
        caller.actor,
        reason=request.reason.value,
        data={
            "note": request.note,
            "lines": [{"line_number": n, "quantity": q} for n, q in units_by_number.items()],
            "released": released_units,
            "cancellation_id": cancellation.id,
            "refund": str(cancellation.refund_amount),
            "currency": order.currency,
        },
    )
    state.resync_status(session, caller.actor, reason=request.reason.value)
    if OrderStatus(order.status) is OrderStatus.CANCELLED:
        order.needs_allocation = False
        order_history.record(
            session,
            order,
            "cancelled",
            caller.actor,
            reason=request.reason.value,
            data={"cancellation_id": cancellation.id, "refund": str(cancellation.refund_amount)},
        )
    uow.wake_allocator = ledger.finish() or uow.wake_allocator
    return Cancelled(order.id, cancellation.id, units_by_number, cancellation.refund_amount, order.status)


def cancellable_units(state: OrderState, lines: Sequence[CancelLine]) -> dict[int, int]:
    """Units to cancel per line id: those asked for (checked), or every unit not yet shipped."""
    wanted: dict[int, int] = {}  # line id -> units to cancel
    if lines:
        for index, item in enumerate(lines):
            line = state.line(item.line_number)
            if line is None:
                raise InvalidInput(f"order has no line {item.line_number}", field=f"lines.{index}.line_number")
            if item.quantity <= 0:
                raise InvalidInput("quantity must be positive", field=f"lines.{index}.quantity")
            wanted[line.id] = wanted.get(line.id, 0) + item.quantity
    else:
        wanted = {line.id: state.open_units(line) - state.shipped(line) for line in state.lines}
        return {k: v for k, v in wanted.items() if v > 0}
    for index, line in enumerate(state.lines):
        cancellable = state.open_units(line) - state.shipped(line)
        if wanted.get(line.id, 0) > cancellable:
            raise InvalidInput(
                f"line {line.line_number}: only {cancellable} unit(s) can still be cancelled",
                code="not_cancellable",
                field=f"lines.{index}.quantity",
                cancellable=cancellable,
            )
    return wanted


def _record_refund(
    session: Session, caller: Caller, order: Order, state: OrderState, reason: CancelReason, units: dict[int, int]
) -> Cancellation:
    """The cancellation's row with its refund (call after the lines' cancelled quantities grew)."""
    payment = refunds.payment_of(session, order, state.lines)
    amount = refunds.next_refund(session, order, state.lines)
    per_line = line_refunds(payment, units, with_shipping=True)
    lines = [{"line_number": n, "quantity": q, "refund": str(per_line.get(n, Decimal(0)))} for n, q in units.items()]
    cancellation = Cancellation(
        tenant_id=order.tenant_id,
        order_id=order.id,
        reason=reason.value,
        lines=lines,
        refund_amount=amount,
        currency=order.currency,
        actor=caller.actor,
        created_at=utcnow(),
    )
    session.add(cancellation)
    session.flush()
    if amount > 0:
        refunds.record_credit(
            session, order, source="cancellation", source_id=cancellation.id, amount=amount, lines=lines
        )
    return cancellation


def hold(uow: UnitOfWork, caller: Caller, order_id: int, reason: str) -> int:
    """Park an order: the allocator leaves it alone; reservations it already has are kept."""
    if not reason.strip():
        raise InvalidInput("a hold needs a reason", field="reason")
    with uow:
        order = _lock(uow, caller, order_id)
        order_history.transition(uow.session, order, OrderStatus.ON_HOLD, caller.actor, reason=reason)
        order.hold_reason, order.needs_allocation = reason, False
        uow.record_result("order", order.id)
        uow.commit()
        return order.id


def release_hold(uow: UnitOfWork, caller: Caller, order_id: int, note: str | None = None) -> int:
    with uow:
        order = _lock(uow, caller, order_id)
        order_history.transition(uow.session, order, OrderStatus.PENDING, caller.actor, reason=note or "hold released")
        order.hold_reason, order.needs_allocation = None, True
        uow.record_result("order", order.id)
        uow.wake_allocator = True
        uow.commit()
        return order.id


def complete(uow: UnitOfWork, caller: Caller, order_id: int) -> int:
    with uow:
        order = _lock(uow, caller, order_id)
        order_history.transition(uow.session, order, OrderStatus.COMPLETED, caller.actor, reason="completed")
        uow.record_result("order", order.id)
        uow.commit()
        return order.id


def _lock(uow: UnitOfWork, caller: Caller, order_id: int) -> Order:
    order = lock_order(uow.session, caller.tenant_id, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    return order
