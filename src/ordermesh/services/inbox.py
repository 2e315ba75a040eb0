"""The inbox: a webhook is stored exactly as it arrived before it is acknowledged, then processed.

Storing first means a platform's delivery is never lost to a crash between our 2xx and our processing, and
the raw bytes stay available for replay and audit. Processing happens outside the storing transaction (an
adapter may call the platform back for details), at least once, with backoff; a processor that keeps
failing leaves the delivery ``dead`` with its error, visible and retryable.

A redelivery carrying the same ``dedupe_key`` (Shopify's event id, TikTok's notification id, ...) for the
same source and account stores nothing new and reports ``duplicate``: duplicates have the effect of one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ordermesh.adapters.store.locks import queue_order
from ordermesh.adapters.store.tables_inbox import InboxDelivery
from ordermesh.adapters.store.types import utcnow
from ordermesh.services.outbox import retry_pause
from ordermesh.services.unit_of_work import UnitOfWork

log = logging.getLogger("ordermesh.inbox")

PENDING, PROCESSED, DEAD = "pending", "processed", "dead"
DEFAULT_LEASE_SECONDS = 120.0
MAX_ATTEMPTS = 12


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    tenant_id: int
    source: str
    account: str
    dedupe_key: str | None
    headers: dict[str, str]
    body: bytes
    received_at: datetime
    attempts: int


Processor = Callable[[Delivery], None]


@dataclass
class InboxReport:
    processed: int = 0
    retried: int = 0
    dead: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.processed + self.retried + self.dead


def store(
    uow: UnitOfWork,
    *,
    tenant_id: int,
    source: str,
    account: str,
    dedupe_key: str | None,
    headers: Mapping[str, str],
    body: bytes,
) -> tuple[int, bool]:
    """Store one delivery and commit; returns (delivery id, duplicate)."""
    if dedupe_key is not None and len(dedupe_key) > 200:
        dedupe_key = dedupe_key[:200]
    with uow:
        existing = _find(uow, tenant_id, source, account, dedupe_key)
        if existing is not None:
            return existing, True
        row = InboxDelivery(
            tenant_id=tenant_id,
            source=source,
            account=account,
            dedupe_key=dedupe_key,
            headers={str(k).lower(): str(v) for k, v in headers.items()},
            body=bytes(body),
            status=PENDING,
            attempts=0,
            next_attempt_at=utcnow(),
        )
        uow.session.add(row)
        try:
            uow.session.flush()
        except IntegrityError:  # a concurrent redelivery won the race
            uow.session.rollback()
            found = _find(uow, tenant_id, source, account, dedupe_key)
            if found is None:
                raise
            return found, True
        delivery_id = row.id
        uow.commit()
    return delivery_id, False


def _find(uow: UnitOfWork, tenant_id: int, source: str, account: str, dedupe_key: str | None) -> int | None:
    if dedupe_key is None:
        return None
    return uow.session.scalar(
        select(InboxDelivery.id).where(
            InboxDelivery.tenant_id == tenant_id,
            InboxDelivery.source == source,
            InboxDelivery.account == account,
            InboxDelivery.dedupe_key == dedupe_key,
        )
    )


class InboxHost(Protocol):
    """What processing needs from the application: units of work and the registered processors."""

    @property
    def inbox_processors(self) -> Mapping[str, Processor]: ...

    def uow(self) -> UnitOfWork: ...


def process_due(
    app: InboxHost,
    *,
    limit: int = 100,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> InboxReport:
    """Claim due deliveries (lease + commit), run their source's processor outside any transaction,
    record each outcome. Deliveries of a source with no processor wait (they are not lost)."""
    report = InboxReport()
    processors = app.inbox_processors
    if not processors:
        return report
    now = utcnow()
    with app.uow() as uow:
        with queue_order(uow.session):
            rows = uow.session.scalars(
                select(InboxDelivery)
                .where(
                    InboxDelivery.status == PENDING,
                    InboxDelivery.next_attempt_at <= now,
                    InboxDelivery.source.in_(list(processors)),
                )
                .order_by(InboxDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            ).all()
        claimed = []
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + timedelta(seconds=lease_seconds)
            claimed.append(_delivery(row))
        uow.commit()
    for delivery in claimed:
        _run(app, processors[delivery.source], delivery, max_attempts=max_attempts, report=report)
    return report


def process_one(
    app: InboxHost,
    delivery_id: int,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    max_attempts: int = MAX_ATTEMPTS,
) -> bool:
    """Process one stored delivery now (the webhook's fast path). False when it is not ours to process:
    already processed, leased by a worker, or no processor for its source. Errors are recorded, not raised:
    the worker retries later."""
    processors = app.inbox_processors
    now = utcnow()
    with app.uow() as uow:
        row = uow.session.scalars(
            select(InboxDelivery)
            .where(InboxDelivery.id == delivery_id, InboxDelivery.status == PENDING)
            .with_for_update(skip_locked=True)
        ).first()
        if row is None or row.source not in processors or row.next_attempt_at > now:
            return False
        row.attempts += 1
        row.next_attempt_at = now + timedelta(seconds=lease_seconds)
        delivery = _delivery(row)
        uow.commit()
    report = InboxReport()
    _run(app, processors[delivery.source], delivery, max_attempts=max_attempts, report=report)
    return report.processed == 1


def retry(uow: UnitOfWork, tenant_id: int, delivery_id: int) -> bool:
    """Put a dead delivery back in the queue (an operator fixed the mapping, the credentials, ...)."""
    with uow:
        row = uow.session.get(InboxDelivery, delivery_id, with_for_update=True)
        if row is None or row.tenant_id != tenant_id or row.status != DEAD:
            return False
        row.status, row.next_attempt_at, row.attempts = PENDING, utcnow(), 0
        uow.commit()
    return True


def _run(app: InboxHost, processor: Processor, delivery: Delivery, *, max_attempts: int, report: InboxReport) -> None:
    error: Exception | None = None
    try:
        processor(delivery)
    except Exception as caught:
        error = caught
        log.warning("inbox delivery %s (%s) failed: %s", delivery.id, delivery.source, caught)
    now = utcnow()
    with app.uow() as uow:
        row = uow.session.get(InboxDelivery, delivery.id, with_for_update=True)
        if row is None or row.attempts != delivery.attempts or row.status != PENDING:
            return  # the lease ran out and someone else owns it now
        if error is None:
            row.status, row.processed_at, row.last_error = PROCESSED, now, None
            report.processed += 1
        else:
            row.last_error = f"{type(error).__name__}: {error}"[:2000]
            report.errors.append(row.last_error)
            if delivery.attempts >= max_attempts:
                row.status = DEAD
                report.dead += 1
            else:
                row.next_attempt_at = now + timedelta(seconds=retry_pause(delivery.attempts, error))
                report.retried += 1
        uow.commit()


def _delivery(row: InboxDelivery) -> Delivery:
    return Delivery(
        id=row.id,
        tenant_id=row.tenant_id,
        source=row.source,
        account=row.account,
        dedupe_key=row.dedupe_key,
        headers=dict(row.headers),
        body=bytes(row.body),
        received_at=row.received_at,
        attempts=row.attempts,
    )
