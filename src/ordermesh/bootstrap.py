"""The composition root: settings -> engine -> session factories -> units of work -> workers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from ordermesh.adapters.secrets import ConfigurationError, SecretBox
from ordermesh.adapters.store.db import make_engine, make_session_factories
from ordermesh.config import Settings, get_settings
from ordermesh.services import aftersales, carrier_webhooks, channel_sync
from ordermesh.services.inbox import Processor
from ordermesh.services.jobs import Job
from ordermesh.services.outbox import Envelope, Handler, Preparer
from ordermesh.services.unit_of_work import IdempotencyKey, UnitOfWork

if TYPE_CHECKING:
    from ordermesh.services.intake import GroupCommitter


@dataclass
class Application:
    settings: Settings
    engine: Engine
    # Outbox subscribers: event type (or "prefix.*") -> handler. Channel, carrier and ERP adapters
    # register here; with none, events are still readable through the feed.
    handlers: dict[str, Handler] = field(default_factory=dict)
    # Webhook inbox processors by source (shopify, ghn, ...), run by the worker outside any transaction.
    inbox_processors: dict[str, Processor] = field(default_factory=dict)
    # Periodic jobs (polling fallbacks, monitors), each run once per interval across all workers.
    jobs: list[Job] = field(default_factory=list)
    # Outbox preparers: event type (or "prefix.*") -> called once per delivery pass with every
    # claimed message of that type, so a subscriber can answer them with one query (outbox.Preparer).
    preparers: dict[str, Preparer] = field(default_factory=dict)
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

    def subscribe(self, pattern: str, handler: Handler) -> None:
        """Deliver outbox messages whose type is ``pattern`` (or starts with it, for ``"prefix.*"``)."""
        if pattern in self.handlers:
            previous = self.handlers[pattern]

            def both(envelope: Envelope, first: Handler = previous, second: Handler = handler) -> None:
                first(envelope)
                second(envelope)

            self.handlers[pattern] = both
        else:
            self.handlers[pattern] = handler

    def prepare(self, pattern: str, preparer: Preparer) -> None:
        """Before the handlers of a delivery pass, call ``preparer`` once with the pass's messages
        of ``pattern``. One per pattern."""
        self.preparers[pattern] = preparer

    def on_inbox(self, source: str, processor: Processor) -> None:
        if source in self.inbox_processors:
            raise ValueError(f"an inbox processor for {source!r} is already registered")
        self.inbox_processors[source] = processor

    def every(self, name: str, seconds: float, job: Callable[[], object]) -> None:
        if any(existing.name == name for existing in self.jobs):
            raise ValueError(f"a periodic job named {name!r} is already registered")
        self.jobs.append(Job(name, seconds, job))

    @cached_property
    def secrets(self) -> SecretBox:
        """Seals and opens stored credentials; needs ``ORDERMESH_SECRET_KEY``."""
        key = self.settings.secret_key
        if key is None or not key.get_secret_value().strip():
            raise ConfigurationError(
                "ORDERMESH_SECRET_KEY is not set: it seals channel and carrier credentials at rest "
                "(make one with `ordermesh secret-key`)"
            )
        return SecretBox(key.get_secret_value())

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def close(self) -> None:
        if "intake" in self.__dict__:  # started: write what is queued before the pool goes
            self.intake.close()
        self.engine.dispose()


def bootstrap(settings: Settings | None = None, *, handlers: Mapping[str, Handler] | None = None) -> Application:
    settings = settings or get_settings()
    engine = make_engine(
        settings.database_url, pool_size=settings.db_pool_size, pool_timeout=settings.db_pool_timeout_seconds
    )
    app = Application(settings=settings, engine=engine, handlers=dict(handlers or {}))
    # Each integration area registers its outbox subscribers, inbox processors and periodic jobs here.
    channel_sync.wire(app)
    carrier_webhooks.wire(app)
    aftersales.wire(app)
    return app
