"""What the three carrier simulators share: an in-memory parcel book, a zone table for fees and lead
times, and tracking progress along scripted paths (advanced over simulated time by a control call).

Each simulator maps the neutral steps below onto its carrier's own status words and webhook format.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# Neutral tracking steps; each simulator names them in its carrier's words.
CREATED, PICKING, PICKED, IN_TRANSIT, DELIVERING, DELIVERED, RECONCILED = (
    "created",
    "picking",
    "picked",
    "in_transit",
    "delivering",
    "delivered",
    "reconciled",
)
DELIVERY_FAILED, RETURNING, RETURNED, LOST, CANCELLED = "delivery_failed", "returning", "returned", "lost", "cancelled"
PICKUP_REPORT, DELIVERY_REPORT, FAILURE_REPORT = "pickup_report", "delivery_report", "failure_report"

SCENARIOS: dict[str, tuple[str, ...]] = {
    # everything goes well (the COD is paid over at the end)
    "deliver": (PICKING, PICKUP_REPORT, PICKED, IN_TRANSIT, DELIVERING, DELIVERY_REPORT, DELIVERED, RECONCILED),
    # the buyer is never reached: failed attempt, then back to the sender
    "fail_then_return": (PICKING, PICKED, IN_TRANSIT, DELIVERING, FAILURE_REPORT, DELIVERY_FAILED, RETURNING, RETURNED),
    # lost between hubs
    "lost": (PICKING, PICKED, IN_TRANSIT, LOST),
}

DEFAULT_ZONES: dict[str, dict[str, int]] = {
    # illustrative simulator figures, not any carrier's tariff
    "same_province": {"fee": 22000, "per_extra_500g": 2500, "lead_days": 1},
    "other": {"fee": 32000, "per_extra_500g": 5000, "lead_days": 3},
}


def normalise(name: str | None) -> str:
    text = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode().lower()
    for prefix in ("tinh ", "thanh pho ", "tp. ", "tp "):
        text = text.removeprefix(prefix)
    return " ".join(text.split())


@dataclass
class ZoneTable:
    zones: Mapping[str, Mapping[str, int]] = field(default_factory=lambda: DEFAULT_ZONES)

    def zone(self, origin: str | None, destination: str | None) -> str:
        same = origin and destination and normalise(origin) == normalise(destination)
        return "same_province" if same else "other"

    def fee(self, zone: str, weight_grams: int) -> int:
        rate = self.zones[zone]
        extra = max(0, -(-(weight_grams - 500) // 500))
        return int(rate["fee"]) + int(rate["per_extra_500g"]) * extra

    def delivery_at(self, zone: str, now: datetime) -> datetime:
        return now + timedelta(days=int(self.zones[zone]["lead_days"]))


@dataclass
class SimParcel:
    tracking_number: str
    reference: str
    step: str
    fields: dict[str, Any]
    fee: int
    cod_amount: int
    created_at: datetime
    updated_at: datetime
    history: list[tuple[str, datetime]] = field(default_factory=list)
    scenario: str = "deliver"
    position: int = 0  # how far along its scenario


class ParcelBook:
    """Thread-safe store of the simulator's parcels, with a simulated clock that only moves forward."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._lock = threading.RLock()
        self._by_tracking: dict[str, SimParcel] = {}
        self._by_reference: dict[str, str] = {}
        self._sequence = 0
        self.clock = datetime.now(UTC).replace(microsecond=0)
        self.created_count = 0  # create calls that made a parcel (duplicates excluded)

    def now(self) -> datetime:
        with self._lock:
            self.clock += timedelta(seconds=1)  # every event strictly later than the one before
            return self.clock

    def create(
        self, reference: str, fields: dict[str, Any], fee: int, cod: int, tracking: str | None = None
    ) -> SimParcel:
        with self._lock:
            self._sequence += 1
            number = tracking or f"{self.prefix}{self._sequence:08d}"
            now = self.now()
            parcel = SimParcel(number, reference, CREATED, fields, fee, cod, now, now, [(CREATED, now)])
            self._by_tracking[number] = parcel
            self._by_reference[reference] = number
            self.created_count += 1
            return parcel

    def get(self, tracking_number: str) -> SimParcel | None:
        with self._lock:
            return self._by_tracking.get(tracking_number)

    def by_reference(self, reference: str) -> SimParcel | None:
        with self._lock:
            number = self._by_reference.get(reference)
            return self._by_tracking.get(number) if number else None

    def all(self) -> list[SimParcel]:
        with self._lock:
            return list(self._by_tracking.values())

    def move(self, parcel: SimParcel, step: str) -> datetime:
        with self._lock:
            now = self.now()
            parcel.step, parcel.updated_at = step, now
            parcel.history.append((step, now))
            return now

    def advance(
        self,
        parcel: SimParcel,
        scenario: str | None,
        steps: int | None,
        emit: Callable[[SimParcel, str, datetime], None],
    ) -> list[str]:
        """Move ``parcel`` ``steps`` steps (all remaining when None) along ``scenario`` (kept from the
        first call), calling ``emit`` for each; reports (shipper codes) are emitted without changing
        the parcel's step."""
        done = []
        with self._lock:
            if scenario:
                if scenario not in SCENARIOS:
                    raise KeyError(scenario)
                if parcel.position == 0:
                    parcel.scenario = scenario
            path = SCENARIOS[parcel.scenario]
            remaining = path[parcel.position :]
            for step in remaining[: steps if steps is not None else len(remaining)]:
                parcel.position += 1
                when = self.now() if step.endswith("_report") else self.move(parcel, step)
                emit(parcel, step, when)
                done.append(step)
        return done
