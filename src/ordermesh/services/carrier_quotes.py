"""Live carrier quotes for routing, fetched outside any allocation transaction and cached in the database.

A periodic job (``refresh``) looks at the orders waiting for the allocator and those placed in the last
``RECENT`` minutes, and for each (carrier account,
pickup location, destination, weight step) with no fresh quote asks the carrier (GHN fee + lead time, GHTK
fee) with a short timeout. The allocator reads what is cached (``cached_for``: one query per tenant batch)
and passes it to the routing engine as data; a carrier that is slow or down simply has no fresh quote and
routing prices it by its rate card. Quotes are kept ``QUOTE_TTL`` (routes repeat: a hot destination stays
warm); an account whose quote call failed is left alone for ``FAILURE_PAUSE``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from ordermesh.adapters.carriers.base import NotSupported, Parcel, ParcelItem
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError
from ordermesh.adapters.store.tables import Location, Order, OrderLine, Sku
from ordermesh.adapters.store.tables_carriers import CarrierAccount, CarrierQuoteRecord
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.routing import CarrierQuote
from ordermesh.services import carrier_accounts
from ordermesh.services.carrier_accounts import Box
from ordermesh.services.unit_of_work import UnitOfWork

log = logging.getLogger("ordermesh.carriers")

QUOTABLE = frozenset({"ghn", "ghtk"})  # Ninja Van publishes no quote endpoint we could confirm
QUOTE_TTL = timedelta(minutes=30)
FAILURE_PAUSE = timedelta(minutes=2)
QUOTE_TIMEOUT_SECONDS = 3.0
REFRESH_SECONDS = 30.0
RECENT = timedelta(minutes=10)
CURRENCY = {"ghn": "VND", "ghtk": "VND"}


class QuoteHttp:
    """Quotes get their own short-timeout client: a slow carrier must not hold the worker up."""

    client = httpx.Client(timeout=QUOTE_TIMEOUT_SECONDS)


_paused: dict[str, datetime] = {}  # account webhook id (unique everywhere) -> until when it is not asked
_paused_lock = threading.Lock()


def destination_key(address: Mapping[str, Any]) -> str:
    parts = (
        address.get("country"),
        address.get("province"),
        address.get("district"),
        address.get("ward"),
        address.get("ghn_district_id"),
        address.get("ghn_ward_code"),
    )
    return "|".join(" ".join(str(part or "").lower().split()) for part in parts)[:300]


def weight_step(grams: int) -> int:
    return max(1, math.ceil(grams / 500))


def _order_weights(session: Session, order_ids: Iterable[int]) -> dict[int, int]:
    weights: dict[int, int] = defaultdict(int)
    ids = list(order_ids)
    if not ids:
        return weights
    for order_id, quantity, cancelled, grams in session.execute(
        select(OrderLine.order_id, OrderLine.quantity, OrderLine.cancelled_quantity, Sku.weight_grams)
        .join(Sku, Sku.id == OrderLine.sku_id)
        .where(OrderLine.order_id.in_(ids))
    ):
        weights[order_id] += (quantity - cancelled) * grams
    return weights


@dataclass(frozen=True, slots=True)
class _Job:
    tenant_id: int
    account_id: int
    location_id: int
    key: str
    step: int
    parcel: Parcel


def refresh(uow_factory: Callable[[], UnitOfWork], box: Box, *, limit: int = 100) -> int:
    """Fetch quotes missing for the orders waiting to be allocated; returns how many were stored."""
    now = utcnow()
    jobs: dict[tuple[int, int, str, int], _Job] = {}
    adapters: dict[int, Any] = {}
    with uow_factory() as uow:
        session = uow.session
        # Orders waiting for the allocator, and the latest ones (their routes are the ones that repeat).
        recent = or_(Order.needs_allocation.is_(True), Order.created_at >= now - RECENT)
        orders = session.scalars(select(Order).where(recent).order_by(Order.id.desc()).limit(limit)).all()
        weights = _order_weights(session, [o.id for o in orders])
        by_tenant: dict[int, list[Order]] = defaultdict(list)
        for order in orders:
            by_tenant[order.tenant_id].append(order)
        for tenant_id, tenant_orders in by_tenant.items():
            accounts = [
                a
                for a in session.scalars(
                    select(CarrierAccount).where(CarrierAccount.tenant_id == tenant_id, CarrierAccount.active.is_(True))
                )
                if a.kind in QUOTABLE and not _is_paused(a.webhook_id, now)
            ]
            if not accounts:
                continue
            locations = session.scalars(
                select(Location).where(Location.tenant_id == tenant_id, Location.active.is_(True))
            ).all()
            fresh = set(
                session.execute(
                    select(
                        CarrierQuoteRecord.account_id,
                        CarrierQuoteRecord.location_id,
                        CarrierQuoteRecord.destination_key,
                        CarrierQuoteRecord.weight_step,
                    ).where(CarrierQuoteRecord.tenant_id == tenant_id, CarrierQuoteRecord.expires_at > now)
                ).all()
            )
            for order in tenant_orders:
                address = order.shipping_address or {}
                key, step = destination_key(address), weight_step(weights.get(order.id, 0))
                recipient = carrier_accounts.carrier_address(_recipient(address))
                for account in accounts:
                    for location in locations:
                        sender = carrier_accounts.pickup_address(account, location.code)
                        wanted = (account.id, location.id, key, step)
                        if sender is None or wanted in fresh or wanted in jobs:
                            continue
                        parcel = Parcel(
                            reference="quote",
                            sender=sender,
                            recipient=recipient,
                            weight_grams=step * 500,
                            items=(ParcelItem("parcel", "parcel", 1, Decimal(0), step * 500),),
                            service=account.service_levels[0] if account.service_levels else None,
                        )
                        jobs[wanted] = _Job(tenant_id, account.id, location.id, key, step, parcel)
                        if account.id not in adapters:
                            adapter = carrier_accounts.adapter(account, box, QuoteHttp.client)
                            adapters[account.id] = (account.kind, account.webhook_id, adapter)
    fetched: list[tuple[_Job, str, list[Any]]] = []
    for job in jobs.values():
        kind, pause_key, adapter = adapters[job.account_id]
        if _is_paused(pause_key, now):
            continue
        try:
            quotes = adapter.quote(job.parcel)
        except NotSupported as unsupported:  # this route or parcel cannot be quoted: its card prices it
            log.debug("no quote for carrier account %s: %s", job.account_id, unsupported)
            continue
        except (TransientDeliveryError, PermanentDeliveryError) as error:
            log.info("no quote from carrier account %s: %s; rate cards stand in", job.account_id, error)
            with _paused_lock:
                _paused[pause_key] = now + FAILURE_PAUSE
            continue
        fetched.append((job, kind, quotes))
    if not fetched:
        return 0
    stored = 0
    with uow_factory() as uow:
        for job, kind, quotes in fetched:
            uow.session.execute(
                delete(CarrierQuoteRecord).where(
                    CarrierQuoteRecord.account_id == job.account_id,
                    CarrierQuoteRecord.location_id == job.location_id,
                    CarrierQuoteRecord.destination_key == job.key,
                    CarrierQuoteRecord.weight_step == job.step,
                )
            )
            for quote in quotes:
                lead = None
                if quote.expected_delivery_at is not None:
                    lead = max(0, math.ceil((quote.expected_delivery_at - now).total_seconds() / 86400))
                uow.session.add(
                    CarrierQuoteRecord(
                        tenant_id=job.tenant_id,
                        account_id=job.account_id,
                        location_id=job.location_id,
                        destination_key=job.key,
                        weight_step=job.step,
                        carrier=kind,
                        service=quote.service[:40],
                        fee=quote.fee,
                        currency=CURRENCY.get(kind, "VND"),
                        lead_days=lead,
                        fetched_at=now,
                        expires_at=now + QUOTE_TTL,
                    )
                )
                stored += 1
        uow.commit()
    return stored


def _is_paused(key: str, now: datetime) -> bool:
    with _paused_lock:
        until = _paused.get(key)
        return until is not None and until > now


def _recipient(address: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": address.get("name") or "",
        "phone": address.get("phone") or "",
        "line1": ", ".join(str(line) for line in address.get("address_lines") or []),
        "ward": address.get("ward"),
        "district": address.get("district"),
        "province": address.get("province"),
        "country": address.get("country") or "VN",
        "district_id": address.get("ghn_district_id"),
        "ward_code": address.get("ghn_ward_code"),
    }


def cached_for(
    session: Session, tenant_id: int, orders: Iterable[Order], now: datetime
) -> dict[int, dict[int, tuple[CarrierQuote, ...]]]:
    """Fresh cached quotes for each order, by location id (the routing engine's node id)."""
    orders = list(orders)
    if not orders:
        return {}
    weights = _order_weights(session, [o.id for o in orders])
    wanted = {o.id: (destination_key(o.shipping_address or {}), weight_step(weights.get(o.id, 0))) for o in orders}
    rows = session.execute(
        select(CarrierQuoteRecord)
        .join(CarrierAccount, CarrierAccount.id == CarrierQuoteRecord.account_id)
        .where(
            CarrierQuoteRecord.tenant_id == tenant_id,
            CarrierQuoteRecord.destination_key.in_({key for key, _ in wanted.values()}),
            CarrierQuoteRecord.expires_at > now,
            CarrierAccount.active.is_(True),
        )
        .order_by(CarrierQuoteRecord.id)
    ).scalars()
    by_route: dict[tuple[str, int], dict[int, list[CarrierQuote]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_route[(row.destination_key, row.weight_step)][row.location_id].append(
            CarrierQuote(row.carrier, row.service, row.fee, row.currency, row.lead_days)
        )
    result = {}
    for order_id, route in wanted.items():
        found = by_route.get(route)
        if found:
            result[order_id] = {location: tuple(quotes) for location, quotes in found.items()}
    return result
