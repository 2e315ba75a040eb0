"""Refund amounts: what an order's buyer paid, what is owed back, and the ERP's credit facts.

Every refund is the cumulative amount due (domain/returns.py ``refund_due``) minus what the order's
cancellations and refunded returns already gave back, so rounding never adds up to more than paid.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import Order, OrderLine
from ordermesh.adapters.store.tables_sla_returns import Cancellation, OrderCharges, Return, ReturnLine
from ordermesh.domain.returns import Payment, PricedLine, ReturnStatus, refund_due
from ordermesh.services import outbox


def payment_of(session: Session, order: Order, lines: list[OrderLine]) -> Payment:
    charges = session.get(OrderCharges, order.id)
    return Payment(
        currency=order.currency,
        lines=[PricedLine(line.line_number, line.quantity, line.unit_price) for line in lines],
        discount=charges.discount if charges else Decimal(0),
        shipping_fee=charges.shipping_fee if charges else Decimal(0),
    )


def refunded_so_far(session: Session, order_id: int) -> Decimal:
    cancelled = session.scalar(
        select(func.coalesce(func.sum(Cancellation.refund_amount), 0)).where(Cancellation.order_id == order_id)
    )
    returned = session.scalars(
        select(Return.refund_amount).where(Return.order_id == order_id, Return.refund_amount.is_not(None))
    ).all()
    return Decimal(cancelled or 0) + sum((Decimal(amount) for amount in returned if amount is not None), Decimal(0))


def returned_refunded_units(session: Session, order_id: int, extra: dict[int, int] | None = None) -> dict[int, int]:
    """Units per line number already refunded through returns (plus ``extra``, about to be)."""
    units: dict[int, int] = defaultdict(int)
    for line_number, received in session.execute(
        select(ReturnLine.line_number, ReturnLine.received_quantity)
        .join(Return, Return.id == ReturnLine.return_id)
        .where(
            Return.order_id == order_id,
            Return.refund_amount.is_not(None),
            Return.status != ReturnStatus.REJECTED.value,
        )
    ):
        units[line_number] += received
    for line_number, quantity in (extra or {}).items():
        units[line_number] += quantity
    return dict(units)


def next_refund(
    session: Session, order: Order, lines: list[OrderLine], *, returning: dict[int, int] | None = None
) -> Decimal:
    """What is owed now, given the lines' cancelled quantities as they stand and the units of
    ``returning`` (line number -> units) about to be refunded on top of earlier returns."""
    payment = payment_of(session, order, lines)
    due = refund_due(
        payment,
        cancelled={line.line_number: line.cancelled_quantity for line in lines},
        returned=returned_refunded_units(session, order.id, returning),
    )
    return max(due - refunded_so_far(session, order.id), Decimal(0))


def record_credit(
    session: Session, order: Order, *, source: str, source_id: int, amount: Decimal, lines: list[dict[str, Any]]
) -> None:
    """The ERP's credit fact: money going back to the buyer, once per cancellation or return."""
    outbox.append(
        session,
        tenant_id=order.tenant_id,
        aggregate_type="order",
        aggregate_id=str(order.id),
        event_type="refund.recorded",
        payload={
            "order_id": order.id,
            "external_id": order.external_id,
            "channel_id": order.channel_id,
            "source": source,
            "source_id": source_id,
            "amount": str(amount),
            "currency": order.currency,
            "lines": lines,
        },
    )
