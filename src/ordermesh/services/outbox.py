"""The transactional outbox: append inside a unit of work; deliver after commit, at least once.

Delivery guarantees:
- at least once: a message is marked delivered only after its handler returned;
- in order per aggregate: a message is only offered while no earlier message of the same aggregate
  is still pending (retrying or waiting), so a dead letter blocks its aggregate until an operator
  retries or discards it;
- retries with exponential backoff and jitter on ``TransientDeliveryError`` (and any unexpected
  exception), up to ``max_attempts``; ``PermanentDeliveryError`` dead-letters at once;
- every message carries ``idempotency_key`` = ``"<event_type>:<id>"`` for the receiver to dedupe.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, exists, select, text
from sqlalchemy.orm import Session, aliased

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.adapters.store.types import utcnow

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
MAX_BACKOFF_SECONDS = 300


class TransientDeliveryError(Exception):
    """The destination may accept the message later (5xx, 429, timeout)."""


class PermanentDeliveryError(Exception):
    """The destination will never accept this message as it is (a 4xx that is not a rate limit)."""


@dataclass(frozen=True, slots=True)
class Envelope:
    id: int
    tenant_id: int
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: Mapping[str, Any]

    @property
    def idempotency_key(self) -> str:
        return f"{self.event_type}:{self.id}"


Handler = Callable[[Envelope], None]


def append(
    session: Session,
    *,
    tenant_id: int,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    payload: Mapping[str, Any],
) -> None:
    now = utcnow()
    session.add(
        OutboxMessage(
            tenant_id=tenant_id,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            event_type=event_type,
            payload=dict(payload),
            transaction_id=_transaction_id(session),
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _transaction_id(session: Session) -> int | None:
    """PostgreSQL's id of the current transaction (cached per transaction); None on SQLite."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    transaction = session.get_transaction()
    cached = session.info.get("transaction_id")
    if cached is not None and cached[0] is transaction:
        return int(cached[1])
    value = int(session.scalar(text("SELECT pg_current_xact_id()::text::bigint")))
    session.info["transaction_id"] = (transaction, value)
    return value


@dataclass
class DeliveryReport:
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.delivered + self.retried + self.dead


def backoff_seconds(attempts: int) -> float:
    base = min(2.0**attempts, MAX_BACKOFF_SECONDS)
    return base * random.uniform(0.5, 1.0)


def deliver_batch(
    session: Session,
    handlers: Mapping[str, Handler],
    *,
    limit: int = 100,
    max_attempts: int = 10,
) -> DeliveryReport:
    """Deliver up to ``limit`` due messages; the caller commits. ``handlers`` maps an event type, or a
    prefix ending in ``*`` (``"order.*"``), to a handler. Messages nobody subscribes to are marked
    delivered: they stay readable through the event feed."""
    now = utcnow()
    earlier = aliased(OutboxMessage)
    due = session.scalars(
        select(OutboxMessage)
        .where(
            OutboxMessage.status == PENDING,
            OutboxMessage.next_attempt_at <= now,
            ~exists().where(
                and_(
                    earlier.aggregate_type == OutboxMessage.aggregate_type,
                    earlier.aggregate_id == OutboxMessage.aggregate_id,
                    earlier.status != DELIVERED,
                    earlier.id < OutboxMessage.id,
                )
            ),
        )
        .order_by(OutboxMessage.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    report = DeliveryReport()
    for message in due:
        subscribers = _subscribers(handlers, message.event_type)
        envelope = Envelope(
            message.id,
            message.tenant_id,
            message.aggregate_type,
            message.aggregate_id,
            message.event_type,
            message.payload,
        )
        message.attempts += 1
        try:
            for handler in subscribers:
                handler(envelope)
        except PermanentDeliveryError as error:
            message.status, message.last_error = DEAD, f"permanent: {error}"
            report.dead += 1
            report.errors.append(message.last_error)
        except Exception as error:
            message.last_error = f"{type(error).__name__}: {error}"
            report.errors.append(message.last_error)
            if message.attempts >= max_attempts:
                message.status = DEAD
                report.dead += 1
            else:
                message.next_attempt_at = now + timedelta(seconds=backoff_seconds(message.attempts))
                report.retried += 1
        else:
            message.status, message.delivered_at, message.last_error = DELIVERED, now, None
            report.delivered += 1
    return report


def _subscribers(handlers: Mapping[str, Handler], event_type: str) -> list[Handler]:
    found = []
    for pattern, handler in handlers.items():
        if pattern == event_type or (pattern.endswith("*") and event_type.startswith(pattern[:-1])):
            found.append(handler)
    return found
