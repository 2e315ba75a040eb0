"""The event feed (``GET /v1/events?after=``) and dead-letter handling, over the outbox.

On PostgreSQL, ids come from a sequence at insert time, not at commit: a transaction that took id 10
can commit after one that took id 11. A reader that returned 11 and moved its cursor past it would
never see 10. So the feed only returns rows written by transactions older than every transaction
still running (``pg_snapshot_xmin``); later rows appear on the next read, in id order, and none is
ever skipped. SQLite serialises writers, so its ids are already in commit order.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select, text

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.services.outbox import DEAD, PENDING
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_PAGE = 1000


def read_feed(uow: UnitOfWork, caller: Caller, *, after: int = 0, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
    if after < 0:
        raise InvalidInput("after must be a cursor this API returned", field="after")
    with uow:
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == caller.tenant_id, OutboxMessage.id > after)
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        if uow.dialect == "postgresql":
            horizon = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            query = query.where(or_(OutboxMessage.transaction_id.is_(None), OutboxMessage.transaction_id < horizon))
        rows = uow.session.scalars(query).all()
        return {
            "items": [event_view(row) for row in rows],
            "next_cursor": rows[-1].id if rows else after,
        }


def event_view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.event_type,
        "aggregate": {"type": row.aggregate_type, "id": row.aggregate_id},
        "payload": row.payload,
        "idempotency_key": f"{row.event_type}:{row.id}",
        "delivery": {"status": row.status, "attempts": row.attempts, "last_error": row.last_error},
        "created_at": row.created_at,
    }


def list_dead_letters(uow: UnitOfWork, caller: Caller, limit: int = 100) -> list[dict[str, Any]]:
    with uow:
        rows = uow.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == caller.tenant_id, OutboxMessage.status == DEAD)
            .order_by(OutboxMessage.id)
            .limit(limit)
        ).all()
        return [event_view(row) for row in rows]


def retry_dead_letter(uow: UnitOfWork, caller: Caller, message_id: int) -> dict[str, Any]:
    from ordermesh.adapters.store.types import utcnow

    with uow:
        row = uow.session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == caller.tenant_id, OutboxMessage.id == message_id)
            .with_for_update()
        )
        if row is None:
            raise NotFound(f"no event {message_id}", code="event_not_found")
        if row.status != DEAD:
            raise Conflict(f"event {message_id} is {row.status}, not dead", code="not_dead_letter")
        row.status, row.attempts, row.next_attempt_at = PENDING, 0, utcnow()
        uow.record_result("event", row.id)
        uow.commit()
        return event_view(row)
