"""Booking released shipments with carriers, fetching their labels, and withdrawing them.

Runs from outbox handlers, outside any transaction: carrier calls happen between short units of work.
Idempotency: a shipment has at most one booking row (unique ``shipment_id``), and its ``reference``
(our code for the shipment) is sent as the carrier's client order code / requested tracking number,
so a retry after a lost answer finds the first booking instead of creating a second parcel.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.carriers.base import (
    HANDED_OVER_STATES,
    Booking,
    CarrierState,
    Inspection,
    NotSupported,
    Parcel,
    ParcelItem,
)
from ordermesh.adapters.outbound import PermanentDeliveryError
from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Location, Order, OrderLine, RoutingDecisionRecord, Shipment, Sku
from ordermesh.adapters.store.tables_carriers import CarrierAccount, CarrierBooking
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import Conflict, IllegalTransition, NotFound
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.services import carrier_accounts, order_history
from ordermesh.services.carrier_accounts import Box
from ordermesh.services.unit_of_work import Caller, UnitOfWork

log = logging.getLogger("ordermesh.carriers")

BOOKING, BOOKED, FAILED, CANCELLED, RETURN_REQUESTED = "booking", "booked", "failed", "cancelled", "return_requested"
ACTOR = "carrier"
# Order tags that choose the buyer's inspection option and cash on delivery.
INSPECTION_TAGS = {"inspect-try": Inspection.TRY, "inspect-view": Inspection.VIEW, "inspect-none": Inspection.NONE}
COD_TAG = "cod"


def reference_for(shipment: Shipment) -> str:
    """Our shipment's code at the carrier: stable for the shipment, unique across tenants."""
    return f"OM{shipment.tenant_id}-{shipment.id}"


@dataclass(frozen=True, slots=True)
class _Plan:
    booking_id: int
    account_id: int
    parcel: Parcel


def book_shipment(uow_factory: Any, box: Box, tenant_id: int, shipment_id: int) -> str | None:
    """Book ``shipment_id`` with its carrier (once), then fetch and keep its label.

    Returns the tracking number, or None when the tenant has no carrier account for it (nothing to do).
    Raises TransientDeliveryError for the outbox to retry and PermanentDeliveryError to dead-letter."""
    plan = _reserve(uow_factory(), tenant_id, shipment_id)
    if plan is None:
        return None
    tracking: str | None = plan if isinstance(plan, str) else None
    if not isinstance(plan, str):
        with uow_factory() as uow:
            account = uow.session.get(CarrierAccount, plan.account_id)
            assert account is not None
            adapter = carrier_accounts.adapter(account, box)
        try:
            booking = adapter.book(plan.parcel)
        except PermanentDeliveryError as error:
            _fail(uow_factory(), plan.booking_id, str(error))
            raise
        tracking = _store_booking(uow_factory(), plan.booking_id, booking)
        if tracking is None:
            return None
    fetch_label(uow_factory, box, tenant_id, shipment_id)
    withdraw_cancelled(uow_factory, box, tenant_id, _order_of(uow_factory(), shipment_id))
    return tracking


def _order_of(uow: UnitOfWork, shipment_id: int) -> int:
    with uow:
        order_id = uow.session.scalar(select(Shipment.order_id).where(Shipment.id == shipment_id))
        if order_id is None:
            raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
        return int(order_id)


