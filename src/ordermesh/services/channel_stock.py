"""Keeping every channel's sellable quantity true.

Each listing row holds ``desired_quantity`` (what the channel should show now, from the stock rules)
and ``pushed_quantity`` (what the platform last accepted). ``refresh`` recomputes ``desired`` for the
listings a change touches and, when it differs from ``pushed`` and no push is already queued, queues
one ``channel.stock_push`` outbox message for the listing. The message carries no quantity: its
handler reads the latest ``desired`` when it runs, so a burst of changes collapses into one push of the
newest value, and because the outbox delivers one listing's messages strictly in order, an older value
can never be sent after a newer one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import InventoryLevel, Location, SkuComponent
from ordermesh.adapters.store.tables_channels import ChannelConnection, ChannelListing
from ordermesh.domain.channel_stock import StockRules, sellable_quantity
from ordermesh.services import outbox

PUSH_EVENT = "channel.stock_push"


def refresh(
    session: Session,
    tenant_id: int,
    *,
    channel_ids: Iterable[int] | None = None,
    listing_ids: Iterable[int] | None = None,
    sku_id: int | None = None,
    location_id: int | None = None,
) -> int:
    """Recompute desired quantities (inside the caller's transaction); returns pushes queued."""
    query = (
        select(ChannelListing)
        .where(ChannelListing.tenant_id == tenant_id, ChannelListing.sku_id.is_not(None))
        .order_by(ChannelListing.id)
    )
    if channel_ids is not None:
        query = query.where(ChannelListing.channel_id.in_(list(channel_ids)))
    if listing_ids is not None:
        query = query.where(ChannelListing.id.in_(list(listing_ids)))
    if sku_id is not None:
        bundles = select(SkuComponent.bundle_sku_id).where(SkuComponent.component_sku_id == sku_id)
        query = query.where(or_(ChannelListing.sku_id == sku_id, ChannelListing.sku_id.in_(bundles)))
    listings = session.scalars(query.with_for_update()).all()  # fixed order (by id): no lock cycles
    if not listings:
        return 0
    connections = {
        c.channel_id: c
        for c in session.scalars(
            select(ChannelConnection).where(ChannelConnection.channel_id.in_({row.channel_id for row in listings}))
        )
    }
    locations = dict(
        session.execute(
            select(Location.code, Location.id).where(Location.tenant_id == tenant_id, Location.active.is_(True))
        ).all()
    )
    feeding = {
        channel_id: {locations[code] for code in c.locations if code in locations}
        if c.locations
        else set(locations.values())
        for channel_id, c in connections.items()
    }
    if location_id is not None:
        listings = [row for row in listings if location_id in feeding.get(row.channel_id, set())]
    sku_ids = {row.sku_id for row in listings if row.sku_id is not None}
    components: dict[int, dict[int, int]] = defaultdict(dict)
    for bundle, component, quantity in session.execute(
        select(SkuComponent.bundle_sku_id, SkuComponent.component_sku_id, SkuComponent.quantity).where(
            SkuComponent.bundle_sku_id.in_(sku_ids)
        )
    ):
        components[bundle][component] = quantity
    for sku in sku_ids:
        components.setdefault(sku, {sku: 1})
    wanted = {component for parts in components.values() for component in parts}
    per_location: dict[tuple[int, int], int] = {
        (loc, sku): max(available, 0)
        for loc, sku, available in session.execute(
            select(
                InventoryLevel.location_id,
                InventoryLevel.sku_id,
                InventoryLevel.on_hand - InventoryLevel.reserved - InventoryLevel.safety_stock,
            ).where(InventoryLevel.tenant_id == tenant_id, InventoryLevel.sku_id.in_(wanted))
        )
    }
    queued = 0
    for row in listings:
        connection = connections.get(row.channel_id)
        if connection is None or row.sku_id is None:
            continue
        sources = feeding[row.channel_id]
        parts = components[row.sku_id]
        available = {sku: sum(per_location.get((loc, sku), 0) for loc in sources) for sku in parts}
        rules = StockRules(connection.stock_buffer, connection.stock_share_percent, connection.stock_max_exposed)
        row.desired_quantity = sellable_quantity(available, parts, rules)
        if row.desired_quantity != row.pushed_quantity and not row.push_queued:
            row.push_queued = True
            outbox.append(
                session,
                tenant_id=tenant_id,
                aggregate_type="channel_listing",
                aggregate_id=f"{row.channel_id}:{row.id}",
                event_type=PUSH_EVENT,
                payload={"channel_id": row.channel_id, "listing_id": row.id},
            )
            queued += 1
    return queued


def has_listings(session: Session, tenant_id: int, sku_id: int) -> bool:
    """Whether any mapped listing sells ``sku_id`` or a bundle containing it."""
    bundles = select(SkuComponent.bundle_sku_id).where(SkuComponent.component_sku_id == sku_id)
    found = session.scalar(
        select(ChannelListing.id)
        .where(
            ChannelListing.tenant_id == tenant_id,
            or_(ChannelListing.sku_id == sku_id, ChannelListing.sku_id.in_(bundles)),
        )
        .limit(1)
    )
    return found is not None


def skus_with_listings(session: Session, tenant_id: int, sku_ids: Iterable[int]) -> set[int]:
    """Which of ``sku_ids`` a mapped listing sells, alone or in a bundle (``has_listings`` for many)."""
    wanted = sorted(set(sku_ids))
    if not wanted:
        return set()
    direct = select(ChannelListing.sku_id).where(
        ChannelListing.tenant_id == tenant_id, ChannelListing.sku_id.in_(wanted)
    )
    in_bundles = (
        select(SkuComponent.component_sku_id)
        .join(ChannelListing, ChannelListing.sku_id == SkuComponent.bundle_sku_id)
        .where(ChannelListing.tenant_id == tenant_id, SkuComponent.component_sku_id.in_(wanted))
    )
    return {int(sku_id) for sku_id in session.scalars(direct.union(in_bundles)) if sku_id is not None}


def pending_pushes(session: Session, channel_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(ChannelListing.channel_id == channel_id, ChannelListing.push_queued.is_(True))
        )
        or 0
    )
