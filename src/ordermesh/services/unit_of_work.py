"""The unit of work: one database transaction that rolls back unless told to commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ordermesh.adapters.store.tables import IdempotencyRecord
from ordermesh.domain.errors import IdempotencyKeyReused


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is acting: the tenant, the role of the key (or ``system``), and a name for audit trails."""

    tenant_id: int
    role: str
    actor: str


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class ResourceRef:
    type: str
    id: str


class IdempotentReplay(Exception):
    """Raised when an Idempotency-Key was already used for the same request: answer with ``resource``."""

    def __init__(self, resource: ResourceRef) -> None:
        super().__init__(f"replay of {resource.type} {resource.id}")
        self.resource = resource


class UnitOfWork:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        after_commit: Callable[[], None] | None = None,
        idempotency: tuple[int, IdempotencyKey] | None = None,
    ) -> None:
        """``idempotency``: (tenant id, key) when the request carried an Idempotency-Key; entering the
        unit of work then raises ``IdempotentReplay`` if that key already produced a result."""
        self._session_factory = session_factory
        self._after_commit_hook = after_commit
        self._idempotency = idempotency
        self._result: ResourceRef | None = None
        self.wake_allocator = False

    def __enter__(self) -> Self:
        self.session = self._session_factory()
        self._committed = False
        self.wake_allocator = False
        self._result = None
        if self._idempotency is not None:
            try:
                self._check_idempotency()
            except BaseException:
                self.session.close()
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if not self._committed:
            self.session.rollback()
        self.session.close()

    @property
    def has_idempotency_key(self) -> bool:
        return self._idempotency is not None

    @property
    def dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def _check_idempotency(self) -> None:
        assert self._idempotency is not None
        tenant_id, key = self._idempotency
        existing = self.session.scalar(
            select(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key.key)
        )
        if existing is not None:
            raise _replay_or_reject(existing, key)

    def record_result(self, resource_type: str, resource_id: object) -> None:
        """The resource this unit of work produced (replayed for a repeated Idempotency-Key)."""
        self._result = ResourceRef(resource_type, str(resource_id))

    def commit(self) -> None:
        if self._idempotency is not None and self._result is not None:
            tenant_id, key = self._idempotency
            self.session.add(
                IdempotencyRecord(
                    tenant_id=tenant_id,
                    key=key.key,
                    fingerprint=key.fingerprint,
                    resource_type=self._result.type,
                    resource_id=self._result.id,
                )
            )
        if self.wake_allocator and self.dialect == "postgresql":
            from ordermesh.adapters.store.notify import notify_allocator

            notify_allocator(self.session)
        try:
            self.session.commit()
        except IntegrityError:
            self.session.rollback()
            if self._idempotency is None:
                raise
            # A concurrent request with the same key committed first: answer with its result.
            tenant_id, key = self._idempotency
            existing = self.session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.key == key.key
                )
            )
            if existing is None:
                raise
            raise _replay_or_reject(existing, key) from None
        self._committed = True
        if self.wake_allocator and self._after_commit_hook is not None:
            self._after_commit_hook()

    def rollback(self) -> None:
        self.session.rollback()


def _replay_or_reject(record: IdempotencyRecord, key: IdempotencyKey) -> Exception:
    if record.fingerprint != key.fingerprint:
        return IdempotencyKeyReused("this Idempotency-Key was used for a different request", idempotency_key=key.key)
    return IdempotentReplay(ResourceRef(record.resource_type, record.resource_id))


UnitOfWorkFactory = Callable[[], UnitOfWork]
