"""Returns and channel cancellation requests through the real services, on SQLite and PostgreSQL:
partial returns by line and quantity, receipt at any location with a disposition per unit,
refunds computed with the order's cancellations, a carrier's return to sender, and a buyer's
cancellation accepted before shipping and refused after."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import IllegalTransition, InvalidInput
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.domain.returns import Disposition
from ordermesh.services import aftersales, cancellations, fulfilment, order_views, orders, return_views, returns
from ordermesh.services.orders import CancelLine
from ordermesh.services.outbox import Envelope
from ordermesh.services.returns import ReceivedItem, ReturnItem
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import drain
from tests.integration.shop import HANOI, levels_and_ledger, open_shop, stock


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    open_shop(app, caller)
    stock(app, caller, "HN", "A", 10)
    stock(app, caller, "HN", "B", 10)
    return caller


def place(app: Application, caller: Caller, *lines: tuple[str, int, str], **money: Decimal) -> int:
    new = orders.NewOrder(
        "direct",
        f"o-{len(lines)}-{id(lines)}",
        "VND",
        [orders.NewLine(sku, quantity, Decimal(price)) for sku, quantity, price in lines],
        HANOI,
        **money,  # type: ignore[arg-type]
    )
    order_id = orders.capture_order(app.uow(), caller, new).order_id
    drain(app)
    return order_id


def ship(app: Application, caller: Caller, order_id: int) -> int:
    fulfilment.release(app.uow(), caller, order_id)
    [shipment] = view(app, caller, order_id)["shipments"]
    update = fulfilment.ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN", "T-1")
    fulfilment.record_shipment_event(app.uow(), caller, shipment["id"], update)
    return int(shipment["id"])


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def on_hand(app: Application, caller: Caller) -> dict[tuple[int, int], int]:
    level_rows, ledger = levels_and_ledger(app, caller.tenant_id)
    assert all(ledger.get(key, (0, 0, 0)) == value for key, value in level_rows.items())  # all through the ledger
    return {key: value[0] for key, value in level_rows.items()}


def outbox_types(app: Application, prefix: str) -> list[str]:
    with app.read_uow() as uow:
        return [
            t
            for t in uow.session.scalars(select(OutboxMessage.event_type).order_by(OutboxMessage.id))
            if t.startswith(prefix)
        ]


def test_a_partial_return_is_received_restocked_and_refunded(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 3, "100000"), ("B", 1, "200000"), discount=Decimal(50000))
    ship(app, shop, order_id)
    before = on_hand(app, shop)

    return_id = returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 2)], "too big")
    returns.approve(app.uow(), shop, return_id)
    returns.receive(
        app.uow(),
        shop,
        return_id,
        [ReceivedItem(1, 1, Disposition.RESTOCK, "SG"), ReceivedItem(1, 1, Disposition.QUARANTINE, "SG")],
    )
    returns.refund(app.uow(), shop, return_id)

    record = return_views.get_return(app.read_uow(), shop, return_id)
    assert record["status"] == "refunded"
    assert record["refund_amount"] == "180000.0000"  # 2 x 100,000 less the 10% order discount
    [line] = record["lines"]
    assert (line["quantity"], line["received_quantity"], line["refund_amount"]) == (2, 2, "180000.0000")
    assert sorted((r["location"], r["disposition"], r["quantity"]) for r in line["receipts"]) == [
        ("SG", "quarantine", 1),
        ("SG", "restock", 1),
    ]
    after = on_hand(app, shop)
    changed = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert list(changed.values()) == [1]  # one unit of A back on SG's shelf; HN untouched
    order = view(app, shop, order_id)
    assert [e["type"] for e in order["events"] if e["type"].startswith("return_")] == [
        "return_opened",
        "return_approved",
        "return_received",
        "return_refunded",
    ]
    assert order["returns"] == [
        {"id": return_id, "status": "refunded", "origin": "operator", "refund_amount": "180000.0000"}
    ]
    assert outbox_types(app, "return.") == ["return.opened", "return.approved", "return.received", "return.refunded"]
    assert outbox_types(app, "refund.") == ["refund.recorded"]


def test_a_return_can_never_hold_more_than_shipped(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 3, "100"))
    ship(app, shop, order_id)
    first = returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 2)], "damaged")
    before = view(app, shop, order_id)

    with pytest.raises(InvalidInput) as refused:
        returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 2)], "damaged")

    assert refused.value.code == "not_returnable"
    assert refused.value.details["returnable"] == 1
    assert view(app, shop, order_id) == before
    returns.reject(app.uow(), shop, first, "photos show no damage")  # a rejected return frees its units
    returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 3)], "damaged")


def test_nothing_unshipped_can_be_returned(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 1, "100"))

    with pytest.raises(InvalidInput):
        returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 1)], "changed mind")

    assert view(app, shop, order_id)["returns"] == []


def test_receiving_more_than_the_return_holds_changes_nothing(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 3, "100"))
    ship(app, shop, order_id)
    return_id = returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 1)], "wrong colour")
    returns.approve(app.uow(), shop, return_id)
    before = (return_views.get_return(app.read_uow(), shop, return_id), on_hand(app, shop))

    with pytest.raises(InvalidInput):
        returns.receive(app.uow(), shop, return_id, [ReceivedItem(1, 2, Disposition.RESTOCK)], "HN")
    with pytest.raises(IllegalTransition):
        returns.refund(app.uow(), shop, return_id)  # nothing received yet

    assert (return_views.get_return(app.read_uow(), shop, return_id), on_hand(app, shop)) == before


def test_a_requested_return_cannot_be_received_before_approval(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 1, "100"))
    ship(app, shop, order_id)
    return_id = returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 1)], "wrong colour")

    with pytest.raises(IllegalTransition):
        returns.receive(app.uow(), shop, return_id, [ReceivedItem(1, 1, Disposition.RESTOCK)], "HN")

    assert return_views.get_return(app.read_uow(), shop, return_id)["status"] == "requested"


def test_refunds_of_cancellations_and_returns_add_up_to_what_was_paid(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 3, "100000"), shipping_fee=Decimal(30000))
    orders.cancel(
        app.uow(), shop, order_id, orders.CancelRequest(orders.CancelReason.CUSTOMER, lines=[CancelLine(1, 1)])
    )
    ship(app, shop, order_id)
    return_id = returns.open_return(app.uow(), shop, order_id, [ReturnItem(1, 2)], "faulty")
    returns.approve(app.uow(), shop, return_id)
    returns.receive(app.uow(), shop, return_id, [ReceivedItem(1, 2, Disposition.DISPOSE)], "HN")
    returns.refund(app.uow(), shop, return_id)

    [cancelled] = [e for e in view(app, shop, order_id)["events"] if e["type"] == "lines_cancelled"]
    assert cancelled["data"]["refund"] == "110000"  # 100,000 + a third of the shipping
    assert return_views.get_return(app.read_uow(), shop, return_id)["refund_amount"] == "200000.0000"
    # 330,000 paid; 20,000 of shipping was used by the two units that travelled


def test_a_carrier_return_to_sender_opens_one_return_in_transit(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 2, "100"), ("B", 1, "50"))
    shipment_id = ship(app, shop, order_id)
    carrier = Caller(shop.tenant_id, "system", "carrier")

    first = returns.open_from_carrier(app.uow(), carrier, shipment_id)
    again = returns.open_from_carrier(app.uow(), carrier, shipment_id)

    assert first == again
    record = return_views.get_return(app.read_uow(), shop, first)
    assert (record["status"], record["origin"], record["external_ref"]) == (
        "in_transit",
        "carrier",
        f"shipment:{shipment_id}",
    )
    assert [(line["line_number"], line["quantity"]) for line in record["lines"]] == [(1, 2), (2, 1)]


def test_a_channel_return_request_is_stored_once(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 2, "100"))
    ship(app, shop, order_id)

    first = returns.request_from_channel(
        app.uow(), shop, order_id, [ReturnItem(1, 1)], reason="not as described", external_ref="RR-1", approved=True
    )
    again = returns.request_from_channel(
        app.uow(), shop, order_id, [ReturnItem(1, 1)], reason="not as described", external_ref="RR-1", approved=True
    )

    assert first == again
    assert (
        return_views.list_returns(app.read_uow(), shop, return_views.ReturnFilter(origin="channel"))["items"][0][
            "status"
        ]
        == "approved"
    )


def test_a_buyer_cancellation_is_accepted_while_nothing_shipped(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 2, "100000"), ("B", 1, "50000"), shipping_fee=Decimal(25000))
    assert view(app, shop, order_id)["status"] == "allocated"

    decision = cancellations.request_from_channel(app.uow(), shop, order_id, reason=orders.CancelReason.CUSTOMER)

    assert (decision.accepted, decision.order_status) == (True, "cancelled")
    assert (decision.refund, decision.cancelled) == (Decimal(275000), {1: 2, 2: 1})
    order = view(app, shop, order_id)
    assert [line["allocated_quantity"] for line in order["lines"]] == [0, 0]
    assert {e["type"] for e in order["events"]} >= {"lines_cancelled", "cancelled"}
    assert "order.cancelled" in outbox_types(app, "order.cancelled")
    assert outbox_types(app, "refund.") == ["refund.recorded"]


def test_a_buyer_cancellation_is_refused_after_shipping_and_can_become_a_return(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 2, "100"))
    ship(app, shop, order_id)
    before = view(app, shop, order_id)

    refused = cancellations.request_from_channel(app.uow(), shop, order_id, lines=[CancelLine(1, 1)])
    turned = cancellations.request_from_channel(
        app.uow(), shop, order_id, lines=[CancelLine(1, 1)], return_if_shipped=True
    )

    assert (refused.accepted, refused.reason, refused.refund, refused.return_id) == (
        False,
        "units already left the warehouse",
        Decimal(0),
        None,
    )
    assert turned.accepted is False
    assert turned.return_id is not None
    after = view(app, shop, order_id)
    assert (after["status"], after["lines"]) == (before["status"], before["lines"])
    assert [e["type"] for e in after["events"]].count("cancel_refused") == 2
    record = return_views.get_return(app.read_uow(), shop, turned.return_id)
    assert (record["origin"], record["status"], record["lines"][0]["quantity"]) == ("channel", "requested", 1)


def test_a_return_to_sender_of_an_unknown_or_unshipped_shipment_is_skipped(app: Application, shop: Caller) -> None:
    order_id = place(app, shop, ("A", 1, "100"))
    fulfilment.release(app.uow(), shop, order_id)
    [pending] = view(app, shop, order_id)["shipments"]

    for shipment_id in (pending["id"], 999_999):
        payload = {"shipment_id": shipment_id, "order_id": order_id, "tenant_id": shop.tenant_id}
        envelope = Envelope(1, shop.tenant_id, "shipment", str(shipment_id), "shipment.returned_to_sender", payload)
        aftersales.on_returned_to_sender(app, envelope)  # logged, not raised: a retry would not help

    assert return_views.list_returns(app.read_uow(), shop, return_views.ReturnFilter())["items"] == []
