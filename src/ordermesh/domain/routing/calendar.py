"""SLA calendar: when a node hands an order to a carrier, and when the carrier delivers it.

Handover: the first cut-off moment at or after ``now`` on a working day of the node (its own time
zone; not a closed date). An order routed at 16:59 to a node with a 17:00 cut-off leaves today; at
17:01 it leaves with the next working day's cut-off. Delivery: handover plus the carrier's lead time
in the carrier's working days, at the same wall-clock time.

Both results are cached: a batch routes hundreds of orders with one ``now``, and calendars are few.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from ordermesh.domain.routing.model import NodeCalendar

HANDOVER_HORIZON_DAYS = 400  # a calendar closed for longer than this never hands over


@lru_cache(maxsize=8192)
def next_handover(calendar: NodeCalendar | None, now: datetime) -> datetime | None:
    """The node's next handover at or after ``now`` (aware, in the node's time zone), or None when the
    calendar has no open working day within ``HANDOVER_HORIZON_DAYS``. Without a calendar a node hands
    over at once."""
    _require_aware(now)
    if calendar is None:
        return now
    zone = ZoneInfo(calendar.time_zone)
    day = now.astimezone(zone).date()
    for _ in range(HANDOVER_HORIZON_DAYS):
        if is_working_day(calendar, day):
            cutoff = datetime.combine(day, calendar.cutoff, tzinfo=zone)
            if cutoff.astimezone(UTC) >= now:
                return cutoff
        day += timedelta(days=1)
    return None


# Per calendar: (computed for, handover, its timestamp). The next handover is the same for every ``now``
# from the moment it was computed for up to the handover itself (no cut-off lies in between).
_LATEST_HANDOVER: dict[NodeCalendar, tuple[float, datetime, float]] = {}
LATEST_HANDOVER_LIMIT = 8192  # calendars remembered before the memo is cleared


def handover_moment(calendar: NodeCalendar | None, now: datetime, now_ts: float) -> tuple[datetime, float] | None:
    """``next_handover`` with its POSIX timestamp (``now_ts`` is ``now.timestamp()``): comparing
    timestamps is much cheaper than comparing datetimes in different time zones, and routing does it
    for every node of every order. Remembered per calendar while it stays the next handover."""
    if calendar is None:
        return now, now_ts
    known = _LATEST_HANDOVER.get(calendar)
    if known is not None and known[0] <= now_ts <= known[2]:
        return known[1], known[2]
    handover = next_handover(calendar, now)
    if handover is None:
        return None
    handover_ts = handover.timestamp()
    if len(_LATEST_HANDOVER) >= LATEST_HANDOVER_LIMIT:
        _LATEST_HANDOVER.clear()
    _LATEST_HANDOVER[calendar] = (now_ts, handover, handover_ts)
    return handover, handover_ts


def is_working_day(calendar: NodeCalendar, day: date) -> bool:
    return day.weekday() in calendar.working_weekdays and day not in calendar.closed_dates


@lru_cache(maxsize=8192)
def add_working_days(moment: datetime, days: int, working_weekdays: frozenset[int]) -> datetime:
    """``moment`` moved ``days`` working days ahead (same wall-clock time in ``moment``'s time zone);
    a day not in ``working_weekdays`` does not count. ``days`` = 0 gives ``moment`` itself."""
    if days < 0:
        raise ValueError("days must not be negative")
    if not working_weekdays:
        raise ValueError("working_weekdays must not be empty")
    local = moment.replace(tzinfo=None)
    counted = 0
    while counted < days:
        local += timedelta(days=1)
        if local.weekday() in working_weekdays:
            counted += 1
    return local.replace(tzinfo=moment.tzinfo)


def local_day_start(calendar: NodeCalendar | None, now: datetime) -> datetime:
    """Midnight (in UTC) that starts the node's current local day: orders assigned to the node since
    then count against its daily capacity. Without a calendar the day is the UTC day."""
    _require_aware(now)
    zone = ZoneInfo(calendar.time_zone) if calendar is not None else UTC
    local_midnight = datetime.combine(now.astimezone(zone).date(), datetime.min.time(), tzinfo=zone)
    return local_midnight.astimezone(UTC)


def _require_aware(moment: datetime) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment!r} has no time zone: pass an aware datetime (UTC)")
