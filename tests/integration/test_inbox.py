"""The webhook inbox on SQLite and PostgreSQL: stored before processing, a redelivery stored once,
processed outside any transaction, retried with backoff, dead after the limit, retryable by an operator."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from ordermesh.adapters.outbound import TransientDeliveryError
from ordermesh.adapters.store.tables_inbox import InboxDelivery
from ordermesh.adapters.store.types import utcnow
from ordermesh.bootstrap import Application
from ordermesh.services import inbox, tenants
from ordermesh.services.inbox import Delivery
from ordermesh.services.unit_of_work import Caller
from tests.conftest import make_app


def store(app: Application, caller: Caller, key: str | None, body: bytes = b'{"id": 1}') -> tuple[int, bool]:
    return inbox.store(
        app.uow(),
        tenant_id=caller.tenant_id,
        source="sample-shop",
        account="main-store",
        dedupe_key=key,
        headers={"X-Shopify-Topic": "orders/create"},
        body=body,
    )


def row(app: Application, delivery_id: int) -> InboxDelivery:
    with app.read_uow() as uow:
        found = uow.session.get(InboxDelivery, delivery_id)
        assert found is not None
        uow.session.expunge(found)
        return found


def test_a_delivery_is_stored_byte_for_byte_and_a_redelivery_only_once(app: Application, caller: Caller) -> None:
    body = b'{"id": 820982911946154508, "note": "caf\\u00e9"}\n'
    first, duplicate = store(app, caller, "evt-1", body)
    again, duplicate_again = store(app, caller, "evt-1", b"different bytes, same event id")

    assert (duplicate, again, duplicate_again) == (False, first, True)
    stored = row(app, first)
    assert (stored.body, stored.headers, stored.status) == (body, {"x-shopify-topic": "orders/create"}, "pending")
    keyless = [store(app, caller, None) for _ in range(2)]  # no key: every delivery is kept
    assert [duplicate for _, duplicate in keyless] == [False, False]


def test_the_processor_runs_outside_a_transaction_and_marks_the_delivery_processed(
    app: Application, caller: Caller
) -> None:
    seen: list[Delivery] = []

    def processor(delivery: Delivery) -> None:
        with app.uow() as uow:  # would block on a held writer lock / row lock
            uow.session.get(InboxDelivery, delivery.id, with_for_update=True)
            uow.commit()
        seen.append(delivery)

    app.on_inbox("sample-shop", processor)
    delivery_id, _ = store(app, caller, "evt-1")

    assert inbox.process_one(app, delivery_id) is True
    assert inbox.process_one(app, delivery_id) is False  # already processed
    assert inbox.process_due(app).handled == 0
    assert [d.id for d in seen] == [delivery_id]
    assert (seen[0].source, seen[0].account, seen[0].body) == ("sample-shop", "main-store", b'{"id": 1}')
    assert row(app, delivery_id).status == "processed"


def test_a_failing_delivery_backs_off_then_dies_and_an_operator_can_retry_it(
    app: Application, caller: Caller, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [utcnow()]
    monkeypatch.setattr(inbox, "utcnow", lambda: now[0])
    failures = [TransientDeliveryError("Shopee answered 503", retry_after=20)] * 3
    calls = []

    def processor(delivery: Delivery) -> None:
        calls.append(delivery.attempts)
        if failures:
            raise failures.pop()

    app.on_inbox("sample-shop", processor)
    delivery_id, _ = store(app, caller, "evt-1")

    report = inbox.process_due(app, max_attempts=2)
    assert (report.retried, report.errors) == (1, ["TransientDeliveryError: Shopee answered 503"])
    assert row(app, delivery_id).next_attempt_at == now[0] + timedelta(seconds=20)  # Retry-After honoured
    assert inbox.process_due(app).handled == 0  # not due yet
    now[0] += timedelta(seconds=21)
    assert inbox.process_due(app, max_attempts=2).dead == 1
    assert row(app, delivery_id).status == "dead"

    intruder = tenants.create_tenant(app.uow(), "intruder").tenant_id
    assert inbox.retry(app.uow(), intruder, delivery_id) is False
    assert inbox.retry(app.uow(), caller.tenant_id, delivery_id) is True
    assert inbox.process_due(app).retried == 1  # attempts start again from zero: a failure is retried, not dead
    failures.clear()
    now[0] += timedelta(seconds=3600)
    assert inbox.process_due(app).processed == 1
    assert calls == [1, 2, 1, 2]


def test_deliveries_of_a_source_without_a_processor_wait(app: Application, caller: Caller) -> None:
    delivery_id, _ = store(app, caller, "evt-1")
    assert inbox.process_due(app).handled == 0
    app.on_inbox("some-other-source", lambda delivery: None)  # not a source any area wires
    assert inbox.process_due(app).handled == 0
    assert row(app, delivery_id).status == "pending"


@pytest.mark.postgres
def test_concurrent_redeliveries_store_one_row_and_workers_process_it_once(pg_url: str) -> None:
    app = make_app(pg_url)
    try:
        caller = Caller(tenants.create_tenant(app.uow(), "inbox").tenant_id, "admin", "test")
        results: list[tuple[int, bool]] = []
        start = threading.Barrier(6)

        def redeliver() -> None:
            start.wait()
            results.append(store(app, caller, "evt-race"))

        threads = [threading.Thread(target=redeliver) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert len({delivery_id for delivery_id, _ in results}) == 1
        assert sorted(duplicate for _, duplicate in results) == [False] + [True] * 5

        processed: list[int] = []
        app.on_inbox("sample-shop", lambda delivery: processed.append(delivery.id))
        workers = [threading.Thread(target=lambda: inbox.process_due(app)) for _ in range(4)]
        for thread in workers:
            thread.start()
        for thread in workers:
            thread.join(30)
        assert processed == [results[0][0]]
    finally:
        app.close()
