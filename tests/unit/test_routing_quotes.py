"""Live carrier quotes in routing: the cheapest carrier that still meets the promise wins, quoted
carriers are priced by their quote, the others keep their rate cards, and the trace says which."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal

from ordermesh.domain.routing import (
    MONDAY_TO_SATURDAY,
    CarrierQuote,
    Destination,
    LineDemand,
    Node,
    NodeCalendar,
    RoutingProfile,
    RoutingRequest,
    ScoreWeights,
    decide,
    locate_province,
)

NOW = datetime(2026, 11, 26, 3, tzinfo=UTC)  # a Thursday, before the cut-off
SHIFT = NodeCalendar("Asia/Ho_Chi_Minh", time(17), MONDAY_TO_SATURDAY)
TO_HANOI = Destination(None, None, "Hà Nội", "VN")
COST_ONLY = RoutingProfile(weights=ScoreWeights(distance=0, cost=1, lead_time=0, stock_health=0, load=0, priority=0))


def _node() -> Node:
    place = locate_province("Hồ Chí Minh", "VN")
    assert place is not None
    return Node(1, "HCM", place.latitude, place.longitude, country="VN", province="Hồ Chí Minh", calendar=SHIFT)


def _decide(quotes: tuple[CarrierQuote, ...], **fields: object) -> dict:
    request = RoutingRequest(
        lines=(LineDemand(1, 1, {7: 1}),),
        nodes=(_node(),),
        stock={(1, 7): 5},
        destination=TO_HANOI,
        quotes={1: quotes} if quotes else {},
        **fields,  # type: ignore[arg-type]
    )
    return decide(request, COST_ONLY, now=NOW).to_dict()


def test_without_quotes_every_option_is_priced_by_its_rate_card() -> None:
    decision = _decide(())
    shipment = decision["plan"]["shipments"][0]
    assert shipment["priced_by"] == "rate_card"
    options = decision["trace"]["candidates"][0]["carriers"]
    assert {o["priced_by"] for o in options} == {"rate_card"}


def test_a_cheap_live_quote_wins_and_the_trace_says_so() -> None:
    decision = _decide((CarrierQuote("ghtk", "road", Decimal(1000), "VND", 2),))
    shipment = decision["plan"]["shipments"][0]
    assert (shipment["carrier"], shipment["service"], shipment["cost"]) == ("ghtk", "road", "1000")
    assert shipment["priced_by"] == "live_quote"
    options = {o["carrier"]: o for o in decision["trace"]["candidates"][0]["carriers"]}
    assert options["ghtk"]["priced_by"] == "live_quote"
    assert options["ghtk"]["quoted_fee"] == "1000"
    assert options["ghn"]["priced_by"] == "rate_card"  # not quoted: its card is the fallback


def test_a_cheap_quote_that_misses_the_delivery_promise_is_not_chosen() -> None:
    promise = datetime(2026, 12, 12, 17, tzinfo=UTC)  # two weeks: every rate card makes it
    slow = CarrierQuote("ghtk", "road", Decimal(1000), "VND", 30)  # the cheapest, a month on the road
    decision = _decide((slow,), deliver_by=promise)
    shipment = decision["plan"]["shipments"][0]
    assert shipment["carrier"] != "ghtk"
    assert shipment["priced_by"] == "rate_card"
    assert "ghtk" not in {o["carrier"] for o in decision["trace"]["candidates"][0]["carriers"]}


def test_a_quote_without_lead_time_borrows_its_cards() -> None:
    with_card = _decide((CarrierQuote("ghn", "2", Decimal(500), "VND", None),))
    shipment = with_card["plan"]["shipments"][0]
    assert (shipment["carrier"], shipment["priced_by"], shipment["cost"]) == ("ghn", "live_quote", "500")
    unknown = _decide((CarrierQuote("acme", "x", Decimal(1), "VND", None),))
    assert unknown["plan"]["shipments"][0]["carrier"] != "acme"  # no card to borrow from: not an option
