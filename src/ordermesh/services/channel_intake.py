"""Orders from the marketplaces: a verified delivery (or a poll) -> canonical order, exactly once.

- A new order is captured with ``orders.capture_order`` (idempotent per channel + external id). An
  order with a line no listing maps, an unpaid one, or one the platform holds is stored ``on_hold``
  with the reason, never dropped and never guessed; ``remap_held_orders`` completes and releases it
  once the listing is mapped (or the platform says it is paid).
- Each channel order keeps the platform's side in ``channel_orders``: raw status, platform update
  time, money, COD, buyer note. An update with an older platform time changes nothing; within the
  same second (the platforms' resolution) only forward progress counts (``channel_orders.supersedes``), so
  duplicates and out-of-order deliveries have the effect of one.
- Effects of a platform state (cancel, answer a buyer's cancel request, release a payment hold) run
  after the new state is stored, from the stored (newest) state, and are idempotent: the row's
  ``effects_pending`` flag makes a crash between the two harmless (the next delivery or poll re-runs
  them).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from ordermesh.adapters.channels.base import ChannelLine, ChannelOrder, ChannelStatus
from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Order, OrderLine, Sku, SkuComponent
from ordermesh.adapters.store.tables_channels import ChannelListing, ChannelOrderRecord
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import IllegalTransition
from ordermesh.domain.lifecycle import OrderStatus
from ordermesh.services import cancellations, channel_orders, channel_stock, order_history, orders, outbox
from ordermesh.services.channel_runtime import Connected
from ordermesh.services.unit_of_work import Caller

if TYPE_CHECKING:
    from ordermesh.bootstrap import Application

UNMAPPED = "unmapped channel line"  # hold reasons start with these, so intake knows which holds are its own
AWAITING_PAYMENT = "awaiting payment"
PLATFORM_HOLD = "held on the platform"
CANCEL_ANSWER = "channel.cancel_answer"


def caller_for(ctx: Connected) -> Caller:
    return Caller(tenant_id=ctx.tenant_id, role="system", actor=f"channel:{ctx.code}")


@dataclass(frozen=True, slots=True)
class Outcome:
    external_id: str
    result: str  # captured | updated | stale
    order_id: int | None


# -- entry points ----------------------------------------------------------------------------------


def process_push(app: Application, ctx: Connected, headers: dict[str, str], body: bytes) -> list[Outcome]:
    """Handle one verified, stored push: fetch the orders it names (where it carries only ids)."""
    notice = ctx.adapter.parse_push(headers=headers, body=body)
    found: list[ChannelOrder] = []
    if notice.order is not None:
        found = [notice.order]
    elif notice.order_ids and notice.topic in ("order", "cancel_request"):
        ctx.throttle()
        found = ctx.adapter.fetch_orders(notice.order_ids)
    return [apply_order(app, ctx, order) for order in found]


def apply_order(app: Application, ctx: Connected, order: ChannelOrder) -> Outcome:
    caller = caller_for(ctx)
    with app.read_uow() as uow:
        record = channel_orders.find_record(uow.session, ctx, order.external_id)
        known = record is not None
    if not known:
        order_id = None if order.status is ChannelStatus.CANCELLED else _create(app, ctx, caller, order)
        try:
            with app.uow() as uow:
                uow.session.add(channel_orders.new_record(ctx, order, order_id))
                if order.status is not ChannelStatus.CANCELLED:
                    _platform_sold(uow.session, ctx, order.lines)
                uow.commit()
            _run_effects(app, ctx, caller, order.external_id)
            return Outcome(order.external_id, "captured", order_id)
        except IntegrityError:
            pass  # stored concurrently by another delivery of the same order: handle as an update
    with app.uow() as uow:
        session = uow.session
        record = channel_orders.find_record(session, ctx, order.external_id, lock=True)
        if record is None:
            raise LookupError(f"channel order {order.external_id} vanished while being stored")
        order_id = record.order_id
        newer = channel_orders.supersedes(
            order.updated_at, order.status, record.platform_updated_at, record.channel_status
        )
        pending = record.effects_pending
        if newer:
            channel_orders.update_record(session, caller, record, order)
            uow.commit()
    if newer or pending:
        _run_effects(app, ctx, caller, order.external_id)
    return Outcome(order.external_id, "updated" if newer else "stale", order_id)


# -- creating ---------------------------------------------------------------------------------------


def _platform_sold(session: Any, ctx: Connected, lines: Sequence[ChannelLine]) -> None:
    """The platform lowered its own figure for what it just sold, so ordermesh no longer knows what it
    shows (a push in flight may or may not have overwritten the sale): forget ``pushed`` for the listings
    sold (once per order, in the transaction that first records it) so the newest desired figure is
    pushed again. Without this, a listing whose desired figure did not move with the sale (a share or
    cap rule, or stock reserved elsewhere) would keep showing the platform's lower figure forever."""
    keys = [f"{line.item_id}:{line.variant_id or ''}" for line in lines if line.item_id]
    seller_skus = [line.seller_sku for line in lines if line.seller_sku]
    rows = session.scalars(
        select(ChannelListing)
        .where(
            ChannelListing.channel_id == ctx.channel_id,
            ChannelListing.sku_id.is_not(None),
            or_(ChannelListing.listing_key.in_(keys), ChannelListing.seller_sku.in_(seller_skus)),
        )
        .order_by(ChannelListing.id)
        .with_for_update()
    ).all()
    for row in rows:
        row.pushed_quantity = None
    if rows:
        channel_stock.refresh(session, ctx.tenant_id, listing_ids=[row.id for row in rows])


