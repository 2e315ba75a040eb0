"""Pieces the Lazada and TikTok Shop adapters share: one-row-per-unit lines, platform times, the push HMAC.

Both platforms return one order row per unit sold (CHANNELS.md §3.2 and §4.2, tagged [U]: no quantity field is
documented), so a buyer who orders three of a SKU produces three rows. ``group_unit_lines`` folds them back into
one canonical line per SKU and price; if a platform ever sends a ``quantity`` on a row, it is honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from ordermesh.adapters.channels.base import ChannelLine

_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z")


@dataclass(frozen=True, slots=True)
class UnitRow:
    """One platform row (one unit unless ``quantity`` says otherwise)."""

    line_id: str
    seller_sku: str | None
    item_id: str | None
    variant_id: str | None
    unit_price: Decimal
    discount: Decimal = Decimal(0)
    title: str | None = None
    quantity: int = 1


def group_unit_lines(rows: Iterable[UnitRow]) -> tuple[ChannelLine, ...]:
    """Rows of the same SKU (seller SKU, platform ids) and unit price become one line with a quantity.

    Lines keep the order in which their first row appeared, and carry every row id that makes them up.
    """
    groups: dict[tuple[str | None, str | None, str | None, Decimal], list[UnitRow]] = {}
    for row in rows:
        groups.setdefault((row.seller_sku, row.item_id, row.variant_id, row.unit_price), []).append(row)
    lines = []
    for (seller_sku, item_id, variant_id, unit_price), members in groups.items():
        lines.append(
            ChannelLine(
                line_ids=tuple(member.line_id for member in members),
                seller_sku=seller_sku,
                item_id=item_id,
                variant_id=variant_id,
                quantity=sum(member.quantity for member in members),
                unit_price=unit_price,
                discount=sum((member.discount for member in members), Decimal(0)),
                title=members[0].title,
            )
        )
    return tuple(lines)


def money(value: Any, default: Decimal | None = Decimal(0)) -> Decimal | None:
    """A platform amount ("1,299.00", "99", 99.5, None) as Decimal; never via float arithmetic."""
    if value is None or value == "" or value == "null":
        return default
    text = str(value).replace(",", "").strip()
    try:
        return Decimal(text)
    except InvalidOperation:
        return default


def platform_time(value: Any, *, default_tz: tzinfo = UTC) -> datetime | None:
    """Epoch seconds or milliseconds, ISO 8601, or Lazada's ``2014-10-15 19:12:15 +0800``; UTC out.

    A time without an offset is read in ``default_tz``. Empty strings and the literal "null" mean no time.
    """
    if value is None or value in ("", "null", 0, "0"):
        return None
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        number = int(value)
        seconds = number / 1000 if number > 10**11 else number
        return datetime.fromtimestamp(seconds, UTC)
    text = str(value).strip()
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        for fmt in _TIME_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(UTC)


def whole_seconds(since: datetime, until: datetime) -> tuple[int, int]:
    """A window's bounds widened to the platforms' one-second resolution: floor(since), ceil(until).

    Querying the wider window and filtering to [since, until) exactly means a boundary second is never lost
    between two consecutive polls (the first one's ``until`` is the next one's ``since``)."""
    return math.floor(since.timestamp()), math.ceil(until.timestamp())


def push_signature(app_key: str, app_secret: str, body: bytes) -> str:
    """Lazada and TikTok Shop push signature: hex HMAC-SHA256 keyed by the app secret over app_key + raw body."""
    return hmac.new(app_secret.encode(), app_key.encode() + body, hashlib.sha256).hexdigest()


def verify_push_signature(app_key: str, app_secret: str, body: bytes, presented: str | None) -> bool:
    """Constant-time check of an ``Authorization`` header against the push signature (hex, any case)."""
    if not presented:
        return False
    expected = push_signature(app_key, app_secret, body)
    return hmac.compare_digest(expected.encode(), presented.strip().lower().encode())


def header(headers: Any, name: str) -> str | None:
    """A header value by case-insensitive name from any mapping (httpx, Starlette or a plain dict)."""
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None
