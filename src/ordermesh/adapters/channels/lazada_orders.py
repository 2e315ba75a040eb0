"""Lazada orders in canonical terms: item statuses (§9.2), one row per unit, ship-by, money, COD, address.

Pure mapping, no HTTP: ``map_order`` takes a GetOrder/GetOrders record and its GetOrderItems rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from ordermesh.adapters.channels.base import ChannelAddress, ChannelOrder, ChannelStatus
from ordermesh.adapters.channels.units import UnitRow, group_unit_lines, money, platform_time

# Item status → (canonical state, advancement rank). The order is the least-advanced live item (§9.2).
_ITEM_STATES: dict[str, tuple[ChannelStatus, int]] = {
    "unpaid": (ChannelStatus.PENDING_PAYMENT, 0),
    "pending": (ChannelStatus.READY_TO_FULFILL, 1),
    "repacked": (ChannelStatus.READY_TO_FULFILL, 1),
    "topack": (ChannelStatus.READY_TO_FULFILL, 1),
    "packed": (ChannelStatus.FULFILLING, 2),
    "ready_to_ship_pending": (ChannelStatus.FULFILLING, 2),
    "ready_to_ship": (ChannelStatus.FULFILLING, 2),
    "toship": (ChannelStatus.FULFILLING, 2),
    "packed_scrapped": (ChannelStatus.FULFILLING, 2),  # exception flag; the order keeps its forward state
    "shipped": (ChannelStatus.SHIPPED, 3),
    "shipping": (ChannelStatus.SHIPPED, 3),
    "failed_delivery": (ChannelStatus.SHIPPED, 3),
    "lost_by_3pl": (ChannelStatus.SHIPPED, 3),
    "damaged_by_3pl": (ChannelStatus.SHIPPED, 3),
    "shipped_back": (ChannelStatus.SHIPPED, 3),
    "shipped_back_success": (ChannelStatus.SHIPPED, 3),
    "shipped_back_failed": (ChannelStatus.SHIPPED, 3),
    "lost": (ChannelStatus.SHIPPED, 3),
    "delivered": (ChannelStatus.DELIVERED, 4),
    "returned": (ChannelStatus.DELIVERED, 4),  # return flag; forward state stays delivered
    "confirmed": (ChannelStatus.COMPLETED, 5),
}
_SHIPPED_RANK = 3
_COUNTRIES = {
    "vietnam": "VN",
    "viet nam": "VN",
    "singapore": "SG",
    "malaysia": "MY",
    "thailand": "TH",
    "philippines": "PH",
    "indonesia": "ID",
}


def flag(value: Any) -> bool:
    """Lazada booleans arrive as "true", "True", "1" or real booleans."""
    return str(value).strip().lower() in {"true", "1", "yes"}


def zone_of(value: Any) -> tzinfo:
    """The offset an order's own timestamps carry, to read offset-less item times in the same zone."""
    parsed = None
    if isinstance(value, str) and value and not value.isdigit():
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            try:
                parsed = datetime.strptime(value.strip(), "%Y-%m-%d %H:%M:%S %z")
            except ValueError:
                parsed = None
    return parsed.tzinfo if parsed is not None and parsed.tzinfo is not None else UTC


