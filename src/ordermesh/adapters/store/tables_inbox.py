"""The inbox (every webhook/push delivery exactly as it arrived, stored before we answer 2xx) and the
bookkeeping of periodic jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from ordermesh.adapters.store.tables import Base, Id
from ordermesh.adapters.store.types import JSONDocument, UTCDateTime, utcnow


class InboxDelivery(Base):
    __tablename__ = "inbox"
    __table_args__ = (
        # A redelivery of the same platform event (same dedupe key) is stored once; deliveries without a
        # key (NULL) are all kept.
        UniqueConstraint("tenant_id", "source", "account", "dedupe_key"),
        # The worker's claim: pending rows in id order, nothing else (migration 0009).
        Index(
            "ix_inbox_due", "id", postgresql_where=text("status = 'pending'"), sqlite_where=text("status = 'pending'")
        ),
    )
    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    tenant_id: Mapped[int] = mapped_column(Id, ForeignKey("tenants.id"), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)  # shopify, shopee, ghn, ...
    account: Mapped[str] = mapped_column(String(100), nullable=False)  # channel connection / carrier account code
    dedupe_key: Mapped[str | None] = mapped_column(String(200))
    headers: Mapped[dict[str, Any]] = mapped_column(JSONDocument, nullable=False)
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    status: Mapped[str] = mapped_column(String(12), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class JobRun(Base):
    """When each periodic job last ran, so that many workers run it once per interval between them.
    A system table: jobs iterate over tenants themselves."""

    __tablename__ = "job_runs"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
