"""Taking reservations back from a location and routing them again.

Two causes, one mechanism: a location goes offline (every unreleased reservation there), or a count
leaves a level with fewer units than it promised (the newest unreleased reservations of that SKU
there, until the level is whole again). The change writes a ``reroute_requests`` row; the worker
handles it here in its own transaction, locking orders before levels as every writer does, then
hands the orders back to the allocator. Released shipments are left alone: the node is working on
them, and it reports a short pick if it cannot ship.
"""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Location, OrderLine, RerouteRequest
from ordermesh.adapters.store.types import utcnow
from ordermesh.services import order_history
from ordermesh.services.order_state import OrderState
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import UnitOfWork

ACTOR = "worker:rerouter"


def request_reroute(session: Session, tenant_id: int, location_id: int, sku_id: int | None, reason: str) -> None:
    session.add(
        RerouteRequest(tenant_id=tenant_id, location_id=location_id, sku_id=sku_id, reason=reason, created_at=utcnow())
    )


def process_reroute_requests(uow: UnitOfWork, limit: int = 50) -> int:
    """Handle pending requests; returns how many reservations were taken back."""
    taken_back = 0
    with uow:
        session = uow.session
        requests = session.scalars(
            select(RerouteRequest).order_by(RerouteRequest.id).limit(limit).with_for_update(skip_locked=True)
        ).all()
        if not requests:
            return 0
        for request in requests:
            taken_back += _handle(session, request)
        session.execute(delete(RerouteRequest).where(RerouteRequest.id.in_([r.id for r in requests])))
        uow.wake_allocator = taken_back > 0
        uow.commit()
    return taken_back


def _handle(session: Session, request: RerouteRequest) -> int:
    location = session.get(Location, request.location_id)
    offline = location is not None and not location.active
    candidates = session.execute(
        select(Allocation.id, Allocation.order_id, OrderLine.components)
        .join(OrderLine, OrderLine.id == Allocation.order_line_id)
        .where(
            Allocation.tenant_id == request.tenant_id,
            Allocation.location_id == request.location_id,
            Allocation.quantity > 0,
            Allocation.shipment_id.is_(None),
        )
        .order_by(Allocation.id.desc())
    ).all()
    if request.sku_id is not None:
        candidates = [row for row in candidates if str(request.sku_id) in row.components]
    if not candidates:
        return 0
    order_ids = sorted({row.order_id for row in candidates})
    orders = {order_id: lock_order(session, request.tenant_id, order_id) for order_id in order_ids}
    states = {order_id: OrderState.load(session, order) for order_id, order in orders.items() if order is not None}
    ledger = StockLedger(session, request.tenant_id, ACTOR)
    ledger.lock(key for state in states.values() for key in state.component_keys())
    wanted = {row.id for row in candidates}
    released = 0
    touched: set[int] = set()
    for state in sorted(states.values(), key=lambda s: -s.order.id):  # newest orders give back first
        lines = {line.id: line for line in state.lines}
        for allocation in sorted(state.allocations, key=lambda a: -a.id):
            if allocation.id not in wanted or allocation.quantity == 0 or allocation.shipment_id is not None:
                continue
            if not offline and request.sku_id is not None:
                level = ledger.levels.get((request.location_id, request.sku_id))
                if level is None or level_of(level).available >= 0:
                    break  # the level is whole again
            for sku_id, per_unit in lines[allocation.order_line_id].components.items():
                key = (allocation.location_id, int(sku_id))
                ledger.apply(
                    key,
                    level_of(ledger.levels[key]).release(allocation.quantity * per_unit),
                    reference=f"order:{state.order.id}",
                    note=request.reason,
                )
            released += allocation.quantity
            allocation.quantity = 0
            touched.add(state.order.id)
    for order_id in touched:
        state = states[order_id]
        order_history.record(
            session, state.order, "rerouted", ACTOR, reason=request.reason, data={"location_id": request.location_id}
        )
        state.resync_status(session, ACTOR, reason=request.reason)
        state.order.needs_allocation = True
    ledger.finish()
    return released
