"""adapters/store/bulk.py on SQLite and PostgreSQL: rows written in one statement read back exactly
as rows written through the ORM, repeats are skipped, and what comes back identifies each row."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

from ordermesh.adapters.store.bulk import any_of, insert_rows, table_of
from ordermesh.adapters.store.tables import Channel, Order
from ordermesh.bootstrap import Application
from ordermesh.services import tenants


def order_row(tenant_id: int, channel_id: int, external_id: str, **changes: object) -> dict[str, object]:
    now = datetime(2026, 11, 11, 0, 0, 1, 250000, tzinfo=UTC)
    row: dict[str, object] = {
        "tenant_id": tenant_id,
        "channel_id": channel_id,
        "external_id": external_id,
        "status": "pending",
        "currency": "VND",
        "total_amount": Decimal("199000.5"),
        "shipping_address": {"name": "Lan", "province": "Ha Noi", "latitude": 21.0},
        "placed_at": now,
        "ship_by": None,
        "tags": None,
        "needs_allocation": True,
        "avoid_locations": None,
        "hold_reason": None,
        "created_at": now,
        "updated_at": now,
    }
    return row | changes


def test_rows_read_back_as_written_and_repeats_are_skipped(app: Application) -> None:
    tenant_id = tenants.create_tenant(app.uow(), "bulk").tenant_id
    with app.uow() as uow:
        channel_id = uow.session.scalar(select(Channel.id).where(Channel.tenant_id == tenant_id))
        uow.session.add(Order(id=None, **order_row(tenant_id, channel_id, "orm-1")))
        uow.commit()
    rows = [
        order_row(tenant_id, channel_id, "bulk-1", tags=["vip", "11.11"]),
        order_row(tenant_id, channel_id, "orm-1"),  # stored already: skipped
        order_row(tenant_id, channel_id, "bulk-2", ship_by=datetime(2026, 11, 13, 17, tzinfo=UTC)),
    ]
    with app.uow() as uow:
        written = insert_rows(
            uow.session,
            table_of(Order),
            rows,
            returning=("id", "external_id"),
            skip_conflicts_on=("tenant_id", "channel_id", "external_id"),
        )
        uow.commit()
    assert sorted(external_id for _, external_id in written) == ["bulk-1", "bulk-2"]
    with app.read_uow() as uow:
        stored = {
            order.external_id: order for order in uow.session.scalars(select(Order).where(Order.tenant_id == tenant_id))
        }
        assert set(stored) == {"orm-1", "bulk-1", "bulk-2"}
        assert {order_id for order_id, _ in written} == {stored["bulk-1"].id, stored["bulk-2"].id}
        orm, bulk = stored["orm-1"], stored["bulk-1"]
        for column in ("total_amount", "shipping_address", "placed_at", "ship_by", "avoid_locations", "hold_reason"):
            assert getattr(bulk, column) == getattr(orm, column), column
        assert bulk.total_amount == Decimal("199000.5000")
        assert bulk.placed_at == datetime(2026, 11, 11, 0, 0, 1, 250000, tzinfo=UTC)
        assert bulk.tags == ["vip", "11.11"]
        assert stored["bulk-2"].ship_by == datetime(2026, 11, 13, 17, tzinfo=UTC)


def test_nothing_to_write_is_no_statement(app: Application) -> None:
    with app.uow() as uow:
        assert insert_rows(uow.session, table_of(Order), [], returning=("id",)) == []


def test_any_of_selects_exactly_the_values_given_however_many(app: Application) -> None:
    tenant_id = tenants.create_tenant(app.uow(), "any-of").tenant_id
    with app.uow() as uow:
        channel_id = uow.session.scalar(select(Channel.id).where(Channel.tenant_id == tenant_id))
        insert_rows(uow.session, table_of(Order), [order_row(tenant_id, channel_id, f"A{n}") for n in range(30)])
        uow.commit()
    with app.read_uow() as uow:

        def matching(external_ids: list[str]) -> list[str]:
            query = select(Order.external_id).where(
                Order.tenant_id == tenant_id, any_of(uow.session, Order.external_id, external_ids)
            )
            return sorted(uow.session.scalars(query))

        assert matching([]) == []
        assert matching(["A3"]) == ["A3"]
        assert matching(["A1", "A2", "nope", "A29"]) == ["A1", "A2", "A29"]
        assert len(matching([f"A{n}" for n in range(100)])) == 30
