"""SLA calendar: a node hands over at its next cut-off (local time, working days, not closed), and an
order is SLA-feasible at a node when that handover is no later than ship-by."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing import (
    MONDAY_TO_FRIDAY,
    MONDAY_TO_SATURDAY,
    Destination,
    ExclusionReason,
    LineDemand,
    Node,
    NodeCalendar,
    RoutingProfile,
    RoutingRequest,
    SlaFallback,
    add_working_days,
    decide,
    local_day_start,
    next_handover,
)
from ordermesh.domain.routing.calendar import handover_moment
from tests.strategies import decision_moments, node_calendars

HCM, MANILA, NEW_YORK = "Asia/Ho_Chi_Minh", "Asia/Manila", "America/New_York"
# 2026-11-26 is a Thursday; 2026-11-28/29 the weekend.


def _utc(day: int, hour: int, minute: int = 0, *, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


WEEKDAYS_17H = NodeCalendar(HCM, time(17), MONDAY_TO_FRIDAY)
SATURDAYS_TOO = NodeCalendar(HCM, time(17), MONDAY_TO_SATURDAY)
MIDNIGHT = NodeCalendar(HCM, time(0), MONDAY_TO_FRIDAY)
MANILA_15H = NodeCalendar(MANILA, time(15), MONDAY_TO_FRIDAY)
NEW_YORK_17H = NodeCalendar(NEW_YORK, time(17), MONDAY_TO_FRIDAY)
UTC_NOON = NodeCalendar("UTC", time(12), MONDAY_TO_FRIDAY)


def _closed(*days: int) -> NodeCalendar:
    return replace(WEEKDAYS_17H, closed_dates=frozenset(date(2026, 11, 1) + timedelta(days=d - 1) for d in days))


HANDOVERS = [
    # (rule, calendar, now (UTC), expected handover in the node's local time)
    ("before the cut-off: today", WEEKDAYS_17H, _utc(26, 3), "2026-11-26T17:00:00+07:00"),
    ("exactly at the cut-off: today", WEEKDAYS_17H, _utc(26, 10), "2026-11-26T17:00:00+07:00"),
    ("a minute late: next working day", WEEKDAYS_17H, _utc(26, 10, 1), "2026-11-27T17:00:00+07:00"),
    ("late on Friday: Monday", WEEKDAYS_17H, _utc(27, 11), "2026-11-30T17:00:00+07:00"),
    ("late on Friday, Saturday shift", SATURDAYS_TOO, _utc(27, 11), "2026-11-28T17:00:00+07:00"),
    ("on Sunday: Monday", SATURDAYS_TOO, _utc(29, 3), "2026-11-30T17:00:00+07:00"),
    ("closed today: tomorrow", _closed(26), _utc(26, 3), "2026-11-27T17:00:00+07:00"),
    ("closed Friday and Monday around a weekend", _closed(27, 30), _utc(26, 11), "2026-12-01T17:00:00+07:00"),
    ("local date ahead of UTC", WEEKDAYS_17H, _utc(26, 18), "2026-11-27T17:00:00+07:00"),
    ("local date ahead of UTC, Friday night", WEEKDAYS_17H, _utc(27, 18), "2026-11-30T17:00:00+07:00"),
    ("Manila before its 15:00 cut-off", MANILA_15H, _utc(26, 6, 30), "2026-11-26T15:00:00+08:00"),
    ("Manila after its 15:00 cut-off", MANILA_15H, _utc(26, 7, 30), "2026-11-27T15:00:00+08:00"),
    ("midnight cut-off: the next midnight", MIDNIGHT, _utc(26, 3), "2026-11-27T00:00:00+07:00"),
    # Friday 17:30 EDT; the clocks go back on Sunday 1 November: Monday's cut-off is in EST.
    ("across the end of daylight saving time", NEW_YORK_17H, _utc(30, 21, 30, month=10), "2026-11-02T17:00:00-05:00"),
    ("UTC node", UTC_NOON, _utc(26, 12, 1), "2026-11-27T12:00:00+00:00"),
]


@pytest.mark.parametrize(("rule", "calendar", "now", "expected"), HANDOVERS, ids=[row[0] for row in HANDOVERS])
def test_handover_is_the_next_cutoff_on_an_open_working_day(
    rule: str, calendar: NodeCalendar, now: datetime, expected: str
) -> None:
    handover = next_handover(calendar, now)
    assert handover is not None
    assert handover.isoformat() == expected
    assert handover.tzinfo == ZoneInfo(calendar.time_zone)
    assert handover >= now


def test_node_without_calendar_hands_over_at_once() -> None:
    now = _utc(26, 3)
    assert next_handover(None, now) == now


def test_calendar_closed_beyond_the_horizon_never_hands_over() -> None:
    mondays = frozenset(date(2026, 11, 30) + timedelta(weeks=w) for w in range(60))
    calendar = NodeCalendar(HCM, time(17), frozenset({0}), mondays)
    assert next_handover(calendar, _utc(26, 3)) is None


def test_handover_needs_an_aware_now() -> None:
    with pytest.raises(ValueError, match="no time zone"):
        next_handover(NodeCalendar(), datetime(2026, 11, 26, 3))


WORKING_DAYS = [
    # (rule, start (local), days, weekdays, expected)
    ("no lead time", datetime(2026, 11, 27, 17), 0, MONDAY_TO_FRIDAY, datetime(2026, 11, 27, 17)),
    ("Friday + 1, Monday to Friday", datetime(2026, 11, 27, 17), 1, MONDAY_TO_FRIDAY, datetime(2026, 11, 30, 17)),
    ("Friday + 1, Monday to Saturday", datetime(2026, 11, 27, 17), 1, MONDAY_TO_SATURDAY, datetime(2026, 11, 28, 17)),
    ("Saturday + 2, Monday to Friday", datetime(2026, 11, 28, 9), 2, MONDAY_TO_FRIDAY, datetime(2026, 12, 1, 9)),
    ("Thursday + 4, Monday to Saturday", datetime(2026, 11, 26, 17), 4, MONDAY_TO_SATURDAY, datetime(2026, 12, 1, 17)),
]


@pytest.mark.parametrize(
    ("rule", "start", "days", "weekdays", "expected"), WORKING_DAYS, ids=[row[0] for row in WORKING_DAYS]
)
def test_carrier_lead_time_counts_only_its_working_days(
    rule: str, start: datetime, days: int, weekdays: frozenset[int], expected: datetime
) -> None:
    zone = ZoneInfo(HCM)
    assert add_working_days(start.replace(tzinfo=zone), days, weekdays) == expected.replace(tzinfo=zone)


def test_local_day_starts_at_the_nodes_midnight() -> None:
    calendar = NodeCalendar(HCM)
    # 18:00 UTC on Thursday is 01:00 on Friday in Ho Chi Minh City: Friday's count started at 17:00 UTC.
    assert local_day_start(calendar, _utc(26, 18)) == _utc(26, 17)
    assert local_day_start(calendar, _utc(26, 16, 59)) == _utc(25, 17)
    assert local_day_start(None, _utc(26, 18)) == _utc(26, 0)


@pytest.mark.parametrize(
    ("calendar_fields", "problem"),
    [
        ({"time_zone": "Asia/Atlantis"}, "unknown time zone 'Asia/Atlantis'"),
        ({"working_weekdays": frozenset()}, "working_weekdays must be a non-empty set of 0 (Monday) .. 6 (Sunday)"),
        ({"working_weekdays": frozenset({7})}, "working_weekdays must be a non-empty set of 0 (Monday) .. 6 (Sunday)"),
        ({"cutoff": time(17, tzinfo=UTC)}, "cutoff is a wall-clock time: give it without a time zone"),
    ],
)
def test_invalid_calendar_is_refused(calendar_fields: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        NodeCalendar(**calendar_fields)  # type: ignore[arg-type]
    assert refused.value.details["problems"] == [problem]


# --- SLA feasibility in the engine -----------------------------------------------------------------


def _sla_request(ship_by: datetime, *, deliver_by: datetime | None = None) -> RoutingRequest:
    calendar = NodeCalendar(HCM, time(17), MONDAY_TO_FRIDAY)
    node = Node(1, "SGN", 10.78, 106.70, country="VN", province="Hồ Chí Minh", calendar=calendar)
    return RoutingRequest(
        lines=(LineDemand(10, 1, {1: 1}),),
        nodes=(node,),
        stock={(1, 1): 5},
        destination=Destination(province="Hồ Chí Minh", country="VN"),
        ship_by=ship_by,
        deliver_by=deliver_by,
    )


def test_handover_exactly_at_ship_by_is_on_time() -> None:
    decision = decide(_sla_request(_utc(26, 10)), now=_utc(26, 3))
    assert decision.plan.node_ids == [1]
    assert decision.plan.shipments[0].handover_at.isoformat() == "2026-11-26T17:00:00+07:00"


def test_handover_one_second_after_ship_by_breaches_the_sla() -> None:
    holding = RoutingProfile(sla_fallback=SlaFallback.HOLD)
    decision = decide(_sla_request(_utc(26, 10) - timedelta(seconds=1)), holding, now=_utc(26, 3))
    assert decision.plan.shipments == ()
    [excluded] = decision.trace.excluded
    assert excluded.reason is ExclusionReason.SLA_BREACH
    assert excluded.detail == ("next handover 2026-11-26T17:00:00+07:00 is after ship-by 2026-11-26T09:59:59+00:00")


def test_delivery_promise_counts_handover_plus_the_carriers_lead_time() -> None:
    # Same province: the fastest default card takes 1 working day (Mon-Sat): Friday 17:00 local.
    on_time = decide(_sla_request(_utc(28, 0), deliver_by=_utc(27, 10)), now=_utc(26, 3))
    assert on_time.plan.shipments[0].estimated_delivery_at.isoformat() == "2026-11-27T17:00:00+07:00"
    late = decide(_sla_request(_utc(28, 0), deliver_by=_utc(27, 9, 59)), now=_utc(26, 3))
    assert [e.reason for e in late.trace.excluded] == [ExclusionReason.DELIVERY_PROMISE_BREACH]


@given(data=st.data(), moments=st.lists(decision_moments(), min_size=1, max_size=8))
def test_remembered_handover_is_always_the_next_cutoff(data: st.DataObject, moments: list[datetime]) -> None:
    # Moments in any order (forwards, backwards, repeated): the memo must never return a stale handover.
    calendar = data.draw(node_calendars(moments[0]))
    for now in moments:
        expected = next_handover(calendar, now)
        found = handover_moment(calendar, now, now.timestamp())
        if expected is None:
            assert found is None
        else:
            assert found == (expected, expected.timestamp())
