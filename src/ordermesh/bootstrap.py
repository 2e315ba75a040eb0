"""The composition root: settings -> engine -> session factories -> units of work -> workers."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ordermesh.adapters.store.db import make_engine, make_session_factories
from ordermesh.config import Settings, get_settings
from ordermesh.services.outbox import Handler
from ordermesh.services.unit_of_work import IdempotencyKey, UnitOfWork

if TYPE_CHECKING:
    from ordermesh.services.intake import GroupCommitter


@dataclass
class Application:
    settings: Settings
    engine: Engine
    # Outbox subscribers: event type (or "prefix.*") -> handler. Channel, carrier and ERP adapters
    # register here; with none, events are still readable through the feed.
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    # Set after a commit that gives the allocator work; the embedded workers wait on it.
    allocator_wakeup: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._writer, self._reader = make_session_factories(self.engine)

    def uow(self, *, idempotency: tuple[int, IdempotencyKey] | None = None) -> UnitOfWork:
        return UnitOfWork(self._writer, after_commit=self.allocator_wakeup.set, idempotency=idempotency)

    def read_uow(self) -> UnitOfWork:
        return UnitOfWork(self._reader)

    @cached_property
    def intake(self) -> GroupCommitter:
        """This process's group committer for order captures (services/intake.py)."""
        from ordermesh.services.intake import GroupCommitter

        return GroupCommitter(self.uow, self.read_uow, max_batch=self.settings.group_commit_max_orders)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, handlers: Mapping[str, Handler] | None = None) -> Application:
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout_seconds
    )
    return Application(settings=settings, engine=engine, handlers=dict(handlers or {}))
