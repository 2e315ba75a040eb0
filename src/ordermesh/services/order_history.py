"""Recording what happens to an order: the audit trail and the outbox, always together."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ordermesh.adapters.store.bulk import detached_row, insert_rows, table_of
from ordermesh.adapters.store.tables import Order, OrderEvent
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.lifecycle import OrderStatus, ensure_transition
from ordermesh.services import outbox


def record(
    session: Session,
    order: Order,
    event_type: str,
    actor: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
    from_status: str | None = None,
    to_status: str | None = None,
) -> OrderEvent:
    now = utcnow()
    row = {
        "tenant_id": order.tenant_id,
        "order_id": order.id,
        "type": event_type,
        "from_status": from_status,
        "to_status": to_status,
        "actor": actor,
        "reason": reason,
        "data": data or {},
        "created_at": now,
    }
    deferred: list[dict[str, Any]] | None = session.info.get(_DEFERRED)
    if deferred is not None:
        deferred.append(row)  # written by ``deferred_writes``
        event = detached_row(OrderEvent, id=None, **row)  # no id until then
    else:
        event = OrderEvent(**row)
        session.add(event)
    outbox.append(
        session,
        tenant_id=order.tenant_id,
        aggregate_type="order",
        aggregate_id=str(order.id),
        event_type=f"order.{event_type}",
        payload={
            "order_id": order.id,
            "channel_id": order.channel_id,
            "external_id": order.external_id,
            "status": to_status or order.status,
            "from_status": from_status,
            "reason": reason,
            **(data or {}),
        },
    )
    order.updated_at = now
    return event


_DEFERRED = "order_history.deferred"


@contextmanager
def deferred_writes(session: Session) -> Iterator[None]:
    """Within the block, ``record`` and ``outbox.append`` only collect their rows; leaving it
    writes them with one statement per table (``adapters/store/bulk.py``) instead of an ORM insert
    per row, in the order they were recorded. For transactions that record hundreds of events
    (batch allocation); nothing inside may read order events or the outbox back. On an error the
    rows are dropped with the transaction they belonged to."""
    events: list[dict[str, Any]] = session.info.setdefault(_DEFERRED, [])
    outbox.defer(session)
    try:
        yield
    except BaseException:
        session.info.pop(_DEFERRED, None)
        outbox.discard_deferred(session)
        raise
    session.info.pop(_DEFERRED, None)
    insert_rows(session, table_of(OrderEvent), events)
    outbox.write_deferred(session)


def transition(
    session: Session,
    order: Order,
    target: OrderStatus,
    actor: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Move ``order`` to ``target`` if the lifecycle allows it, and record the transition (invariant 5)."""
    current = OrderStatus(order.status)
    if current == target:
        return
    ensure_transition(current, target, order_id=order.id)
    record(
        session,
        order,
        "status_changed",
        actor,
        reason=reason,
        data=data,
        from_status=current.value,
        to_status=target.value,
    )
    order.status = target.value


def transition_unwritten(
    session: Session,
    order: Order,
    target: OrderStatus,
    actor: str,
    *,
    reason: str | None = None,
    data: dict[str, Any] | None = None,
) -> bool:
    """``transition``, except that the order's row is left for the caller to write (its ``status``
    and ``updated_at`` as set on ``order``), so a batch writes hundreds of them with one statement
    instead of an update each. The event and its outbox message are recorded as usual. The caller
    must write the row in this transaction, and nothing may change the order through the ORM
    after this (a later flush would not carry the new status). Returns whether it changed."""
    if OrderStatus(order.status) == target:
        return False
    transition(session, order, target, actor, reason=reason, data=data)
    # Taken as already stored: no flush writes them; the caller does.
    set_committed_value(order, "status", order.status)
    set_committed_value(order, "updated_at", order.updated_at)
    return True
