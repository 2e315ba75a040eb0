"""Following booked parcels: carrier webhooks (stored raw in the inbox first) become tracking events,
canonical shipment states, shipment hand-over and delivery, COD records, and a
``shipment.returned_to_sender`` fact for the returns work.

Rules (CHANNELS.md §9.1, §9.3):
- every event is recorded on the order's trail with the carrier's raw status beside the canonical one;
- events that are not states (GHTK shipper reports, GHN weight/fee updates) never change state;
- an event older than the last applied one never moves a booking back, and a terminal state is final;
- a terminal state claimed by a carrier that signs nothing is re-read from its detail API first and
  applied only when the carrier's own record agrees (Ninja Van, which has no pull API, signs its pushes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ordermesh.adapters.carriers.base import HANDED_OVER_STATES, TERMINAL_STATES, CarrierState, TrackingUpdate
from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Shipment
from ordermesh.adapters.store.tables_carriers import CarrierAccount, CarrierBooking
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.lifecycle import SHIPMENT_NOT_YET_SHIPPED, ShipmentStatus
from ordermesh.services import carrier_accounts, fulfilment, order_history, outbox
from ordermesh.services.carrier_accounts import Box
from ordermesh.services.unit_of_work import Caller, UnitOfWork

log = logging.getLogger("ordermesh.carriers")

RETURNED_EVENT = "shipment.returned_to_sender"
COD_NONE, COD_PENDING, COD_OWED, COD_RECONCILED = "none", "pending", "owed", "reconciled"


def process_delivery(
    uow_factory: Callable[[], UnitOfWork], box: Box, kind: str, webhook_id: str, headers: Any, body: bytes
) -> int:
    """Apply one stored webhook delivery; returns how many events changed a booking's state.
    Raises (for the inbox to retry) when the carrier's detail API cannot be reached."""
    with uow_factory() as uow:
        account = uow.session.scalar(
            select(CarrierAccount).where(CarrierAccount.kind == kind, CarrierAccount.webhook_id == webhook_id)
        )
        if account is None:
            log.warning("carrier webhook for unknown %s account %s dropped", kind, webhook_id)
            return 0
        adapter = carrier_accounts.adapter(account, box)
        account_id, account_code = account.id, account.code
    try:
        updates = adapter.parse_webhook(headers=dict(headers), body=body)
    except (ValueError, TypeError, KeyError) as error:
        log.warning("unreadable %s webhook for %s dropped: %s", kind, account_code, error)
        return 0
    applied = 0
    for update in updates:
        booking_id = _find_booking(uow_factory(), account_id, update)
        if booking_id is None:
            log.info("%s webhook for a parcel ordermesh did not book (%s): ignored", kind, update.tracking_number)
            continue
        confirmation = None
        if update.state in TERMINAL_STATES and adapter.has_detail_api:
            tracking, reference = _keys(uow_factory(), booking_id)
            detail = adapter.detail(tracking, reference)
            if detail is not None:
                confirmation = detail.state
                if detail.state is update.state and detail.cod_reconciled and not update.cod_reconciled:
                    update = _with(update, cod_reconciled=True)
        else:
            confirmation = update.state
        if apply_update(uow_factory(), booking_id, update, confirmed=confirmation is update.state, seen=confirmation):
            applied += 1
        sync_shipment(uow_factory, booking_id)
    return applied


def _with(update: TrackingUpdate, **changes: Any) -> TrackingUpdate:
    return replace(update, **changes)


def _find_booking(uow: UnitOfWork, account_id: int, update: TrackingUpdate) -> int | None:
    with uow:
        query = select(CarrierBooking.id).where(CarrierBooking.account_id == account_id)
        if update.tracking_number:
            found = uow.session.scalar(query.where(CarrierBooking.tracking_number == update.tracking_number))
            if found is not None:
                return int(found)
        if update.reference:
            found = uow.session.scalar(query.where(CarrierBooking.reference == update.reference))
            if found is not None:
                return int(found)
        return None


def _keys(uow: UnitOfWork, booking_id: int) -> tuple[str, str]:
    with uow:
        booking = uow.session.get(CarrierBooking, booking_id)
        assert booking is not None
        return booking.tracking_number or "", booking.reference