def _reserve(uow: UnitOfWork, tenant_id: int, shipment_id: int) -> _Plan | str | None:
    """The booking row for the shipment (created on the first call) and the parcel to book; the
    tracking number when it is already booked; None when there is nothing to book."""
    with uow:
        session = uow.session
        shipment = session.scalar(select(Shipment).where(Shipment.tenant_id == tenant_id, Shipment.id == shipment_id))
        if shipment is None or shipment.status == ShipmentStatus.CANCELLED.value:
            return None
        booking = session.scalar(select(CarrierBooking).where(CarrierBooking.shipment_id == shipment_id))
        if booking is not None and booking.status != BOOKING:
            return booking.tracking_number if booking.status == BOOKED else None
        order = session.get(Order, shipment.order_id)
        location = session.get(Location, shipment.location_id)
        assert order is not None
        assert location is not None
        if booking is None:
            account, service = _choose_account(session, order, shipment)
            if account is None:
                return None
        else:
            account = session.get(CarrierAccount, booking.account_id)
            assert account is not None
            service = booking.service
        sender = carrier_accounts.pickup_address(account, location.code)
        if sender is None:
            if booking is None:
                booking = _new_booking(session, order, shipment, account, service, Decimal(0), Decimal(0))
            booking.status, booking.last_error = FAILED, f"no pickup address for location {location.code}"
            uow.commit()
            raise PermanentDeliveryError(f"carrier account {account.code} has no pickup address for {location.code}")
        items, weight, value = _contents(session, shipment)
        tags = set(order.tags or ())
        cod = value if COD_TAG in tags else Decimal(0)
        if booking is None:
            booking = _new_booking(session, order, shipment, account, service, cod, value)
        inspection = next((INSPECTION_TAGS[t] for t in sorted(tags) if t in INSPECTION_TAGS), Inspection.VIEW)
        booking.inspection = inspection.value
        session.flush()
        parcel = Parcel(
            reference=booking.reference,
            sender=sender,
            recipient=carrier_accounts.carrier_address(_recipient(order.shipping_address or {})),
            weight_grams=weight,
            items=items,
            service=service,
            cod_amount=booking.cod_amount,
            declared_value=booking.declared_value,
            inspection=inspection,
            order_reference=order.external_id,
        )
        plan = _Plan(booking.id, account.id, parcel)
        uow.commit()
        return plan


def _new_booking(
    session: Session,
    order: Order,
    shipment: Shipment,
    account: CarrierAccount,
    service: str | None,
    cod: Decimal,
    value: Decimal,
) -> CarrierBooking:
    now = utcnow()
    booking = CarrierBooking(
        tenant_id=order.tenant_id,
        shipment_id=shipment.id,
        order_id=order.id,
        account_id=account.id,
        reference=reference_for(shipment),
        service=service,
        status=BOOKING,
        currency=order.currency,
        cod_amount=cod,
        declared_value=value,
        inspection=Inspection.VIEW.value,
        cod_state="none",
        created_at=now,
        updated_at=now,
    )
    session.add(booking)
    return booking


def _choose_account(session: Session, order: Order, shipment: Shipment) -> tuple[CarrierAccount | None, str | None]:
    """The carrier routing chose for this shipment's node when the tenant has an account of that kind;
    otherwise the tenant's first active account. The service is the account's first service level."""
    accounts = session.scalars(
        select(CarrierAccount)
        .where(CarrierAccount.tenant_id == order.tenant_id, CarrierAccount.active.is_(True))
        .order_by(CarrierAccount.id)
    ).all()
    if not accounts:
        return None, None
    chosen = None
    decision = session.scalar(
        select(RoutingDecisionRecord)
        .where(RoutingDecisionRecord.order_id == order.id)
        .order_by(RoutingDecisionRecord.id.desc())
        .limit(1)
    )
    if decision is not None:
        plan = (decision.trace or {}).get("plan", {})
        carrier = next(
            (s.get("carrier") for s in plan.get("shipments", ()) if s.get("node_id") == shipment.location_id), None
        )
        chosen = next((a for a in accounts if a.kind == carrier), None)
    account = chosen or accounts[0]
    return account, (account.service_levels[0] if account.service_levels else None)


