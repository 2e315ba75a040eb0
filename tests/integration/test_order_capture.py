"""Capturing orders through the real service, on SQLite and PostgreSQL: exactly once per
(channel, external id) and per Idempotency-Key (invariant 3), and nothing written when refused."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import (
    Channel,
    IdempotencyRecord,
    Order,
    OrderEvent,
    OrderLine,
    OutboxMessage,
    Sku,
)
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import IdempotencyKeyReused, InvalidInput
from ordermesh.services import catalog, order_views, orders, tenants
from ordermesh.services.orders import Captured, NewLine, NewOrder
from ordermesh.services.unit_of_work import Caller, IdempotencyKey, IdempotentReplay, ResourceRef, UnitOfWork

NOTHING = {"orders": 0, "order_lines": 0, "order_events": 0, "outbox": 0, "idempotency_keys": 0}
ADDRESS = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    """A tenant with SKUs A, B and KIT = 2 x A + 1 x B, and a second channel ``shopee-1``."""
    catalog.upsert_skus(
        app.uow(),
        caller,
        [
            catalog.SkuInput("A", "Apple"),
            catalog.SkuInput("B", "Banana"),
            catalog.SkuInput("KIT", "Kit", 0, {"A": 2, "B": 1}),
        ],
    )
    with app.uow() as uow:
        uow.session.add(Channel(tenant_id=caller.tenant_id, code="shopee-1", kind="shopee", name="Shopee VN"))
        uow.commit()
    return caller


def order(external_id: str = "ext-1", *lines: tuple[str, int], channel: str = "direct", **extra: Any) -> NewOrder:
    return NewOrder(
        channel=channel,
        external_id=external_id,
        currency="VND",
        lines=[NewLine(sku, quantity, Decimal("150000")) for sku, quantity in (lines or [("A", 1)])],
        shipping_address=ADDRESS,
        **extra,
    )


def written(app: Application, tenant_id: int) -> dict[str, int]:
    """Row counts of everything a capture writes, for 'nothing changed' asserts."""
    with app.read_uow() as uow:
        return {
            table.__tablename__: uow.session.scalar(
                select(func.count()).select_from(table).where(table.tenant_id == tenant_id)
            )
            for table in (Order, OrderLine, OrderEvent, OutboxMessage, IdempotencyRecord)
        }


def keyed(app: Application, caller: Caller, key: str, fingerprint: str = "body-1") -> UnitOfWork:
    return app.uow(idempotency=(caller.tenant_id, IdempotencyKey(key, fingerprint)))


def test_capture_stores_a_pending_order_with_its_lines_and_a_created_event(app: Application, shop: Caller) -> None:
    placed = datetime(2026, 11, 11, 0, 5, tzinfo=UTC)
    new = NewOrder(
        "direct",
        "ext-1",
        "vnd",
        [NewLine("A", 3, Decimal("0.1")), NewLine("KIT", 1, Decimal("19999.99"))],
        ADDRESS,
        placed_at=placed,
        ship_by=placed + timedelta(days=1),
    )

    captured = orders.capture_order(app.uow(), shop, new)

    assert captured.created is True
    view = order_views.get_order(app.read_uow(), shop, captured.order_id)
    assert (view["status"], view["channel"], view["external_id"], view["currency"]) == (
        "pending",
        "direct",
        "ext-1",
        "VND",
    )
    assert Decimal(view["total_amount"]) == Decimal("20000.29")
    assert (view["placed_at"], view["ship_by"]) == (placed, placed + timedelta(days=1))
    assert [(line["line_number"], line["sku"], line["quantity"]) for line in view["lines"]] == [
        (1, "A", 3),
        (2, "KIT", 1),
    ]
    assert [(e["type"], e["from_status"], e["to_status"], e["actor"]) for e in view["events"]] == [
        ("created", None, "pending", "test")
    ]
    with app.read_uow() as uow:
        assert uow.session.scalar(select(Order.needs_allocation).where(Order.id == captured.order_id)) is True
        assert list(
            uow.session.execute(
                select(OutboxMessage.event_type, OutboxMessage.aggregate_type, OutboxMessage.aggregate_id).where(
                    OutboxMessage.tenant_id == shop.tenant_id
                )
            ).all()
        ) == [("order.created", "order", str(captured.order_id))]
    assert app.allocator_wakeup.is_set()


def test_a_bundle_line_keeps_the_components_it_had_at_capture(app: Application, shop: Caller) -> None:
    order_id = orders.capture_order(app.uow(), shop, order("ext-1", ("KIT", 2), ("A", 1))).order_id
    catalog.upsert_skus(app.uow(), shop, [catalog.SkuInput("KIT", "Kit", 0, {"A": 5})])

    with app.read_uow() as uow:
        ids = dict(uow.session.execute(select(Sku.code, Sku.id)).all())
        components = uow.session.execute(
            select(OrderLine.line_number, OrderLine.components)
            .where(OrderLine.order_id == order_id)
            .order_by(OrderLine.line_number)
        ).all()
    assert [tuple(row) for row in components] == [
        (1, {str(ids["A"]): 2, str(ids["B"]): 1}),
        (2, {str(ids["A"]): 1}),
    ]


def test_repeated_capture_of_one_channel_and_external_id_returns_the_stored_order_and_writes_nothing(
    app: Application, shop: Caller
) -> None:
    first = orders.capture_order(app.uow(), shop, order("ext-1", ("A", 1)))
    before = written(app, shop.tenant_id)
    app.allocator_wakeup.clear()

    # The same webhook delivered again, even with a different body, changes nothing.
    again = orders.capture_order(app.uow(), shop, order("ext-1", ("B", 7)))

    assert again == Captured(first.order_id, created=False)
    assert written(app, shop.tenant_id) == before
    assert not app.allocator_wakeup.is_set()
    assert order_views.get_order(app.read_uow(), shop, first.order_id)["lines"][0]["sku"] == "A"


def test_the_same_external_id_on_another_channel_is_another_order(app: Application, shop: Caller) -> None:
    direct = orders.capture_order(app.uow(), shop, order("ext-1"))
    shopee = orders.capture_order(app.uow(), shop, order("ext-1", channel="shopee-1"))

    assert shopee.created is True
    assert shopee.order_id != direct.order_id
    assert written(app, shop.tenant_id)["orders"] == 2


def test_the_same_external_id_in_another_tenant_is_another_order(app: Application, shop: Caller) -> None:
    other = tenants.create_tenant(app.uow(), "other-tenant")
    neighbour = Caller(other.tenant_id, "admin", "neighbour")
    catalog.upsert_skus(app.uow(), neighbour, [catalog.SkuInput("A", "Apple")])

    mine = orders.capture_order(app.uow(), shop, order("ext-1"))
    theirs = orders.capture_order(app.uow(), neighbour, order("ext-1"))

    assert (mine.created, theirs.created) == (True, True)
    assert mine.order_id != theirs.order_id


def test_a_repeated_idempotency_key_replays_the_order_it_made_and_writes_nothing(
    app: Application, shop: Caller
) -> None:
    first = orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1"))
    before = written(app, shop.tenant_id)

    with pytest.raises(IdempotentReplay) as replay:
        orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1"))

    assert first.created is True
    assert replay.value.resource == ResourceRef("order", str(first.order_id))
    assert written(app, shop.tenant_id) == before
    assert before["idempotency_keys"] == 1


def test_an_idempotency_key_reused_for_a_different_request_is_refused_and_writes_nothing(
    app: Application, shop: Caller
) -> None:
    orders.capture_order(keyed(app, shop, "key-1", "body-1"), shop, order("ext-1"))
    before = written(app, shop.tenant_id)

    with pytest.raises(IdempotencyKeyReused) as raised:
        orders.capture_order(keyed(app, shop, "key-1", "body-2"), shop, order("ext-2"))

    assert raised.value.details == {"idempotency_key": "key-1"}
    assert written(app, shop.tenant_id) == before


def test_idempotency_keys_belong_to_one_tenant(app: Application, shop: Caller) -> None:
    other = tenants.create_tenant(app.uow(), "other-tenant")
    neighbour = Caller(other.tenant_id, "admin", "neighbour")
    catalog.upsert_skus(app.uow(), neighbour, [catalog.SkuInput("A", "Apple")])

    mine = orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1"))
    theirs = orders.capture_order(keyed(app, neighbour, "key-1"), neighbour, order("ext-1"))

    assert (mine.created, theirs.created) == (True, True)
    assert mine.order_id != theirs.order_id


def test_a_refused_keyed_request_does_not_burn_its_key(app: Application, shop: Caller) -> None:
    with pytest.raises(InvalidInput):
        orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1", ("NOPE", 1)))

    captured = orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1", ("A", 1)))

    assert captured.created is True


def test_an_unknown_sku_is_refused_and_nothing_is_written(app: Application, shop: Caller) -> None:
    orders.capture_order(app.uow(), shop, order("ext-0"))
    before = written(app, shop.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        orders.capture_order(keyed(app, shop, "key-1"), shop, order("ext-1", ("A", 1), ("GHOST", 2)))

    assert (raised.value.code, raised.value.details) == ("unknown_sku", {"field": "lines.1.sku", "sku": "GHOST"})
    assert written(app, shop.tenant_id) == before


def test_an_unknown_channel_is_refused_and_nothing_is_written(app: Application, shop: Caller) -> None:
    before = written(app, shop.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        orders.capture_order(app.uow(), shop, order("ext-1", channel="lazada-9"))

    assert (raised.value.code, raised.value.details) == ("unknown_channel", {"field": "channel"})
    assert written(app, shop.tenant_id) == before


def test_another_tenants_channel_and_skus_are_unknown(app: Application, shop: Caller) -> None:
    other = tenants.create_tenant(app.uow(), "other-tenant")
    neighbour = Caller(other.tenant_id, "admin", "neighbour")

    with pytest.raises(InvalidInput) as no_channel:
        orders.capture_order(app.uow(), neighbour, order("ext-1", channel="shopee-1"))
    with pytest.raises(InvalidInput) as no_sku:
        orders.capture_order(app.uow(), neighbour, order("ext-1", ("A", 1)))

    assert (no_channel.value.code, no_sku.value.code) == ("unknown_channel", "unknown_sku")
    assert written(app, other.tenant_id) == NOTHING


def test_a_malformed_order_is_refused_and_nothing_is_written(app: Application, shop: Caller) -> None:
    cases = {
        "external_id": order("x" * 129),
        "currency": NewOrder("direct", "ext-1", "VN", [NewLine("A", 1, Decimal(1))], ADDRESS),
        "lines": NewOrder("direct", "ext-1", "VND", [], ADDRESS),
        "lines.0.quantity": NewOrder("direct", "ext-1", "VND", [NewLine("A", 0, Decimal(1))], ADDRESS),
        "lines.1.unit_price": NewOrder(
            "direct", "ext-1", "VND", [NewLine("A", 1, Decimal(1)), NewLine("B", 1, Decimal(-1))], ADDRESS
        ),
    }
    refused = {}

    for field, new in cases.items():
        with pytest.raises(InvalidInput) as raised:
            orders.capture_order(app.uow(), shop, new)
        refused[field] = raised.value.details["field"]

    assert refused == {field: field for field in cases}
    assert written(app, shop.tenant_id) == NOTHING


def test_concurrent_captures_of_one_external_id_make_exactly_one_order(app: Application, shop: Caller) -> None:
    start = threading.Barrier(8, timeout=30)

    def capture(_: int) -> Captured:
        start.wait()
        return orders.capture_order(app.uow(), shop, order("ext-hot"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(capture, range(8), timeout=60))

    assert sorted(r.created for r in results) == [False] * 7 + [True]
    assert len({r.order_id for r in results}) == 1
    counts = written(app, shop.tenant_id)
    assert (counts["orders"], counts["order_lines"], counts["order_events"]) == (1, 1, 1)


def test_concurrent_requests_with_one_idempotency_key_make_exactly_one_order(app: Application, shop: Caller) -> None:
    start = threading.Barrier(8, timeout=30)

    def capture(_: int) -> tuple[str, int]:
        start.wait()
        try:
            captured = orders.capture_order(keyed(app, shop, "key-hot"), shop, order("ext-hot"))
        except IdempotentReplay as replay:
            return "replayed", int(replay.resource.id)
        return ("created" if captured.created else "found"), captured.order_id

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(capture, range(8), timeout=60))

    assert [outcome for outcome, _ in results].count("created") == 1
    assert len({order_id for _, order_id in results}) == 1
    counts = written(app, shop.tenant_id)
    assert (counts["orders"], counts["idempotency_keys"]) == (1, 1)
