"""Channel connections and their listings: set, read, import from the platform.

Credentials are sealed with the application's SecretBox before they touch the database and are
never part of any view. A connection extends the tenant's ``channels`` row of the same code (the one
its orders point at), so an order's channel and its marketplace connection are one thing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlparse

from sqlalchemy import select

from ordermesh.adapters.channels.base import Listing
from ordermesh.adapters.channels.registry import ADAPTERS, CREDENTIAL_KEYS
from ordermesh.adapters.store.tables import Channel, Location, Sku
from ordermesh.adapters.store.tables_channels import ChannelConnection, ChannelListing
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import Conflict, InvalidInput, NotFound
from ordermesh.services import channel_stock
from ordermesh.services.unit_of_work import Caller, UnitOfWork

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_LISTINGS_PER_CALL = 1000


class Sealer(Protocol):
    def seal(self, values: Mapping[str, str]) -> str: ...


@dataclass(frozen=True, slots=True)
class ConnectionInput:
    kind: str
    base_url: str
    name: str | None = None
    credentials: Mapping[str, str] | None = None  # None on an update: keep the stored ones
    push_url: str | None = None
    locations: Sequence[str] = ()
    buffer: int = 0
    share_percent: int = 100
    max_exposed: int | None = None


@dataclass(frozen=True, slots=True)
class ListingInput:
    sku: str
    item_id: str | None = None
    variant_id: str | None = None
    seller_sku: str | None = None
    title: str | None = None
    location_id: str | None = None
    inventory_item_id: str | None = None


@dataclass
class ImportReport:
    imported: int = 0
    mapped: int = 0
    unmapped: list[dict[str, str | None]] = field(default_factory=list)


def check_credentials(kind: str, credentials: Mapping[str, str]) -> dict[str, str]:
    """Exactly the keys the platform names (issue 4), each a non-empty string."""
    wanted = CREDENTIAL_KEYS[kind]
    unknown = sorted(set(credentials) - set(wanted))
    if unknown:
        raise InvalidInput(
            f"{kind} credentials take {', '.join(wanted)}; unknown: {', '.join(unknown)}", field="credentials"
        )
    missing = [key for key in wanted if not isinstance(credentials.get(key), str) or not credentials[key].strip()]
    if missing:
        raise InvalidInput(f"{kind} credentials need {', '.join(missing)}", field=f"credentials.{missing[0]}")
    for key in ("partner_id", "shop_id") if kind == "shopee" else ():
        if not credentials[key].strip().isdigit():
            raise InvalidInput(f"shopee {key} must be a number", field=f"credentials.{key}")
    return {key: credentials[key].strip() for key in wanted}


def _check_url(value: str, name: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(value) > 500:
        raise InvalidInput(f"{name} must be an http(s) URL of at most 500 characters", field=name)
    return value


def put_connection(
    uow: UnitOfWork, caller: Caller, box: Sealer, code: str, data: ConnectionInput
) -> tuple[dict[str, Any], bool]:
    if not CODE.match(code):
        raise InvalidInput("channel code: 1 to 64 letters, digits, '_', '.', '-'", field="code")
    if data.kind not in ADAPTERS:
        kinds = ", ".join(sorted(k for k in CREDENTIAL_KEYS if k != "direct"))
        raise InvalidInput(
            f"kind {data.kind!r} has no marketplace adapter here (kinds: {kinds}; "
            f"installed: {', '.join(sorted(ADAPTERS))})",
            code="unknown_channel_kind",
            field="kind",
        )
    base_url = _check_url(data.base_url.rstrip("/"), "base_url")
    push_url = _check_url(data.push_url, "push_url") if data.push_url else None
    if data.buffer < 0:
        raise InvalidInput("buffer cannot be negative", field="stock_rules.buffer")
    if not 0 <= data.share_percent <= 100:
        raise InvalidInput("share_percent must be 0 to 100", field="stock_rules.share_percent")
    if data.max_exposed is not None and data.max_exposed < 0:
        raise InvalidInput("max_exposed cannot be negative", field="stock_rules.max_exposed")
    sealed = box.seal(check_credentials(data.kind, data.credentials)) if data.credentials is not None else None
    with uow:
        session = uow.session
        known = set(
            session.scalars(
                select(Location.code).where(Location.tenant_id == caller.tenant_id, Location.code.in_(data.locations))
            )
        )
        for index, location in enumerate(data.locations):
            if location not in known:
                raise InvalidInput(
                    f"unknown location {location!r}", code="unknown_location", field=f"locations.{index}"
                )
        channel = session.scalar(
            select(Channel).where(Channel.tenant_id == caller.tenant_id, Channel.code == code).with_for_update()
        )
        connection = session.get(ChannelConnection, channel.id) if channel is not None else None
        if channel is not None and channel.kind != data.kind:
            raise Conflict(
                f"channel {code!r} is a {channel.kind} channel; its kind cannot change", code="channel_kind_mismatch"
            )
        if connection is None and sealed is None:
            raise InvalidInput("a new connection needs credentials", field="credentials")
        now = utcnow()
        created = connection is None
        if channel is None:
            channel = Channel(tenant_id=caller.tenant_id, code=code, kind=data.kind, name=data.name or code)
            session.add(channel)
            session.flush()
        elif data.name:
            channel.name = data.name
        if connection is None:
            connection = ChannelConnection(channel_id=channel.id, tenant_id=caller.tenant_id, created_at=now)
            session.add(connection)
        connection.base_url, connection.push_url = base_url, push_url
        connection.locations = list(dict.fromkeys(data.locations))
        connection.stock_buffer, connection.stock_share_percent = data.buffer, data.share_percent
        connection.stock_max_exposed = data.max_exposed
        if sealed is not None:
            connection.credentials = sealed
        connection.updated_at = now
        session.flush()
        channel_stock.refresh(session, caller.tenant_id, channel_ids=[channel.id])
        view = connection_view(channel, connection)
        uow.record_result("channel", code)
        uow.commit()
        return view, created


def connection_view(channel: Channel, connection: ChannelConnection) -> dict[str, Any]:
    return {
        "code": channel.code,
        "kind": channel.kind,
        "name": channel.name,
        "base_url": connection.base_url,
        "push_url": connection.push_url,
        "webhook_path": f"/webhooks/{channel.kind}/{channel.id}",
        "credential_keys": list(CREDENTIAL_KEYS.get(channel.kind, ())),  # which are set; never their values
        "locations": list(connection.locations),
        "stock_rules": {
            "buffer": connection.stock_buffer,
            "share_percent": connection.stock_share_percent,
            "max_exposed": connection.stock_max_exposed,
        },
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    }


def load(uow: UnitOfWork, caller: Caller, code: str) -> tuple[Channel, ChannelConnection]:
    """The channel and its connection (inside an open unit of work)."""
    row = uow.session.execute(
        select(Channel, ChannelConnection)
        .join(ChannelConnection, ChannelConnection.channel_id == Channel.id)
        .where(Channel.tenant_id == caller.tenant_id, Channel.code == code)
    ).first()
    if row is None:
        raise NotFound(f"no channel connection {code!r}", code="channel_not_found")
    return row[0], row[1]


def get_connection(uow: UnitOfWork, caller: Caller, code: str) -> dict[str, Any]:
    with uow:
        return connection_view(*load(uow, caller, code))


def list_connections(uow: UnitOfWork, caller: Caller) -> list[dict[str, Any]]:
    with uow:
        rows = uow.session.execute(
            select(Channel, ChannelConnection)
            .join(ChannelConnection, ChannelConnection.channel_id == Channel.id)
            .where(Channel.tenant_id == caller.tenant_id)
            .order_by(Channel.code)
        ).all()
        return [connection_view(channel, connection) for channel, connection in rows]


# -- listings ---------------------------------------------------------------------------------------


def listing_key(item_id: str | None, variant_id: str | None, seller_sku: str | None) -> str:
    if item_id:
        return f"{item_id}:{variant_id or ''}"
    if seller_sku:
        return f"sku:{seller_sku}"
    raise InvalidInput("a listing needs item_id (and variant_id) or seller_sku", field="item_id")


def listing_view(row: ChannelListing, sku_codes: Mapping[int, str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "sku": sku_codes.get(row.sku_id) if row.sku_id is not None else None,
        "item_id": row.item_id,
        "variant_id": row.variant_id,
        "seller_sku": row.seller_sku,
        "title": row.title,
        "location_id": row.platform_location_id,
        "inventory_item_id": row.inventory_item_id,
        "stock": {"desired": row.desired_quantity, "pushed": row.pushed_quantity, "pushed_at": row.pushed_at},
    }


def put_listings(uow: UnitOfWork, caller: Caller, code: str, items: Sequence[ListingInput]) -> list[dict[str, Any]]:
    """Map channel items to SKUs (create or update by item/variant, else seller SKU), all or nothing."""
    if not items or len(items) > MAX_LISTINGS_PER_CALL:
        raise InvalidInput(f"send 1 to {MAX_LISTINGS_PER_CALL} listings", field="listings")
    keys = [listing_key(i.item_id, i.variant_id, i.seller_sku) for i in items]
    with uow:
        session = uow.session
        channel, _ = load(uow, caller, code)
        skus = dict(
            session.execute(
                select(Sku.code, Sku.id).where(Sku.tenant_id == caller.tenant_id, Sku.code.in_({i.sku for i in items}))
            ).all()
        )
        for index, item in enumerate(items):
            if item.sku not in skus:
                raise InvalidInput(f"unknown SKU {item.sku!r}", code="unknown_sku", field=f"listings.{index}.sku")
        rows = _upsert(
            session,
            caller.tenant_id,
            channel.id,
            keys,
            items,
            {k: skus[i.sku] for k, i in zip(keys, items, strict=True)},
        )
        session.flush()
        channel_stock.refresh(session, caller.tenant_id, listing_ids=[row.id for row in rows])
        views = [listing_view(row, {v: k for k, v in skus.items()}) for row in rows]
        uow.commit()
    return views


def _upsert(
    session: Any,
    tenant_id: int,
    channel_id: int,
    keys: Sequence[str],
    items: Sequence[ListingInput | Listing],
    sku_ids: Mapping[str, int | None],
) -> list[ChannelListing]:
    existing = {
        row.listing_key: row
        for row in session.scalars(
            select(ChannelListing)
            .where(
                ChannelListing.tenant_id == tenant_id,
                ChannelListing.channel_id == channel_id,
                ChannelListing.listing_key.in_(keys),
            )
            .with_for_update()
        )
    }
    rows = []
    now = utcnow()
    for key, item in zip(keys, items, strict=True):
        row = existing.get(key)
        if row is None:
            row = ChannelListing(
                tenant_id=tenant_id, channel_id=channel_id, listing_key=key, push_queued=False, created_at=now
            )
            session.add(row)
            existing[key] = row
        if sku_ids.get(key) is not None:
            row.sku_id = sku_ids[key]
        row.item_id, row.variant_id = item.item_id, item.variant_id
        row.seller_sku = item.seller_sku or row.seller_sku
        row.title = item.title or row.title
        row.platform_location_id = item.location_id or row.platform_location_id
        row.inventory_item_id = item.inventory_item_id or row.inventory_item_id
        row.updated_at = now
        rows.append(row)
    return rows


def list_listings(uow: UnitOfWork, caller: Caller, code: str) -> list[dict[str, Any]]:
    with uow:
        channel, _ = load(uow, caller, code)
        rows = uow.session.scalars(
            select(ChannelListing).where(ChannelListing.channel_id == channel.id).order_by(ChannelListing.id)
        ).all()
        codes = dict(uow.session.execute(select(Sku.id, Sku.code).where(Sku.tenant_id == caller.tenant_id)).all())
        return [listing_view(row, codes) for row in rows]


def import_listings(uow: UnitOfWork, caller: Caller, code: str, listings: Sequence[Listing]) -> ImportReport:
    """Store what the platform lists. A listing whose seller SKU is exactly an ordermesh SKU code is
    mapped to it; others stay unmapped (reported) until set by ``put_listings``. Existing mappings
    are never changed by an import."""
    report = ImportReport()
    usable = [item for item in listings if item.item_id or item.seller_sku]
    keys = [listing_key(item.item_id, item.variant_id, item.seller_sku) for item in usable]
    with uow:
        session = uow.session
        channel, _ = load(uow, caller, code)
        skus = dict(
            session.execute(
                select(Sku.code, Sku.id).where(
                    Sku.tenant_id == caller.tenant_id, Sku.code.in_({i.seller_sku for i in usable if i.seller_sku})
                )
            ).all()
        )
        mapped_before = set(
            session.scalars(
                select(ChannelListing.listing_key).where(
                    ChannelListing.channel_id == channel.id, ChannelListing.sku_id.is_not(None)
                )
            )
        )
        sku_ids = {
            key: (None if key in mapped_before else skus.get(item.seller_sku or ""))
            for key, item in zip(keys, usable, strict=True)
        }
        rows = _upsert(session, caller.tenant_id, channel.id, keys, usable, sku_ids)
        session.flush()
        channel_stock.refresh(session, caller.tenant_id, listing_ids=[row.id for row in rows])
        for row in rows:
            report.imported += 1
            if row.sku_id is not None:
                report.mapped += 1
            else:
                report.unmapped.append(
                    {"item_id": row.item_id, "variant_id": row.variant_id, "seller_sku": row.seller_sku}
                )
        uow.commit()
    return report


def get_channel_order(uow: UnitOfWork, caller: Caller, code: str, external_id: str) -> dict[str, Any]:
    """The platform's side of one channel order: raw status beside ours, money and notes as stated."""
    from ordermesh.adapters.store.tables_channels import ChannelOrderRecord

    with uow:
        channel, _ = load(uow, caller, code)
        record = uow.session.scalar(
            select(ChannelOrderRecord).where(
                ChannelOrderRecord.channel_id == channel.id, ChannelOrderRecord.external_id == external_id
            )
        )
        if record is None:
            raise NotFound(f"no order {external_id!r} from channel {code!r}", code="channel_order_not_found")
        return {
            "channel": code,
            "external_id": record.external_id,
            "order_id": record.order_id,
            "raw_status": record.raw_status,
            "channel_status": record.channel_status,
            "platform_updated_at": record.platform_updated_at,
            "currency": record.currency,
            "total": record.total,
            "shipping_fee": record.shipping_fee,
            "cod": record.cod,
            "buyer_note": record.buyer_note,
            "cancel_request": record.cancel_request,
            "lines": record.lines,
        }
