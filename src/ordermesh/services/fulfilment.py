"""Handing orders to nodes and following their shipments until delivery."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Channel, Order, OrderLine, Shipment
from ordermesh.adapters.store.tables_sla_returns import PendingWarehouseCancel
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import IllegalTransition, InvalidInput, NotFound
from ordermesh.domain.lifecycle import SHIPMENT_NOT_YET_SHIPPED, OrderStatus, ShipmentStatus, ensure_shipment_transition
from ordermesh.domain.routing import ShortPickPolicy
from ordermesh.services import order_history
from ordermesh.services.order_state import OrderState
from ordermesh.services.routing_profiles import ProfileChooser
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork


def release_allocated(session: Session, order: Order, actor: str) -> list[Shipment]:
    """Create one shipment per location for the order's unreleased reservations; order -> released."""
    order_history.transition(session, order, OrderStatus.RELEASED, actor, reason="released to fulfilment")
    return release_new_allocations(session, order, actor)


def release_new_allocations(session: Session, order: Order, actor: str) -> list[Shipment]:
    """One new shipment per location for the order's reservations not yet in a shipment."""
    allocations = session.scalars(
        select(Allocation)
        .where(Allocation.order_id == order.id, Allocation.quantity > 0, Allocation.shipment_id.is_(None))
        .order_by(Allocation.id)
    ).all()
    by_location: dict[int, list[Allocation]] = defaultdict(list)
    for allocation in allocations:
        by_location[allocation.location_id].append(allocation)
    now = utcnow()
    shipments = []
    for location_id, group in sorted(by_location.items()):
        shipment = Shipment(
            tenant_id=order.tenant_id,
            order_id=order.id,
            location_id=location_id,
            status=ShipmentStatus.PENDING.value,
            created_at=now,
            updated_at=now,
        )
        session.add(shipment)
        session.flush()
        for allocation in group:
            allocation.shipment_id = shipment.id
        shipments.append(shipment)
        _shipment_event(session, order, shipment, "shipment.created", actor)
    return shipments


