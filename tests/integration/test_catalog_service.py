"""SKUs (with bundles) and locations through the real catalogue service, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from ordermesh.adapters.store.tables import Location, Sku, SkuComponent
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.services import catalog, inventory, tenants
from ordermesh.services.catalog import LocationInput, SkuInput
from ordermesh.services.unit_of_work import Caller


def catalogue(app: Application, tenant_id: int) -> dict[str, Any]:
    """Every SKU, component and location of the tenant, for 'nothing changed' asserts."""
    with app.read_uow() as uow:
        session = uow.session
        codes = dict(session.execute(select(Sku.id, Sku.code).where(Sku.tenant_id == tenant_id)).all())
        return {
            "skus": sorted(
                (s.code, s.name, s.weight_grams) for s in session.scalars(select(Sku).where(Sku.tenant_id == tenant_id))
            ),
            "components": sorted(
                (codes[c.bundle_sku_id], codes[c.component_sku_id], c.quantity)
                for c in session.scalars(select(SkuComponent).where(SkuComponent.tenant_id == tenant_id))
            ),
            "locations": sorted(
                (loc.code, loc.name, loc.active)
                for loc in session.scalars(select(Location).where(Location.tenant_id == tenant_id))
            ),
        }


def test_upsert_creates_skus_and_bundles_with_their_components(app: Application, caller: Caller) -> None:
    written = catalog.upsert_skus(
        app.uow(),
        caller,
        [
            SkuInput("TEE-M", "T-shirt M", 180),
            SkuInput("CAP", "Cap", 90),
            SkuInput("SET", "Tee and two caps", 0, {"TEE-M": 1, "CAP": 2}),
        ],
    )

    assert written == ["TEE-M", "CAP", "SET"]
    assert catalog.get_sku(app.read_uow(), caller, "SET") == {
        "code": "SET",
        "name": "Tee and two caps",
        "weight_grams": 0,
        "components": {"CAP": 2, "TEE-M": 1},
    }
    assert catalog.get_sku(app.read_uow(), caller, "CAP")["components"] == {}


def test_upsert_updates_existing_skus_in_place_and_replaces_bundle_components(app: Application, caller: Caller) -> None:
    catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple"), SkuInput("B", "Banana")])
    catalog.upsert_skus(app.uow(), caller, [SkuInput("K", "Kit", 0, {"A": 1, "B": 1})])
    with app.read_uow() as uow:
        ids_before = dict(uow.session.execute(select(Sku.code, Sku.id)).all())

    catalog.upsert_skus(app.uow(), caller, [SkuInput("A", " Green apple ", 150), SkuInput("K", "Kit", 0, {"A": 3})])

    with app.read_uow() as uow:
        ids_after = dict(uow.session.execute(select(Sku.code, Sku.id)).all())
    assert ids_after == ids_before
    assert catalogue(app, caller.tenant_id)["skus"] == [("A", "Green apple", 150), ("B", "Banana", 0), ("K", "Kit", 0)]
    assert catalogue(app, caller.tenant_id)["components"] == [("K", "A", 3)]


def test_a_large_reimport_replaces_every_bundle_with_a_few_statements(app: Application, caller: Caller) -> None:
    plain = [SkuInput(f"P{i:04d}", f"Part {i}") for i in range(2_600)]
    catalog.upsert_skus(
        app.uow(), caller, [*plain, *(SkuInput(f"K{i:04d}", "Kit", 0, {f"P{i:04d}": 1}) for i in range(2_500))]
    )
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(app.engine, "before_cursor_execute", seen)
    try:
        kits = [SkuInput(f"K{i:04d}", "Kit", 0, {f"P{i + 1:04d}": 2}) for i in range(2_500)]
        catalog.upsert_skus(app.uow(), caller, [*plain, *kits])
    finally:
        event.remove(app.engine, "before_cursor_execute", seen)

    components = catalogue(app, caller.tenant_id)["components"]
    assert components == [(f"K{i:04d}", f"P{i + 1:04d}", 2) for i in range(2_500)]
    # One DELETE per 1,000 rewritten bundles, not one per SKU (each of those also searched the session).
    assert sum(statement.lstrip().upper().startswith("DELETE") for statement in statements) == 3


@pytest.mark.parametrize(
    ("items", "errors"),
    [
        pytest.param(
            [SkuInput("A", "Apple"), SkuInput("bad code", ""), SkuInput("A", "Again")],
            [
                {"row": 2, "field": "code", "message": "code must be 1-64 letters, digits or . _ -"},
                {"row": 2, "field": "name", "message": "name is required"},
                {"row": 3, "field": "code", "message": "duplicate code 'A' (it appears earlier in the input)"},
            ],
            id="bad-rows",
        ),
        pytest.param(
            [SkuInput("A", "Apple"), SkuInput("K", "Kit", 0, {"K": 1, "A": 0, "GHOST": 1})],
            [
                {"row": 2, "field": "components", "message": "a bundle cannot contain itself"},
                {"row": 2, "field": "components", "message": "component 'A' needs a positive quantity"},
                {"row": 2, "field": "components", "message": "component 'GHOST' is not a known non-bundle SKU"},
            ],
            id="bad-components",
        ),
        pytest.param(
            [SkuInput("A", "Apple"), SkuInput("K1", "Kit", 0, {"A": 1}), SkuInput("K2", "Kit of kits", 0, {"K1": 1})],
            [{"row": 3, "field": "components", "message": "component 'K1' is not a known non-bundle SKU"}],
            id="bundle-of-bundles",
        ),
        pytest.param(
            [SkuInput("A", "Apple", -1)],
            [{"row": 1, "field": "weight_grams", "message": "weight cannot be negative"}],
            id="negative-weight",
        ),
    ],
)
def test_invalid_rows_are_all_reported_and_nothing_is_written(
    app: Application, caller: Caller, items: list[SkuInput], errors: list[dict[str, object]]
) -> None:
    catalog.upsert_skus(app.uow(), caller, [SkuInput("EXISTING", "Existing")])
    before = catalogue(app, caller.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        catalog.upsert_skus(app.uow(), caller, items)

    assert raised.value.code == "invalid_rows"
    assert raised.value.details["errors"] == errors
    assert catalogue(app, caller.tenant_id) == before


def test_an_existing_bundle_cannot_become_a_component(app: Application, caller: Caller) -> None:
    catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple"), SkuInput("K1", "Kit", 0, {"A": 1})])
    before = catalogue(app, caller.tenant_id)

    with pytest.raises(InvalidInput):
        catalog.upsert_skus(app.uow(), caller, [SkuInput("K2", "Kit of kits", 0, {"K1": 2})])

    assert catalogue(app, caller.tenant_id) == before


def test_an_existing_component_cannot_become_a_bundle(app: Application, caller: Caller) -> None:
    """Stock is kept only for plain SKUs: a component turned into a bundle would make every bundle
    that contains it impossible to stock or allocate."""
    catalog.upsert_skus(
        app.uow(), caller, [SkuInput("A", "Apple"), SkuInput("B", "Banana"), SkuInput("K", "Kit", 0, {"A": 1})]
    )
    before = catalogue(app, caller.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple pack", 0, {"B": 2})])

    assert raised.value.details["errors"] == [
        {"row": 1, "field": "components", "message": "'A' is a component of another bundle and must stay plain"}
    ]
    assert catalogue(app, caller.tenant_id) == before


def test_a_sku_holding_stock_cannot_become_a_bundle(app: Application, caller: Caller) -> None:
    """Its units and reservations would be orphaned: stock is kept only for plain SKUs."""
    catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple"), SkuInput("B", "Banana"), SkuInput("C", "Cherry")])
    catalog.upsert_location(app.uow(), caller, "HN", catalog.LocationInput("Ha Noi"))
    inventory.set_on_hand(app.uow(), caller, "HN", "A", inventory.StockCount(3, "count"))
    before = catalogue(app, caller.tenant_id)

    with pytest.raises(InvalidInput) as raised:
        catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple pack", 0, {"B": 2})])

    assert raised.value.details["errors"] == [
        {"row": 1, "field": "components", "message": "'A' holds stock or appears on orders; it cannot become a bundle"}
    ]
    assert catalogue(app, caller.tenant_id) == before
    # A plain SKU that never held stock may still become a bundle.
    catalog.upsert_skus(app.uow(), caller, [SkuInput("C", "Cherry pack", 0, {"B": 2})])
    assert catalog.get_sku(app.read_uow(), caller, "C")["components"] == {"B": 2}


def test_skus_list_in_code_order_and_page_with_after(app: Application, caller: Caller) -> None:
    catalog.upsert_skus(app.uow(), caller, [SkuInput(code, code.lower()) for code in ("C", "A", "D", "B")])

    first = catalog.list_skus(app.read_uow(), caller, limit=3)
    second = catalog.list_skus(app.read_uow(), caller, after=str(first[-1]["code"]), limit=3)

    assert [s["code"] for s in first] == ["A", "B", "C"]
    assert [s["code"] for s in second] == ["D"]


def test_upsert_location_creates_then_updates(app: Application, caller: Caller) -> None:
    data = LocationInput(
        "Ha Noi DC",
        "warehouse",
        21.03,
        105.85,
        500,
        "16:30",
        "Asia/Ho_Chi_Minh",
        country="vn",
        province="Ha Noi",
        channels=["shopee", "direct"],
        working_weekdays=[5, 0, 1, 2, 3, 4],
        closed_dates=["2027-02-16"],
    )

    view, created = catalog.upsert_location(app.uow(), caller, "HN-1", data)
    again, created_again = catalog.upsert_location(
        app.uow(), caller, "HN-1", LocationInput("Ha Noi DC", "3pl", active=False)
    )

    assert created is True
    assert view == {
        "code": "HN-1",
        "name": "Ha Noi DC",
        "kind": "warehouse",
        "latitude": 21.03,
        "longitude": 105.85,
        "daily_capacity": 500,
        "cutoff_time": "16:30",
        "time_zone": "Asia/Ho_Chi_Minh",
        "active": True,
        "country": "VN",
        "province": "Ha Noi",
        "channels": ["direct", "shopee"],
        "working_weekdays": [0, 1, 2, 3, 4, 5],
        "closed_dates": ["2027-02-16"],
    }
    assert created_again is False
    assert (again["kind"], again["latitude"], again["active"]) == ("3pl", None, False)
    assert [loc["code"] for loc in catalog.list_locations(app.read_uow(), caller)] == ["HN-1"]


def test_invalid_location_is_refused_and_nothing_is_written(app: Application, caller: Caller) -> None:
    catalog.upsert_location(app.uow(), caller, "HN", LocationInput("Ha Noi"))
    before = catalogue(app, caller.tenant_id)
    cases = {
        "code": ("bad code!", LocationInput("X")),
        "name": ("HN", LocationInput("  ")),
        "kind": ("HN", LocationInput("X", kind="shop")),
        "latitude": ("HN", LocationInput("X", latitude=21.0)),
        "longitude": ("HN", LocationInput("X", latitude=21.0, longitude=181.0)),
        "daily_capacity": ("HN", LocationInput("X", daily_capacity=-1)),
        "cutoff_time": ("HN", LocationInput("X", cutoff_time="25:00")),
        "time_zone": ("HN", LocationInput("X", time_zone="Mars/Olympus")),
    }
    refused = {}

    for field, (code, data) in cases.items():
        with pytest.raises(InvalidInput) as raised:
            catalog.upsert_location(app.uow(), caller, code, data)
        refused[field] = raised.value.details["field"]

    assert refused == {field: field for field in cases}
    assert catalogue(app, caller.tenant_id) == before


def test_a_tenant_never_sees_another_tenants_catalogue(app: Application, caller: Caller) -> None:
    catalog.upsert_skus(app.uow(), caller, [SkuInput("A", "Apple")])
    catalog.upsert_location(app.uow(), caller, "HN", LocationInput("Ha Noi"))
    other = tenants.create_tenant(app.uow(), "other-tenant")
    intruder = Caller(other.tenant_id, "admin", "intruder")

    with pytest.raises(NotFound):
        catalog.get_sku(app.read_uow(), intruder, "A")
    with pytest.raises(NotFound):
        catalog.get_location(app.read_uow(), intruder, "HN")
    assert catalog.list_skus(app.read_uow(), intruder) == []
    assert catalog.list_locations(app.read_uow(), intruder) == []
    # The same codes are free for the other tenant, and writing them leaves the first tenant alone.
    before = catalogue(app, caller.tenant_id)
    catalog.upsert_skus(app.uow(), intruder, [SkuInput("A", "Another apple")])
    catalog.upsert_location(app.uow(), intruder, "HN", LocationInput("Another Ha Noi"))
    assert catalogue(app, caller.tenant_id) == before
    assert catalog.get_sku(app.read_uow(), intruder, "A")["name"] == "Another apple"
