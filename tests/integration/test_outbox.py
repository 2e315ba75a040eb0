"""The outbox dispatcher (``services.outbox.deliver_due``) with fake handlers, on SQLite and
PostgreSQL: at least once (a lease that runs out is offered again), no transaction open while a
handler runs, in order per aggregate, retries with backoff (longer when the destination asks),
dead letters after ``max_attempts`` or a permanent error, and an operator's retry puts a dead letter back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.adapters.store.types import utcnow
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import Conflict, NotFound
from ordermesh.services import events, outbox, tenants
from ordermesh.services.outbox import DeliveryReport, Envelope, Handler, PermanentDeliveryError, TransientDeliveryError
from ordermesh.services.unit_of_work import Caller
from tests.conftest import make_app


class Clock:
    """Stands in for ``outbox.utcnow`` so a test can step past a retry's ``next_attempt_at``."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A fake destination: records every envelope offered, and fails while ``failures`` says so."""

    def __init__(self) -> None:
        self.seen: list[Envelope] = []
        self.failures: dict[int, Exception] = {}  # message id -> error to raise on delivery

    def __call__(self, envelope: Envelope) -> None:
        self.seen.append(envelope)
        if envelope.id in self.failures:
            raise self.failures[envelope.id]

    @property
    def ids(self) -> list[int]:
        return [e.id for e in self.seen]


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(outbox, "utcnow", fake)
    return fake


def append(app: Application, caller: Caller, aggregate: str, event_type: str = "order.created", **payload: Any) -> int:
    aggregate_type, aggregate_id = aggregate.split(":", 1)
    with app.uow() as uow:
        outbox.append(
            uow.session,
            tenant_id=caller.tenant_id,
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            event_type=event_type,
            payload=payload,
        )
        uow.commit()
        return int(uow.session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id.desc()).limit(1)))


def deliver(app: Application, handlers: dict[str, Handler], *, max_attempts: int = 10) -> DeliveryReport:
    return outbox.deliver_due(app.uow, handlers, limit=100, max_attempts=max_attempts)


def message(app: Application, message_id: int) -> dict[str, Any]:
    with app.read_uow() as uow:
        row = uow.session.get(OutboxMessage, message_id)
        assert row is not None
        return {
            "status": row.status,
            "attempts": row.attempts,
            "last_error": row.last_error,
            "next_attempt_at": row.next_attempt_at,
            "delivered_at": row.delivered_at,
        }


def test_each_due_message_is_delivered_and_marked_delivered(app: Application, caller: Caller, clock: Clock) -> None:
    first = append(app, caller, "order:1", "order.created", order_id=1)
    second = append(app, caller, "inventory:4:7", "inventory.level_changed", available=3)
    handler = Recorder()

    report = deliver(app, {"order.created": handler, "inventory.level_changed": handler})

    assert (report.delivered, report.retried, report.dead, report.errors) == (2, 0, 0, [])
    assert handler.seen == [
        Envelope(first, caller.tenant_id, "order", "1", "order.created", {"order_id": 1}),
        Envelope(second, caller.tenant_id, "inventory", "4:7", "inventory.level_changed", {"available": 3}),
    ]
    assert handler.seen[0].idempotency_key == f"order.created:{first}"
    assert message(app, first) | {"next_attempt_at": None} == {
        "status": "delivered",
        "attempts": 1,
        "last_error": None,
        "next_attempt_at": None,
        "delivered_at": clock.now,
    }
    assert deliver(app, {"order.created": handler}).handled == 0
    assert handler.ids == [first, second]  # nothing offered twice once delivered


def test_a_message_nobody_subscribes_to_is_delivered_as_it_is_claimed(
    app: Application, caller: Caller, clock: Clock
) -> None:
    unheard = append(app, caller, "order:1", "order.allocated", order_id=1)
    heard = append(app, caller, "order:2", "order.created", order_id=2)
    handler = Recorder()

    report = deliver(app, {"order.created": handler})

    assert report.delivered == 2
    assert handler.ids == [heard]
    assert message(app, unheard) | {"next_attempt_at": None} == {
        "status": "delivered",
        "attempts": 1,
        "last_error": None,
        "next_attempt_at": None,
        "delivered_at": clock.now,
    }