def order_status(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> tuple[ChannelStatus, str]:
    """Canonical state and the raw status string for a Lazada order, from its items (§9.2)."""
    statuses = [str(item.get("status") or "").lower() for item in items] or [
        str(status).lower() for status in order.get("statuses") or []
    ]
    raw = ",".join(sorted(set(statuses)))
    live = [status for status in statuses if status not in {"canceled", "cancelled"}]
    if statuses and not live:
        return ChannelStatus.CANCELLED, raw
    cancel_pending = flag(order.get("need_cancel_confirm")) or flag(order.get("is_cancel_pending"))
    cancel_pending = cancel_pending or any(
        flag(item.get("is_cancel_pending")) and str(item.get("status")).lower() not in {"canceled", "cancelled"}
        for item in items
    )
    if cancel_pending:
        return ChannelStatus.CANCEL_REQUESTED, raw
    if not live or any(status not in _ITEM_STATES for status in live):
        return ChannelStatus.ON_HOLD, raw  # no items, or a status this adapter does not know: hold, never guess
    ranked = [_ITEM_STATES[status] for status in live]
    least = min(ranked, key=lambda state: state[1])
    if least[1] < _SHIPPED_RANK and max(rank for _, rank in ranked) >= _SHIPPED_RANK:
        return ChannelStatus.PARTIALLY_SHIPPED, raw
    return least[0], raw


def map_order(order: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> ChannelOrder:
    """A GetOrder/GetOrders record plus its GetOrderItems rows → the canonical order."""
    zone = zone_of(order.get("created_at"))
    status, raw_status = order_status(order, items)
    live = [item for item in items if str(item.get("status")).lower() not in {"canceled", "cancelled"}]
    counted = live or list(items)
    rows = [
        UnitRow(
            line_id=str(item.get("order_item_id")),
            seller_sku=(item.get("sku") or None),
            item_id=str(item["product_id"]) if item.get("product_id") not in (None, "") else None,
            variant_id=str(item["sku_id"]) if item.get("sku_id") not in (None, "") else None,
            unit_price=money(item.get("item_price")) or Decimal(0),
            discount=max(
                (money(item.get("item_price")) or Decimal(0)) - (money(item.get("paid_price")) or Decimal(0)),
                Decimal(0),
            )
            if item.get("paid_price") not in (None, "")
            else Decimal(0),
            title=item.get("name") or None,
            quantity=int(item.get("quantity") or 1),
        )
        for item in counted
    ]
    promised = [platform_time(item.get("promised_shipping_time"), default_tz=zone) for item in live]
    promised_times = [when for when in promised if when is not None]
    paid = [platform_time(item.get("payment_time")) for item in items]
    paid_times = [when for when in paid if when is not None]
    currency = next((str(item["currency"]) for item in items if item.get("currency")), "") or ""
    updated = platform_time(order.get("updated_at"), default_tz=zone)
    item_updates = [platform_time(item.get("updated_at"), default_tz=zone) for item in items]
    latest = max([when for when in [updated, *item_updates] if when is not None], default=None)
    payment_method = str(order.get("payment_method") or "")
    note = order.get("buyer_note") or order.get("remarks") or None
    reasons = {str(item.get("reason")) for item in items if item.get("reason")}
    return ChannelOrder(
        external_id=str(order.get("order_id")),
        raw_status=raw_status,
        status=status,
        updated_at=latest or datetime.now(UTC),
        currency=currency,
        lines=group_unit_lines(rows),
        placed_at=platform_time(order.get("created_at"), default_tz=zone),
        paid_at=min(paid_times) if paid_times else None,
        ship_by=min(promised_times) if promised_times else None,
        shipping_fee=money(order.get("shipping_fee")) or Decimal(0),
        total=money(order.get("price"), default=None),
        cod=payment_method.strip().upper() in {"COD", "CASH_ON_DELIVERY"}
        or "cash on delivery" in payment_method.lower(),
        address=_address(order.get("address_shipping") or {}),
        buyer_note=str(note) if note and note != "null" else None,
        cancel_reason="; ".join(sorted(reasons)) if status is ChannelStatus.CANCELLED and reasons else None,
        raw={"order": dict(order), "items": [dict(item) for item in items]},
    )


def _address(address: Mapping[str, Any]) -> ChannelAddress:
    """Lazada splits the address into address1..5: street lines, then (VN) province, district, ward [U]."""

    def text(key: str) -> str | None:
        value = address.get(key)
        return str(value) if value not in (None, "", "null") else None

    name = " ".join(part for part in (text("first_name"), text("last_name")) if part) or None
    country = text("country")
    return ChannelAddress(
        name=name,
        phone=text("phone") or text("phone2"),
        line1=text("address1"),
        line2=text("address2"),
        ward=text("address5"),
        district=text("address4"),
        province=text("address3") or text("city"),
        country=_COUNTRIES.get(country.lower(), country if country and len(country) == 2 else None)
        if country
        else None,
        postal_code=text("post_code"),
    )
