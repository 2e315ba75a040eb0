"""PostgreSQL LISTEN/NOTIFY wake-ups: sent inside a transaction, delivered when it commits."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

ALLOCATOR_CHANNEL = "ordermesh_allocate"
OUTBOX_CHANNEL = "ordermesh_outbox"


def notify_allocator(session: Session) -> None:
    session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": ALLOCATOR_CHANNEL})
