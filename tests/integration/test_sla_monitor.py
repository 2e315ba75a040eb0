"""The SLA monitor through the real services, on SQLite and PostgreSQL: deadlines fixed on first
sight (the channel rule or the marketplace's), states that move on_track -> at_risk -> breached
with one notification each, and the policy's actions: release at once, reroute off a node that
cannot make it, cancel a breached order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from ordermesh.adapters.store.types import utcnow
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.services import allocation, catalog, order_views, orders, sla
from ordermesh.services.unit_of_work import Caller
from ordermesh.workers.runner import drain
from tests.integration.shop import HANOI, open_shop, stock

PAID = datetime(2026, 11, 10, 6, 30, tzinfo=UTC)  # Tuesday 13:30 in Ha Noi, before a 14:00 cut-off
RULE_SHIP_BY = datetime(2026, 11, 12, 16, 59, tzinfo=UTC)  # Thursday 23:59 in Ha Noi
VN_RULE = {"handling_days": 2, "cutoff": "14:00", "time_zone": "Asia/Ho_Chi_Minh", "country": "VN"}


@pytest.fixture
def shop(app: Application, caller: Caller) -> Caller:
    open_shop(app, caller)
    stock(app, caller, "HN", "A", 10)
    stock(app, caller, "SG", "A", 10)
    return caller


def place(app: Application, caller: Caller, external_id: str, **extra: Any) -> int:
    new = orders.NewOrder("direct", external_id, "VND", [orders.NewLine("A", 2, Decimal(100000))], HANOI, **extra)
    order_id = orders.capture_order(app.uow(), caller, new).order_id
    allocation.allocate_batch(app.uow())  # not drain(): its periodic SLA monitor would run at the real time
    return order_id


def view(app: Application, caller: Caller, order_id: int) -> dict[str, Any]:
    return order_views.get_order(app.read_uow(), caller, order_id)


def types(order: dict[str, Any], prefix: str) -> list[str]:
    return [e["type"] for e in order["events"] if e["type"].startswith(prefix)]


def test_a_rule_deadline_moves_from_on_track_to_at_risk_to_breached(app: Application, shop: Caller) -> None:
    sla.put_policy(app.uow(), shop, "direct", VN_RULE)
    order_id = place(app, shop, "o-1", placed_at=PAID)

    sla.run_monitor(app.uow(), now=PAID + timedelta(hours=1))
    first = view(app, shop, order_id)
    sla.run_monitor(app.uow(), now=datetime(2026, 11, 12, 10, 0, tzinfo=UTC))  # 88% of the window used
    sla.run_monitor(app.uow(), now=datetime(2026, 11, 12, 11, 0, tzinfo=UTC))  # still at risk: no second notice
    at_risk_board = sla.board(app.read_uow(), shop)
    sla.run_monitor(app.uow(), now=RULE_SHIP_BY + timedelta(minutes=1))
    last = view(app, shop, order_id)

    assert (first["sla"]["ship_by"], first["sla"]["source"], first["sla"]["state"]) == (
        RULE_SHIP_BY,
        "rule",
        "on_track",
    )
    assert first["ship_by"] == RULE_SHIP_BY  # the allocator now serves it by its deadline
    assert at_risk_board["counts"] == {"on_track": 0, "at_risk": 1, "breached": 0}
    assert [o["order_id"] for o in at_risk_board["at_risk"]] == [order_id]
    assert (last["sla"]["state"], last["status"]) == ("breached", "allocated")  # no auto-cancel in this policy
    assert types(last, "sla_") == ["sla_at_risk", "sla_breached"]
    board = sla.board(app.read_uow(), shop)
    assert board["by_channel"] == [{"channel": "direct", "on_track": 0, "at_risk": 0, "breached": 1}]
    assert board["by_node"] == [{"location": "HN", "on_track": 0, "at_risk": 0, "breached": 1}]
    assert [o["order_id"] for o in board["breached"]] == [order_id]
    assert sla.board(app.read_uow(), shop, location="SG")["counts"] == {"on_track": 0, "at_risk": 0, "breached": 0}


def test_a_marketplace_deadline_wins_over_the_rule(app: Application, shop: Caller) -> None:
    sla.put_policy(app.uow(), shop, "direct", VN_RULE)
    ship_by = PAID + timedelta(days=5)
    order_id = place(app, shop, "o-1", placed_at=PAID, ship_by=ship_by)

    sla.run_monitor(app.uow(), now=PAID + timedelta(hours=1))

    assert view(app, shop, order_id)["sla"] | {"evaluated_at": None} == {
        "ship_by": ship_by,
        "source": "marketplace",
        "state": "on_track",
        "location": "HN",
        "forecast_handover": PAID + timedelta(hours=1),  # HN has no cut-off: it hands over at once
        "evaluated_at": None,
    }


def test_a_breached_order_is_cancelled_when_the_policy_says_so(app: Application, shop: Caller) -> None:
    sla.put_policy(app.uow(), shop, "direct", {**VN_RULE, "actions": {"auto_cancel": True}})
    order_id = place(app, shop, "o-1", placed_at=PAID)

    report = sla.run_monitor(app.uow(), now=RULE_SHIP_BY + timedelta(hours=1))

    order = view(app, shop, order_id)
    assert report.cancelled == 2
    assert (order["status"], order["sla"]["state"]) == ("cancelled", "breached")
    [cancelled] = [e for e in order["events"] if e["type"] == "lines_cancelled"]
    assert (cancelled["reason"], cancelled["data"]["refund"]) == ("sla_breach", "200000")
    assert sla.board(app.read_uow(), shop)["counts"] == {"on_track": 0, "at_risk": 0, "breached": 0}


def test_an_at_risk_order_is_released_at_once_to_raise_its_priority(app: Application, shop: Caller) -> None:
    sla.put_policy(app.uow(), shop, "direct", {**VN_RULE, "actions": {"raise_priority": True}})
    order_id = place(app, shop, "o-1", placed_at=PAID)
    assert view(app, shop, order_id)["status"] == "allocated"

    report = sla.run_monitor(app.uow(), now=datetime(2026, 11, 12, 12, 0, tzinfo=UTC))

    order = view(app, shop, order_id)
    assert (report.released, order["status"], order["sla"]["state"]) == (1, "released", "at_risk")
    assert [s["location"] for s in order["shipments"]] == ["HN"]


def test_an_order_at_a_node_that_cannot_make_it_is_rerouted(app: Application, shop: Caller) -> None:
    sla.put_policy(app.uow(), shop, "direct", {**VN_RULE, "actions": {"reroute": True}})
    now = utcnow()
    order_id = place(app, shop, "o-1", placed_at=now - timedelta(hours=1), ship_by=now + timedelta(hours=30))
    assert view(app, shop, order_id)["lines"][0]["allocations"][0]["location"] == "HN"
    closed = [(now + timedelta(days=d)).date().isoformat() for d in range(-1, 6)]
    catalog.upsert_location(
        app.uow(),
        shop,
        "HN",
        catalog.LocationInput("HN", latitude=21.03, longitude=105.85, cutoff_time="14:00", closed_dates=closed),
    )

    report = sla.run_monitor(app.uow(), now=now)
    drain(app)  # the allocator routes the units again; the periodic monitor then sees them at SG
    sla.run_monitor(app.uow())

    order = view(app, shop, order_id)
    assert report.rerouted == 1
    assert types(order, "sla_") == ["sla_at_risk"]
    assert (order["sla"]["state"], order["sla"]["location"]) == ("on_track", "SG")
    assert [(a["location"], a["quantity"]) for a in order["lines"][0]["allocations"]] == [("SG", 2)]
    [rerouted] = [e for e in order["events"] if e["type"] == "rerouted"]
    assert rerouted["reason"] == "SLA: node cannot hand over before ship-by"


def test_a_policy_for_an_unknown_channel_or_with_bad_values_is_refused(app: Application, shop: Caller) -> None:
    with pytest.raises(NotFound):
        sla.put_policy(app.uow(), shop, "shopee-vn", VN_RULE)
    with pytest.raises(InvalidInput):
        sla.put_policy(app.uow(), shop, "direct", {**VN_RULE, "time_zone": "Mars/Olympus"})
    with pytest.raises(InvalidInput):
        sla.put_policy(app.uow(), shop, "direct", {**VN_RULE, "cutoff": "25:00"})

    assert sla.get_policy(app.read_uow(), shop, "direct")["updated_at"] is None  # still the defaults
