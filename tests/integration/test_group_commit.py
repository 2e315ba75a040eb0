"""Group-committed intake (services/intake.py), on SQLite and PostgreSQL: one transaction for many
captures, each with the same outcome ``capture_order`` would give it alone."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError

from ordermesh.adapters.store.tables import Order, OrderEvent, OrderLine, OutboxMessage
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import InvalidInput
from ordermesh.services import order_views, orders
from ordermesh.services.intake import GroupCommitter, _Pending
from ordermesh.services.unit_of_work import Caller
from tests.integration.test_order_capture import ADDRESS, order, shop  # noqa: F401 (the fixture)


def committer(app: Application) -> GroupCommitter:
    return GroupCommitter(app.uow, app.read_uow)


def counts(app: Application, tenant_id: int) -> dict[str, int]:
    with app.read_uow() as uow:
        return {
            table.__tablename__: uow.session.scalar(
                select(func.count()).select_from(table).where(table.tenant_id == tenant_id)
            )
            for table in (Order, OrderLine, OrderEvent, OutboxMessage)
        }


def test_one_group_gives_each_order_its_own_outcome(app: Application, shop: Caller) -> None:  # noqa: F811
    before = orders.capture_order(app.uow(), shop, order("old-1"))
    batch = [
        _Pending(shop, order("new-1", ("A", 2), ("B", 1))),
        _Pending(shop, order("new-1", ("A", 2), ("B", 1))),  # the same order twice in one group
        _Pending(shop, order("old-1")),  # already stored
        _Pending(shop, order("kit-1", ("KIT", 1), channel="shopee-1")),
        _Pending(shop, order("bad-sku", ("A", 1), ("NOPE", 1))),
        _Pending(shop, order("bad-channel", channel="nowhere")),
    ]
    gc = committer(app)
    gc._run(batch)
    first, twin, old, kit, bad_sku, bad_channel = batch
    assert first.result is not None
    assert first.result.created
    assert first.result.view is not None
    assert twin.result is not None
    assert not twin.result.created
    assert twin.result.order_id == first.result.order_id
    assert old.result is not None
    assert not old.result.created
    assert old.result.order_id == before.order_id
    assert kit.result is not None
    assert kit.result.created
    assert isinstance(bad_sku.error, InvalidInput)
    assert bad_sku.error.code == "unknown_sku"
    assert bad_sku.error.details["field"] == "lines.1.sku"
    assert isinstance(bad_channel.error, InvalidInput)
    assert bad_channel.error.code == "unknown_channel"
    assert (gc.groups, gc.grouped_orders, gc.fallbacks) == (1, 6, 0)
    # Three orders in all; each new one with its lines, one "created" event and one outbox message.
    assert counts(app, shop.tenant_id) == {"orders": 3, "order_lines": 4, "order_events": 3, "outbox": 3}
    # The view answered at once is the view read back later (events and lines included).
    stored = order_views.get_order(app.read_uow(), shop, first.result.order_id)
    assert first.result.view == {key: stored[key] for key in first.result.view}
    kit_order = order_views.get_order(app.read_uow(), shop, kit.result.order_id)
    assert kit_order["channel"] == "shopee-1"
    assert kit_order["total_amount"] == "150000.0000"
    with app.read_uow() as uow:
        components = uow.session.scalar(select(OrderLine.components).where(OrderLine.order_id == kit.result.order_id))
        payloads = uow.session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.aggregate_id == str(first.result.order_id))
        ).all()
    assert sorted(components.values()) == [1, 2]
    assert payloads == [
        {
            "order_id": first.result.order_id,
            "channel_id": stored_channel_id(app, first.result.order_id),
            "external_id": "new-1",
            "status": "pending",
            "from_status": None,
            "reason": None,
            "channel": "direct",
            "lines": 2,
        }
    ]


def stored_channel_id(app: Application, order_id: int) -> int:
    with app.read_uow() as uow:
        return int(uow.session.scalar(select(Order.channel_id).where(Order.id == order_id)))


def test_concurrent_captures_are_all_stored_once(app: Application, shop: Caller) -> None:  # noqa: F811
    gc = committer(app)
    ids = [f"c-{n % 30}" for n in range(60)]  # every order sent twice, concurrently
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(lambda external_id: gc.capture(shop, order(external_id)), ids))
    by_external: dict[str, set[int]] = {}
    for external_id, result in zip(ids, results, strict=True):
        by_external.setdefault(external_id, set()).add(result.order_id)
    assert all(len(found) == 1 for found in by_external.values())
    assert sum(result.created for result in results) == 30
    assert counts(app, shop.tenant_id)["orders"] == 30
    assert gc.grouped_orders == 60


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_a_value_the_database_refuses_fails_only_its_own_order(app: Application, shop: Caller) -> None:  # noqa: F811
    # PostgreSQL cannot store NUL in JSONB (the API refuses it at the door; a service caller may not).
    bad = dataclasses.replace(order("bad-1"), shipping_address={**ADDRESS, "name": "A\u0000B"})
    batch = [_Pending(shop, order("good-1")), _Pending(shop, bad), _Pending(shop, order("good-2", ("B", 3)))]
    gc = committer(app)
    gc._run(batch)
    assert gc.fallbacks == 1
    assert batch[0].result is not None
    assert batch[0].result.created
    assert isinstance(batch[1].error, DataError)
    assert batch[2].result is not None
    assert batch[2].result.created
    assert counts(app, shop.tenant_id) == {"orders": 2, "order_lines": 2, "order_events": 2, "outbox": 2}


def test_malformed_orders_never_join_a_group(app: Application, shop: Caller) -> None:  # noqa: F811
    gc = committer(app)
    with pytest.raises(InvalidInput):
        gc.capture(shop, order("zero", ("A", 0)))
    with pytest.raises(InvalidInput):
        gc.capture(shop, order("x" * 129))
    assert gc.groups == 0
    assert counts(app, shop.tenant_id)["orders"] == 0


def test_a_grouped_order_keeps_its_discount_and_shipping_fee_for_refunds(
    app: Application,
    shop: Caller,  # noqa: F811
) -> None:
    """Refunds share the discount and shipping by value (services/refunds.py): a grouped capture must
    store the same charges as ``capture_order`` does, or a later cancellation would refund too much."""
    from decimal import Decimal

    from ordermesh.adapters.store.tables_sla_returns import OrderCharges

    charged = dataclasses.replace(order("charged-1", ("A", 2)), discount=Decimal("5000"), shipping_fee=Decimal("15000"))
    alone = dataclasses.replace(order("charged-2", ("A", 2)), discount=Decimal("5000"), shipping_fee=Decimal("15000"))
    batch = [_Pending(shop, charged), _Pending(shop, order("plain-1"))]
    committer(app)._run(batch)
    reference = orders.capture_order(app.uow(), shop, alone)
    assert batch[0].result is not None
    with app.read_uow() as uow:
        rows = {
            row.order_id: (row.discount, row.shipping_fee)
            for row in uow.session.scalars(select(OrderCharges).where(OrderCharges.tenant_id == shop.tenant_id))
        }
    assert rows == {
        batch[0].result.order_id: (Decimal("5000"), Decimal("15000")),
        reference.order_id: (Decimal("5000"), Decimal("15000")),
    }


def test_async_captures_share_groups_and_each_gets_its_own_answer(app: Application, shop: Caller) -> None:  # noqa: F811
    """What the HTTP route does: many coroutines await their group's commit on one event loop."""
    import asyncio

    gc = committer(app)

    async def capture_all() -> list[orders.Captured]:
        return await asyncio.gather(*(gc.capture_async(shop, order(f"a-{n % 20}")) for n in range(40)))

    try:
        results = asyncio.run(capture_all())
    finally:
        gc.close()
    assert sum(result.created for result in results) == 20
    assert len({result.order_id for result in results}) == 20
    assert all(result.view is not None for result in results if result.created)
    assert counts(app, shop.tenant_id)["orders"] == 20
    assert gc.grouped_orders == 40
    assert gc.groups < 40  # they were written together, not one by one