def _create(app: Application, ctx: Connected, caller: Caller, order: ChannelOrder) -> int:
    with app.read_uow() as uow:
        codes = channel_orders.map_lines(uow.session, ctx, order.lines)
    unmapped = [line for line, code in zip(order.lines, codes, strict=True) if code is None]
    reason = None
    if unmapped:
        reason = f"{UNMAPPED}(s): " + ", ".join(channel_orders.describe_line(line) for line in unmapped)
        reason += f"; map them with PUT /v1/channels/{ctx.code}/listings"
    elif order.status is ChannelStatus.PENDING_PAYMENT:
        reason = f"{AWAITING_PAYMENT} on {ctx.kind} ({order.raw_status})"
    elif order.status is ChannelStatus.ON_HOLD:
        reason = f"{PLATFORM_HOLD} {ctx.kind} ({order.raw_status})"
    if reason is None:
        new = orders.NewOrder(
            channel=ctx.code,
            external_id=order.external_id,
            currency=order.currency,
            lines=[
                orders.NewLine(str(code), line.quantity, channel_orders.net_price(line))
                for line, code in zip(order.lines, codes, strict=True)
            ],
            shipping_address=channel_orders.address_of(order),
            placed_at=order.placed_at,
            ship_by=order.ship_by,
            tags=["cod"] if order.cod else [],
            shipping_fee=order.shipping_fee,
        )
        return orders.capture_order(app.uow(), caller, new).order_id
    return _insert_held(app, ctx, caller, order, codes, reason)


def _insert_held(
    app: Application, ctx: Connected, caller: Caller, order: ChannelOrder, codes: Sequence[str | None], reason: str
) -> int:
    """Store the order on hold with the lines that map; the others wait in ``channel_orders.lines``."""
    with app.uow() as uow:
        session = uow.session
        existing = session.scalar(
            select(Order.id).where(
                Order.tenant_id == ctx.tenant_id,
                Order.channel_id == ctx.channel_id,
                Order.external_id == order.external_id,
            )
        )
        if existing is not None:
            return int(existing)
        now = utcnow()
        mapped = [(line, code) for line, code in zip(order.lines, codes, strict=True) if code is not None]
        sku_ids, components = _skus(session, ctx.tenant_id, [code for _, code in mapped])
        row = Order(
            tenant_id=ctx.tenant_id,
            channel_id=ctx.channel_id,
            external_id=order.external_id,
            status=OrderStatus.ON_HOLD.value,
            currency=(order.currency or "XXX").upper()[:3],
            total_amount=sum(
                (channel_orders.net_price(line) * line.quantity for line, _ in mapped), Decimal(0)
            ).quantize(channel_orders.MONEY),
            shipping_address=channel_orders.address_of(order),
            placed_at=order.placed_at or now,
            ship_by=order.ship_by,
            needs_allocation=False,
            hold_reason=reason,
            tags=["cod"] if order.cod else None,
            created_at=now,
            updated_at=now,
        )
        session.add(row)
        session.flush()
        for number, (line, code) in enumerate(mapped, start=1):
            sku_id = sku_ids[code]
            session.add(_order_line(row, number, sku_id, line, components.get(sku_id, {str(sku_id): 1})))
        order_history.record(
            session,
            row,
            "created",
            caller.actor,
            reason=reason,
            to_status=OrderStatus.ON_HOLD.value,
            data={"channel": ctx.code, "lines": len(mapped)},
        )
        uow.commit()
        return row.id


def _order_line(order: Order, number: int, sku_id: int, line: ChannelLine, components: dict[str, int]) -> OrderLine:
    return OrderLine(
        tenant_id=order.tenant_id,
        order_id=order.id,
        line_number=number,
        sku_id=sku_id,
        quantity=line.quantity,
        unit_price=channel_orders.net_price(line),
        cancelled_quantity=0,
        components=components,
    )


