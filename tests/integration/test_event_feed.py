"""The event feed (``services.events.read_feed``) on SQLite and PostgreSQL: events in id order with a
cursor that never skips one, even when PostgreSQL transactions commit out of id order."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text

from ordermesh.bootstrap import Application
from ordermesh.domain.errors import InvalidInput
from ordermesh.services import catalog, events, inventory, orders, outbox, tenants
from ordermesh.services.unit_of_work import Caller, UnitOfWork
from tests.conftest import make_app

ADDRESS = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}


def make_facts(app: Application, caller: Caller) -> None:
    """A stock change (one inventory event) and a captured order (one order event)."""
    catalog.upsert_location(app.uow(), caller, "HN", catalog.LocationInput("HN"))
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("A", "Apple")])
    inventory.set_on_hand(app.uow(), caller, "HN", "A", inventory.StockCount(5, "stock take"))
    new = orders.NewOrder("direct", "ext-1", "VND", [orders.NewLine("A", 1, Decimal(1))], ADDRESS)
    orders.capture_order(app.uow(), caller, new)


def read_all(app: Application, caller: Caller, *, after: str = "0", limit: int = 2) -> tuple[list[dict[str, Any]], str]:
    """Follow the cursor until a page comes back empty; returns every item and the final cursor."""
    items: list[dict[str, Any]] = []
    for _ in range(1000):
        page = events.read_feed(app.read_uow(), caller, after=after, limit=limit)
        if not page["items"]:
            assert page["next_cursor"] == after
            return items, after
        items += page["items"]
        after = page["next_cursor"]
        assert after == page["items"][-1]["cursor"]
    raise AssertionError("the cursor never reached the end of the feed")


def append(uow: UnitOfWork, caller: Caller, aggregate_id: str) -> None:
    outbox.append(
        uow.session,
        tenant_id=caller.tenant_id,
        aggregate_type="order",
        aggregate_id=aggregate_id,
        event_type="order.created",
        payload={"order": aggregate_id},
    )
    uow.session.flush()


def wait_for_feed(app: Application, caller: Caller, after: str, count: int, seconds: float = 10.0) -> list[Any]:
    """The feed's horizon is the oldest transaction still running anywhere on the server, so an
    unrelated transaction can hold it back for a moment: wait (boundedly) for ``count`` items."""
    deadline = time.monotonic() + seconds
    while True:
        items = events.read_feed(app.read_uow(), caller, after=after)["items"]
        if len(items) >= count or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def test_the_feed_returns_every_event_in_id_order_and_the_cursor_moves_past_them(
    app: Application, caller: Caller
) -> None:
    make_facts(app, caller)
    wait_for_feed(app, caller, after="0", count=2)

    items, cursor = read_all(app, caller, limit=2)

    assert [item["type"] for item in items] == ["inventory.level_changed", "order.created"]
    ids = [item["id"] for item in items]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert cursor == items[-1]["cursor"]
    assert events.read_feed(app.read_uow(), caller, after=cursor) == {"items": [], "next_cursor": cursor}
    # A later fact appears after the cursor, and only it.
    inventory.adjust(app.uow(), caller, "HN", "A", inventory.StockAdjustment(1, "receipt"))
    later = wait_for_feed(app, caller, after=cursor, count=1)
    assert [(item["type"], item["payload"]["on_hand"]) for item in later] == [("inventory.level_changed", 6)]


def test_a_feed_item_describes_the_fact_and_its_delivery(app: Application, caller: Caller) -> None:
    make_facts(app, caller)

    created = wait_for_feed(app, caller, after="0", count=2)[-1]

    assert {k: v for k, v in created.items() if k not in {"created_at", "id", "cursor", "payload", "aggregate"}} == {
        "type": "order.created",
        "idempotency_key": f"order.created:{created['id']}",
        "delivery": {"status": "pending", "attempts": 0, "last_error": None},
    }
    assert created["aggregate"]["type"] == "order"
    assert created["payload"]["external_id"] == "ext-1"
    assert created["payload"]["status"] == "pending"
    assert created["created_at"].tzinfo is not None


def test_the_feed_shows_only_the_callers_tenant(app: Application, caller: Caller) -> None:
    make_facts(app, caller)
    other = Caller(tenants.create_tenant(app.uow(), "other-tenant").tenant_id, "viewer", "neighbour")

    assert events.read_feed(app.read_uow(), other) == {"items": [], "next_cursor": "0"}
    assert len(wait_for_feed(app, caller, after="0", count=2)) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # refused before any query
def test_the_feed_refuses_a_bad_limit_or_cursor(app: Application, caller: Caller) -> None:
    for kwargs, field in [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"after": "-1"}, "after"),
        ({"after": "12"}, "after"),
        ({"after": "1.99999999999999999999"}, "after"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            events.read_feed(app.read_uow(), caller, **kwargs)
        assert raised.value.details["field"] == field


def test_the_feed_never_skips_an_event_committed_after_a_later_one(pg_url: str) -> None:
    """PostgreSQL: transaction A writes an event (smaller id) and stays open; B writes one (larger
    id) and commits. B's event must not be returned before A commits, or a reader would move its
    cursor past A's id and never see A's event."""
    app = make_app(pg_url)
    try:
        caller = Caller(tenants.create_tenant(app.uow(), "feed").tenant_id, "admin", "test")
        with app.uow() as first:
            append(first, caller, "A")
            with app.uow() as second:
                append(second, caller, "B")
                second.commit()
            while_open = events.read_feed(app.read_uow(), caller)
            first.commit()

        assert while_open == {"items": [], "next_cursor": "0"}
        items = wait_for_feed(app, caller, after="0", count=2)
        assert [item["aggregate"]["id"] for item in items] == ["A", "B"]
        assert items[0]["id"] < items[1]["id"]
    finally:
        app.close()


def test_the_feed_never_skips_an_event_whose_transaction_started_later(pg_url: str) -> None:
    """PostgreSQL: R takes its transaction id first (it wrote something else), T takes a later one
    but writes its event first (smaller row id) and stays open; R writes its event and commits.
    A reader that gets R's event now moves its cursor past T's id, and never sees T's event."""
    app = make_app(pg_url)
    try:
        caller = Caller(tenants.create_tenant(app.uow(), "feed").tenant_id, "admin", "test")
        with app.uow() as early:
            early.session.execute(text("SELECT pg_current_xact_id()"))  # as an INSERT of the order would
            with app.uow() as late:
                append(late, caller, "T")
                append(early, caller, "R")
                early.commit()
                # Wait (boundedly) until R's event is past the horizon while T is still open.
                first_page = wait_for_feed(app, caller, after="0", count=1)
                late.commit()

        assert [item["aggregate"]["id"] for item in first_page] == ["R"]
        seen = first_page + wait_for_feed(app, caller, after=first_page[-1]["cursor"], count=1, seconds=2)
        assert sorted(item["aggregate"]["id"] for item in seen) == ["R", "T"]
    finally:
        app.close()
