"""The event feed (``GET /v1/events?after=``) and dead-letter handling, over the outbox.

On PostgreSQL, ids come from a sequence at insert time, not at commit: a transaction that took id 10
can commit after one that took id 11, and a reader that moved its cursor past 11 would never see 10.
So each outbox row records its writer's transaction id, and the feed
- only returns rows written by transactions older than every transaction still running
  (``pg_snapshot_xmin``): the set of rows below that horizon never changes again;
- orders them by (transaction id, row id), a total order in which every later row sorts after every
  row already returned, and pages with a cursor made of both numbers.
SQLite serialises writers, so its rows carry transaction id 0 and sort by id: the same cursor works.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, or_, select, text, tuple_

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.services.outbox import DEAD, PENDING
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_PAGE = 1000
CURSOR = re.compile(r"^(\d{1,19})\.(\d{1,19})$")
MAX_BIGINT = 2**63 - 1


def encode_cursor(row: OutboxMessage) -> str:
    return f"{row.transaction_id or 0}.{row.id}"


def decode_cursor(cursor: str | None) -> tuple[int, int]:
    if cursor in (None, "", "0"):
        return (0, 0)
    match = CURSOR.match(cursor)
    if not match or max(int(match[1]), int(match[2])) > MAX_BIGINT:
        raise InvalidInput("after must be a cursor this API returned (or 0 for the beginning)", field="after")
    return int(match[1]), int(match[2])


def read_feed(uow: UnitOfWork, caller: Caller, *, after: str | None = None, limit: int = 100) -> dict[str, Any]:
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
    position = decode_cursor(after)
    with uow:
        transaction = func.coalesce(OutboxMessage.transaction_id, 0)
        query = (
            select(OutboxMessage)
            .where(OutboxMessage.tenant_id == caller.tenant_id, tuple_(transaction, OutboxMessage.id) > position)
            .order_by(transaction, OutboxMessage.id)
            .limit(limit)
        )
        if uow.dialect == "postgresql":
            horizon = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            query = query.where(or_(OutboxMessage.transaction_id.is_(None), OutboxMessage.transaction_id < horizon))
        rows = uow.session.scalars(query).all()
        return {
            "items": [event_view(row) for row in rows],
            "next_cursor": encode_cursor(rows[-1]) if rows else (after or "0"),
        }


def event_view(row: OutboxMessage) -> dict[str, Any]:
    return {
        "id": row.id,
        "cursor": encode_cursor(row),
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


def get_event(uow: UnitOfWork, caller: Caller, message_id: int) -> dict[str, Any]:
    with uow:
        row = uow.session.scalar(
            select(OutboxMessage).where(OutboxMessage.tenant_id == caller.tenant_id, OutboxMessage.id == message_id)
        )
        if row is None:
            raise NotFound(f"no event {message_id}", code="event_not_found")
        return event_view(row)