def _contents(session: Session, shipment: Shipment) -> tuple[tuple[ParcelItem, ...], int, Decimal]:
    rows = session.execute(
        select(
            Sku.code, Sku.name, Sku.weight_grams, OrderLine.unit_price, Allocation.quantity, Allocation.shipped_quantity
        )
        .join(OrderLine, OrderLine.id == Allocation.order_line_id)
        .join(Sku, Sku.id == OrderLine.sku_id)
        .where(Allocation.shipment_id == shipment.id)
        .order_by(OrderLine.line_number)
    ).all()
    items = []
    weight, value = 0, Decimal(0)
    for code, name, unit_weight, price, quantity, shipped in rows:
        units = quantity + shipped
        if units <= 0:
            continue
        items.append(ParcelItem(name=name, code=code, quantity=units, price=price, weight_grams=unit_weight))
        weight += unit_weight * units
        value += price * units
    return tuple(items), max(weight, 1), value


def _recipient(address: Mapping[str, Any]) -> dict[str, Any]:
    lines = address.get("address_lines") or []
    return {
        "name": address.get("name"),
        "phone": address.get("phone") or "",
        "line1": ", ".join(str(line) for line in lines),
        "ward": address.get("ward"),
        "district": address.get("district"),
        "province": address.get("province"),
        "country": address.get("country") or "VN",
        "postal_code": address.get("postal_code"),
        "district_id": address.get("ghn_district_id"),
        "ward_code": address.get("ghn_ward_code"),
    }


def _fail(uow: UnitOfWork, booking_id: int, error: str) -> None:
    with uow:
        booking = uow.session.get(CarrierBooking, booking_id)
        if booking is not None and booking.status == BOOKING:
            booking.status, booking.last_error, booking.updated_at = FAILED, error[:2000], utcnow()
            uow.commit()


def _store_booking(uow: UnitOfWork, booking_id: int, result: Booking) -> str | None:
    with uow:
        session = uow.session
        booking = session.get(CarrierBooking, booking_id)
        assert booking is not None
        order = lock_order(session, booking.tenant_id, booking.order_id)
        booking = session.scalar(
            select(CarrierBooking).where(CarrierBooking.id == booking_id).execution_options(populate_existing=True)
        )
        assert order is not None
        assert booking is not None
        if booking.status != BOOKING:
            return booking.tracking_number
        account = session.get(CarrierAccount, booking.account_id)
        shipment = session.get(Shipment, booking.shipment_id)
        assert account is not None
        assert shipment is not None
        now = utcnow()
        booking.status, booking.tracking_number = BOOKED, result.tracking_number
        booking.fee, booking.expected_delivery_at = result.fee, result.expected_delivery_at
        if booking.carrier_status is None:  # a webhook may have told us more before the answer came
            booking.carrier_status = CarrierState.LABEL_CREATED.value
        booking.last_error = None
        booking.updated_at = now
        shipment.carrier, shipment.tracking_number, shipment.updated_at = account.kind, result.tracking_number, now
        order_history.record(
            session,
            order,
            "shipment_booked",
            ACTOR,
            reason=f"booked with {account.code}",
            data={
                "shipment_id": shipment.id,
                "carrier": account.kind,
                "carrier_account": account.code,
                "tracking_number": result.tracking_number,
                "fee": None if result.fee is None else str(result.fee),
                "expected_delivery_at": result.expected_delivery_at.isoformat()
                if result.expected_delivery_at
                else None,
                "cod_amount": str(booking.cod_amount),
            },
        )
        uow.commit()
        return result.tracking_number


def fetch_label(uow_factory: Any, box: Box, tenant_id: int, shipment_id: int) -> bool:
    """Fetch and keep the label of a booked shipment that has none yet; True when one is stored."""
    with uow_factory() as uow:
        booking = uow.session.scalar(
            select(CarrierBooking).where(
                CarrierBooking.tenant_id == tenant_id, CarrierBooking.shipment_id == shipment_id
            )
        )
        if booking is None or booking.status != BOOKED or booking.label is not None or not booking.tracking_number:
            return False
        account = uow.session.get(CarrierAccount, booking.account_id)
        assert account is not None
        adapter, tracking, booking_id = carrier_accounts.adapter(account, box), booking.tracking_number, booking.id
    document, content_type = adapter.label(tracking)
    with uow_factory() as uow:
        booking = uow.session.get(CarrierBooking, booking_id)
        assert booking is not None
        booking.label, booking.label_content_type, booking.updated_at = document, content_type, utcnow()
        uow.commit()
    return True


