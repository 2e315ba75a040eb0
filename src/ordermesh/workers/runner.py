"""The worker loop.

Each pass: turn stock arrivals into re-queued backorders, drain the allocation queue in batches,
run due periodic jobs, process stored webhook deliveries, then deliver due outbox messages. Between
passes it sleeps until woken (an in-process event in the embedded mode, PostgreSQL ``LISTEN`` across
processes) or the poll interval passes. Any number of
loops can run against one PostgreSQL database: they coordinate only through row locks and
``SKIP LOCKED``. A failing pass is logged and retried after a pause; the loop never dies of it.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge, Histogram
from sqlalchemy.exc import DBAPIError, OperationalError

from ordermesh.bootstrap import Application
from ordermesh.services import allocation, inbox, jobs, outbox, rerouting

log = logging.getLogger("ordermesh.workers")

ORDERS_ALLOCATED = Counter(
    "ordermesh_allocator_orders_total", "Orders the allocator processed, by resulting status", ["status"]
)
UNITS_RESERVED = Counter("ordermesh_allocator_units_reserved_total", "Units reserved by the allocator")
BATCH_SECONDS = Histogram(
    "ordermesh_allocator_batch_seconds",
    "Time to allocate one batch, claim to commit",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Gauge("ordermesh_allocator_batch_size", "Orders the allocator will claim in its next batch")
OUTBOX_MESSAGES = Counter("ordermesh_outbox_messages_total", "Outbox delivery outcomes", ["outcome"])
INBOX_DELIVERIES = Counter("ordermesh_inbox_deliveries_total", "Webhook inbox processing outcomes", ["outcome"])
WORKER_ERRORS = Counter("ordermesh_worker_errors_total", "Worker passes that failed")


@dataclass
class WorkerStats:
    batches: int = 0
    orders_claimed: int = 0
    units_reserved: int = 0
    messages_delivered: int = 0
    errors: int = 0
    last_error: str | None = None
    by_status: dict[str, int] = field(default_factory=dict)


def next_batch_size(current: int, claimed: int, *, base: int, largest: int) -> int:
    """Batch size adapting to the backlog: a full batch means more is waiting, so the next one is
    twice as large (up to ``largest``: one batch holds its hot inventory rows until it commits);
    a batch that was not full means the backlog is gone, so back to ``base``."""
    if claimed >= current:
        return min(max(current * 2, base), max(largest, base))
    return base


# Longest a pass keeps allocating a backlog before it runs its jobs, webhooks and outbox. In a flash
# sale the backlog never empties for minutes, and stock pushes to the channels waited behind it.
ALLOCATION_SLICE_SECONDS = 1.0
OUTBOX_PAGE = 500
OUTBOX_SLICE_SECONDS = 0.5


def _count(counter: Counter, **outcomes: int) -> None:
    """Add each non-zero outcome to ``counter`` under its name."""
    for name, count in outcomes.items():
        if count:
            counter.labels(name).inc(count)


class Worker:
    def __init__(self, app: Application, *, name: str = "worker") -> None:
        self.app = app
        self.name = name
        self.batch_size = app.settings.allocation_batch_size
        self.stop_event = threading.Event()
        self.stats = WorkerStats()
        self._threads: list[threading.Thread] = []

    def run_pass(self) -> int:
        """One full pass; returns how much work it did (0 means idle)."""
        settings = self.app.settings
        work = rerouting.process_reroute_requests(self.app.uow())
        work += allocation.requeue_backorders(self.app.uow())
        allocating_since = time.perf_counter()
        while not self.stop_event.is_set():
            started = time.perf_counter()
            limit = self.batch_size
            outcome = allocation.allocate_batch(self.app.uow(), limit=limit, auto_release=settings.auto_release)
            self.batch_size = next_batch_size(
                limit, outcome.claimed, base=settings.allocation_batch_size, largest=settings.allocation_batch_max
            )
            BATCH_SIZE.set(self.batch_size)
            if outcome.claimed == 0:
                break
            BATCH_SECONDS.observe(time.perf_counter() - started)
            UNITS_RESERVED.inc(outcome.units_reserved)
            for status, count in outcome.by_status.items():
                ORDERS_ALLOCATED.labels(status).inc(count)
            work += outcome.claimed
            self.stats.batches += 1
            self.stats.orders_claimed += outcome.claimed
            self.stats.units_reserved += outcome.units_reserved
            for status, count in outcome.by_status.items():
                self.stats.by_status[status] = self.stats.by_status.get(status, 0) + count
            if outcome.claimed < limit:
                break
            if time.perf_counter() - allocating_since > ALLOCATION_SLICE_SECONDS:
                break  # the rest of the pass (outbox: channel stock pushes) waits no longer; back soon
        work += jobs.run_due(self.app.uow, self.app.jobs)
        received = inbox.process_due(self.app, limit=200)
        work += received.handled
        _count(INBOX_DELIVERIES, processed=received.processed, retried=received.retried, dead=received.dead)
        return work + self._deliver_outbox()

    def _deliver_outbox(self) -> int:
        """Deliver due outbox messages in pages of ``OUTBOX_PAGE`` for up to ``OUTBOX_SLICE_SECONDS``
        (one page of 500 a pass fell behind a flash sale's 1,700 messages a second)."""
        delivered, started = 0, time.perf_counter()
        while not self.stop_event.is_set():
            report = outbox.deliver_due(
                self.app.uow,
                self.app.handlers,
                limit=OUTBOX_PAGE,
                max_attempts=self.app.settings.outbox_max_attempts,
                preparers=self.app.preparers,
            )
            self.stats.messages_delivered += report.delivered
            _count(OUTBOX_MESSAGES, delivered=report.delivered, retried=report.retried, dead=report.dead)
            delivered += report.handled
            if report.handled < OUTBOX_PAGE or time.perf_counter() - started > OUTBOX_SLICE_SECONDS:
                return delivered
        return delivered

    def run_forever(self) -> None:
        wakeup = self.app.allocator_wakeup
        pause = self.app.settings.worker_poll_seconds
        linger = self.app.settings.allocation_linger_seconds
        while not self.stop_event.is_set():
            wakeup.clear()
            try:
                busy = self.run_pass()
            except (OperationalError, DBAPIError) as error:  # lost connection, deadlock victim, ...
                self._failed(error)
                self.stop_event.wait(1.0)
                continue
            except Exception as error:
                log.exception("worker pass failed")
                self._failed(error)
                self.stop_event.wait(1.0)
                continue
            if not busy:
                wakeup.wait(pause)
            # Let orders gather for a moment before the next pass: a batch of many orders costs
            # about as much as a batch of one, and the writer lock is shared with intake.
            if linger:
                self.stop_event.wait(linger)

    def _failed(self, error: Exception) -> None:
        WORKER_ERRORS.inc()
        self.stats.errors += 1
        self.stats.last_error = f"{type(error).__name__}: {error}"[:500]
        log.warning("worker pass failed: %s", self.stats.last_error)

    def start(self) -> None:
        """Run in background threads (the embedded mode), plus a LISTEN thread on PostgreSQL."""
        loop = threading.Thread(target=self.run_forever, name=f"{self.name}-loop", daemon=True)
        self._threads.append(loop)
        if self.app.is_postgres:
            listener = threading.Thread(target=self._listen, name=f"{self.name}-listen", daemon=True)
            self._threads.append(listener)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        self.app.allocator_wakeup.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def _listen(self) -> None:
        """Turn PostgreSQL notifications from any process into a local wake-up."""
        import psycopg

        from ordermesh.adapters.store.notify import ALLOCATOR_CHANNEL

        url = self.app.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {ALLOCATOR_CHANNEL}")
                    while not self.stop_event.is_set():
                        for _ in connection.notifies(timeout=1.0, stop_after=1):
                            self.app.allocator_wakeup.set()
            except psycopg.Error as error:
                log.warning("LISTEN connection lost (%s); reconnecting", error)
                self.stop_event.wait(1.0)


def drain(app: Application, *, timeout: float = 60.0) -> Worker:
    """Run passes until there is nothing left to do (used by tests and the CLI's one-shot mode)."""
    worker = Worker(app)
    deadline = time.monotonic() + timeout
    while worker.run_pass() and time.monotonic() < deadline:
        pass
    return worker
