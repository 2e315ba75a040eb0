"""Assembling what the routing engine weighs, from the database, once per tenant per batch."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import Allocation, InventoryMovement, Location
from ordermesh.domain.inventory import MovementReason
from ordermesh.domain.routing import MONDAY_TO_SATURDAY, Node, NodeCalendar

SALES_WINDOW_DAYS = 7


@lru_cache(maxsize=512)
def public_holidays(country: str, year: int) -> frozenset[date]:
    """The country's public holidays (the ``holidays`` package); none for a country it does not know."""
    try:
        return frozenset(holidays.country_holidays(country, years=year))
    except (NotImplementedError, KeyError):
        return frozenset()


def node_of(location: Location, now: datetime) -> Node:
    calendar = None
    if location.cutoff_time:
        closed = {date.fromisoformat(day) for day in location.closed_dates or ()}
        if location.country:
            for year in (now.year, now.year + 1):
                closed |= public_holidays(location.country, year)
        calendar = NodeCalendar(
            time_zone=location.time_zone,
            cutoff=time.fromisoformat(location.cutoff_time),
            working_weekdays=frozenset(location.working_weekdays or MONDAY_TO_SATURDAY),
            closed_dates=frozenset(closed),
        )
    return Node(
        id=location.id,
        code=location.code,
        latitude=location.latitude,
        longitude=location.longitude,
        active=location.active,
        country=location.country,
        province=location.province,
        channels=frozenset(location.channels) if location.channels is not None else None,
        daily_capacity=location.daily_capacity,
        calendar=calendar,
    )


def local_midnight(time_zone: str, now: datetime) -> datetime:
    zone = ZoneInfo(time_zone)
    return datetime.combine(now.astimezone(zone).date(), time.min, tzinfo=zone).astimezone(UTC)


def assigned_today(session: Session, locations: Iterable[Location], now: datetime) -> dict[int, int]:
    """Orders assigned to each location since the start of its own local day."""
    counts = {}
    for location in locations:
        counts[location.id] = int(
            session.scalar(
                select(func.count(func.distinct(Allocation.order_id))).where(
                    Allocation.location_id == location.id,
                    Allocation.created_at >= local_midnight(location.time_zone, now),
                )
            )
            or 0
        )
    return counts


def daily_sales(
    session: Session, tenant_id: int, sku_ids: Iterable[int], now: datetime
) -> dict[tuple[int, int], float]:
    """Units reserved per day at each (location, SKU) over the last week: recent demand, for days of cover."""
    wanted = sorted(set(sku_ids))
    if not wanted:
        return {}
    rows = session.execute(
        select(InventoryMovement.location_id, InventoryMovement.sku_id, func.sum(InventoryMovement.reserved_delta))
        .where(
            InventoryMovement.tenant_id == tenant_id,
            InventoryMovement.reason == MovementReason.RESERVE.value,
            InventoryMovement.sku_id.in_(wanted),
            InventoryMovement.created_at >= now - timedelta(days=SALES_WINDOW_DAYS),
        )
        .group_by(InventoryMovement.location_id, InventoryMovement.sku_id)
    ).all()
    return {(location_id, sku_id): float(units) / SALES_WINDOW_DAYS for location_id, sku_id, units in rows if units}