def _skus(session: Any, tenant_id: int, codes: Sequence[str]) -> tuple[dict[str, int], dict[int, dict[str, int]]]:
    sku_ids: dict[str, int] = dict(
        session.execute(select(Sku.code, Sku.id).where(Sku.tenant_id == tenant_id, Sku.code.in_(set(codes)))).all()
    )
    components: dict[int, dict[str, int]] = {}
    for bundle, component, quantity in session.execute(
        select(SkuComponent.bundle_sku_id, SkuComponent.component_sku_id, SkuComponent.quantity).where(
            SkuComponent.bundle_sku_id.in_(list(sku_ids.values()))
        )
    ):
        components.setdefault(bundle, {})[str(component)] = quantity
    return sku_ids, components


# -- effects ---------------------------------------------------------------------------------------


def _run_effects(app: Application, ctx: Connected, caller: Caller, external_id: str) -> None:
    with app.read_uow() as uow:
        record = channel_orders.find_record(uow.session, ctx, external_id)
        if record is None or not record.effects_pending:
            return
        status, order_id, stamp = ChannelStatus(record.channel_status), record.order_id, record.platform_updated_at
        answered, raw = record.cancel_request, record.raw_status
        order = uow.session.get(Order, order_id) if order_id is not None else None
        order_status = OrderStatus(order.status) if order is not None else None
        hold_reason = order.hold_reason if order is not None else None
    answer: bool | None = None
    if order_id is not None and order_status is not None:
        if status is ChannelStatus.CANCELLED:
            cancel_for_channel(app, caller, order_id, orders.CancelReason.CHANNEL, f"cancelled on {ctx.kind} ({raw})")
        elif status is ChannelStatus.CANCEL_REQUESTED and answered is None:
            answer = decide_cancel_request(app, caller, order_id, f"buyer asked on {ctx.kind} to cancel")
        elif (
            status not in (ChannelStatus.PENDING_PAYMENT, ChannelStatus.ON_HOLD, ChannelStatus.CANCEL_REQUESTED)
            and order_status is OrderStatus.ON_HOLD
            and hold_reason is not None
            and hold_reason.startswith((AWAITING_PAYMENT, PLATFORM_HOLD))
        ):
            _release(app, caller, order_id, f"{ctx.kind} status {raw}")
    with app.uow() as uow:
        record = channel_orders.find_record(uow.session, ctx, external_id, lock=True)
        if record is None:
            return
        if answer is not None and record.cancel_request is None:
            record.cancel_request = "accepted" if answer else "refused"
            outbox.append(
                uow.session,
                tenant_id=ctx.tenant_id,
                aggregate_type="channel_order",
                aggregate_id=f"{ctx.channel_id}:{external_id}",
                event_type=CANCEL_ANSWER,
                payload={"channel_id": ctx.channel_id, "external_id": external_id, "accept": answer},
            )
        if record.platform_updated_at == stamp:
            record.effects_pending = False
        uow.commit()


def cancel_for_channel(app: Application, caller: Caller, order_id: int, reason: orders.CancelReason, note: str) -> bool:
    """The one call site that cancels an order because of its channel (issue 6 may swap in a richer
    cancellation policy here). True when the order is cancelled (now or already)."""
    try:
        orders.cancel(app.uow(), caller, order_id, orders.CancelRequest(reason=reason, note=note))
    except IllegalTransition:  # already cancelled, nothing left to cancel, or held with no mapped line
        _cancel_without_lines(app, caller, order_id, reason, note)
    with app.read_uow() as uow:
        row = uow.session.get(Order, order_id)
        return row is not None and row.status == OrderStatus.CANCELLED.value


def _cancel_without_lines(
    app: Application, caller: Caller, order_id: int, reason: orders.CancelReason, note: str
) -> None:
    """An order held because none of its lines maps has no units to cancel: it just ends."""
    with app.uow() as uow:
        row = lock_order(uow.session, caller.tenant_id, order_id)
        if row is None or row.status != OrderStatus.ON_HOLD.value:
            return
        if uow.session.scalar(select(func.count()).where(OrderLine.order_id == order_id)):
            return
        order_history.transition(
            uow.session, row, OrderStatus.CANCELLED, caller.actor, reason=reason.value, data={"note": note}
        )
        row.needs_allocation = False
        uow.commit()


