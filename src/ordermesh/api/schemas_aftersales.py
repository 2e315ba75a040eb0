"""Request shapes of SLA policies and returns (kept apart from schemas.py to keep that file small)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ordermesh.api.schemas import Strict

HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class SlaActionsBody(Strict):
    raise_priority: bool = Field(default=False, description="at risk: release an allocated order at once")
    reroute: bool = Field(default=False, description="at risk: move reservations off a node that cannot make it")
    notify: bool = Field(default=True, description="outbox order.sla_at_risk / order.sla_breached")
    auto_cancel: bool = Field(default=False, description="breached: cancel the unshipped units (sla_breach)")


class SlaPolicyPut(Strict):
    handling_days: int = Field(default=2, ge=0, le=60, description="working days after the start day")
    cutoff: str = Field(default="14:00", pattern=HHMM, description="paid at or after this starts the next working day")
    deadline: str = Field(default="23:59", pattern=HHMM, description="wall-clock time of the deadline")
    at_risk_share: float = Field(default=0.75, gt=0, le=1, description="share of the window that makes it at risk")
    use_marketplace_ship_by: bool = True
    time_zone: str = Field(default="UTC", min_length=1, max_length=64, description="until a node is assigned")
    country: str | None = Field(default=None, min_length=2, max_length=2, description="public holidays (ISO alpha-2)")
    working_weekdays: list[int] = Field(default=[0, 1, 2, 3, 4, 5], min_length=1, max_length=7)
    closed_dates: list[str] = Field(default_factory=list, max_length=400, description="tenant closed days, ISO dates")
    actions: SlaActionsBody = Field(default_factory=SlaActionsBody)


class ReturnLineBody(Strict):
    line_number: int = Field(ge=1)
    quantity: int = Field(gt=0, le=100_000)


class ReturnCreate(Strict):
    lines: list[ReturnLineBody] = Field(min_length=1, max_length=500)
    reason: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=500)


class ReceivedUnits(Strict):
    line_number: int = Field(ge=1)
    quantity: int = Field(gt=0, le=100_000)
    disposition: Literal["restock", "quarantine", "dispose"]
    location: str | None = Field(default=None, min_length=1, max_length=64, description="default: the body's location")


class ReturnReceive(Strict):
    location: str | None = Field(default=None, min_length=1, max_length=64, description="where the units arrived")
    items: list[ReceivedUnits] = Field(min_length=1, max_length=500)


class ReturnNote(Strict):
    note: str | None = Field(default=None, max_length=500)


class ReturnRejection(Strict):
    reason: str = Field(min_length=1, max_length=500)
