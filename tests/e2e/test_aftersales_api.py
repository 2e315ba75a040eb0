"""Returns, SLAs and cancellation requests over HTTP: a partial return of 1 of 3 units restocked
and refunded, an order breaching its SLA cancelled under a policy that says so, a buyer's
cancellation accepted while allocated and refused once shipped, a carrier's return to sender,
and bad input answered with problem+json and no change."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.services import cancellations, outbox, tenants
from ordermesh.services.orders import CancelLine, CancelReason
from ordermesh.services.unit_of_work import Caller
from tests.e2e.conftest import Api, assert_problem, order_body, row_counts, sqlite_only


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def events(api: Api, prefix: str) -> list[dict[str, Any]]:
    """Outbox messages whose type starts with ``prefix``, oldest first. Read from the table, not the
    feed: on PostgreSQL the feed holds back rows while any older transaction in the cluster runs
    (other test processes), which would make these checks depend on timing."""
    with api.app.read_uow() as uow:
        rows = uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type.startswith(prefix)).order_by(OutboxMessage.id)
        ).all()
        return [{"type": row.event_type, "payload": dict(row.payload)} for row in rows]


def shipped_order(api: Api, quantity: int = 3, **extra: Any) -> dict[str, Any]:
    order = api.create_order(order_body(lines=[("TSHIRT-M", quantity)], **extra))
    api.drain()
    order = ok(api.post(f"/v1/orders/{order['id']}/release"))
    [shipment] = order["shipments"]
    ok(
        api.post(
            f"/v1/shipments/{shipment['id']}/events",
            json={"status": "shipped", "carrier": "GHN", "tracking_number": "GHN1"},
        )
    )
    return api.order(order["id"])


def test_a_partial_return_of_one_of_three_units_is_restocked_and_refunded(stocked: Api) -> None:
    order = shipped_order(stocked, 3, shipping_fee="30000")
    location = order["shipments"][0]["location"]
    before = stocked.level(location, "TSHIRT-M")

    opened = ok(
        stocked.post(
            f"/v1/orders/{order['id']}/returns",
            json={"lines": [{"line_number": 1, "quantity": 1}], "reason": "too small"},
        ),
        201,
    )
    ok(stocked.post(f"/v1/returns/{opened['id']}/approve", json={}))
    received = ok(
        stocked.post(
            f"/v1/returns/{opened['id']}/receive",
            json={"location": location, "items": [{"line_number": 1, "quantity": 1, "disposition": "restock"}]},
        )
    )
    refunded = ok(stocked.post(f"/v1/returns/{opened['id']}/refund", json={}))

    assert (opened["status"], received["status"], refunded["status"]) == ("requested", "inspected", "refunded")
    assert refunded["refund_amount"] == "150000.0000"  # the unit's price; the shipping was used
    assert refunded["lines"][0]["refund_amount"] == "150000.0000"
    after = stocked.level(location, "TSHIRT-M")
    assert after["on_hand"] == before["on_hand"] + 1
    [restock] = [m for m in stocked.movements(location, "TSHIRT-M") if m["reason"] == "restock"]
    assert (restock["on_hand_delta"], restock["reference"]) == (1, f"return:{opened['id']}")
    view = stocked.order(order["id"])
    assert view["status"] == "shipped"  # the order keeps its forward status
    assert view["returns"] == [
        {"id": opened["id"], "status": "refunded", "origin": "operator", "refund_amount": "150000.0000"}
    ]
    assert [e["type"] for e in view["events"] if e["type"].startswith("return_")] == [
        "return_opened",
        "return_approved",
        "return_received",
        "return_refunded",
    ]
    [credit] = events(stocked, "refund.recorded")
    assert (credit["payload"]["source"], credit["payload"]["amount"]) == ("return", "150000")
    assert [
        e["type"] for e in events(stocked, "inventory.level_changed") if e["payload"]["on_hand"] == after["on_hand"]
    ]
    listed = ok(stocked.get("/v1/returns", params={"status": "refunded", "order_id": order["id"]}))
    assert [r["id"] for r in listed["items"]] == [opened["id"]]
    assert ok(stocked.get("/v1/returns", params={"status": "requested"}))["items"] == []


def test_an_order_breaching_its_sla_is_cancelled_under_a_policy_that_says_so(stocked: Api) -> None:
    policy = ok(stocked.put("/v1/channels/direct/sla-policy", json={"actions": {"auto_cancel": True}}))
    assert policy["actions"] == {"raise_priority": False, "reroute": False, "notify": True, "auto_cancel": True}
    late = datetime.now(UTC) - timedelta(hours=1)
    order = stocked.create_order(
        order_body(lines=[("TSHIRT-M", 2)], ship_by=late.isoformat(), placed_at=(late - timedelta(days=2)).isoformat())
    )
    before = stocked.level("HN", "TSHIRT-M")["available"] + stocked.level("HCM", "TSHIRT-M")["available"]

    stocked.drain()  # allocation, then the periodic SLA monitor

    view = stocked.order(order["id"])
    assert (view["status"], view["sla"]["state"], view["sla"]["source"]) == ("cancelled", "breached", "marketplace")
    [cancelled] = [e for e in view["events"] if e["type"] == "lines_cancelled"]
    assert (cancelled["reason"], cancelled["data"]["refund"]) == ("sla_breach", "300000")
    assert [e["type"] for e in events(stocked, "order.sla_")] == ["order.sla_breached"]
    [told] = events(stocked, "order.cancelled")
    assert told["payload"]["reason"] == "sla_breach"
    after = stocked.level("HN", "TSHIRT-M")["available"] + stocked.level("HCM", "TSHIRT-M")["available"]
    assert after == before  # whatever was reserved went back
    board = ok(stocked.get("/v1/sla/board"))
    assert board["breached"] == []  # cancelled orders leave the board


def test_a_customer_cancellation_is_accepted_while_allocated_and_refused_after_shipping(
    stocked: Api, tenant: tenants.NewTenant
) -> None:
    channel = Caller(tenant.tenant_id, "integration", "channel:test")
    allocated = stocked.create_order(order_body(lines=[("TSHIRT-M", 2)]))
    stocked.drain()
    available = stocked.level("HN", "TSHIRT-M")["available"]

    accepted = cancellations.request_from_channel(
        stocked.app.uow(), channel, allocated["id"], reason=CancelReason.CUSTOMER
    )

    assert (accepted.accepted, accepted.refund, accepted.order_status) == (True, Decimal(300000), "cancelled")
    assert stocked.level("HN", "TSHIRT-M")["available"] == available + 2  # stock freed
    [told] = [e for e in events(stocked, "order.cancelled") if e["payload"]["order_id"] == allocated["id"]]
    assert (told["payload"]["reason"], told["payload"]["refund"]) == ("customer", "300000")

    shipped = shipped_order(stocked, 1)
    refused = cancellations.request_from_channel(stocked.app.uow(), channel, shipped["id"], lines=[CancelLine(1, 1)])

    assert (refused.accepted, refused.reason) == (False, "units already left the warehouse")
    assert stocked.order(shipped["id"])["status"] == "shipped"
    [answer] = events(stocked, "order.cancel_refused")
    assert answer["payload"]["order_id"] == shipped["id"]


def test_a_carriers_return_to_sender_opens_a_return(stocked: Api, tenant: tenants.NewTenant) -> None:
    order = shipped_order(stocked, 2)
    shipment_id = order["shipments"][0]["id"]
    tenant_id = tenant.tenant_id
    for _ in range(2):  # delivered twice: still one return
        with stocked.app.uow() as uow:
            outbox.append(
                uow.session,
                tenant_id=tenant_id,
                aggregate_type="shipment",
                aggregate_id=str(shipment_id),
                event_type="shipment.returned_to_sender",
                payload={"shipment_id": shipment_id, "order_id": order["id"], "tenant_id": tenant_id},
            )
            uow.commit()
        stocked.drain()

    [opened] = ok(stocked.get("/v1/returns", params={"origin": "carrier"}))["items"]
    assert (opened["order_id"], opened["status"], opened["lines"][0]["quantity"]) == (order["id"], "in_transit", 2)


@sqlite_only
def test_bad_input_is_a_problem_and_changes_nothing(stocked: Api) -> None:
    order = shipped_order(stocked, 1)
    opened = ok(
        stocked.post(
            f"/v1/orders/{order['id']}/returns", json={"lines": [{"line_number": 1, "quantity": 1}], "reason": "x"}
        ),
        201,
    )
    ok(stocked.post(f"/v1/returns/{opened['id']}/approve", json={}))
    before = row_counts(stocked.app)

    assert_problem(stocked.put("/v1/channels/direct/sla-policy", json={"cutoff": "25:00"}), 422, "validation_failed")
    assert_problem(
        stocked.put("/v1/channels/direct/sla-policy", json={"time_zone": "Mars/Olympus"}), 422, "invalid_input"
    )
    assert_problem(stocked.put("/v1/channels/nope/sla-policy", json={}), 404, "channel_not_found")
    assert_problem(
        stocked.post(
            f"/v1/returns/{opened['id']}/receive",
            json={"location": "NOWHERE", "items": [{"line_number": 1, "quantity": 1, "disposition": "restock"}]},
        ),
        422,
        "unknown_location",
    )
    assert_problem(
        stocked.post(
            f"/v1/orders/{order['id']}/returns", json={"lines": [{"line_number": 1, "quantity": 1}], "reason": "x"}
        ),
        422,
        "not_returnable",
    )
    assert_problem(stocked.post(f"/v1/returns/{opened['id']}/refund", json={}), 409, "illegal_transition")
    assert_problem(stocked.get("/v1/returns/999999"), 404, "return_not_found")
    assert_problem(stocked.get("/v1/returns", params={"status": "lost"}), 422, "invalid_input")
    assert row_counts(stocked.app) == before
