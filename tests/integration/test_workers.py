"""The worker loop allocates without being asked, wakes up on new work, and survives failures."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

from ordermesh.bootstrap import Application
from ordermesh.services import catalog, inventory, order_views, orders
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import Worker
from tests.conftest import make_app

ADDRESS = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}


def _stock(app: Application, caller: Caller, units: int) -> None:
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("A", "Apple")])
    catalog.upsert_location(app.uow(), caller, "W1", catalog.LocationInput("W1", latitude=10.0, longitude=106.0))
    inventory.set_on_hand(app.uow(), caller, "W1", "A", inventory.StockCount(units, "count"))


def _capture(app: Application, caller: Caller, external_id: str) -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine("A", 1, Decimal(1))], ADDRESS)
    return orders.capture_order(app.uow(), caller, new).order_id


def _wait_for(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _status(app: Application, caller: Caller, order_id: int) -> str:
    return str(order_views.get_order(app.read_uow(), caller, order_id)["status"])


def test_embedded_worker_allocates_captured_orders(app: Application, caller: Caller) -> None:
    _stock(app, caller, 1)
    worker = Worker(app)
    worker.start()
    try:
        first = _capture(app, caller, "o-1")
        second = _capture(app, caller, "o-2")
        assert _wait_for(lambda: _status(app, caller, second) == "backordered", 10)
        assert _status(app, caller, first) == "allocated"
        # Stock arriving later allocates the backorder without anyone asking.
        inventory.adjust(app.uow(), caller, "W1", "A", inventory.StockAdjustment(1, "receipt"))
        assert _wait_for(lambda: _status(app, caller, second) == "allocated", 10)
    finally:
        worker.stop()
    assert worker.stats.errors == 0


def test_worker_in_another_process_is_woken_by_notify(pg_url: str) -> None:
    """Two applications stand for two processes: the worker polls only every 60 s, so an allocation
    within seconds proves the PostgreSQL NOTIFY from the other side woke it."""
    intake = make_app(pg_url)
    background = make_app(pg_url, worker_poll_seconds=60.0, allocation_linger_seconds=0.0)
    from ordermesh.services import tenants

    created = tenants.create_tenant(intake.uow(), "notify")
    caller = Caller(created.tenant_id, "admin", "test")
    _stock(intake, caller, 5)
    worker = Worker(background)
    worker.start()
    try:
        time.sleep(0.5)  # let the first pass finish and the loop go to sleep
        order_id = _capture(intake, caller, "n-1")
        assert _wait_for(lambda: _status(intake, caller, order_id) == "allocated", 5)
    finally:
        worker.stop()
        intake.close()
        background.close()


def test_worker_survives_a_failing_pass(app: Application, caller: Caller, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ordermesh.services import allocation

    real = allocation.allocate_batch
    calls = {"n": 0}

    def flaky(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(allocation, "allocate_batch", flaky)
    _stock(app, caller, 3)
    order_id = _capture(app, caller, "f-1")
    worker = Worker(app)
    worker.start()
    try:
        assert _wait_for(lambda: _status(app, caller, order_id) == "allocated", 10)
    finally:
        worker.stop()
    assert worker.stats.errors == 1
    assert worker.stats.last_error == "RuntimeError: boom"
