"""Returns (RMA): opened by an operator, a channel or a carrier; approved or rejected; received at
any location with a disposition per unit; refunded; closed.

Rules kept here: a return holds at most the units of a line that shipped and are not held by
another live return (so nothing is restocked or refunded twice); received units never exceed
those of the return; every received unit is restocked (on-hand rises through the ledger, which
tells the channels), quarantined or disposed; the refund is computed cumulatively with the
order's cancellations (services/refunds.py). Each change is an order event (the order's history)
and a ``return.<what>`` outbox message; a refund also writes the ERP's ``refund.recorded``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Location, Order, OrderEvent, Shipment
from ordermesh.adapters.store.tables_sla_returns import Return, ReturnLine, ReturnReceipt
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.inventory import MovementReason
from ordermesh.domain.returns import (
    CAN_RECEIVE,
    LIVE_RETURN,
    Disposition,
    ReturnOrigin,
    ReturnStatus,
    ensure_return_transition,
    line_refunds,
)
from ordermesh.services import outbox, refunds
from ordermesh.services.order_state import OrderState
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork


@dataclass(frozen=True, slots=True)
class ReturnItem:
    line_number: int
    quantity: int


@dataclass(frozen=True, slots=True)
class ReceivedItem:
    line_number: int
    quantity: int
    disposition: Disposition
    location: str | None = None  # a location code; None: the return's ``location`` default


# -- opening ---------------------------------------------------------------------------------------


def open_return(
    uow: UnitOfWork, caller: Caller, order_id: int, items: Sequence[ReturnItem], reason: str, note: str | None = None
) -> int:
    """An operator opens a return of some shipped units (status requested)."""
    return _open(uow, caller, order_id, items, ReturnOrigin.OPERATOR, reason, note, None, approved=False)


def request_from_channel(
    uow: UnitOfWork,
    caller: Caller,
    order_id: int,
    items: Sequence[ReturnItem],
    *,
    reason: str,
    external_ref: str,
    approved: bool = False,
    note: str | None = None,
) -> int:
    """A marketplace's return request (``external_ref``: its return id). Repeating it with the same
    ``external_ref`` answers with the return already opened and changes nothing. ``approved``: the
    marketplace already approved it (the return opens approved)."""
    if not external_ref or len(external_ref) > 128:
        raise InvalidInput("external_ref must be 1 to 128 characters", field="external_ref")
    return _open(uow, caller, order_id, items, ReturnOrigin.CHANNEL, reason, note, external_ref, approved=approved)


def open_from_carrier(uow: UnitOfWork, caller: Caller, shipment_id: int) -> int:
    """A carrier sends a shipment back (failed delivery, return to sender): every unit it carried
    comes back, the return is already in transit. Once per shipment."""
    with uow:
        session = uow.session
        order_id = session.scalar(
            select(Shipment.order_id).where(Shipment.tenant_id == caller.tenant_id, Shipment.id == shipment_id)
        )
        if order_id is None:
            raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
        existing = _existing(session, caller.tenant_id, ReturnOrigin.CARRIER, f"shipment:{shipment_id}")
        if existing is not None:
            return existing
        order = _lock(session, caller, order_id)
        state = OrderState.load(session, order)
        by_line = {line.id: line.line_number for line in state.lines}
        units: dict[int, int] = {}
        for allocation in state.allocations:
            if allocation.shipment_id == shipment_id and allocation.shipped_quantity:
                number = by_line[allocation.order_line_id]
                units[number] = units.get(number, 0) + allocation.shipped_quantity
        if not units:
            raise InvalidInput(f"shipment {shipment_id} has not shipped anything", code="nothing_shipped")
        return_id = open_locked(
            session,
            caller,
            order,
            state,
            units,
            origin=ReturnOrigin.CARRIER,
            reason="returned to sender by the carrier",
            external_ref=f"shipment:{shipment_id}",
            status=ReturnStatus.IN_TRANSIT,
        )
        uow.commit()
        return return_id


def _open(
    uow: UnitOfWork,
    caller: Caller,
    order_id: int,
    items: Sequence[ReturnItem],
    origin: ReturnOrigin,
    reason: str,
    note: str | None,
    external_ref: str | None,
    *,
    approved: bool,
) -> int:
    if not reason.strip() or len(reason) > 200:
        raise InvalidInput("a return needs a reason of 1 to 200 characters", field="reason")
    if not items:
        raise InvalidInput("a return needs at least one line", field="lines")
    wanted: dict[int, int] = {}
    for index, item in enumerate(items):
        if item.quantity <= 0:
            raise InvalidInput("quantity must be positive", field=f"lines.{index}.quantity")
        wanted[item.line_number] = wanted.get(item.line_number, 0) + item.quantity
    try:
        with uow:
            session = uow.session
            if external_ref is not None:
                existing = _existing(session, caller.tenant_id, origin, external_ref)
                if existing is not None:
                    return existing
            order = _lock(session, caller, order_id)
            state = OrderState.load(session, order)
            status = ReturnStatus.APPROVED if approved else ReturnStatus.REQUESTED
            return_id = open_locked(
                session,
                caller,
                order,
                state,
                wanted,
                origin=origin,
                reason=reason,
                note=note,
                external_ref=external_ref,
                status=status,
            )
            uow.record_result("return", return_id)
            uow.commit()
            return return_id
    except IntegrityError:  # the same channel return stored concurrently: answer with it
        with uow:
            found = _existing(uow.session, caller.tenant_id, origin, external_ref or "")
            if found is None:
                raise
            return found


def open_locked(
    session: Session,
    caller: Caller,
    order: Order,
    state: OrderState,
    units: dict[int, int],
    *,
    origin: ReturnOrigin,
    reason: str,
    note: str | None = None,
    external_ref: str | None = None,
    status: ReturnStatus = ReturnStatus.REQUESTED,
) -> int:
    """Open a return on a locked order; ``units`` per line number. The caller commits."""
    held = _held_by_returns(session, order.id)
    by_number = {line.line_number: line for line in state.lines}
    for index, (number, quantity) in enumerate(sorted(units.items())):
        line = by_number.get(number)
        if line is None:
            raise InvalidInput(f"order has no line {number}", field=f"lines.{index}.line_number")
        returnable = state.shipped(line) - held.get(line.id, 0)
        if quantity > returnable:
            raise InvalidInput(
                f"line {number}: only {returnable} shipped unit(s) can still be returned",
                code="not_returnable",
                field=f"lines.{index}.quantity",
                returnable=returnable,
            )
    now = utcnow()
    record = Return(
        tenant_id=order.tenant_id,
        order_id=order.id,
        status=status.value,
        origin=origin.value,
        reason=reason,
        note=note,
        external_ref=external_ref,
        created_at=now,
        updated_at=now,
    )
    session.add(record)
    session.flush()
    for number, quantity in sorted(units.items()):
        session.add(
            ReturnLine(
                tenant_id=order.tenant_id,
                return_id=record.id,
                order_line_id=by_number[number].id,
                line_number=number,
                quantity=quantity,
                received_quantity=0,
            )
        )
    session.flush()
    _record(session, order, record, "opened", caller.actor, reason=reason, data={"origin": origin.value})
    return record.id


def _held_by_returns(session: Session, order_id: int) -> dict[int, int]:
    """Units per order line id held by the order's live returns."""
    return {
        line_id: int(quantity)
        for line_id, quantity in session.execute(
            select(ReturnLine.order_line_id, func.sum(ReturnLine.quantity))
            .join(Return, Return.id == ReturnLine.return_id)
            .where(Return.order_id == order_id, Return.status.in_([s.value for s in LIVE_RETURN]))
            .group_by(ReturnLine.order_line_id)
        )
    }


