"""Channel work that runs outside any request: outbound calls (stock, fulfilment, cancellations,
answers to buyer cancel requests), the polling fallback, inbox processing, and the health view.

Every platform call runs from an outbox message (``channel.*``, one aggregate per listing or per
channel order), so it is retried with backoff on transient errors, dead-lettered on permanent ones,
and delivered in order per listing/order. Handlers run outside any database transaction and open
their own units of work.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from ordermesh.adapters.channels.base import ChannelStatus, Listing, RecoversLostPushes, ShipmentNotice, StockUpdate
from ordermesh.adapters.channels.registry import ADAPTERS
from ordermesh.adapters.store.tables import OutboxMessage
from ordermesh.adapters.store.tables_channels import ChannelConnection, ChannelListing, ChannelOrderRecord
from ordermesh.adapters.store.types import utcnow
from ordermesh.services import channel_intake, channel_stock, outbox
from ordermesh.services.channel_runtime import Connected, connect, note_error
from ordermesh.services.outbox import DEAD, PENDING, Envelope
from ordermesh.services.unit_of_work import Caller, UnitOfWork

if TYPE_CHECKING:
    from ordermesh.bootstrap import Application

CONFIRM_SHIPMENT = "channel.confirm_shipment"
CANCEL_ORDER = "channel.cancel_order"
POLL_SECONDS = 60.0
POLL_LAG = timedelta(seconds=5)  # leave the platform a moment to make recent updates listable
FIRST_LOOKBACK = timedelta(days=1)
OUTBOUND_AGGREGATES = ("channel_listing", "channel_order")


def wire(app: Application) -> None:
    app.subscribe("inventory.level_changed", lambda envelope: on_level_changed(app, envelope))
    app.prepare("inventory.level_changed", lambda envelopes: find_listed(app, envelopes))
    app.subscribe("order.shipment_shipped", lambda envelope: on_shipment_shipped(app, envelope))
    app.subscribe("order.status_changed", lambda envelope: on_status_changed(app, envelope))
    app.subscribe("channel.*", lambda envelope: deliver(app, envelope))
    for kind in ADAPTERS:
        app.on_inbox(kind, lambda delivery: on_delivery(app, delivery))
    app.every("channels.poll", POLL_SECONDS, lambda: poll_all(app))


# -- inbound ---------------------------------------------------------------------------------------


def on_delivery(app: Application, delivery: Any) -> None:
    """Inbox processor: the raw push was verified and stored by the webhook route."""
    ctx = connect(app, int(delivery.account), delivery.tenant_id)
    channel_intake.process_push(app, ctx, dict(delivery.headers), bytes(delivery.body))


def poll_all(app: Application) -> int:
    with app.read_uow() as uow:
        ids = list(uow.session.scalars(select(ChannelConnection.channel_id).order_by(ChannelConnection.channel_id)))
    seen = 0
    for channel_id in ids:
        try:
            seen += poll_connection(app, channel_id)
        except Exception as error:  # one failing shop must not stop the others
            note_error(app, channel_id, f"poll: {type(error).__name__}: {error}")
    return seen


def poll_connection(app: Application, channel_id: int, *, now: datetime | None = None) -> int:
    """Orders updated since the connection's cursor, then the platform's lost pushes; moves the cursor."""
    ctx = connect(app, channel_id)
    now = now or utcnow()
    with app.read_uow() as uow:
        connection = uow.session.get(ChannelConnection, channel_id)
        assert connection is not None
        since = connection.poll_cursor or (connection.created_at - FIRST_LOOKBACK)
    until = now - POLL_LAG
    seen = 0
    if since < until:
        ctx.throttle()
        for order in ctx.adapter.orders_updated(since, until):
            channel_intake.apply_order(app, ctx, order)
            seen += 1
    if isinstance(ctx.adapter, RecoversLostPushes):
        ctx.throttle()
        notices, last = ctx.adapter.lost_pushes()
        wanted = sorted(
            {i for notice in notices if notice.topic in ("order", "cancel_request") for i in notice.order_ids}
        )
        if wanted:
            for order in ctx.adapter.fetch_orders(wanted):
                channel_intake.apply_order(app, ctx, order)
                seen += 1
        if last is not None:
            ctx.adapter.confirm_lost_pushes(last)
    with app.uow() as uow:
        connection = uow.session.get(ChannelConnection, channel_id)
        assert connection is not None
        if since < until:
            connection.poll_cursor = until
        connection.last_polled_at = now
        uow.commit()
    return seen


# -- reacting to ordermesh's own events ------------------------------------------------------------


# (application, outbox message id) -> whether its SKU was sold by a listing when its delivery pass
# began (ids are per database, and one process may serve several applications, as tests do). A flash
# sale changes hundreds of levels a second and most SKUs have no listing: one query per pass
# (find_listed) instead of a read transaction per message, which was 90% of delivery time (profiled).
# Safe to answer from: the level change committed before its pass began, and a listing mapped
# after that pushes the level it reads itself.
_LISTED: dict[tuple[int, int], bool] = {}


def find_listed(app: Application, envelopes: Sequence[Envelope]) -> None:
    """The outbox preparer of ``inventory.level_changed``: which of the pass's SKUs have listings."""
    wanted: dict[int, set[int]] = defaultdict(set)
    for envelope in envelopes:
        wanted[envelope.tenant_id].add(int(envelope.payload["sku_id"]))
    with app.read_uow() as uow:
        listed = {
            tenant_id: channel_stock.skus_with_listings(uow.session, tenant_id, sku_ids)
            for tenant_id, sku_ids in wanted.items()
        }
    for key in [key for key in list(_LISTED) if key[0] == id(app)]:
        _LISTED.pop(key, None)  # what an earlier pass left (a handler that never ran) is not reused
    for envelope in envelopes:
        _LISTED[(id(app), envelope.id)] = int(envelope.payload["sku_id"]) in listed[envelope.tenant_id]


