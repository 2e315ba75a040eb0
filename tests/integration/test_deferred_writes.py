"""What batch allocation leans on, on SQLite and PostgreSQL: deferred order history (one statement
per table, in the order recorded, dropped with a failed transaction) and level locking that creates
the missing levels at zero."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from ordermesh.adapters.store.locks import lock_inventory_levels
from ordermesh.adapters.store.tables import InventoryLevel, Location, Order, OrderEvent, OutboxMessage, Sku
from ordermesh.bootstrap import Application
from ordermesh.services import order_history, orders
from ordermesh.services.unit_of_work import Caller
from tests.integration.shop import HANOI, open_shop, stock


def test_deferred_history_is_written_in_the_order_recorded(app: Application, caller: Caller) -> None:
    open_shop(app, caller)
    captured = orders.capture_order(
        app.uow(), caller, orders.NewOrder("direct", "d-1", "VND", [orders.NewLine("A", 1, Decimal(0))], HANOI)
    )
    with app.uow() as uow:
        order = uow.session.get(Order, captured.order_id)
        assert order is not None
        with order_history.deferred_writes(uow.session):
            order_history.record(uow.session, order, "first", "test", data={"n": 1})
            order_history.record(uow.session, order, "second", "test", data={"n": 2})
            # Nothing reaches the tables before the block ends.
            assert uow.session.scalar(select(OrderEvent.id).where(OrderEvent.type == "first")) is None
        uow.commit()
    with app.read_uow() as uow:
        events = uow.session.execute(
            select(OrderEvent.type, OrderEvent.data)
            .where(OrderEvent.order_id == captured.order_id)
            .order_by(OrderEvent.id)
        ).all()
        messages = uow.session.scalars(
            select(OutboxMessage.event_type)
            .where(OutboxMessage.aggregate_id == str(captured.order_id))
            .order_by(OutboxMessage.id)
        ).all()
    assert [(type_, data) for type_, data in events][1:] == [("first", {"n": 1}), ("second", {"n": 2})]
    assert messages == ["order.created", "order.first", "order.second"]


def test_deferred_history_is_dropped_with_a_failed_transaction(app: Application, caller: Caller) -> None:
    open_shop(app, caller)
    captured = orders.capture_order(
        app.uow(), caller, orders.NewOrder("direct", "d-2", "VND", [orders.NewLine("A", 1, Decimal(0))], HANOI)
    )
    uow = app.uow()

    def failing_batch() -> None:
        with uow:
            order = uow.session.get(Order, captured.order_id)
            assert order is not None
            with order_history.deferred_writes(uow.session):
                order_history.record(uow.session, order, "lost", "test")
                raise RuntimeError("the batch failed")

    with pytest.raises(RuntimeError):
        failing_batch()
    assert "order_history.deferred" not in uow.session.info
    assert "outbox.deferred" not in uow.session.info
    with app.read_uow() as uow:
        assert uow.session.scalar(select(OrderEvent.id).where(OrderEvent.type == "lost")) is None
        assert uow.session.scalar(select(OutboxMessage.id).where(OutboxMessage.event_type == "order.lost")) is None


def test_locking_levels_creates_the_missing_ones_at_zero(app: Application, caller: Caller) -> None:
    open_shop(app, caller)
    stock(app, caller, "HN", "A", 7)
    with app.read_uow() as uow:
        locations = dict(uow.session.execute(select(Location.code, Location.id)).all())
        skus = dict(uow.session.execute(select(Sku.code, Sku.id).where(Sku.tenant_id == caller.tenant_id)).all())
    wanted = [(locations[loc], skus[sku]) for loc in ("HN", "SG") for sku in ("A", "B")]
    with app.uow() as uow:
        locked = lock_inventory_levels(uow.session, caller.tenant_id, wanted + wanted[:1])
        assert sorted(locked) == sorted(wanted)
        assert locked[(locations["HN"], skus["A"])].on_hand == 7
        assert all(row.on_hand == row.reserved == 0 for key, row in locked.items() if key != wanted[0])
        uow.commit()
    with app.read_uow() as uow:
        stored = uow.session.scalar(
            select(InventoryLevel.id).where(
                InventoryLevel.location_id == locations["SG"], InventoryLevel.sku_id == skus["B"]
            )
        )
    assert stored is not None