def decide_cancel_request(app: Application, caller: Caller, order_id: int, note: str) -> bool:
    """A buyer's cancel request, decided by the cancellation policy (``cancellations.request_from_channel``):
    accepted and applied while none of the order's units has left a warehouse, refused (and the refusal
    recorded on the order's history) once any has. An order held with no mapped line simply ends."""
    with app.read_uow() as uow:
        row = uow.session.get(Order, order_id)
        if row is None:
            return False
        if row.status == OrderStatus.CANCELLED.value:
            return True
        has_lines = uow.session.scalar(select(func.count()).where(OrderLine.order_id == order_id))
    if not has_lines:
        return cancel_for_channel(app, caller, order_id, orders.CancelReason.CUSTOMER, note)
    decision = cancellations.request_from_channel(
        app.uow(), caller, order_id, reason=orders.CancelReason.CUSTOMER, note=note
    )
    return decision.accepted


def _release(app: Application, caller: Caller, order_id: int, note: str) -> None:
    with contextlib.suppress(IllegalTransition):
        orders.release_hold(app.uow(), caller, order_id, note)


def remap_held_orders(app: Application, ctx: Connected) -> int:
    """Complete orders held for unmapped lines whose listings are now mapped, and release them."""
    caller = caller_for(ctx)
    released = 0
    with app.read_uow() as uow:
        candidates = uow.session.execute(
            select(ChannelOrderRecord.external_id, Order.id)
            .join(Order, Order.id == ChannelOrderRecord.order_id)
            .where(
                ChannelOrderRecord.channel_id == ctx.channel_id,
                Order.status == OrderStatus.ON_HOLD.value,
                Order.hold_reason.startswith(UNMAPPED),
            )
        ).all()
    for external_id, order_id in candidates:
        if _complete_lines(app, ctx, caller, external_id, order_id):
            _run_effects(app, ctx, caller, external_id)
            with app.read_uow() as uow:
                record = channel_orders.find_record(uow.session, ctx, external_id)
                status = ChannelStatus(record.channel_status) if record else ChannelStatus.CANCELLED
            if status in (ChannelStatus.PENDING_PAYMENT, ChannelStatus.ON_HOLD, ChannelStatus.CANCELLED):
                continue
            _release(app, caller, order_id, "every channel line is mapped")
            released += 1
    return released


def _complete_lines(app: Application, ctx: Connected, caller: Caller, external_id: str, order_id: int) -> bool:
    with app.uow() as uow:
        session = uow.session
        record = channel_orders.find_record(session, ctx, external_id, lock=True)
        order = lock_order(session, ctx.tenant_id, order_id)
        if record is None or order is None or order.status != OrderStatus.ON_HOLD.value:
            return False
        lines = [
            ChannelLine(
                line_ids=tuple(item["line_ids"]),
                seller_sku=item["seller_sku"],
                item_id=item["item_id"],
                variant_id=item["variant_id"],
                quantity=int(item["quantity"]),
                unit_price=Decimal(item["unit_price"]),
                discount=Decimal(item["discount"]),
            )
            for item in record.lines
        ]
        codes = channel_orders.map_lines(session, ctx, lines)
        if any(code is None for code in codes):
            return False
        present = session.scalars(select(OrderLine).where(OrderLine.order_id == order.id)).all()
        if len(present) == len(lines):
            return True
        sku_ids, components = _skus(session, ctx.tenant_id, [str(code) for code in codes])
        for stale in present:
            session.delete(stale)
        session.flush()
        for number, (line, code) in enumerate(zip(lines, codes, strict=True), start=1):
            sku_id = sku_ids[str(code)]
            session.add(_order_line(order, number, sku_id, line, components.get(sku_id, {str(sku_id): 1})))
        order.total_amount = sum(
            (channel_orders.net_price(line) * line.quantity for line in lines), Decimal(0)
        ).quantize(channel_orders.MONEY)
        # Still held for the platform's reason (if any), so its later "paid"/"released" releases it.
        if record.channel_status == ChannelStatus.PENDING_PAYMENT.value:
            order.hold_reason = f"{AWAITING_PAYMENT} on {ctx.kind} ({record.raw_status})"
        elif record.channel_status == ChannelStatus.ON_HOLD.value:
            order.hold_reason = f"{PLATFORM_HOLD} {ctx.kind} ({record.raw_status})"
        order_history.record(
            session,
            order,
            "lines_mapped",
            caller.actor,
            reason="every channel line is mapped",
            data={"lines": len(lines)},
        )
        uow.commit()
        return True


def shipped_line_ids(session: Any, record: ChannelOrderRecord, shipment_id: int) -> list[str]:
    """Platform line ids carried by one shipment (empty when it carries the whole order)."""
    numbers = set(
        session.scalars(
            select(OrderLine.line_number)
            .join(Allocation, Allocation.order_line_id == OrderLine.id)
            .where(Allocation.shipment_id == shipment_id, Allocation.shipped_quantity > 0)
        )
    )
    if len(numbers) >= len(record.lines):
        return []
    return [i for number, item in enumerate(record.lines, start=1) if number in numbers for i in item["line_ids"]]