def test_a_preparer_sees_a_pass_s_messages_of_its_type_once_before_their_handlers(
    app: Application, caller: Caller, clock: Clock
) -> None:
    levels = [append(app, caller, f"inventory:1:{sku}", "inventory.level_changed", sku_id=sku) for sku in (7, 8, 9)]
    other = append(app, caller, "order:1", "order.created", order_id=1)
    calls: list[list[int]] = []
    handler = Recorder()

    def prepare(envelopes: Sequence[Envelope]) -> None:
        assert handler.seen == []  # before any handler of the pass
        calls.append([envelope.id for envelope in envelopes])

    report = outbox.deliver_due(
        app.uow, {"inventory.*": handler, "order.created": handler}, limit=100, preparers={"inventory.*": prepare}
    )
    assert report.delivered == 4
    assert calls == [levels]
    assert handler.ids == [*levels, other]


def test_a_failing_preparer_does_not_stop_delivery(app: Application, caller: Caller, clock: Clock) -> None:
    first = append(app, caller, "inventory:1:7", "inventory.level_changed", sku_id=7)
    handler = Recorder()

    def broken(envelopes: Sequence[Envelope]) -> None:
        raise RuntimeError("the preparer's query failed")

    report = outbox.deliver_due(app.uow, {"inventory.*": handler}, limit=100, preparers={"inventory.*": broken})
    assert report.delivered == 1
    assert handler.ids == [first]


def test_a_dispatcher_that_dies_mid_delivery_leaves_the_message_to_be_offered_again(
    app: Application, caller: Caller, clock: Clock
) -> None:
    """At least once: a dispatcher that claimed a message (and perhaps delivered it) but died before
    recording the outcome holds only a lease; when it runs out the message is offered again, and the
    receiver dedupes on the idempotency key. Until then nobody else is offered it."""
    message_id = append(app, caller, "order:1")
    handler = Recorder()
    claimed = outbox.claim(app.uow(), limit=10, lease_seconds=60)
    assert [envelope.id for envelope, _ in claimed] == [message_id]
    handler(claimed[0][0])  # delivered ... and then the process died

    assert deliver(app, {"order.*": handler}).handled == 0  # leased
    clock.advance(61)
    assert deliver(app, {"order.*": handler}).delivered == 1
    assert [e.idempotency_key for e in handler.seen] == [f"order.created:{message_id}"] * 2
    assert message(app, message_id)["attempts"] == 2