def release(uow: UnitOfWork, caller: Caller, order_id: int) -> int:
    with uow:
        order = lock_order(uow.session, caller.tenant_id, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        release_allocated(uow.session, order, caller.actor)
        uow.record_result("order", order.id)
        uow.commit()
        return order.id


@dataclass(frozen=True, slots=True)
class ShipmentUpdate:
    status: ShipmentStatus  # picked, packed, shipped or delivered
    carrier: str | None = None
    tracking_number: str | None = None
    note: str | None = None


def record_shipment_event(uow: UnitOfWork, caller: Caller, shipment_id: int, update: ShipmentUpdate) -> int:
    """Apply a node's or carrier's report. ``shipped`` takes the units out of on-hand and reserved
    together, through the ledger; the order's status follows its shipments."""
    if update.status not in (
        ShipmentStatus.PICKED,
        ShipmentStatus.PACKED,
        ShipmentStatus.SHIPPED,
        ShipmentStatus.DELIVERED,
    ):
        raise InvalidInput("status must be picked, packed, shipped or delivered", field="status")
    if update.status is ShipmentStatus.SHIPPED and not (update.carrier and update.tracking_number):
        raise InvalidInput("a shipped event needs carrier and tracking_number", field="tracking_number")
    with uow:
        session = uow.session
        order, state, shipment = _lock_shipment(session, caller, shipment_id)
        ensure_shipment_transition(ShipmentStatus(shipment.status), update.status, shipment_id=shipment.id)
        if update.status is ShipmentStatus.SHIPPED:
            _take_out_of_stock(session, caller, order, state, shipment)
            shipment.carrier, shipment.tracking_number = update.carrier, update.tracking_number
        shipment.status, shipment.updated_at = update.status.value, utcnow()
        _shipment_event(session, order, shipment, f"shipment.{update.status.value}", caller.actor, note=update.note)
        state.resync_status(session, caller.actor, reason=f"shipment {shipment.id} {update.status.value}")
        uow.record_result("shipment", shipment.id)
        uow.commit()
        return shipment.id


def _lock_shipment(session: Session, caller: Caller, shipment_id: int) -> tuple[Order, OrderState, Shipment]:
    """The shipment's order, locked (orders before levels: see locks.py), with everything it holds."""
    order_id = session.scalar(
        select(Shipment.order_id).where(Shipment.tenant_id == caller.tenant_id, Shipment.id == shipment_id)
    )
    order = lock_order(session, caller.tenant_id, order_id) if order_id is not None else None
    if order is None:
        raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
    state = OrderState.load(session, order)
    return order, state, next(s for s in state.shipments if s.id == shipment_id)


def _take_out_of_stock(session: Session, caller: Caller, order: Order, state: OrderState, shipment: Shipment) -> None:
    lines: dict[int, OrderLine] = {line.id: line for line in state.lines}
    mine = [a for a in state.allocations if a.shipment_id == shipment.id and a.quantity > 0]
    ledger = StockLedger(session, caller.tenant_id, caller.actor)
    ledger.lock((a.location_id, int(sku_id)) for a in mine for sku_id in lines[a.order_line_id].components)
    for allocation in mine:
        for sku_id, per_unit in lines[allocation.order_line_id].components.items():
            key = (allocation.location_id, int(sku_id))
            movement = level_of(ledger.levels[key]).ship(allocation.quantity * per_unit)
            ledger.apply(key, movement, reference=f"shipment:{shipment.id}")
        allocation.shipped_quantity += allocation.quantity
        allocation.quantity = 0
    ledger.finish()


def _shipment_event(
    session: Session, order: Order, shipment: Shipment, event_type: str, actor: str, note: str | None = None
) -> None:
    data = {
        "shipment_id": shipment.id,
        "location_id": shipment.location_id,
        "shipment_status": shipment.status,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
    }
    # Recorded on the order's trail; the outbox carries it as ``order.shipment_<status>``.
    order_history.record(session, order, event_type.replace(".", "_"), actor, reason=note, data=data)


@dataclass(frozen=True, slots=True)
class ShortPick:
    line_number: int
    quantity: int
    note: str | None = None


def report_short_pick(uow: UnitOfWork, caller: Caller, shipment_id: int, short: ShortPick) -> int:
    """A node cannot pick ``quantity`` units of a line in one of its shipments. Those units are not
    where the books said: on-hand falls by them (the ledger says why) and their reservation is freed.
    Then the profile decides: route them again (never to this node for this order), leave them
    waiting for stock, or cancel them (reason: warehouse)."""
    if short.quantity <= 0:
        raise InvalidInput("quantity must be positive", field="quantity")
    with uow:
        session = uow.session
        order, state, shipment = _lock_shipment(session, caller, shipment_id)
        if shipment.status not in {s.value for s in SHIPMENT_NOT_YET_SHIPPED}:
            raise IllegalTransition(shipment.status, "short_picked", subject="shipment", subject_id=shipment.id)
        line = state.line(short.line_number)
        allocation = next(
            (
                a
                for a in state.allocations
                if line is not None and a.order_line_id == line.id and a.shipment_id == shipment.id
            ),
            None,
        )
        if line is None or allocation is None:
            raise InvalidInput(f"shipment {shipment.id} carries no line {short.line_number}", field="line_number")
        if short.quantity > allocation.quantity:
            raise InvalidInput(
                f"shipment {shipment.id} carries only {allocation.quantity} unit(s) of line {short.line_number}",
                field="quantity",
            )
        ledger = StockLedger(session, caller.tenant_id, caller.actor)
        ledger.lock((allocation.location_id, int(sku_id)) for sku_id in line.components)
        note = f"short pick on shipment {shipment.id}" + (f": {short.note}" if short.note else "")
        for sku_id, per_unit in line.components.items():
            key = (allocation.location_id, int(sku_id))
            units = short.quantity * per_unit
            ledger.apply(
                key, level_of(ledger.levels[key]).release(units), reference=f"shipment:{shipment.id}", note=note
            )
            missing = min(units, ledger.levels[key].on_hand)
            if missing:
                ledger.apply(
                    key, level_of(ledger.levels[key]).adjust(-missing), reference=f"shipment:{shipment.id}", note=note
                )
        allocation.quantity -= short.quantity
        if not any(a.quantity > 0 for a in state.allocations if a.shipment_id == shipment.id):
            shipment.status, shipment.updated_at = ShipmentStatus.CANCELLED.value, utcnow()
        channel = session.scalar(select(Channel.code).where(Channel.id == order.channel_id))
        policy = ProfileChooser.load(session, caller.tenant_id).for_channel(channel or "").short_pick
        if policy in (ShortPickPolicy.REROUTE, ShortPickPolicy.CANCEL):
            # Cancel: rerouting gets its chance first; what the allocator cannot place elsewhere is
            # cancelled afterwards (reason warehouse, services/cancellations.py settle_short_picks).
            order.avoid_locations = sorted({*(order.avoid_locations or ()), allocation.location_id})
            order.needs_allocation = True
            if policy is ShortPickPolicy.CANCEL:
                session.add(
                    PendingWarehouseCancel(
                        tenant_id=order.tenant_id,
                        order_id=order.id,
                        line_number=line.line_number,
                        quantity=short.quantity,
                        created_at=utcnow(),
                    )
                )
        order_history.record(
            session,
            order,
            "short_picked",
            caller.actor,
            reason=note,
            data={
                "shipment_id": shipment.id,
                "line_number": line.line_number,
                "quantity": short.quantity,
                "location_id": allocation.location_id,
                "policy": policy.value,
            },
        )
        state.resync_status(session, caller.actor, reason=note)
        uow.wake_allocator = True
        ledger.finish()
        uow.record_result("shipment", shipment.id)
        uow.commit()
        return shipment.id