def on_level_changed(app: Application, envelope: Envelope) -> None:
    sku_id = int(envelope.payload["sku_id"])
    listed = _LISTED.pop((id(app), envelope.id), None)
    if listed is None:  # not prepared (delivered alone): ask
        with app.read_uow() as uow:
            listed = channel_stock.has_listings(uow.session, envelope.tenant_id, sku_id)
    if not listed:  # most stock changes touch no listing: answered without a write
        return
    with app.uow() as uow:
        channel_stock.refresh(
            uow.session, envelope.tenant_id, sku_id=sku_id, location_id=int(envelope.payload["location_id"])
        )
        uow.commit()


def on_shipment_shipped(app: Application, envelope: Envelope) -> None:
    payload = envelope.payload
    with app.read_uow() as uow:
        record = _channel_order(uow, envelope)
        if record is None:
            return  # not a marketplace order
        line_ids = channel_intake.shipped_line_ids(uow.session, record, int(payload["shipment_id"]))
        channel_id, external_id = record.channel_id, record.external_id
    with app.uow() as uow:
        _queue(
            uow,
            envelope.tenant_id,
            channel_id,
            external_id,
            CONFIRM_SHIPMENT,
            carrier=payload.get("carrier"),
            tracking_number=payload.get("tracking_number"),
            line_ids=line_ids,
        )
        uow.commit()


def on_status_changed(app: Application, envelope: Envelope) -> None:
    """An order cancelled in ordermesh (not by its platform) is cancelled on the platform too."""
    if envelope.payload.get("status") != "cancelled":
        return
    with app.read_uow() as uow:
        record = _channel_order(uow, envelope)
        if record is None or record.channel_status in (
            ChannelStatus.CANCELLED.value,
            ChannelStatus.CANCEL_REQUESTED.value,
        ):
            return  # not a marketplace order; or the platform cancelled it, or a buyer's request is answered
        channel_id, external_id = record.channel_id, record.external_id
    with app.uow() as uow:
        reason = envelope.payload.get("reason") or "operator"
        _queue(uow, envelope.tenant_id, channel_id, external_id, CANCEL_ORDER, reason=reason)
        uow.commit()


def _channel_order(uow: UnitOfWork, envelope: Envelope) -> ChannelOrderRecord | None:
    payload = envelope.payload
    if payload.get("channel_id") is None or payload.get("external_id") is None:
        return None
    return uow.session.scalar(
        select(ChannelOrderRecord).where(
            ChannelOrderRecord.tenant_id == envelope.tenant_id,
            ChannelOrderRecord.channel_id == int(payload["channel_id"]),
            ChannelOrderRecord.external_id == str(payload["external_id"]),
        )
    )


def _queue(uow: UnitOfWork, tenant_id: int, channel_id: int, external_id: str, event_type: str, **payload: Any) -> None:
    outbox.append(
        uow.session,
        tenant_id=tenant_id,
        aggregate_type="channel_order",
        aggregate_id=f"{channel_id}:{external_id}",
        event_type=event_type,
        payload={"channel_id": channel_id, "external_id": external_id, **payload},
    )


# -- outbound: the platform calls ------------------------------------------------------------------


