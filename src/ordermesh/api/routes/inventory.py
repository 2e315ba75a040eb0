from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from ordermesh.api.deps import AppDep, IdempotencyDep, IdQuery, InventoryWriter, Reader, write_uow
from ordermesh.api.schemas import LevelPublic, StockAdjust, StockSet
from ordermesh.services import inventory

router = APIRouter(prefix="/v1/inventory", tags=["inventory"])


@router.put("/{location}/{sku}", response_model=LevelPublic)
def set_stock(location: str, sku: str, body: StockSet, app: AppDep, caller: InventoryWriter) -> Any:
    """Set on-hand to a counted value (an instant override, with a reason); optionally safety stock."""
    count = inventory.StockCount(body.on_hand, body.reason, body.safety_stock, body.reference)
    return inventory.set_on_hand(app.uow(), caller, location, sku, count)


@router.post("/{location}/{sku}/adjustments", response_model=LevelPublic, status_code=201)
def adjust_stock(
    location: str, sku: str, body: StockAdjust, app: AppDep, caller: InventoryWriter, key: IdempotencyDep
) -> Any:
    """Apply a delta to on-hand (receipts positive, damage negative). Send an Idempotency-Key: a
    retried adjustment without one is applied twice."""
    adjustment = inventory.StockAdjustment(body.delta, body.reason, body.reference)
    return inventory.adjust(write_uow(app, caller, key), caller, location, sku, adjustment)


@router.get("/{sku}")
def sku_stock(sku: str, app: AppDep, caller: Reader) -> Any:
    """Each location's level of the SKU and the total (for a bundle: whole bundles buildable)."""
    return inventory.sku_availability(app.read_uow(), caller, sku)


@router.get("/{location}/{sku}")
def level(location: str, sku: str, app: AppDep, caller: Reader) -> Any:
    return inventory.get_level(app.read_uow(), caller, location, sku)


@router.get("/{location}/{sku}/movements")
def movements(
    location: str,
    sku: str,
    app: AppDep,
    caller: Reader,
    before: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The ledger for one level, newest first."""
    return inventory.list_movements(app.read_uow(), caller, location, sku, limit=limit, before=before)
