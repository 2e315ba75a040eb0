"""Handing orders to nodes and following their shipments until delivery."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Order, OrderLine, Shipment
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.lifecycle import OrderStatus, ShipmentStatus, ensure_shipment_transition
from ordermesh.services import order_history
from ordermesh.services.order_state import OrderState
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork


def release_allocated(session: Session, order: Order, actor: str) -> list[Shipment]:
    """Create one shipment per location for the order's unreleased reservations; order -> released."""
    order_history.transition(session, order, OrderStatus.RELEASED, actor, reason="released to fulfilment")
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
        order_id = session.scalar(
            select(Shipment.order_id).where(Shipment.tenant_id == caller.tenant_id, Shipment.id == shipment_id)
        )
        if order_id is None:
            raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
        order = lock_order(session, caller.tenant_id, order_id)  # the order first: see locks.py
        assert order is not None
        state = OrderState.load(session, order)
        shipment = next(s for s in state.shipments if s.id == shipment_id)
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