def _existing(session: Session, tenant_id: int, origin: ReturnOrigin, external_ref: str) -> int | None:
    return session.scalar(
        select(Return.id).where(
            Return.tenant_id == tenant_id, Return.origin == origin.value, Return.external_ref == external_ref
        )
    )


# -- actions ---------------------------------------------------------------------------------------


def approve(uow: UnitOfWork, caller: Caller, return_id: int, note: str | None = None) -> int:
    return _move(uow, caller, return_id, ReturnStatus.APPROVED, note)


def reject(uow: UnitOfWork, caller: Caller, return_id: int, reason: str) -> int:
    """Refuse a return: its units are free to be returned again later."""
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", field="reason")
    return _move(uow, caller, return_id, ReturnStatus.REJECTED, reason)


def mark_in_transit(uow: UnitOfWork, caller: Caller, return_id: int, note: str | None = None) -> int:
    return _move(uow, caller, return_id, ReturnStatus.IN_TRANSIT, note)


def close(uow: UnitOfWork, caller: Caller, return_id: int, note: str | None = None) -> int:
    return _move(uow, caller, return_id, ReturnStatus.CLOSED, note)


def _move(uow: UnitOfWork, caller: Caller, return_id: int, target: ReturnStatus, note: str | None) -> int:
    with uow:
        session = uow.session
        order, record = _lock_return(session, caller, return_id)
        ensure_return_transition(ReturnStatus(record.status), target, return_id=record.id)
        record.status, record.updated_at = target.value, utcnow()
        _record(session, order, record, target.value, caller.actor, reason=note)
        uow.record_result("return", record.id)
        uow.commit()
        return record.id


