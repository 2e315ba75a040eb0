"""Carrier webhooks in, and the wiring of the carrier work into the application.

A webhook is verified (Ninja Van's HMAC header; for GHN and GHTK, which sign nothing, the account's
secret in the URL), stored raw in the inbox, answered 2xx, and processed inline when it can be; the
worker retries whatever failed. ``wire`` subscribes booking and withdrawal to the outbox, the
tracking processors to the inbox, and a periodic job that fetches labels a booking could not.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from ordermesh.adapters.store.tables_carriers import CarrierAccount, CarrierBooking
from ordermesh.services import carrier_accounts, carrier_booking, carrier_quotes, carrier_tracking, inbox

if TYPE_CHECKING:
    from ordermesh.bootstrap import Application
    from ordermesh.services.outbox import Envelope

log = logging.getLogger("ordermesh.carriers")

KINDS = ("ghn", "ghtk", "ninjavan")
LABEL_RETRY_SECONDS = 60.0
# Request headers not worth keeping with a stored delivery.
DROPPED_HEADERS = frozenset({"authorization", "cookie", "host", "content-length", "connection", "accept-encoding"})


class UnknownAccount(Exception):
    pass


class Forged(Exception):
    pass


class Unreadable(Exception):
    pass


def receive(
    app: Application, kind: str, webhook_id: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    with app.read_uow() as uow:
        account = uow.session.scalar(
            select(CarrierAccount).where(CarrierAccount.kind == kind, CarrierAccount.webhook_id == webhook_id)
        )
        if account is None:
            raise UnknownAccount(f"no {kind} carrier account {webhook_id!r}")
        adapter = carrier_accounts.adapter(account, app.secrets)
        secret, tenant_id = account.webhook_secret, account.tenant_id
    if not adapter.verify_webhook(query=query, headers=headers, body=body, secret=secret):
        raise Forged(f"{kind} webhook refused: its proof of origin does not match this account")
    try:
        updates = adapter.parse_webhook(headers=headers, body=body)
    except (ValueError, TypeError, KeyError) as error:
        raise Unreadable(f"unreadable {kind} webhook: {error}") from None
    kept = {name: value for name, value in headers.items() if name.lower() not in DROPPED_HEADERS}
    delivery_id, duplicate = inbox.store(
        app.uow(),
        tenant_id=tenant_id,
        source=kind,
        account=webhook_id,
        dedupe_key="|".join(update.dedupe_key for update in updates) or None,
        headers=kept,
        body=body,
    )
    if not duplicate:
        # The fast path; a failure is recorded on the delivery and the worker retries it with backoff.
        inbox.process_one(app, delivery_id)
    return {"received": True, "duplicate": duplicate}


async def receive_async(
    app: Application, kind: str, webhook_id: str, query: Mapping[str, str], headers: Mapping[str, str], body: bytes
) -> dict[str, Any]:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(receive, app, kind, webhook_id, query, headers, body)


class _LazyBox:
    """The application's secret box, opened only when a carrier account is actually used (a deployment
    without carriers, or without ``ORDERMESH_SECRET_KEY``, never touches it)."""

    def __init__(self, app: Application) -> None:
        self.app = app

    def seal(self, values: Mapping[str, str]) -> str:
        return self.app.secrets.seal(values)

    def open(self, token: str) -> dict[str, str]:
        return self.app.secrets.open(token)


def wire(app: Application) -> None:
    box = _LazyBox(app)

    def book(envelope: Envelope) -> None:
        carrier_booking.book_shipment(app.uow, box, envelope.tenant_id, int(envelope.payload["shipment_id"]))

    def withdraw(envelope: Envelope) -> None:
        carrier_booking.withdraw_cancelled(app.uow, box, envelope.tenant_id, int(envelope.payload["order_id"]))

    def process(kind: str) -> Any:
        def processor(delivery: Any) -> None:
            carrier_tracking.process_delivery(
                app.uow, box, kind, delivery.account, dict(delivery.headers), bytes(delivery.body)
            )

        return processor

    def fetch_missing_labels() -> int:
        with app.read_uow() as uow:
            missing = uow.session.execute(
                select(CarrierBooking.tenant_id, CarrierBooking.shipment_id)
                .where(CarrierBooking.status == carrier_booking.BOOKED, CarrierBooking.label.is_(None))
                .limit(50)
            ).all()
        fetched = 0
        for tenant_id, shipment_id in missing:
            try:
                fetched += carrier_booking.fetch_label(app.uow, box, tenant_id, shipment_id)
            except Exception:
                log.warning("label for shipment %s still unavailable", shipment_id, exc_info=True)
        return fetched

    app.subscribe("order.shipment_created", book)
    app.subscribe("order.lines_cancelled", withdraw)
    app.subscribe("order.short_picked", withdraw)
    for kind in KINDS:
        app.on_inbox(kind, process(kind))
    app.every("carriers.labels", LABEL_RETRY_SECONDS, fetch_missing_labels)
    app.every("carriers.quotes", carrier_quotes.REFRESH_SECONDS, lambda: carrier_quotes.refresh(app.uow, box))
