"""A small shop most service tests start from: two locations, three SKUs (one a bundle), a customer."""

from __future__ import annotations

from sqlalchemy import func, select

from ordermesh.adapters.store.tables import InventoryLevel, InventoryMovement
from ordermesh.bootstrap import Application
from ordermesh.services import catalog, inventory
from ordermesh.services.unit_of_work import Caller

HANOI = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}
HANOI |= {"latitude": 21.02, "longitude": 105.84}


def open_shop(app: Application, caller: Caller) -> Caller:
    """Locations HN (near the customer) and SG; SKUs A, B and KIT = 2 x A + 1 x B; no stock yet."""
    catalog.upsert_location(app.uow(), caller, "HN", catalog.LocationInput("HN", latitude=21.03, longitude=105.85))
    catalog.upsert_location(app.uow(), caller, "SG", catalog.LocationInput("SG", latitude=10.78, longitude=106.70))
    catalog.upsert_skus(
        app.uow(),
        caller,
        [
            catalog.SkuInput("A", "Apple"),
            catalog.SkuInput("B", "Banana"),
            catalog.SkuInput("KIT", "Kit", 0, {"A": 2, "B": 1}),
        ],
    )
    return caller


def stock(app: Application, caller: Caller, location: str, sku: str, on_hand: int) -> None:
    inventory.set_on_hand(app.uow(), caller, location, sku, inventory.StockCount(on_hand, "stock take"))


Counts = dict[tuple[int, int], tuple[int, int, int]]  # (location, SKU) -> (on_hand, reserved, safety_stock)


def levels_and_ledger(app: Application, tenant_id: int) -> tuple[Counts, Counts]:
    """Every level of the tenant, and the sums of its ledger movements, keyed the same way."""
    with app.read_uow() as uow:
        levels = {
            (r.location_id, r.sku_id): (r.on_hand, r.reserved, r.safety_stock)
            for r in uow.session.scalars(select(InventoryLevel).where(InventoryLevel.tenant_id == tenant_id))
        }
        sums = {
            (location_id, sku_id): (int(on_hand), int(reserved), int(safety))
            for location_id, sku_id, on_hand, reserved, safety in uow.session.execute(
                select(
                    InventoryMovement.location_id,
                    InventoryMovement.sku_id,
                    func.sum(InventoryMovement.on_hand_delta),
                    func.sum(InventoryMovement.reserved_delta),
                    func.sum(InventoryMovement.safety_stock_delta),
                )
                .where(InventoryMovement.tenant_id == tenant_id)
                .group_by(InventoryMovement.location_id, InventoryMovement.sku_id)
            )
        }
    return levels, sums
