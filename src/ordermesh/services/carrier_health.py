"""How a carrier account is doing: its recent bookings, their errors, and booking dead letters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.adapters.store.tables_carriers import CarrierBooking
from ordermesh.adapters.store.types import utcnow
from ordermesh.services import carrier_accounts
from ordermesh.services.carrier_booking import BOOKED, BOOKING, FAILED
from ordermesh.services.unit_of_work import Caller, UnitOfWork

WINDOW = timedelta(hours=24)
BOOKING_EVENTS = ("order.shipment_created", "order.lines_cancelled", "order.short_picked")


def health(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, Any]:
    with uow:
        session = uow.session
        account = carrier_accounts.load(uow, caller, code)
        since = utcnow() - WINDOW
        counts = dict(
            session.execute(
                select(CarrierBooking.status, func.count())
                .where(CarrierBooking.account_id == account.id, CarrierBooking.updated_at >= since)
                .group_by(CarrierBooking.status)
            ).all()
        )
        last = session.scalar(
            select(func.max(CarrierBooking.updated_at)).where(CarrierBooking.account_id == account.id)
        )
        errors = session.execute(
            select(CarrierBooking.shipment_id, CarrierBooking.last_error, CarrierBooking.updated_at)
            .where(CarrierBooking.account_id == account.id, CarrierBooking.last_error.is_not(None))
            .order_by(CarrierBooking.updated_at.desc())
            .limit(10)
        ).all()
        mine = set(
            session.scalars(select(CarrierBooking.shipment_id).where(CarrierBooking.account_id == account.id)).all()
        )
        dead = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.tenant_id == caller.tenant_id,
                OutboxMessage.status == "dead",
                OutboxMessage.event_type.in_(BOOKING_EVENTS),
            )
            .order_by(OutboxMessage.id)
            .limit(500)
        ).all()
        total = sum(counts.values())
        failed = counts.get(FAILED, 0)
        return {
            "code": account.code,
            "kind": account.kind,
            "active": account.active,
            "last_call_at": last,
            "window_hours": int(WINDOW.total_seconds() // 3600),
            "bookings": {"total": total, **{k: int(v) for k, v in sorted(counts.items())}},
            "booked": int(counts.get(BOOKED, 0)),
            "in_flight": int(counts.get(BOOKING, 0)),
            "error_rate": round(failed / total, 4) if total else 0.0,
            "recent_errors": [
                {"shipment_id": shipment_id, "error": error, "at": at} for shipment_id, error, at in errors
            ],
            "dead_letters": [
                {
                    "event_id": row.id,
                    "event_type": row.event_type,
                    "shipment_id": row.payload.get("shipment_id"),
                    "last_error": row.last_error,
                    "retry": f"/v1/events/{row.id}/retry",
                }
                for row in dead
                if row.payload.get("shipment_id") in mine
            ],
        }
