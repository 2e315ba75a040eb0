"""Stock levels: counts (overrides), adjustments, safety stock, and what is available where."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from ordermesh.adapters.store.tables import InventoryLevel, InventoryMovement, Location, Sku, SkuComponent
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.inventory import MovementReason
from ordermesh.services.rerouting import request_reroute
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class StockCount:
    on_hand: int
    reason: str  # why the count overrides the books: "cycle count", "stock take", ...
    safety_stock: int | None = None
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class StockAdjustment:
    delta: int
    reason: str  # "receipt", "damaged", "found", ...
    reference: str | None = None


def _resolve(uow: UnitOfWork, caller: Caller, location_code: str, sku_code: str) -> tuple[Location, Sku]:
    location = uow.session.scalar(
        select(Location).where(Location.tenant_id == caller.tenant_id, Location.code == location_code)
    )
    if location is None:
        raise NotFound(f"no location {location_code!r}", code="location_not_found")
    sku = uow.session.scalar(select(Sku).where(Sku.tenant_id == caller.tenant_id, Sku.code == sku_code))
    if sku is None:
        raise NotFound(f"no SKU {sku_code!r}", code="sku_not_found")
    is_bundle = uow.session.scalar(
        select(SkuComponent.bundle_sku_id).where(SkuComponent.bundle_sku_id == sku.id).limit(1)
    )
    if is_bundle is not None:
        raise InvalidInput(
            f"{sku_code!r} is a bundle; stock is kept for its components",
            code="bundle_has_no_stock",
            field="sku",
        )
    return location, sku


def _note(text: str, field: str) -> str:
    text = (text or "").strip()
    if not text:
        raise InvalidInput(f"{field} is required", field=field)
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"{field} is longer than {MAX_NOTE} characters", field=field)
    return text


def set_on_hand(
    uow: UnitOfWork, caller: Caller, location_code: str, sku_code: str, count: StockCount
) -> dict[str, object]:
    """Override on-hand with a counted value. Reservations stay: if the count is below what is
    reserved, ``available`` goes negative and the affected orders need attention (see rerouting)."""
    note = _note(count.reason, "reason")
    if count.on_hand < 0:
        raise InvalidInput("on_hand cannot be negative", field="on_hand")
    with uow:
        location, sku = _resolve(uow, caller, location_code, sku_code)
        ledger = StockLedger(uow.session, caller.tenant_id, caller.actor)
        key = (location.id, sku.id)
        row = ledger.lock([key])[key]
        movement = level_of(row).count(count.on_hand)
        if movement.on_hand_delta:
            ledger.apply(key, movement, reference=count.reference, note=note)
        if count.safety_stock is not None and count.safety_stock != row.safety_stock:
            ledger.apply(key, level_of(row).set_safety_stock(count.safety_stock), reference=count.reference, note=note)
        _reroute_if_short(uow, caller, key, row, f"count at {location.code} left fewer units than promised")
        uow.wake_allocator = ledger.finish()
        uow.record_result("inventory_level", f"{location.code}/{sku.code}")
        uow.commit()
        return level_view(location.code, sku.code, row)


def adjust(
    uow: UnitOfWork, caller: Caller, location_code: str, sku_code: str, adjustment: StockAdjustment
) -> dict[str, object]:
    note = _note(adjustment.reason, "reason")
    with uow:
        location, sku = _resolve(uow, caller, location_code, sku_code)
        ledger = StockLedger(uow.session, caller.tenant_id, caller.actor)
        key = (location.id, sku.id)
        row = ledger.lock([key])[key]
        ledger.apply(key, level_of(row).adjust(adjustment.delta), reference=adjustment.reference, note=note)
        _reroute_if_short(uow, caller, key, row, f"adjustment at {location.code} left fewer units than promised")
        uow.wake_allocator = ledger.finish()
        uow.record_result("inventory_level", f"{location.code}/{sku.code}")
        uow.commit()
        return level_view(location.code, sku.code, row)


def _reroute_if_short(uow: UnitOfWork, caller: Caller, key: tuple[int, int], row: InventoryLevel, reason: str) -> None:
    """Fewer units than promised: ask the worker to take back unreleased reservations here."""
    if level_of(row).available < 0 and row.reserved > 0:
        request_reroute(uow.session, caller.tenant_id, key[0], key[1], reason)
        uow.wake_allocator = True


def level_view(location_code: str, sku_code: str, row: InventoryLevel | None) -> dict[str, object]:
    level = level_of(row) if row is not None else None
    return {
        "location": location_code,
        "sku": sku_code,
        "on_hand": level.on_hand if level else 0,
        "reserved": level.reserved if level else 0,
        "safety_stock": level.safety_stock if level else 0,
        "available": level.available if level else 0,
    }


def get_level(uow: UnitOfWork, caller: Caller, location_code: str, sku_code: str) -> dict[str, object]:
    with uow:
        location, sku = _resolve(uow, caller, location_code, sku_code)
        row = uow.session.scalar(
            select(InventoryLevel).where(
                InventoryLevel.tenant_id == caller.tenant_id,
                InventoryLevel.location_id == location.id,
                InventoryLevel.sku_id == sku.id,
            )
        )
        return level_view(location.code, sku.code, row)


def sku_availability(uow: UnitOfWork, caller: Caller, sku_code: str) -> dict[str, object]:
    """Each location's level of a SKU and the total. For a bundle: how many whole bundles each
    location could make from its components' available stock."""
    with uow:
        session = uow.session
        sku = session.scalar(select(Sku).where(Sku.tenant_id == caller.tenant_id, Sku.code == sku_code))
        if sku is None:
            raise NotFound(f"no SKU {sku_code!r}", code="sku_not_found")
        components = dict(
            session.execute(
                select(SkuComponent.component_sku_id, SkuComponent.quantity).where(SkuComponent.bundle_sku_id == sku.id)
            ).all()
        )
        locations = session.scalars(
            select(Location).where(Location.tenant_id == caller.tenant_id).order_by(Location.code)
        ).all()
        wanted = list(components) if components else [sku.id]
        levels = {
            (row.location_id, row.sku_id): row
            for row in session.scalars(
                select(InventoryLevel).where(
                    InventoryLevel.tenant_id == caller.tenant_id, InventoryLevel.sku_id.in_(wanted)
                )
            )
        }
        rows = []
        for location in locations:
            if components:
                buildable = min(
                    max(level_of(levels[(location.id, c)]).available, 0) // q if (location.id, c) in levels else 0
                    for c, q in components.items()
                )
                rows.append({"location": location.code, "active": location.active, "available": buildable})
            else:
                view = level_view(location.code, sku.code, levels.get((location.id, sku.id)))
                rows.append({**view, "active": location.active})
        total_keys = ("on_hand", "reserved", "safety_stock", "available")
        total = {
            k: sum(int(r.get(k, 0)) for r in rows)  # type: ignore[call-overload]
            for k in total_keys
            if not components or k == "available"
        }
        return {"sku": sku.code, "bundle": bool(components), "locations": rows, "total": total}


def list_movements(
    uow: UnitOfWork,
    caller: Caller,
    location_code: str,
    sku_code: str,
    *,
    limit: int = 100,
    before: int | None = None,
) -> list[dict[str, object]]:
    with uow:
        location, sku = _resolve(uow, caller, location_code, sku_code)
        query = (
            select(InventoryMovement)
            .where(
                InventoryMovement.tenant_id == caller.tenant_id,
                InventoryMovement.location_id == location.id,
                InventoryMovement.sku_id == sku.id,
            )
            .order_by(InventoryMovement.id.desc())
            .limit(limit)
        )
        if before is not None:
            query = query.where(InventoryMovement.id < before)
        return [
            {
                "id": m.id,
                "reason": m.reason,
                "on_hand_delta": m.on_hand_delta,
                "reserved_delta": m.reserved_delta,
                "safety_stock_delta": m.safety_stock_delta,
                "reference": m.reference,
                "note": m.note,
                "actor": m.actor,
                "created_at": m.created_at.isoformat(),
            }
            for m in uow.session.scalars(query)
        ]


__all__ = ["MovementReason", "StockAdjustment", "StockCount", "adjust", "set_on_hand", "sku_availability"]
