"""Reading orders: one order in full, and filtered, cursor-paginated lists."""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ordermesh.adapters.store.tables import (
    Allocation,
    Channel,
    Location,
    Order,
    OrderEvent,
    OrderLine,
    Shipment,
    Sku,
)
from ordermesh.adapters.store.tables_sla_returns import OrderSla, Return
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.lifecycle import OrderStatus
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_PAGE = 200
CLOSED_RETURN = frozenset({"rejected", "refunded", "closed"})


def _money(amount: Decimal | None) -> str | None:
    return str(amount) if amount is not None else None


def get_order(uow: UnitOfWork, caller: Caller, order_id: int) -> dict[str, Any]:
    with uow:
        order = uow.session.scalar(select(Order).where(Order.tenant_id == caller.tenant_id, Order.id == order_id))
        if order is None:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        return render_orders(uow, [order], with_history=True)[0]


@dataclass(frozen=True, slots=True)
class OrderFilter:
    status: str | None = None
    channel: str | None = None
    sku: str | None = None
    placed_after: datetime | None = None
    placed_before: datetime | None = None
    cursor: str | None = None
    limit: int = 50


def encode_cursor(order_id: int) -> str:
    return base64.urlsafe_b64encode(f"o:{order_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, value = raw.split(":", 1)
        order_id = int(value)
        if kind != "o" or not 1 <= order_id < 2**63:
            raise ValueError
        return order_id
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API returned", field="cursor") from None


def list_orders(uow: UnitOfWork, caller: Caller, filters: OrderFilter) -> dict[str, Any]:
    if filters.status is not None and filters.status not in {s.value for s in OrderStatus}:
        raise InvalidInput(f"unknown status {filters.status!r}", field="status")
    if not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
    with uow:
        session = uow.session
        query = select(Order).where(Order.tenant_id == caller.tenant_id)
        if filters.status:
            query = query.where(Order.status == filters.status)
        if filters.channel:
            query = query.join(Channel, Channel.id == Order.channel_id).where(Channel.code == filters.channel)
        if filters.sku:
            with_sku = (
                select(OrderLine.order_id)
                .join(Sku, Sku.id == OrderLine.sku_id)
                .where(OrderLine.tenant_id == caller.tenant_id, Sku.code == filters.sku)
            )
            query = query.where(Order.id.in_(with_sku))
        if filters.placed_after:
            query = query.where(Order.placed_at >= filters.placed_after)
        if filters.placed_before:
            query = query.where(Order.placed_at < filters.placed_before)
        if filters.cursor:
            query = query.where(Order.id < decode_cursor(filters.cursor))
        orders = session.scalars(query.order_by(Order.id.desc()).limit(filters.limit + 1)).all()
        page, more = orders[: filters.limit], len(orders) > filters.limit
        return {
            "items": render_orders(uow, list(page), with_history=False),
            "next_cursor": encode_cursor(page[-1].id) if more else None,
        }


def render_orders(uow: UnitOfWork, orders: list[Order], *, with_history: bool) -> list[dict[str, Any]]:
    """Orders with their lines, allocations and shipments, in a handful of queries for the whole page."""
    if not orders:
        return []
    session = uow.session
    ids = [o.id for o in orders]
    tenant_id = orders[0].tenant_id
    channels = dict(session.execute(select(Channel.id, Channel.code).where(Channel.tenant_id == tenant_id)).all())
    locations = dict(session.execute(select(Location.id, Location.code).where(Location.tenant_id == tenant_id)).all())
    lines: dict[int, list[OrderLine]] = defaultdict(list)
    for line in session.scalars(select(OrderLine).where(OrderLine.order_id.in_(ids)).order_by(OrderLine.line_number)):
        lines[line.order_id].append(line)
    sku_ids = {line.sku_id for group in lines.values() for line in group}
    skus = dict(session.execute(select(Sku.id, Sku.code).where(Sku.id.in_(sku_ids))).all())
    allocations: dict[int, list[Allocation]] = defaultdict(list)
    for allocation in session.scalars(select(Allocation).where(Allocation.order_id.in_(ids)).order_by(Allocation.id)):
        allocations[allocation.order_line_id].append(allocation)
    shipments: dict[int, list[Shipment]] = defaultdict(list)
    for shipment in session.scalars(select(Shipment).where(Shipment.order_id.in_(ids)).order_by(Shipment.id)):
        shipments[shipment.order_id].append(shipment)
    slas = {row.order_id: row for row in session.scalars(select(OrderSla).where(OrderSla.order_id.in_(ids)))}
    order_returns: dict[int, list[Return]] = defaultdict(list)
    for record in session.scalars(select(Return).where(Return.order_id.in_(ids)).order_by(Return.id)):
        order_returns[record.order_id].append(record)
    history: dict[int, list[OrderEvent]] = defaultdict(list)
    if with_history:
        for event in session.scalars(select(OrderEvent).where(OrderEvent.order_id.in_(ids)).order_by(OrderEvent.id)):
            history[event.order_id].append(event)

    return [
        build_order_view(
            order,
            channel_code=channels[order.channel_id],
            lines=lines[order.id],
            sku_codes=skus,
            allocations=allocations,
            location_codes=locations,
            shipments=shipments[order.id],
            events=history[order.id] if with_history else None,
            sla=slas.get(order.id),
            returns=order_returns[order.id],
        )
        for order in orders
    ]


def build_order_view(
    order: Order,
    *,
    channel_code: str,
    lines: list[OrderLine],
    sku_codes: dict[int, str],
    allocations: dict[int, list[Allocation]],
    location_codes: dict[int, str],
    shipments: list[Shipment],
    events: list[OrderEvent] | None,
    sla: OrderSla | None = None,
    returns: list[Return] | None = None,
) -> dict[str, Any]:
    """The public shape of an order, from rows already in hand (no queries). ``sla``: the SLA
    monitor's last word on it (none yet: only the marketplace's ship-by, state unknown)."""
    line_views = []
    for line in lines:
        mine = allocations.get(line.id, [])
        line_views.append(
            {
                "line_number": line.line_number,
                "sku": sku_codes[line.sku_id],
                "quantity": line.quantity,
                "unit_price": str(line.unit_price),
                "cancelled_quantity": line.cancelled_quantity,
                "allocated_quantity": sum(a.quantity for a in mine),
                "shipped_quantity": sum(a.shipped_quantity for a in mine),
                "allocations": [
                    {
                        "location": location_codes[a.location_id],
                        "quantity": a.quantity,
                        "shipped_quantity": a.shipped_quantity,
                        "shipment_id": a.shipment_id,
                    }
                    for a in mine
                    if a.quantity or a.shipped_quantity
                ],
            }
        )
    view: dict[str, Any] = {
        "id": order.id,
        "channel": channel_code,
        "external_id": order.external_id,
        "status": order.status,
        "hold_reason": order.hold_reason,
        "currency": order.currency,
        "total_amount": str(order.total_amount),
        "placed_at": order.placed_at,
        "ship_by": order.ship_by,
        "shipping_address": order.shipping_address,
        "tags": order.tags or [],
        "lines": line_views,
        "shipments": [
            {
                "id": s.id,
                "location": location_codes[s.location_id],
                "status": s.status,
                "carrier": s.carrier,
                "tracking_number": s.tracking_number,
            }
            for s in shipments
        ],
        "sla": {
            "ship_by": sla.ship_by if sla else order.ship_by,
            "source": sla.source if sla else ("marketplace" if order.ship_by else None),
            "state": sla.state if sla else None,
            "location": location_codes.get(sla.location_id) if sla and sla.location_id else None,
            "forecast_handover": sla.forecast_handover if sla else None,
            "evaluated_at": sla.evaluated_at if sla else None,
        },
        "returns": [
            {"id": r.id, "status": r.status, "origin": r.origin, "refund_amount": _money(r.refund_amount)}
            for r in returns or []
        ],
        "has_open_return": any(r.status not in CLOSED_RETURN for r in returns or []),
        "created_at": order.created_at,
        "updated_at": order.updated_at,
    }
    if events is not None:
        view["events"] = [
            {
                "id": e.id,
                "type": e.type,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "actor": e.actor,
                "reason": e.reason,
                "data": e.data,
                "at": e.created_at,
            }
            for e in events
        ]
    return view


def get_shipment(uow: UnitOfWork, caller: Caller, shipment_id: int) -> dict[str, Any]:
    with uow:
        shipment = uow.session.scalar(
            select(Shipment).where(Shipment.tenant_id == caller.tenant_id, Shipment.id == shipment_id)
        )
        if shipment is None:
            raise NotFound(f"no shipment {shipment_id}", code="shipment_not_found")
        location = uow.session.get(Location, shipment.location_id)
        rows = uow.session.execute(
            select(OrderLine.line_number, Sku.code, Allocation.quantity, Allocation.shipped_quantity)
            .join(OrderLine, OrderLine.id == Allocation.order_line_id)
            .join(Sku, Sku.id == OrderLine.sku_id)
            .where(Allocation.shipment_id == shipment.id)
            .order_by(OrderLine.line_number)
        ).all()
        return {
            "id": shipment.id,
            "order_id": shipment.order_id,
            "location": location.code if location else None,
            "status": shipment.status,
            "carrier": shipment.carrier,
            "tracking_number": shipment.tracking_number,
            "lines": [
                {"line_number": n, "sku": code, "quantity": q + shipped, "shipped_quantity": shipped}
                for n, code, q, shipped in rows
            ],
            "created_at": shipment.created_at,
            "updated_at": shipment.updated_at,
        }