def apply_update(
    uow: UnitOfWork, booking_id: int, update: TrackingUpdate, *, confirmed: bool, seen: CarrierState | None
) -> bool:
    """Record ``update`` on the order's trail and apply it to the booking when the rules allow.
    Returns True when the booking's state changed."""
    with uow:
        session = uow.session
        tenant_id, order_id = session.execute(
            select(CarrierBooking.tenant_id, CarrierBooking.order_id).where(CarrierBooking.id == booking_id)
        ).one()
        order = lock_order(session, tenant_id, order_id)
        booking = session.scalar(
            select(CarrierBooking).where(CarrierBooking.id == booking_id).execution_options(populate_existing=True)
        )
        account = session.get(CarrierAccount, booking.account_id) if booking else None
        assert order is not None
        assert booking is not None
        assert account is not None
        current = CarrierState(booking.carrier_status) if booking.carrier_status else None
        changed, outcome = False, "applied"
        if update.state is None:
            outcome = "recorded (not a state)"
        elif not confirmed:
            outcome = f"not applied: the carrier's detail says {seen.value if seen else 'nothing'}"
        elif booking.status_at is not None and update.event_time < booking.status_at:
            outcome = "not applied: older than the last applied event"
        elif current in TERMINAL_STATES and update.state is not current:
            outcome = f"not applied: already {current.value if current else ''}"
        elif current is update.state and booking.status_at == update.event_time:
            outcome = "duplicate"
        else:
            changed = current is not update.state
            booking.carrier_status, booking.raw_status = update.state.value, update.raw_status[:120]
            booking.status_at = update.event_time
            if update.state is CarrierState.DELIVERED and booking.cod_amount > 0:
                booking.cod_collected = update.cod_collected if update.cod_collected is not None else booking.cod_amount
                if booking.cod_state != COD_RECONCILED:
                    booking.cod_state = COD_OWED
            if changed and update.state is CarrierState.RETURNED:
                outbox.append(
                    session,
                    tenant_id=booking.tenant_id,
                    aggregate_type="shipment",
                    aggregate_id=str(booking.shipment_id),
                    event_type=RETURNED_EVENT,
                    payload={
                        "shipment_id": booking.shipment_id,
                        "order_id": booking.order_id,
                        "carrier": account.kind,
                        "carrier_account": account.code,
                        "tracking_number": booking.tracking_number,
                        "reference": booking.reference,
                        "returned_at": update.event_time.isoformat(),
                        "reason": update.note,
                    },
                )
        if update.cod_reconciled and booking.cod_amount > 0 and booking.cod_state != COD_RECONCILED:
            booking.cod_state, booking.cod_reconciled_at = COD_RECONCILED, utcnow()
            if booking.cod_collected is None:
                booking.cod_collected = update.cod_collected or booking.cod_amount
        if update.fee is not None and booking.fee is None:
            booking.fee = update.fee
        booking.updated_at = utcnow()
        if outcome != "duplicate":
            order_history.record(
                session,
                order,
                "shipment_tracking",
                f"carrier:{account.code}",
                reason=update.note,
                data={
                    "shipment_id": booking.shipment_id,
                    "carrier": account.kind,
                    "tracking_number": booking.tracking_number,
                    "raw_status": update.raw_status,
                    "carrier_status": update.state.value if update.state else None,
                    "event_time": update.event_time.isoformat(),
                    "outcome": outcome,
                },
            )
        uow.commit()
        return changed


def sync_shipment(uow_factory: Callable[[], UnitOfWork], booking_id: int) -> None:
    """Let the booking's carrier state drive the shipment (idempotent; safe to repeat after a crash):
    collected -> shipped (stock leaves through the ledger, channels are told); delivered -> delivered."""
    with uow_factory() as uow:
        row = uow.session.execute(
            select(CarrierBooking, Shipment.status, CarrierAccount.kind, CarrierAccount.code)
            .join(Shipment, Shipment.id == CarrierBooking.shipment_id)
            .join(CarrierAccount, CarrierAccount.id == CarrierBooking.account_id)
            .where(CarrierBooking.id == booking_id)
        ).one()
        booking, shipment_status, kind, code = row
        state = CarrierState(booking.carrier_status) if booking.carrier_status else None
        tenant_id, shipment_id, tracking = booking.tenant_id, booking.shipment_id, booking.tracking_number
    caller = Caller(tenant_id=tenant_id, role="system", actor=f"carrier:{code}")
    status = ShipmentStatus(shipment_status)
    if state in HANDED_OVER_STATES and status in SHIPMENT_NOT_YET_SHIPPED and tracking:
        fulfilment.record_shipment_event(
            uow_factory(),
            caller,
            shipment_id,
            fulfilment.ShipmentUpdate(ShipmentStatus.SHIPPED, carrier=kind, tracking_number=tracking, note="collected"),
        )
        status = ShipmentStatus.SHIPPED
    if state is CarrierState.DELIVERED and status is ShipmentStatus.SHIPPED:
        fulfilment.record_shipment_event(
            uow_factory(), caller, shipment_id, fulfilment.ShipmentUpdate(ShipmentStatus.DELIVERED, note="delivered")
        )


def cod_report(uow: UnitOfWork, caller: Caller, status: str | None) -> dict[str, Any]:
    """Cash on delivery per shipment: ``pending`` (not yet delivered), ``owed`` (collected by the
    carrier, not yet paid over), ``reconciled``; with the total still owed per carrier account."""
    wanted = {None: None, "all": None, COD_PENDING: COD_NONE, COD_OWED: COD_OWED, COD_RECONCILED: COD_RECONCILED}
    if status not in wanted:
        raise InvalidInput("status must be pending, owed, reconciled or all", field="status")
    with uow:
        query = (
            select(CarrierBooking, CarrierAccount.code)
            .join(CarrierAccount, CarrierAccount.id == CarrierBooking.account_id)
            .where(CarrierBooking.tenant_id == caller.tenant_id, CarrierBooking.cod_amount > 0)
            .order_by(CarrierBooking.id)
        )
        if wanted[status] is not None:
            query = query.where(CarrierBooking.cod_state == wanted[status])
        items: list[dict[str, Any]] = []
        owed: dict[str, Decimal] = {}
        for booking, code in uow.session.execute(query).all():
            state = COD_PENDING if booking.cod_state == COD_NONE else booking.cod_state
            items.append(
                {
                    "shipment_id": booking.shipment_id,
                    "order_id": booking.order_id,
                    "carrier_account": code,
                    "tracking_number": booking.tracking_number,
                    "currency": booking.currency,
                    "cod_amount": str(booking.cod_amount),
                    "cod_collected": None if booking.cod_collected is None else str(booking.cod_collected),
                    "status": state,
                    "reconciled_at": booking.cod_reconciled_at,
                }
            )
            if state == COD_OWED:
                owed[code] = owed.get(code, 0) + (booking.cod_collected or booking.cod_amount)
        return {"items": items, "owed_by_carrier": {code: str(amount) for code, amount in sorted(owed.items())}}
