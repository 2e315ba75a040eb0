"""Reading routing decisions back: why an order's units went where they went."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ordermesh.adapters.store.tables import Order, RoutingDecisionRecord
from ordermesh.domain.errors import NotFound
from ordermesh.services.unit_of_work import Caller, UnitOfWork


def decisions_for_order(uow: UnitOfWork, caller: Caller, order_id: int) -> dict[str, Any]:
    with uow:
        exists = uow.session.scalar(select(Order.id).where(Order.tenant_id == caller.tenant_id, Order.id == order_id))
        if exists is None:
            raise NotFound(f"no order {order_id}", code="order_not_found")
        rows = uow.session.scalars(
            select(RoutingDecisionRecord)
            .where(RoutingDecisionRecord.tenant_id == caller.tenant_id, RoutingDecisionRecord.order_id == order_id)
            .order_by(RoutingDecisionRecord.id.desc())
        ).all()
        return {
            "order_id": order_id,
            "decisions": [
                {
                    "id": row.id,
                    "decided_at": row.created_at,
                    "profile": {"name": row.profile_name, "version": row.profile_version},
                    "outcome": row.outcome,
                    "explanation": row.explanation,
                    "trace": row.trace,
                }
                for row in rows
            ],
        }