def withdraw_cancelled(uow_factory: Any, box: Box, tenant_id: int, order_id: int) -> list[int]:
    """Cancel at the carrier every booking of the order whose shipment was cancelled; a parcel the
    carrier already holds gets a return-to-sender request where the carrier offers one. Returns the
    shipment ids withdrawn."""
    with uow_factory() as uow:
        rows = uow.session.execute(
            select(CarrierBooking.id, CarrierBooking.account_id, CarrierBooking.tracking_number)
            .join(Shipment, Shipment.id == CarrierBooking.shipment_id)
            .where(
                CarrierBooking.tenant_id == tenant_id,
                CarrierBooking.order_id == order_id,
                CarrierBooking.status == BOOKED,
                Shipment.status == ShipmentStatus.CANCELLED.value,
            )
        ).all()
        work = []
        for booking_id, account_id, tracking in rows:
            account = uow.session.get(CarrierAccount, account_id)
            booking = uow.session.get(CarrierBooking, booking_id)
            assert account is not None
            assert booking is not None
            work.append(
                (
                    booking_id,
                    carrier_accounts.adapter(account, box),
                    tracking,
                    booking.reference,
                    booking.carrier_status in {s.value for s in HANDED_OVER_STATES},
                )
            )
    withdrawn = []
    for booking_id, adapter, tracking, reference, handed_over in work:
        outcome, note = CANCELLED, "booking cancelled at the carrier"
        if handed_over:
            try:
                adapter.return_to_sender(tracking, reference)
                outcome, note = RETURN_REQUESTED, "parcel already collected: return to sender requested"
            except NotSupported as unsupported:
                outcome, note = BOOKED, f"parcel already collected and {unsupported}"
        else:
            try:
                adapter.cancel(tracking, reference)
            except PermanentDeliveryError:
                # Refused: perhaps collected before we heard of it. Then it becomes a return request.
                detail = adapter.detail(tracking, reference) if adapter.has_detail_api else None
                if detail is None or detail.state not in HANDED_OVER_STATES:
                    raise
                try:
                    adapter.return_to_sender(tracking, reference)
                    outcome, note = RETURN_REQUESTED, "collected before the cancellation: return to sender requested"
                except NotSupported as unsupported:
                    outcome, note = BOOKED, f"collected before the cancellation and {unsupported}"
        withdrawn.append(_record_withdrawal(uow_factory(), booking_id, outcome, note))
    return [shipment_id for shipment_id in withdrawn if shipment_id]


def _record_withdrawal(uow: UnitOfWork, booking_id: int, outcome: str, note: str) -> int:
    with uow:
        session = uow.session
        booking = session.get(CarrierBooking, booking_id)
        assert booking is not None
        order = lock_order(session, booking.tenant_id, booking.order_id)
        assert order is not None
        booking.status, booking.updated_at = outcome, utcnow()
        if outcome == CANCELLED:
            booking.carrier_status = CarrierState.CANCELLED.value
        else:
            booking.last_error = note if outcome == BOOKED else None
        order_history.record(
            session,
            order,
            "shipment_booking_withdrawn" if outcome != BOOKED else "shipment_booking_not_withdrawn",
            ACTOR,
            reason=note,
            data={"shipment_id": booking.shipment_id, "tracking_number": booking.tracking_number, "outcome": outcome},
        )
        uow.commit()
        return booking.shipment_id if outcome != BOOKED else 0


