"""Ship-by deadlines from a channel's SLA rule, and SLA states, as tables: time zones, cut-offs,
weekends, public holidays (the ``holidays`` package) and tenant closed days."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing import MONDAY_TO_FRIDAY, MONDAY_TO_SATURDAY, NodeCalendar
from ordermesh.domain.sla import SlaRule, SlaState, evaluate, forecast_handover, rule_ship_by

VN = ZoneInfo("Asia/Ho_Chi_Minh")
LA = ZoneInfo("America/Los_Angeles")
VN_HOLIDAYS = frozenset(holidays.country_holidays("VN", years=[2026]))
SHOPEE = SlaRule(handling_days=2, cutoff=time(14, 0), deadline=time(23, 59))
TIKTOK = SlaRule(handling_days=0, cutoff=time(14, 0), deadline=time(23, 59))


def vn_calendar(closed: frozenset[date] = frozenset()) -> NodeCalendar:
    return NodeCalendar("Asia/Ho_Chi_Minh", time(14, 0), MONDAY_TO_SATURDAY, VN_HOLIDAYS | closed)


def local(zone: ZoneInfo, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


@pytest.mark.parametrize(
    ("case", "rule", "paid_local", "deadline_local"),
    [
        ("working day, one minute before the cut-off", SHOPEE, "2026-11-10 13:59", "2026-11-12 23:59"),
        ("working day, at the cut-off", SHOPEE, "2026-11-10 14:00", "2026-11-13 23:59"),
        ("working day, just after the cut-off", SHOPEE, "2026-11-10 14:01", "2026-11-13 23:59"),
        ("Friday after the cut-off: Saturday starts, Sunday skipped", SHOPEE, "2026-11-13 15:00", "2026-11-17 23:59"),
        ("paid on a Sunday", SHOPEE, "2026-11-15 10:00", "2026-11-18 23:59"),
        ("eve of Reunification Day and Labour Day", SHOPEE, "2026-04-29 10:00", "2026-05-04 23:59"),
        ("eve of the holidays, after the cut-off", SHOPEE, "2026-04-29 15:00", "2026-05-05 23:59"),
        ("eve of National Day (31 Aug, 1-2 Sep closed)", SHOPEE, "2026-08-29 09:00", "2026-09-04 23:59"),
        ("the day before Vietnam Cultural Day", SHOPEE, "2026-11-23 13:00", "2026-11-26 23:59"),
        ("on a public holiday itself", SHOPEE, "2026-09-02 09:00", "2026-09-05 23:59"),
        ("same day before the cut-off (TikTok Shop VN)", TIKTOK, "2026-11-10 13:59", "2026-11-10 23:59"),
        ("next working day after the cut-off (TikTok Shop VN)", TIKTOK, "2026-11-10 14:00", "2026-11-11 23:59"),
        ("TikTok Shop on a Saturday evening", TIKTOK, "2026-11-14 20:00", "2026-11-16 23:59"),
        ("just after midnight counts as the new day", TIKTOK, "2026-11-11 00:01", "2026-11-11 23:59"),
    ],
)
def test_rule_ship_by_in_viet_nam(case: str, rule: SlaRule, paid_local: str, deadline_local: str) -> None:
    paid = local(VN, paid_local).astimezone(UTC)

    assert rule_ship_by(rule, vn_calendar(), paid) == local(VN, deadline_local).astimezone(UTC), case


def test_tenant_closed_days_push_the_deadline() -> None:
    paid = local(VN, "2026-11-10 13:59")

    closed = vn_calendar(frozenset({date(2026, 11, 12)}))

    assert rule_ship_by(SHOPEE, closed, paid) == local(VN, "2026-11-13 23:59").astimezone(UTC)


def test_one_moment_gives_different_deadlines_in_different_time_zones() -> None:
    paid = datetime(2026, 11, 10, 6, 30, tzinfo=UTC)  # 13:30 in Ha Noi; 22:30 the evening before in Los Angeles
    los_angeles = NodeCalendar("America/Los_Angeles", time(14, 0), MONDAY_TO_FRIDAY)

    assert rule_ship_by(SHOPEE, vn_calendar(), paid) == datetime(2026, 11, 12, 16, 59, tzinfo=UTC)
    assert rule_ship_by(SHOPEE, los_angeles, paid) == datetime(2026, 11, 13, 7, 59, tzinfo=UTC)


def test_the_deadline_keeps_its_wall_clock_time_across_a_daylight_saving_change() -> None:
    los_angeles = NodeCalendar("America/Los_Angeles", time(14, 0), MONDAY_TO_FRIDAY)
    paid = local(LA, "2026-10-30 10:00")  # Friday, PDT (UTC-7); clocks go back on Sunday 1 November

    deadline = rule_ship_by(SHOPEE, los_angeles, paid)

    assert deadline == local(LA, "2026-11-03 23:59").astimezone(UTC)
    assert deadline == datetime(2026, 11, 4, 7, 59, tzinfo=UTC)  # PST, UTC-8


def test_a_naive_payment_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        rule_ship_by(SHOPEE, vn_calendar(), datetime(2026, 11, 10, 9, 0))


@pytest.mark.parametrize("fields", [{"handling_days": -1}, {"at_risk_share": 0}, {"at_risk_share": 1.5}])
def test_an_invalid_rule_is_refused(fields: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        SlaRule(**fields)  # type: ignore[arg-type]


PLACED = datetime(2026, 11, 10, 0, 0, tzinfo=UTC)
SHIP_BY = PLACED + timedelta(hours=40)


@pytest.mark.parametrize(
    ("hours_later", "handover_hours", "node_known", "expected"),
    [
        (10, None, False, SlaState.ON_TRACK),  # a quarter of the window, no node yet
        (29.9, None, False, SlaState.ON_TRACK),  # just under 75%
        (30, None, False, SlaState.AT_RISK),  # 75% of the window used
        (10, 39, True, SlaState.ON_TRACK),  # the node hands over an hour before the deadline
        (10, 41, True, SlaState.AT_RISK),  # the node hands over an hour too late
        (10, None, True, SlaState.AT_RISK),  # the node never hands over (closed, offline)
        (40, 39, True, SlaState.AT_RISK),  # at the deadline itself: not yet breached
        (40.01, 39, True, SlaState.BREACHED),
    ],
)
def test_sla_states(hours_later: float, handover_hours: float | None, node_known: bool, expected: SlaState) -> None:
    handover = PLACED + timedelta(hours=handover_hours) if handover_hours is not None else None

    state = evaluate(
        SHOPEE,
        placed_at=PLACED,
        ship_by=SHIP_BY,
        now=PLACED + timedelta(hours=hours_later),
        handover=handover,
        node_known=node_known,
    )

    assert state is expected


@pytest.mark.parametrize(
    ("now_local", "backlog_days", "expected_local"),
    [
        ("2026-11-10 13:00", 0, "2026-11-10 14:00"),  # today's cut-off
        ("2026-11-10 14:01", 0, "2026-11-11 14:00"),  # missed it: tomorrow's
        ("2026-11-10 13:00", 2, "2026-11-12 14:00"),  # two days of work ahead of it
        ("2026-11-13 15:00", 1, "2026-11-16 14:00"),  # Saturday, then (Sunday closed) Monday
        ("2026-08-29 15:00", 0, "2026-09-03 14:00"),  # Saturday evening before National Day: Thursday
    ],
)
def test_forecast_handover_counts_backlog_in_working_days(
    now_local: str, backlog_days: int, expected_local: str
) -> None:
    handover = forecast_handover(vn_calendar(), local(VN, now_local).astimezone(UTC), backlog_days)

    assert handover == local(VN, expected_local).astimezone(UTC)
