"""Cancellations from every side: a buyer's request relayed by a channel, a node that cannot pick
(after rerouting had its chance), and the SLA clock. Operators cancel through ``orders.cancel``.

Channel adapters call ``request_from_channel`` with the buyer's request and send the returned
``CancelDecision`` back to the marketplace. The marketplace rule ordermesh applies: accepted while
none of the asked-for units has left a node; refused once any has shipped, and then, when the
adapter asks for it, the shipped units become a return request instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from sqlalchemy import delete, select

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Order
from ordermesh.adapters.store.tables_sla_returns import PendingWarehouseCancel
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.lifecycle import CANCELLABLE, OrderStatus
from ordermesh.domain.returns import ReturnOrigin
from ordermesh.services import order_history, orders, returns
from ordermesh.services.order_state import OrderState
from ordermesh.services.orders import CancelLine, CancelReason, CancelRequest
from ordermesh.services.unit_of_work import Caller, UnitOfWork


@dataclass(frozen=True, slots=True)
class CancelDecision:
    """The answer to a channel's cancellation request."""

    accepted: bool
    reason: str  # why, in words a seller-centre screen can show
    refund: Decimal = Decimal(0)
    cancellation_id: int | None = None
    cancelled: dict[int, int] = field(default_factory=dict)  # line number -> units cancelled
    return_id: int | None = None  # when refused and turned into a return request
    order_status: str | None = None


def request_from_channel(
    uow: UnitOfWork,
    caller: Caller,
    order_id: int,
    *,
    lines: Sequence[CancelLine] = (),
    reason: CancelReason = CancelReason.CUSTOMER,
    note: str | None = None,
    return_if_shipped: bool = False,
) -> CancelDecision:
    """A buyer (or the marketplace) asks to cancel ``lines`` (empty: the whole order). Accepted and
    applied when none of those units has shipped; otherwise refused, nothing changes except the
    recorded refusal, and with ``return_if_shipped`` a return request opens for the shipped units."""
    with uow:
        session = uow.session
        order = lock_order(session, caller.tenant_id, order_id)
        if order is None:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        state = OrderState.load(session, order)
        shipped = {line.line_number: state.shipped(line) for line in state.lines}
        asked = _asked(state, lines)
        status = OrderStatus(order.status)
        refusal = None
        if status is OrderStatus.CANCELLED:
            refusal = "the order is already cancelled"
        elif any(shipped[n] > 0 for n in asked) or status not in CANCELLABLE:
            refusal = "units already left the warehouse"
        elif all(q == 0 for q in asked.values()):
            refusal = "nothing left to cancel"
        if refusal is None:
            outcome = orders.cancel_locked(uow, caller, order, CancelRequest(reason, note, tuple(lines)))
            uow.record_result("order", order.id)
            uow.commit()
            return CancelDecision(
                True,
                "cancelled before shipping",
                outcome.refund,
                outcome.cancellation_id,
                outcome.units,
                order_status=outcome.order_status,
            )
        return_id = None
        if return_if_shipped and any(shipped.values()):
            wanted = {n: min(q, shipped[n]) for n, q in asked.items() if shipped[n] > 0}
            return_id = returns.open_locked(
                session,
                caller,
                order,
                state,
                wanted,
                origin=ReturnOrigin.CHANNEL,
                reason=f"cancellation requested after shipping ({reason.value})",
                note=note,
            )
        order_history.record(
            session,
            order,
            "cancel_refused",
            caller.actor,
            reason=refusal,
            data={
                "requested_reason": reason.value,
                "lines": [{"line_number": n, "quantity": q} for n, q in asked.items()],
                "return_id": return_id,
            },
        )
        uow.commit()
        return CancelDecision(False, refusal, return_id=return_id, order_status=order.status)


def _asked(state: OrderState, lines: Sequence[CancelLine]) -> dict[int, int]:
    """Units asked for per line number: the given lines, or everything still open."""
    if not lines:
        return {line.line_number: state.open_units(line) for line in state.lines}
    asked: dict[int, int] = {}
    for index, item in enumerate(lines):
        if state.line(item.line_number) is None:
            raise InvalidInput(f"order has no line {item.line_number}", field=f"lines.{index}.line_number")
        if item.quantity <= 0:
            raise InvalidInput("quantity must be positive", field=f"lines.{index}.quantity")
        asked[item.line_number] = asked.get(item.line_number, 0) + item.quantity
    return asked


# -- warehouse (short pick): reroute first, cancel only what could not be rerouted -----------------

ACTOR = "worker:cancellations"


def settle_short_picks(uow: UnitOfWork, limit: int = 200) -> int:
    """After the allocator had its try at units a node could not pick: cancel (reason warehouse)
    those still without a reservation anywhere, per line and quantity. Returns units cancelled."""
    cancelled = 0
    with uow:
        session = uow.session
        pending = session.scalars(
            select(PendingWarehouseCancel)
            .join(Order, Order.id == PendingWarehouseCancel.order_id)
            .where(Order.needs_allocation.is_(False))
            .order_by(PendingWarehouseCancel.order_id, PendingWarehouseCancel.id)
            .limit(limit)
        ).all()
        if not pending:
            return 0
        by_order: dict[int, list[PendingWarehouseCancel]] = {}
        for row in pending:
            by_order.setdefault(row.order_id, []).append(row)
        for order_id, rows in sorted(by_order.items()):
            order = lock_order(session, rows[0].tenant_id, order_id)
            if order is None or order.needs_allocation:
                continue  # re-queued meanwhile: wait for the allocator's next try
            state = OrderState.load(session, order)
            units: dict[int, int] = {}
            for row in rows:
                line = state.line(row.line_number)
                if line is not None:
                    missing = max(state.unreserved(line), 0)
                    units[row.line_number] = min(units.get(row.line_number, 0) + row.quantity, missing)
            units = {n: q for n, q in units.items() if q > 0}
            session.execute(delete(PendingWarehouseCancel).where(PendingWarehouseCancel.id.in_([r.id for r in rows])))
            if units and OrderStatus(order.status) in CANCELLABLE:
                caller = Caller(order.tenant_id, "system", ACTOR)
                request = CancelRequest(
                    CancelReason.WAREHOUSE,
                    "short pick: no other node could take these units",
                    tuple(CancelLine(n, q) for n, q in sorted(units.items())),
                )
                cancelled += sum(orders.cancel_locked(uow, caller, order, request).units.values())
        uow.commit()
    return cancelled
