"""A marketplace order's platform side (``channel_orders``): how its lines map to ordermesh SKUs, how
an update is copied in, and which of two updates wins. Used by channel intake."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ordermesh.adapters.channels.base import ChannelLine, ChannelOrder, ChannelStatus
from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Sku
from ordermesh.adapters.store.tables_channels import ChannelListing, ChannelOrderRecord
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.lifecycle import OrderStatus
from ordermesh.services import order_history
from ordermesh.services.channel_runtime import Connected
from ordermesh.services.unit_of_work import Caller

MONEY = Decimal("0.0001")
PRE_SHIPPING = frozenset(
    {
        OrderStatus.PENDING,
        OrderStatus.ON_HOLD,
        OrderStatus.BACKORDERED,
        OrderStatus.PARTIALLY_ALLOCATED,
        OrderStatus.ALLOCATED,
        OrderStatus.RELEASED,
    }
)


# Forward progress of a marketplace order (CHANNELS.md §9.1); used only to order two updates that carry
# the same platform time, since the platforms report whole seconds.
_PROGRESS = {
    ChannelStatus.PENDING_PAYMENT: 0,
    ChannelStatus.ON_HOLD: 1,
    ChannelStatus.READY_TO_FULFILL: 2,
    ChannelStatus.FULFILLING: 3,
    ChannelStatus.PARTIALLY_SHIPPED: 4,
    ChannelStatus.SHIPPED: 5,
    ChannelStatus.DELIVERED: 6,
    ChannelStatus.COMPLETED: 7,
}


def supersedes(new_time: datetime, new_status: ChannelStatus, stored_time: datetime, stored_status: str) -> bool:
    """Whether an update replaces the stored state. A later platform time always wins and an earlier
    one never does. Within the same second (the platforms' resolution) the update wins only if it moves
    the order on: a cancellation over anything else, a buyer's cancel request over an open state, or a
    further forward state. Of two updates in one second, at most one supersedes the other, so a stale
    copy redelivered out of order (a Shopify redelivery, a slow poll) can never move the order back."""
    if new_time != stored_time:
        return new_time > stored_time
    old = ChannelStatus(stored_status)
    if new_status is old or old is ChannelStatus.CANCELLED:
        return False
    if new_status is ChannelStatus.CANCELLED:
        return True
    if old is ChannelStatus.CANCEL_REQUESTED:
        return False  # an answer to the request comes with a later time
    if new_status is ChannelStatus.CANCEL_REQUESTED:
        return True
    return _PROGRESS[new_status] > _PROGRESS[old]


def map_lines(session: Any, ctx: Connected, lines: Sequence[ChannelLine]) -> list[str | None]:
    """The ordermesh SKU code of each line, through the connection's listings only (never guessed):
    by item + variant first, then by seller SKU."""
    rows = session.execute(
        select(ChannelListing.listing_key, ChannelListing.seller_sku, Sku.code)
        .join(Sku, Sku.id == ChannelListing.sku_id)
        .where(ChannelListing.channel_id == ctx.channel_id)
    ).all()
    by_key = {key: code for key, _, code in rows}
    by_seller_sku: dict[str, str] = {}
    for _, seller_sku, code in rows:
        if seller_sku:
            by_seller_sku.setdefault(seller_sku, code)
    found: list[str | None] = []
    for line in lines:
        code = by_key.get(f"{line.item_id}:{line.variant_id or ''}") if line.item_id else None
        found.append(code or (by_seller_sku.get(line.seller_sku) if line.seller_sku else None))
    return found


def describe_line(line: ChannelLine) -> str:
    return f"seller SKU {line.seller_sku or '-'} (item {line.item_id or '-'}, variant {line.variant_id or '-'})"


def net_price(line: ChannelLine) -> Decimal:
    """Per-unit price the buyer pays for the line, after the line's discount."""
    if line.quantity <= 0:
        return line.unit_price
    return max(line.unit_price - line.discount / line.quantity, Decimal(0)).quantize(MONEY)


def address_of(order: ChannelOrder) -> dict[str, Any]:
    address = order.address
    if address is None:
        return {}
    view = {
        "name": address.name,
        "phone": address.phone,
        "address_lines": [part for part in (address.line1, address.line2) if part],
        "ward": address.ward,
        "district": address.district,
        "province": address.province,
        "country": address.country,
        "postal_code": address.postal_code,
    }
    return {key: value for key, value in view.items() if value not in (None, [])}


def new_record(ctx: Connected, order: ChannelOrder, order_id: int | None) -> ChannelOrderRecord:
    now = utcnow()
    record = ChannelOrderRecord(
        tenant_id=ctx.tenant_id,
        channel_id=ctx.channel_id,
        external_id=order.external_id,
        order_id=order_id,
        created_at=now,
        effects_pending=True,
    )
    copy_into(record, order)
    return record


def copy_into(record: ChannelOrderRecord, order: ChannelOrder) -> None:
    record.raw_status = order.raw_status[:120]
    record.channel_status = order.status.value
    record.platform_updated_at = order.updated_at
    record.currency = (order.currency or "XXX").upper()[:3]
    record.total = order.total
    record.shipping_fee = order.shipping_fee
    record.cod = order.cod
    record.buyer_note = order.buyer_note
    record.lines = [
        {
            "line_ids": list(line.line_ids),
            "seller_sku": line.seller_sku,
            "item_id": line.item_id,
            "variant_id": line.variant_id,
            "quantity": line.quantity,
            "unit_price": str(line.unit_price),
            "discount": str(line.discount),
        }
        for line in order.lines
    ]
    record.updated_at = utcnow()


def find_record(session: Any, ctx: Connected, external_id: str, *, lock: bool = False) -> ChannelOrderRecord | None:
    query = select(ChannelOrderRecord).where(
        ChannelOrderRecord.tenant_id == ctx.tenant_id,
        ChannelOrderRecord.channel_id == ctx.channel_id,
        ChannelOrderRecord.external_id == external_id,
    )
    return session.scalar(query.with_for_update() if lock else query)


def update_record(session: Any, caller: Caller, record: ChannelOrderRecord, order: ChannelOrder) -> None:
    before = (record.raw_status, record.channel_status)
    copy_into(record, order)
    record.effects_pending = True
    if record.order_id is None:
        return
    row = lock_order(session, caller.tenant_id, record.order_id)
    if row is None:
        return
    data: dict[str, Any] = {
        "raw_status": record.raw_status,
        "channel_status": record.channel_status,
        "previous_raw_status": before[0],
        "platform_updated_at": order.updated_at.isoformat(),
    }
    address = address_of(order)
    if address and address != row.shipping_address and OrderStatus(row.status) in PRE_SHIPPING:
        row.shipping_address = address
        data["address_updated"] = True
    order_history.record(session, row, "channel_status_changed", caller.actor, reason=record.raw_status, data=data)
