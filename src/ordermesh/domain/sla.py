"""Ship-by deadlines and SLA states.

A channel's SLA policy says how long an order may take to leave a node: the marketplace's own
deadline when it sends one, otherwise a rule: ``handling_days`` working days after payment, where an
order paid after the cut-off (or on a non-working day) starts counting on the next working day, and
the deadline falls at ``deadline`` wall-clock time on the last day. Working days come from the same
``NodeCalendar`` routing uses (time zone, weekdays, closed dates = public holidays + tenant closed days).

An open order is ``on_track``, ``at_risk`` (a share of its window used, or the assigned node's next
handover, pushed back by its backlog, falls after the deadline) or ``breached`` (the deadline passed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing.calendar import HANDOVER_HORIZON_DAYS, is_working_day, next_handover
from ordermesh.domain.routing.model import NodeCalendar


class SlaState(StrEnum):
    ON_TRACK = "on_track"  # the deadline can still be met comfortably
    AT_RISK = "at_risk"  # most of the window is used, or the node cannot hand over in time
    BREACHED = "breached"  # the deadline passed before the order left the node


class ShipBySource(StrEnum):
    MARKETPLACE = "marketplace"  # the channel sent the deadline with the order
    RULE = "rule"  # computed from the channel's SLA policy


@dataclass(frozen=True, slots=True)
class SlaActions:
    raise_priority: bool = False  # at risk: release an allocated order to its node at once, re-queue a waiting one
    reroute: bool = False  # at risk: move unreleased reservations off a node that cannot make it
    notify: bool = True  # outbox order.sla_at_risk / order.sla_breached
    auto_cancel: bool = False  # breached: cancel every unit not yet shipped (reason sla_breach)


@dataclass(frozen=True, slots=True)
class SlaRule:
    """How a channel's deadlines are set and watched."""

    handling_days: int = 2  # working days after the start day (0: the start day itself)
    cutoff: time = time(14, 0)  # paid at or after this (local) starts counting the next working day
    deadline: time = time(23, 59)  # wall-clock time of the deadline on its day
    at_risk_share: float = 0.75  # share of the window used that makes an order at risk
    use_marketplace_ship_by: bool = True
    actions: SlaActions = SlaActions()

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.handling_days <= 60:
            problems.append("handling_days must be 0 to 60")
        if not 0 < self.at_risk_share <= 1:
            problems.append("at_risk_share must be above 0 and at most 1")
        if self.cutoff.tzinfo is not None or self.deadline.tzinfo is not None:
            problems.append("cutoff and deadline are wall-clock times: give them without a time zone")
        if problems:
            raise InvalidInput("invalid SLA policy: " + "; ".join(problems), problems=problems)


def rule_ship_by(rule: SlaRule, calendar: NodeCalendar, paid_at: datetime) -> datetime:
    """The deadline ``rule`` gives an order paid at ``paid_at`` (aware), in UTC."""
    if paid_at.tzinfo is None:
        raise ValueError("paid_at must be timezone-aware")
    zone = ZoneInfo(calendar.time_zone)
    local = paid_at.astimezone(zone)
    day = local.date()
    if not is_working_day(calendar, day) or local.time() >= rule.cutoff:
        day = _next_working_day(calendar, day)
    for _ in range(rule.handling_days):
        day = _next_working_day(calendar, day)
    return datetime.combine(day, rule.deadline, tzinfo=zone).astimezone(UTC)


def _next_working_day(calendar: NodeCalendar, day: date) -> date:
    for _ in range(HANDOVER_HORIZON_DAYS):
        day += timedelta(days=1)
        if is_working_day(calendar, day):
            return day
    raise InvalidInput("the calendar has no working day within a year", code="calendar_closed")


def forecast_handover(calendar: NodeCalendar | None, now: datetime, days_of_backlog: int) -> datetime | None:
    """When the node will hand this order over: its next cut-off, one working day later for each
    full day of work queued ahead of it. None: the node's calendar never opens."""
    handover = next_handover(calendar, now)
    for _ in range(max(days_of_backlog, 0)):
        if handover is None:
            return None
        handover = next_handover(calendar, handover + timedelta(seconds=1))
    return handover.astimezone(UTC) if handover is not None else None


def evaluate(
    rule: SlaRule,
    *,
    placed_at: datetime,
    ship_by: datetime,
    now: datetime,
    handover: datetime | None = None,
    node_known: bool = False,
) -> SlaState:
    """The SLA state of an open order. ``handover``: the forecast handover at its assigned node
    (``node_known`` True; None there means the node never hands over)."""
    if now > ship_by:
        return SlaState.BREACHED
    if node_known and (handover is None or handover > ship_by):
        return SlaState.AT_RISK
    window = (ship_by - placed_at).total_seconds()
    used = (now - placed_at).total_seconds()
    if window <= 0 or used / window >= rule.at_risk_share:
        return SlaState.AT_RISK
    return SlaState.ON_TRACK
