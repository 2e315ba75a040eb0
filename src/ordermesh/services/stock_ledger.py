"""Applying inventory movements inside a unit of work.

Every change to a level goes through ``StockLedger.apply``: it updates the locked level row and
appends the movement to the ledger in the same transaction (invariant 2). ``finish`` then writes
one ``inventory.level_changed`` outbox event per touched level and, where availability rose, a
stock-arrival signal that lets the allocator retry backorders.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from ordermesh.adapters.store.bulk import insert_rows, table_of
from ordermesh.adapters.store.locks import LevelKey, lock_inventory_levels
from ordermesh.adapters.store.tables import InventoryLevel, InventoryMovement, StockArrival
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.inventory import Movement, StockLevel
from ordermesh.services import outbox


def level_of(row: InventoryLevel) -> StockLevel:
    return StockLevel(on_hand=row.on_hand, reserved=row.reserved, safety_stock=row.safety_stock)


class StockLedger:
    def __init__(self, session: Session, tenant_id: int, actor: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.actor = actor
        self.levels: dict[LevelKey, InventoryLevel] = {}
        self._available_before: dict[LevelKey, int] = {}
        self._movements: list[dict[str, object]] = []

    def lock(self, keys: Iterable[LevelKey]) -> dict[LevelKey, InventoryLevel]:
        """Lock the levels for ``keys`` (all at once, in the global order). Call once per transaction."""
        self.levels.update(lock_inventory_levels(self.session, self.tenant_id, keys))
        for key, row in self.levels.items():
            self._available_before.setdefault(key, level_of(row).available)
        return self.levels

    def apply(self, key: LevelKey, movement: Movement, *, reference: str | None, note: str | None = None) -> None:
        row = self.levels[key]  # KeyError here means the caller forgot to lock: a bug, never data
        after = level_of(row).apply(movement)
        row.on_hand, row.reserved, row.safety_stock = after.on_hand, after.reserved, after.safety_stock
        row.updated_at = utcnow()
        self._movements.append(
            {
                "tenant_id": self.tenant_id,
                "location_id": key[0],
                "sku_id": key[1],
                "reason": movement.reason.value,
                "on_hand_delta": movement.on_hand_delta,
                "reserved_delta": movement.reserved_delta,
                "safety_stock_delta": movement.safety_stock_delta,
                "reference": reference,
                "note": note,
                "actor": self.actor,
                "created_at": row.updated_at,
            }
        )

    def finish(self) -> bool:
        """Write the ledger rows, the outbox events and the arrival signals. Call before commit.
        Returns whether availability rose anywhere (so the allocator should be woken)."""
        if not self._movements:
            return False
        self.session.flush()  # level rows first, so the ledger and the level change land together
        insert_rows(self.session, table_of(InventoryMovement), self._movements)
        touched: set[LevelKey] = {(int(m["location_id"]), int(m["sku_id"])) for m in self._movements}  # type: ignore[call-overload]
        arrivals: set[int] = set()
        for key in sorted(touched):
            row = self.levels[key]
            level = level_of(row)
            if level.available > self._available_before[key]:
                arrivals.add(row.sku_id)
            outbox.append(
                self.session,
                tenant_id=self.tenant_id,
                aggregate_type="inventory",
                aggregate_id=f"{row.location_id}:{row.sku_id}",
                event_type="inventory.level_changed",
                payload={
                    "location_id": row.location_id,
                    "sku_id": row.sku_id,
                    "on_hand": level.on_hand,
                    "reserved": level.reserved,
                    "safety_stock": level.safety_stock,
                    "available": level.available,
                },
            )
        if arrivals:
            insert_rows(
                self.session,
                table_of(StockArrival),
                [
                    {"tenant_id": self.tenant_id, "sku_id": sku_id, "created_at": utcnow()}
                    for sku_id in sorted(arrivals)
                ],
            )
        self._movements.clear()
        self._available_before = {key: level_of(row).available for key, row in self.levels.items()}
        return bool(arrivals)