def deliver(app: Application, envelope: Envelope) -> None:
    payload = envelope.payload
    ctx = connect(app, int(payload["channel_id"]), envelope.tenant_id)
    try:
        if envelope.event_type == channel_stock.PUSH_EVENT:
            push_stock(app, ctx, int(payload["listing_id"]))
            return
        ctx.throttle()
        if envelope.event_type == CONFIRM_SHIPMENT:
            ctx.adapter.confirm_shipment(
                ShipmentNotice(
                    external_order_id=str(payload["external_id"]),
                    line_ids=tuple(payload.get("line_ids") or ()),
                    carrier=str(payload.get("carrier") or ""),
                    tracking_number=str(payload.get("tracking_number") or ""),
                )
            )
        elif envelope.event_type == CANCEL_ORDER:
            ctx.adapter.cancel_order(str(payload["external_id"]), reason=str(payload.get("reason") or "operator"))
        elif envelope.event_type == channel_intake.CANCEL_ANSWER:
            ctx.adapter.answer_cancel_request(str(payload["external_id"]), accept=bool(payload["accept"]))
    except Exception as error:
        note_error(app, ctx.channel_id, f"{envelope.event_type}: {type(error).__name__}: {error}")
        raise


def push_stock(app: Application, ctx: Connected, listing_id: int) -> None:
    """Send the listing's newest desired quantity if the platform does not already show it."""
    with app.uow() as uow:
        row = uow.session.scalar(select(ChannelListing).where(ChannelListing.id == listing_id).with_for_update())
        if row is None:
            return
        row.push_queued = False
        desired, previous = row.desired_quantity, row.pushed_quantity
        listing = Listing(
            seller_sku=row.seller_sku,
            item_id=row.item_id,
            variant_id=row.variant_id,
            title=row.title,
            location_id=row.platform_location_id,
            inventory_item_id=row.inventory_item_id,
        )
        uow.commit()
    if desired is None or desired == previous:
        return
    ctx.throttle()
    ctx.adapter.set_stock([StockUpdate(listing=listing, quantity=desired, previous=previous)])
    with app.uow() as uow:
        row = uow.session.scalar(select(ChannelListing).where(ChannelListing.id == listing_id).with_for_update())
        if row is None:
            return
        # A sale on the platform recorded while this push was in flight (channel_intake._platform_sold)
        # leaves what the platform shows unknown: keep it unknown so the newest figure goes out again.
        sold_meanwhile = row.pushed_quantity is None and previous is not None
        row.pushed_quantity, row.pushed_at = (None if sold_meanwhile else desired), utcnow()
        if (row.desired_quantity != desired or sold_meanwhile) and not row.push_queued:
            row.push_queued = True
            outbox.append(
                uow.session,
                tenant_id=row.tenant_id,
                aggregate_type="channel_listing",
                aggregate_id=f"{row.channel_id}:{row.id}",
                event_type=channel_stock.PUSH_EVENT,
                payload={"channel_id": row.channel_id, "listing_id": row.id},
            )
        uow.commit()


# -- health ----------------------------------------------------------------------------------------


def health(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, Any]:
    from ordermesh.services.channels import load

    with uow:
        session = uow.session
        channel, connection = load(uow, caller, code)
        mine = (
            OutboxMessage.tenant_id == caller.tenant_id,
            OutboxMessage.aggregate_type.in_(OUTBOUND_AGGREGATES),
            OutboxMessage.aggregate_id.like(f"{channel.id}:%"),
        )
        pending = session.scalar(select(func.count()).where(*mine, OutboxMessage.status == PENDING)) or 0
        dead = session.scalars(
            select(OutboxMessage).where(*mine, OutboxMessage.status == DEAD).order_by(OutboxMessage.id).limit(100)
        ).all()
        listings = session.execute(
            select(
                func.count(),
                func.count().filter(ChannelListing.sku_id.is_(None)),
                func.count().filter(ChannelListing.desired_quantity.is_distinct_from(ChannelListing.pushed_quantity)),
            ).where(ChannelListing.channel_id == channel.id)
        ).one()
        orders_seen = session.scalar(select(func.count()).where(ChannelOrderRecord.channel_id == channel.id)) or 0
        now = utcnow()
        return {
            "code": channel.code,
            "kind": channel.kind,
            "last_push_at": connection.last_push_at,
            "last_polled_at": connection.last_polled_at,
            "poll_cursor": connection.poll_cursor,
            "lag_seconds": round((now - connection.poll_cursor).total_seconds(), 3) if connection.poll_cursor else None,
            "last_error": connection.last_error,
            "last_error_at": connection.last_error_at,
            "orders_seen": orders_seen,
            "listings": {"total": listings[0], "unmapped": listings[1], "out_of_sync": listings[2]},
            "outbound": {"pending": pending, "dead": len(dead)},
            "dead_letters": [
                {
                    "id": row.id,
                    "type": row.event_type,
                    "error": row.last_error,
                    "attempts": row.attempts,
                    "created_at": row.created_at,
                    "retry": {"method": "POST", "path": f"/v1/events/{row.id}/retry"},
                }
                for row in dead
            ],
        }
