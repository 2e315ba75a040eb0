"""The three queues the worker drains on every pass (orders to allocate, outbox messages to deliver,
webhook deliveries to process) are claimed by reading their partial index in order and stopping at
the limit, never by sorting the whole queue, whether or not the tables have planner statistics
(this machine runs PostgreSQL with autovacuum off, so the tables here have none, as after
``pg_upgrade``). The plans are PostgreSQL's own answer to the exact statements the claims send
(EXPLAIN, in the claim's transaction)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select, text

from ordermesh.adapters.store.locks import claim_orders_for_allocation
from ordermesh.adapters.store.tables import Tenant
from ordermesh.bootstrap import Application
from ordermesh.services import inbox, orders, outbox, tenants
from ordermesh.services.unit_of_work import Caller
from tests.conftest import make_app
from tests.integration.shop import HANOI, open_shop

pytestmark = pytest.mark.postgres


@pytest.fixture
def backlog(pg_url: str) -> Iterator[Application]:
    """60 captured orders: 60 orders to allocate and 60 ``order.created`` messages to deliver."""
    application = make_app(pg_url)
    created = tenants.create_tenant(application.uow(), "queues")
    caller = open_shop(application, Caller(created.tenant_id, "admin", "test"))
    for number in range(60):
        new = orders.NewOrder("direct", f"q-{number}", "VND", [orders.NewLine("A", 1, Decimal(1))], HANOI)
        orders.capture_order(application.uow(), caller, new)
    yield application
    application.close()


def claim_plans(app: Application, table: str, claim: Any) -> list[str]:
    """EXPLAIN of every ``SELECT ... FROM table ... SKIP LOCKED`` that ``claim()`` sends, run just
    before it on the same connection and transaction (so with any setting the claim made)."""
    plans: list[str] = []

    def explain(_conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith("SELECT") and f"FROM {table}" in statement and "SKIP LOCKED" in statement:
            rows = cursor.connection.execute("EXPLAIN " + statement, parameters).fetchall()
            plans.append("\n".join(row[0] for row in rows))

    event.listen(app.engine, "before_cursor_execute", explain)
    try:
        claim()
    finally:
        event.remove(app.engine, "before_cursor_execute", explain)
    return plans


def test_the_allocation_claim_reads_the_queue_index_in_order(backlog: Application) -> None:
    def claim() -> None:
        with backlog.uow() as uow:
            assert len(claim_orders_for_allocation(uow.session, 50)) == 50
            # Put back for the rest of the batch's transaction: only the claim is steered.
            assert uow.session.execute(text("SHOW enable_sort")).scalar() == "on"

    [plan] = claim_plans(backlog, "orders", claim)

    assert "ix_orders_allocation_queue" in plan, plan
    assert "Sort" not in plan, plan


def test_the_outbox_claim_reads_the_due_index_in_order(backlog: Application) -> None:
    def claim() -> None:
        assert len(outbox.claim(backlog.uow(), limit=50, lease_seconds=30)) == 50

    [plan] = claim_plans(backlog, "outbox", claim)

    assert "ix_outbox_due" in plan, plan
    assert "Sort" not in plan, plan


def test_the_inbox_claim_reads_the_due_index_in_order(backlog: Application) -> None:
    with backlog.read_uow() as uow:
        tenant_id = uow.session.scalar(select(Tenant.id))
    for number in range(60):
        inbox.store(
            backlog.uow(),
            tenant_id=tenant_id,
            source="shopee",
            account="shop",
            dedupe_key=f"push-{number}",
            headers={},
            body=b"{}",
        )
    processed: list[int] = []

    class Host:
        inbox_processors = {"shopee": lambda delivery: processed.append(delivery.id)}

        def uow(self) -> Any:
            return backlog.uow()

    [plan] = claim_plans(backlog, "inbox", lambda: inbox.process_due(Host(), limit=50))

    assert len(processed) == 50
    assert "ix_inbox_due" in plan, plan
    assert "Sort" not in plan, plan