def test_a_dispatcher_renews_the_lease_of_a_slow_page_so_nobody_else_is_offered_it(
    app: Application, caller: Caller, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lease is short (a killed dispatcher's messages come back soon), so a dispatcher working
    through a slow page renews it, for the messages it has handled but not yet recorded as well: a
    second dispatcher claiming meanwhile gets none of them, and each is delivered once."""
    monkeypatch.setattr(outbox, "monotonic", lambda: clock.now.timestamp())
    ids = [append(app, caller, f"listing:{n}", "channel.stock_push") for n in range(3)]
    stolen: list[int] = []

    def slow(envelope: Envelope) -> None:
        clock.advance(outbox.DEFAULT_LEASE_SECONDS / 2)  # three of these outlast one lease
        rival = outbox.claim(app.uow(), limit=10, lease_seconds=outbox.DEFAULT_LEASE_SECONDS)
        stolen.extend(envelope.id for envelope, _ in rival)

    report = outbox.deliver_due(app.uow, {"channel.*": slow}, limit=10)

    assert stolen == []
    assert report.delivered == 3
    assert [message(app, n)["status"] for n in ids] == ["delivered"] * 3


def test_no_transaction_is_open_while_a_handler_runs(app: Application, caller: Caller, clock: Clock) -> None:
    """A slow destination must not hold database locks: during the handler, another writer can update
    the very row being delivered."""
    message_id = append(app, caller, "order:1")
    seen_status = []

    def slow_destination(envelope: Envelope) -> None:
        with app.uow() as uow:  # would wait on (or deadlock against) a held row lock / writer lock
            row = uow.session.get(OutboxMessage, envelope.id, with_for_update=True)
            assert row is not None
            seen_status.append(row.status)
            uow.commit()

    assert deliver(app, {"order.*": slow_destination}).delivered == 1
    assert seen_status == ["pending"]
    assert message(app, message_id)["status"] == "delivered"


def test_a_retry_after_hint_longer_than_the_backoff_is_honoured(app: Application, caller: Caller, clock: Clock) -> None:
    message_id = append(app, caller, "order:1")
    handler = Recorder()
    handler.failures[message_id] = TransientDeliveryError("429 from Shopify", retry_after=30)

    assert deliver(app, {"order.*": handler}).retried == 1
    assert message(app, message_id)["next_attempt_at"] == clock.now + timedelta(seconds=30)


def test_wildcard_and_exact_subscribers_each_receive_the_message(
    app: Application, caller: Caller, clock: Clock
) -> None:
    created = append(app, caller, "order:1", "order.created")
    level = append(app, caller, "inventory:1:1", "inventory.level_changed")
    every_order_event, exact = Recorder(), Recorder()

    deliver(app, {"order.*": every_order_event, "order.created": exact})

    assert every_order_event.ids == [created]
    assert exact.ids == [created]
    # Nobody subscribes to inventory events: delivered (they stay readable through the feed).
    assert message(app, level)["status"] == "delivered"


def test_a_failed_delivery_is_retried_after_a_backoff_until_it_succeeds(
    app: Application, caller: Caller, clock: Clock
) -> None:
    message_id = append(app, caller, "order:1")
    handler = Recorder()
    handler.failures[message_id] = TransientDeliveryError("503 from Shopee")

    report = deliver(app, {"order.*": handler})

    assert (report.delivered, report.retried, report.errors) == (0, 1, ["TransientDeliveryError: 503 from Shopee"])
    first_retry = message(app, message_id)
    assert (first_retry["status"], first_retry["attempts"]) == ("pending", 1)
    assert first_retry["last_error"] == "TransientDeliveryError: 503 from Shopee"
    # backoff_seconds(1) is 2 s with jitter in [0.5, 1]: due again 1 to 2 seconds later.
    assert clock.now + timedelta(seconds=1) <= first_retry["next_attempt_at"] <= clock.now + timedelta(seconds=2)
    assert deliver(app, {"order.*": handler}).handled == 0  # not before it is due

    del handler.failures[message_id]
    clock.advance(2)
    report = deliver(app, {"order.*": handler})

    assert report.delivered == 1
    assert handler.ids == [message_id, message_id]  # at least once: offered again after a failure
    assert message(app, message_id) | {"next_attempt_at": None, "delivered_at": None} == {
        "status": "delivered",
        "attempts": 2,
        "last_error": None,
        "next_attempt_at": None,
        "delivered_at": None,
    }


def test_each_retry_waits_longer_than_the_last(app: Application, caller: Caller, clock: Clock) -> None:
    message_id = append(app, caller, "order:1")
    handler = Recorder()
    handler.failures[message_id] = RuntimeError("connection reset")  # unexpected errors are retried too
    waits = []

    for _ in range(9):
        deliver(app, {"order.*": handler})
        due = message(app, message_id)["next_attempt_at"]
        waits.append((due - clock.now).total_seconds())
        clock.now = due

    for attempt, wait in enumerate(waits, start=1):
        assert min(2.0**attempt, 300) * 0.5 <= wait <= min(2.0**attempt, 300)
    assert message(app, message_id)["attempts"] == 9


def test_a_failing_message_blocks_later_messages_of_its_aggregate_but_not_of_others(
    app: Application, caller: Caller, clock: Clock
) -> None:
    blocked_first = append(app, caller, "order:1", "order.created")
    blocked_second = append(app, caller, "order:1", "order.status_changed")
    other = append(app, caller, "order:2", "order.created")
    handler = Recorder()
    handler.failures[blocked_first] = TransientDeliveryError("timeout")

    deliver(app, {"order.*": handler})

    assert handler.ids == [blocked_first, other]
    assert message(app, blocked_second)["attempts"] == 0
    assert (message(app, blocked_first)["status"], message(app, other)["status"]) == ("pending", "delivered")

    del handler.failures[blocked_first]
    clock.advance(2)
    deliver(app, {"order.*": handler})
    deliver(app, {"order.*": handler})

    assert [e.id for e in handler.seen if e.aggregate_id == "1"] == [blocked_first, blocked_first, blocked_second]
    assert message(app, blocked_second)["status"] == "delivered"


def test_a_message_is_dead_lettered_after_max_attempts_and_blocks_its_aggregate(
    app: Application, caller: Caller, clock: Clock
) -> None:
    doomed = append(app, caller, "order:1")
    behind = append(app, caller, "order:1", "order.status_changed")
    handler = Recorder()
    handler.failures[doomed] = TransientDeliveryError("503")

    reports = []
    for _ in range(4):
        reports.append(deliver(app, {"order.*": handler}, max_attempts=3))
        clock.advance(3600)

    assert [(r.retried, r.dead) for r in reports] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    assert message(app, doomed) | {"next_attempt_at": None} == {
        "status": "dead",
        "attempts": 3,
        "last_error": "TransientDeliveryError: 503",
        "next_attempt_at": None,
        "delivered_at": None,
    }
    assert handler.ids == [doomed] * 3
    assert message(app, behind)["status"] == "pending"
    assert [e["id"] for e in events.list_dead_letters(app.read_uow(), caller)] == [doomed]


def test_a_permanent_error_dead_letters_at_once(app: Application, caller: Caller, clock: Clock) -> None:
    message_id = append(app, caller, "order:1")
    handler = Recorder()
    handler.failures[message_id] = PermanentDeliveryError("400 invalid tracking number")

    report = deliver(app, {"order.*": handler}, max_attempts=10)

    assert (report.dead, report.errors) == (1, ["permanent: 400 invalid tracking number"])
    assert (message(app, message_id)["status"], message(app, message_id)["attempts"]) == ("dead", 1)
    clock.advance(3600)
    assert deliver(app, {"order.*": handler}).handled == 0
    assert handler.ids == [message_id]


def test_retrying_a_dead_letter_delivers_it_and_unblocks_its_aggregate(
    app: Application, caller: Caller, clock: Clock
) -> None:
    dead = append(app, caller, "order:1")
    behind = append(app, caller, "order:1", "order.status_changed")
    handler = Recorder()
    handler.failures[dead] = PermanentDeliveryError("400")
    deliver(app, {"order.*": handler})
    del handler.failures[dead]

    retried = events.retry_dead_letter(app.uow(), caller, dead)

    assert (retried["id"], retried["delivery"]) == (
        dead,
        {"status": "pending", "attempts": 0, "last_error": "permanent: 400"},
    )
    assert events.list_dead_letters(app.read_uow(), caller) == []
    clock.advance(1)
    deliver(app, {"order.*": handler})
    deliver(app, {"order.*": handler})
    assert handler.ids == [dead, dead, behind]
    assert (message(app, dead)["status"], message(app, behind)["status"]) == ("delivered", "delivered")


def test_only_a_dead_letter_of_ones_own_tenant_can_be_retried(app: Application, caller: Caller, clock: Clock) -> None:
    pending = append(app, caller, "order:1")
    dead = append(app, caller, "order:2")
    handler = Recorder()
    handler.failures[dead] = PermanentDeliveryError("400")
    handler.failures[pending] = TransientDeliveryError("503")
    deliver(app, {"order.*": handler})
    intruder = Caller(tenants.create_tenant(app.uow(), "other-tenant").tenant_id, "admin", "intruder")
    before = (message(app, pending), message(app, dead))

    with pytest.raises(Conflict) as not_dead:
        events.retry_dead_letter(app.uow(), caller, pending)
    with pytest.raises(NotFound):
        events.retry_dead_letter(app.uow(), intruder, dead)
    with pytest.raises(NotFound):
        events.retry_dead_letter(app.uow(), caller, dead + 1000)

    assert not_dead.value.code == "not_dead_letter"
    assert events.list_dead_letters(app.read_uow(), intruder) == []
    assert (message(app, pending), message(app, dead)) == before


def test_a_message_appended_in_a_rolled_back_unit_of_work_never_exists(app: Application, caller: Caller) -> None:
    with app.uow() as uow:
        outbox.append(
            uow.session,
            tenant_id=caller.tenant_id,
            aggregate_type="order",
            aggregate_id="1",
            event_type="order.created",
            payload={},
        )
        uow.session.flush()  # written, but never committed

    with app.read_uow() as uow:
        assert uow.session.scalars(select(OutboxMessage)).all() == []


def test_two_dispatchers_never_offer_one_message_at_the_same_time(pg_url: str) -> None:
    """PostgreSQL, real threads: dispatchers racing over the same due messages each deliver a disjoint
    share (SKIP LOCKED while claiming, then the lease), and every message is delivered exactly once."""
    import threading

    app = make_app(pg_url)
    try:
        caller = Caller(tenants.create_tenant(app.uow(), "dispatch").tenant_id, "admin", "test")
        ids = [append(app, caller, f"order:{n}") for n in range(60)]
        recorders = [Recorder() for _ in range(4)]
        start = threading.Barrier(len(recorders))

        def run(recorder: Recorder) -> None:
            start.wait()
            while outbox.deliver_due(app.uow, {"order.*": recorder}, limit=5).handled:
                pass

        threads = [threading.Thread(target=run, args=(recorder,)) for recorder in recorders]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        offered = sorted(i for recorder in recorders for i in recorder.ids)
        assert offered == ids
    finally:
        app.close()