def receive(
    uow: UnitOfWork, caller: Caller, return_id: int, items: Sequence[ReceivedItem], location: str | None = None
) -> int:
    """Units arrived at a location (any location, not only the one that shipped them), each with a
    disposition: restock puts them back on-hand through the ledger; quarantine and dispose keep them
    off the shelf. Every unit of the return received: inspected; otherwise received."""
    if not items:
        raise InvalidInput("receive at least one unit", field="items")
    with uow:
        session = uow.session
        order, record = _lock_return(session, caller, return_id)
        status = ReturnStatus(record.status)
        if status not in CAN_RECEIVE:
            ensure_return_transition(status, ReturnStatus.RECEIVED, return_id=record.id)
        lines = {line.line_number: line for line in _lines(session, record.id)}
        codes = {item.location or location for item in items}
        if None in codes:
            raise InvalidInput("say where the units arrived: location", field="location")
        locations = dict(
            session.execute(
                select(Location.code, Location.id).where(
                    Location.tenant_id == caller.tenant_id, Location.code.in_([c for c in codes if c])
                )
            ).all()
        )
        arriving: dict[int, int] = {}
        where: list[int] = []  # each item's location id
        for index, item in enumerate(items):
            code = item.location or location
            if code is None or code not in locations:
                raise InvalidInput(f"unknown location {code!r}", code="unknown_location", field=f"items.{index}")
            if item.line_number not in lines:
                raise InvalidInput(
                    f"return {record.id} has no line {item.line_number}", field=f"items.{index}.line_number"
                )
            if item.quantity <= 0:
                raise InvalidInput("quantity must be positive", field=f"items.{index}.quantity")
            arriving[item.line_number] = arriving.get(item.line_number, 0) + item.quantity
            where.append(locations[code])
        for number, quantity in arriving.items():
            line = lines[number]
            if line.received_quantity + quantity > line.quantity:
                raise InvalidInput(
                    f"line {number}: only {line.quantity - line.received_quantity} unit(s) still expected",
                    code="more_than_returned",
                    field="items",
                )
        state = OrderState.load(session, order)
        components = {line.id: line.components for line in state.lines}
        ledger = StockLedger(session, caller.tenant_id, caller.actor)
        ledger.lock(
            (location_id, int(sku_id))
            for item, location_id in zip(items, where, strict=True)
            if item.disposition is Disposition.RESTOCK
            for sku_id in components[lines[item.line_number].order_line_id]
        )
        now = utcnow()
        received = []
        for item, location_id in zip(items, where, strict=True):
            line = lines[item.line_number]
            line.received_quantity += item.quantity
            session.add(
                ReturnReceipt(
                    tenant_id=caller.tenant_id,
                    return_id=record.id,
                    return_line_id=line.id,
                    location_id=location_id,
                    disposition=item.disposition.value,
                    quantity=item.quantity,
                    actor=caller.actor,
                    created_at=now,
                )
            )
            if item.disposition is Disposition.RESTOCK:
                for sku_id, per_unit in components[line.order_line_id].items():
                    key = (location_id, int(sku_id))
                    movement = level_of(ledger.levels[key]).adjust(item.quantity * per_unit, MovementReason.RESTOCK)
                    ledger.apply(key, movement, reference=f"return:{record.id}", note="returned unit restocked")
            received.append(
                {
                    "line_number": item.line_number,
                    "quantity": item.quantity,
                    "disposition": item.disposition.value,
                    "location": item.location or location,
                }
            )
        complete = all(line.received_quantity == line.quantity for line in lines.values())
        target = ReturnStatus.INSPECTED if complete else ReturnStatus.RECEIVED
        ensure_return_transition(status, target, return_id=record.id)
        record.status, record.updated_at = target.value, now
        _record(session, order, record, "received", caller.actor, data={"received": received})
        uow.wake_allocator = ledger.finish()
        uow.record_result("return", record.id)
        uow.commit()
        return record.id


