"""Channel intake rules on both backends, without HTTP: one order per channel order however often it
arrives, never moved back by an older update, held (not dropped, not guessed) when a line is unmapped,
and a buyer's cancel request answered from the order's state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from ordermesh.adapters.channels.base import ChannelAddress, ChannelLine, ChannelOrder, ChannelStatus
from ordermesh.adapters.store.tables import Order, OrderEvent, OutboxMessage
from ordermesh.adapters.store.tables_channels import ChannelOrderRecord
from ordermesh.bootstrap import Application
from ordermesh.services import channel_intake, channels
from ordermesh.services.channel_runtime import Connected, connect
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import drain
from tests.integration.shop import open_shop, stock

T0 = datetime(2026, 11, 11, 0, 0, tzinfo=UTC)
CREDENTIALS = {"partner_id": "1", "partner_key": "k", "shop_id": "2", "access_token": "t"}


@pytest.fixture
def shop(app: Application, caller: Caller) -> Connected:
    open_shop(app, caller)
    stock(app, caller, "HN", "A", 10)
    stock(app, caller, "HN", "B", 10)
    data = channels.ConnectionInput(kind="shopee", base_url="http://127.0.0.1:9", credentials=CREDENTIALS)
    channels.put_connection(app.uow(), caller, app.secrets, "shopee-vn", data)
    channels.put_listings(
        app.uow(), caller, "shopee-vn", [channels.ListingInput(sku="A", item_id="10", variant_id="1")]
    )
    with app.read_uow() as uow:
        channel, _ = channels.load(uow, caller, "shopee-vn")
        channel_id = channel.id
    ctx = connect(app, channel_id, caller.tenant_id)
    drain(app)
    return ctx


def order(status: ChannelStatus, *, at: datetime = T0, raw: str = "READY_TO_SHIP", variant: str = "1") -> ChannelOrder:
    return ChannelOrder(
        external_id="2611110001",
        raw_status=raw,
        status=status,
        updated_at=at,
        currency="VND",
        lines=(
            ChannelLine(("10:" + variant,), "SKU-" + variant, "10", variant, 2, Decimal("150000"), Decimal("20000")),
        ),
        placed_at=T0,
        ship_by=T0 + timedelta(days=2),
        total=Decimal("295000"),
        shipping_fee=Decimal("15000"),
        cod=True,
        address=ChannelAddress(name="Lan", line1="1 Le Loi", province="Ha Noi", country="VN"),
        buyer_note="ring twice",
    )


def snapshot(app: Application) -> tuple[int, int, int, list[str]]:
    with app.read_uow() as uow:
        s = uow.session
        return (
            s.scalar(select(func.count()).select_from(Order)) or 0,
            s.scalar(select(func.count()).select_from(OrderEvent)) or 0,
            s.scalar(select(func.count()).select_from(OutboxMessage)) or 0,
            list(s.scalars(select(Order.status))),
        )


def test_the_same_channel_order_any_number_of_times_is_one_order(app: Application, shop: Connected) -> None:
    first = channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL))
    assert first.result == "captured"
    after_first = snapshot(app)
    for _ in range(3):
        assert channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL)).result == "stale"
    assert snapshot(app) == after_first
    with app.read_uow() as uow:
        row = uow.session.get(Order, first.order_id)
        record = uow.session.scalar(select(ChannelOrderRecord))
        assert row is not None
        assert record is not None
        assert (row.status, row.tags, row.total_amount) == ("pending", ["cod"], Decimal("280000.0000"))
        assert (record.raw_status, record.cod, record.buyer_note, record.total) == (
            "READY_TO_SHIP",
            True,
            "ring twice",
            Decimal("295000.0000"),
        )


def test_an_older_update_never_moves_the_order_back(app: Application, shop: Connected) -> None:
    captured = channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL))
    later = order(ChannelStatus.CANCELLED, at=T0 + timedelta(minutes=5), raw="CANCELLED")
    assert channel_intake.apply_order(app, shop, later).result == "updated"
    cancelled = snapshot(app)
    assert cancelled[3] == ["cancelled"]
    stale = order(ChannelStatus.CANCEL_REQUESTED, at=T0 + timedelta(minutes=1), raw="IN_CANCEL")
    assert channel_intake.apply_order(app, shop, stale).result == "stale"
    assert snapshot(app) == cancelled
    with app.read_uow() as uow:
        record = uow.session.scalar(select(ChannelOrderRecord))
        assert record is not None
        assert (record.raw_status, record.order_id) == ("CANCELLED", captured.order_id)


def test_a_buyer_cancel_request_before_shipping_is_accepted(app: Application, shop: Connected) -> None:
    channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL))
    drain(app)
    asked = order(ChannelStatus.CANCEL_REQUESTED, at=T0 + timedelta(minutes=1), raw="IN_CANCEL")
    channel_intake.apply_order(app, shop, asked)
    with app.read_uow() as uow:
        assert list(uow.session.scalars(select(Order.status))) == ["cancelled"]
        answers = uow.session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.event_type == channel_intake.CANCEL_ANSWER)
        ).all()
        assert [a["accept"] for a in answers] == [True]
    # The same request delivered again is not answered twice.
    channel_intake.apply_order(app, shop, replace(asked, updated_at=T0 + timedelta(minutes=2)))
    with app.read_uow() as uow:
        count = uow.session.scalar(select(func.count()).where(OutboxMessage.event_type == channel_intake.CANCEL_ANSWER))
        assert count == 1


def test_an_unmapped_line_holds_the_order_with_the_reason(app: Application, shop: Connected) -> None:
    held = channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL, variant="9"))
    with app.read_uow() as uow:
        row = uow.session.get(Order, held.order_id)
        assert row is not None
        assert row.status == "on_hold"
        assert row.needs_allocation is False
        assert row.hold_reason is not None
        assert "SKU-9" in row.hold_reason
    channels.put_listings(
        app.uow(),
        Caller(shop.tenant_id, "admin", "test"),
        "shopee-vn",
        [channels.ListingInput(sku="B", item_id="10", variant_id="9")],
    )
    assert channel_intake.remap_held_orders(app, shop) == 1
    with app.read_uow() as uow:
        row = uow.session.get(Order, held.order_id)
        assert row is not None
        assert (row.status, row.hold_reason) == ("pending", None)


def test_unpaid_orders_wait_on_hold_until_paid(app: Application, shop: Connected) -> None:
    unpaid = channel_intake.apply_order(app, shop, order(ChannelStatus.PENDING_PAYMENT, raw="UNPAID"))
    assert snapshot(app)[3] == ["on_hold"]
    paid = order(ChannelStatus.READY_TO_FULFILL, at=T0 + timedelta(minutes=3))
    assert channel_intake.apply_order(app, shop, paid).order_id == unpaid.order_id
    assert snapshot(app)[3] == ["pending"]


def test_an_address_change_before_shipping_is_applied_and_recorded(app: Application, shop: Connected) -> None:
    captured = channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL))
    moved = replace(
        order(ChannelStatus.READY_TO_FULFILL, at=T0 + timedelta(minutes=2)),
        address=ChannelAddress(name="Lan", line1="9 Trang Tien", province="Ha Noi", country="VN"),
    )
    assert channel_intake.apply_order(app, shop, moved).result == "updated"
    with app.read_uow() as uow:
        row = uow.session.get(Order, captured.order_id)
        assert row is not None
        assert row.shipping_address["address_lines"] == ["9 Trang Tien"]
        event = uow.session.scalar(
            select(OrderEvent).where(OrderEvent.type == "channel_status_changed").order_by(OrderEvent.id.desc())
        )
        assert event is not None
        assert event.data["address_updated"] is True
        assert event.data["raw_status"] == "READY_TO_SHIP"


def test_a_held_order_with_no_mapped_line_is_cancelled_by_its_platform(app: Application, shop: Connected) -> None:
    held = channel_intake.apply_order(app, shop, order(ChannelStatus.READY_TO_FULFILL, variant="9"))
    gone = order(ChannelStatus.CANCELLED, at=T0 + timedelta(minutes=1), raw="CANCELLED", variant="9")
    assert channel_intake.apply_order(app, shop, gone).result == "updated"
    with app.read_uow() as uow:
        row = uow.session.get(Order, held.order_id)
        assert row is not None
        assert row.status == "cancelled"
