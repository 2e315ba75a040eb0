"""Every row lock ordermesh takes, in one place, always in one global order:

    orders (by id)  ->  inventory_levels (by tenant, location, SKU)

A transaction that needs both takes the order rows first. Inventory rows are always locked in one
statement sorted by key, so two transactions can never wait on each other in a cycle. On SQLite the
``FOR UPDATE`` clauses are dropped: ``BEGIN IMMEDIATE`` already makes every writer exclusive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from ordermesh.adapters.store.bulk import insert_rows, table_of
from ordermesh.adapters.store.tables import InventoryLevel, Order
from ordermesh.adapters.store.types import utcnow

LevelKey = tuple[int, int]  # (location id, SKU id)


def lock_inventory_levels(session: Session, tenant_id: int, keys: Iterable[LevelKey]) -> dict[LevelKey, InventoryLevel]:
    """Lock (creating at zero where missing) the inventory levels for ``keys`` and return them."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    now = utcnow()
    insert_rows(
        session,
        table_of(InventoryLevel),
        [
            {
                "tenant_id": tenant_id,
                "location_id": location_id,
                "sku_id": sku_id,
                "on_hand": 0,
                "reserved": 0,
                "safety_stock": 0,
                "updated_at": now,
            }
            for location_id, sku_id in wanted
        ],
        skip_conflicts_on=("tenant_id", "location_id", "sku_id"),
    )
    rows = session.scalars(
        select(InventoryLevel)
        .where(
            InventoryLevel.tenant_id == tenant_id,
            tuple_(InventoryLevel.location_id, InventoryLevel.sku_id).in_(wanted),
        )
        .order_by(InventoryLevel.location_id, InventoryLevel.sku_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    return {(row.location_id, row.sku_id): row for row in rows}


def lock_order(session: Session, tenant_id: int, order_id: int) -> Order | None:
    return session.scalar(
        select(Order)
        .where(Order.tenant_id == tenant_id, Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def claim_orders_for_allocation(session: Session, limit: int) -> Sequence[Order]:
    """The next orders the allocator should work on, by priority: earliest ship-by first (orders
    without one after), then first placed. Rows another allocator holds are skipped, not waited for."""
    return session.scalars(
        select(Order)
        .where(Order.needs_allocation.is_(True))
        .order_by(Order.ship_by.asc().nulls_last(), Order.placed_at, Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    ).all()