def request_return(uow_factory: Any, box: Box, caller: Caller, shipment_id: int) -> dict[str, Any]:
    """An operator asks the carrier to bring a collected parcel back (where the carrier offers it)."""
    with uow_factory() as uow:
        row = uow.session.execute(
            select(CarrierBooking, CarrierAccount)
            .join(CarrierAccount, CarrierAccount.id == CarrierBooking.account_id)
            .where(CarrierBooking.tenant_id == caller.tenant_id, CarrierBooking.shipment_id == shipment_id)
        ).first()
        if row is None:
            raise NotFound(f"shipment {shipment_id} has no carrier booking", code="booking_not_found")
        booking, account = row
        if booking.status != BOOKED or booking.carrier_status not in {s.value for s in HANDED_OVER_STATES}:
            raise IllegalTransition(
                booking.carrier_status or booking.status, "return_requested", subject="shipment", subject_id=shipment_id
            )
        if booking.carrier_status in {CarrierState.DELIVERED.value, CarrierState.RETURNED.value}:
            raise IllegalTransition(
                booking.carrier_status, "return_requested", subject="shipment", subject_id=shipment_id
            )
        adapter, tracking, reference, booking_id = (
            carrier_accounts.adapter(account, box),
            booking.tracking_number or "",
            booking.reference,
            booking.id,
        )
    try:
        adapter.return_to_sender(tracking, reference)
    except NotSupported as unsupported:
        raise Conflict(str(unsupported), code="return_not_supported") from None
    _record_withdrawal(uow_factory(), booking_id, RETURN_REQUESTED, f"return to sender requested by {caller.actor}")
    return get_booking(uow_factory(), caller, shipment_id)


def label_of(uow: UnitOfWork, caller: Caller, shipment_id: int) -> tuple[bytes, str]:
    with uow:
        booking = uow.session.scalar(
            select(CarrierBooking).where(
                CarrierBooking.tenant_id == caller.tenant_id, CarrierBooking.shipment_id == shipment_id
            )
        )
        exists = uow.session.scalar(
            select(Shipment.id).where(Shipment.tenant_id == caller.tenant_id, Shipment.id == shipment_id)
        )
        if exists is None:
            raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
        if booking is None or booking.label is None:
            raise NotFound(f"shipment {shipment_id} has no carrier label yet", code="label_not_found")
        return booking.label, booking.label_content_type or "application/octet-stream"


def booking_view(booking: CarrierBooking, account_code: str) -> dict[str, Any]:
    return {
        "shipment_id": booking.shipment_id,
        "order_id": booking.order_id,
        "carrier_account": account_code,
        "reference": booking.reference,
        "service": booking.service,
        "status": booking.status,
        "tracking_number": booking.tracking_number,
        "carrier_status": booking.carrier_status,
        "raw_status": booking.raw_status,
        "status_at": booking.status_at,
        "fee": None if booking.fee is None else str(booking.fee),
        "currency": booking.currency,
        "expected_delivery_at": booking.expected_delivery_at,
        "cod_amount": str(booking.cod_amount),
        "declared_value": str(booking.declared_value),
        "inspection": booking.inspection,
        "cod_collected": None if booking.cod_collected is None else str(booking.cod_collected),
        "cod_state": booking.cod_state,
        "has_label": booking.label is not None,
        "last_error": booking.last_error,
    }


def get_booking(uow: UnitOfWork, caller: Caller, shipment_id: int) -> dict[str, Any]:
    with uow:
        row = uow.session.execute(
            select(CarrierBooking, CarrierAccount.code)
            .join(CarrierAccount, CarrierAccount.id == CarrierBooking.account_id)
            .where(CarrierBooking.tenant_id == caller.tenant_id, CarrierBooking.shipment_id == shipment_id)
        ).first()
        if row is None:
            raise NotFound(f"shipment {shipment_id} has no carrier booking", code="booking_not_found")
        return booking_view(row[0], row[1])
