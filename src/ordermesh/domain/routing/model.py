"""What a routing decision is made from: nodes, their calendars, order lines, the destination.

These are plain values the caller assembles (from the database, a marketplace payload, a test). Every
field the engine adds to routing v1's ``Node``, ``LineDemand`` and ``Destination`` has a default, so
v1 callers build them exactly as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ordermesh.domain.errors import InvalidInput

MONDAY_TO_FRIDAY = frozenset(range(5))  # weekdays as ``date.weekday()``: Monday 0 ... Sunday 6
MONDAY_TO_SATURDAY = frozenset(range(6))

Stock = Mapping[tuple[int, int], int]  # (node id, SKU id) -> units available to promise
DailySales = Mapping[tuple[int, int], float]  # (node id, SKU id) -> recent units sold per day


@dataclass(frozen=True, slots=True)
class NodeCalendar:
    """When a node hands parcels to carriers: every working weekday at ``cutoff`` (wall-clock time in
    ``time_zone``), except on ``closed_dates`` (public holidays, stock-takes). Orders routed after the
    cut-off leave with the next working day's handover."""

    time_zone: str = "UTC"
    cutoff: time = time(17, 0)
    working_weekdays: frozenset[int] = MONDAY_TO_FRIDAY
    closed_dates: frozenset[date] = frozenset()
    _hash: int = field(init=False, repr=False, compare=False)

    def __hash__(self) -> int:  # computed once: calendars key the handover cache for every node of every order
        return self._hash

    def __post_init__(self) -> None:
        identity = (self.time_zone, self.cutoff, self.working_weekdays, self.closed_dates)
        object.__setattr__(self, "_hash", hash(identity))
        problems = []
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"unknown time zone {self.time_zone!r}")
        if self.cutoff.tzinfo is not None:
            problems.append("cutoff is a wall-clock time: give it without a time zone")
        if not self.working_weekdays or not self.working_weekdays <= frozenset(range(7)):
            problems.append("working_weekdays must be a non-empty set of 0 (Monday) .. 6 (Sunday)")
        if problems:
            raise InvalidInput("invalid node calendar: " + "; ".join(problems), problems=problems)


@dataclass(frozen=True, slots=True)
class Node:
    """A location that can ship: warehouse, 3PL or store. Fields after ``active`` feed the engine's
    constraints; each default means "no limit" or "unknown"."""

    id: int
    code: str
    latitude: float | None = None
    longitude: float | None = None
    active: bool = True
    country: str | None = None  # ISO 3166-1 alpha-2; None: the destination's country
    province: str | None = None  # first-level division, any spelling the province table knows
    channels: frozenset[str] | None = None  # channel codes it may ship for; None: every channel
    daily_capacity: int | None = None  # orders it can hand over per local day; None: unlimited
    calendar: NodeCalendar | None = None  # None: hands over whenever an order arrives (no cut-off)


@dataclass(frozen=True, slots=True)
class LineDemand:
    """Units of one order line still to reserve. ``components`` maps each stocked SKU id to the
    quantity of it one unit of the line needs (``{sku: 1}`` for a plain SKU, several for a bundle).
    ``unit_weight_grams``: the weight of one unit, when known (otherwise the order's total weight
    is shared out by units)."""

    line_id: int
    quantity: int
    components: Mapping[int, int]
    unit_weight_grams: int | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where the order goes. Coordinates when the address has them; otherwise the province's
    capital stands in for distance. ``province`` (any spelling the province table knows) and
    ``country`` (ISO alpha-2) also choose the carriers' rate zone."""

    latitude: float | None = None
    longitude: float | None = None
    province: str | None = None
    country: str | None = None


@dataclass(frozen=True, slots=True)
class Assignment:
    line_id: int
    node_id: int
    quantity: int
