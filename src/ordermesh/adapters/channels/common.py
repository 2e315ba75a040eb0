"""Small helpers the marketplace adapters share: times, money, safe field access."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ordermesh.adapters.outbound import PermanentDeliveryError


def from_unix(value: Any) -> datetime | None:
    """Unix seconds (int, float or numeric string) as an aware UTC datetime; None for 0/absent."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return datetime.fromtimestamp(int(float(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def from_iso(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def money(value: Any) -> Decimal:
    """A platform amount (string or float) as Decimal; floats go through str so 0.1 stays 0.1."""
    if value in (None, ""):
        return Decimal(0)
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return Decimal(0)


def text(value: Any) -> str | None:
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def required(credentials: Mapping[str, str], *keys: str) -> dict[str, str]:
    missing = [key for key in keys if not credentials.get(key)]
    if missing:
        raise PermanentDeliveryError(f"missing credentials: {', '.join(missing)}")
    return {key: credentials[key] for key in keys}