def refund(uow: UnitOfWork, caller: Caller, return_id: int, note: str | None = None) -> int:
    """Record the refund for the units received (their net price; the shipping was used) and tell
    the channel and the ERP. Never more than the order has left to give back."""
    with uow:
        session = uow.session
        order, record = _lock_return(session, caller, return_id)
        ensure_return_transition(ReturnStatus(record.status), ReturnStatus.REFUNDED, return_id=record.id)
        state = OrderState.load(session, order)
        lines = _lines(session, record.id)
        units = {line.line_number: line.received_quantity for line in lines if line.received_quantity}
        amount = refunds.next_refund(session, order, state.lines, returning=units)
        per_line = line_refunds(refunds.payment_of(session, order, state.lines), units, with_shipping=False)
        for line in lines:
            line.refund_amount = per_line.get(line.line_number, Decimal(0))
        record.refund_amount, record.status, record.updated_at = amount, ReturnStatus.REFUNDED.value, utcnow()
        detail = [{"line_number": n, "quantity": q, "refund": str(per_line.get(n, 0))} for n, q in units.items()]
        if amount > 0:
            refunds.record_credit(session, order, source="return", source_id=record.id, amount=amount, lines=detail)
        _record(session, order, record, "refunded", caller.actor, reason=note, data={"lines": detail})
        uow.record_result("return", record.id)
        uow.commit()
        return record.id


# -- helpers ---------------------------------------------------------------------------------------


def _lock(session: Session, caller: Caller, order_id: int) -> Order:
    order = lock_order(session, caller.tenant_id, order_id)
    if order is None:
        raise NotFound(f"no order {order_id}", code="order_not_found")
    return order


def _lock_return(session: Session, caller: Caller, return_id: int) -> tuple[Order, Return]:
    """The return's order, locked first (the global lock order), then the return itself."""
    order_id = session.scalar(
        select(Return.order_id).where(Return.tenant_id == caller.tenant_id, Return.id == return_id)
    )
    if order_id is None:
        raise NotFound(f"no return {return_id}", code="return_not_found")
    order = _lock(session, caller, order_id)
    record = session.scalar(
        select(Return).where(Return.id == return_id).with_for_update().execution_options(populate_existing=True)
    )
    assert record is not None  # returns are never deleted
    return order, record


def _lines(session: Session, return_id: int) -> list[ReturnLine]:
    return list(
        session.scalars(
            select(ReturnLine)
            .where(ReturnLine.return_id == return_id)
            .order_by(ReturnLine.line_number)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def _record(
    session: Session,
    order: Order,
    record: Return,
    what: str,
    actor: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """The return's change on the order's history, and ``return.<what>`` for channels and the ERP."""
    now = utcnow()
    payload = {
        "return_id": record.id,
        "order_id": order.id,
        "external_id": order.external_id,
        "channel_id": order.channel_id,
        "status": record.status,
        "origin": record.origin,
        "external_ref": record.external_ref,
        "refund_amount": str(record.refund_amount) if record.refund_amount is not None else None,
        "currency": order.currency,
        **(data or {}),
    }
    session.add(
        OrderEvent(
            tenant_id=order.tenant_id,
            order_id=order.id,
            type=f"return_{what}",
            actor=actor,
            reason=reason,
            data=payload,
            created_at=now,
        )
    )
    outbox.append(
        session,
        tenant_id=order.tenant_id,
        aggregate_type="return",
        aggregate_id=str(record.id),
        event_type=f"return.{what}",
        payload={**payload, "reason": reason},
    )