def test_an_async_caller_that_went_away_before_its_group_is_not_written(app: Application, shop: Caller) -> None:  # noqa: F811
    """A client that disconnects while its order waits for a group gets no order stored behind its back;
    one whose group had begun keeps it (it was committed, like any request answered too late)."""
    import asyncio

    gc = committer(app)
    gate = threading.Event()
    original = gc._write

    def held_write(batch: list[_Pending]) -> None:
        gate.wait(10)  # the first group is being written while the second waits
        original(batch)

    gc._write = held_write  # type: ignore[method-assign]
    gc.leaders = 1

    async def scenario() -> orders.Captured:
        first = asyncio.ensure_future(gc.capture_async(shop, order("kept")))
        await asyncio.sleep(0.2)  # "kept" is now in the writer's hands
        gone = asyncio.ensure_future(gc.capture_async(shop, order("gone")))
        await asyncio.sleep(0.05)
        gone.cancel()
        gate.set()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await first

    try:
        kept = asyncio.run(scenario())
    finally:
        gc.close()
    assert kept.created
    with app.read_uow() as uow:
        stored = set(uow.session.scalars(select(Order.external_id).where(Order.tenant_id == shop.tenant_id)))
    assert stored == {"kept"}


def test_a_closed_committer_writes_what_was_queued_and_refuses_more(app: Application, shop: Caller) -> None:  # noqa: F811
    gc = committer(app)
    assert gc.capture(shop, order("before-close")).created
    gc.close()
    with pytest.raises(RuntimeError, match="closed"):
        gc.capture(shop, order("after-close"))
    assert counts(app, shop.tenant_id)["orders"] == 1


def test_a_writer_thread_that_dies_is_replaced(
    app: Application,
    shop: Caller,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Whatever kills a writer thread, its callers are answered and the next capture gets a new one."""

    class Fatal(BaseException):
        pass

    monkeypatch.setattr(threading, "excepthook", lambda args: None)  # the dying thread's report
    gc = committer(app)
    gc.leaders = 1  # so the second capture has no other writer to fall back on
    original = gc._write

    def fatal_write(batch: list[_Pending]) -> None:
        raise Fatal()

    gc._write = fatal_write  # type: ignore[method-assign]
    with pytest.raises(Fatal):
        gc.capture(shop, order("doomed"))
    gc._write = original  # type: ignore[method-assign]
    try:
        assert gc.capture(shop, order("after")).created
    finally:
        gc.close()
    assert counts(app, shop.tenant_id)["orders"] == 1
