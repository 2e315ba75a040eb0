"""Reading returns: one return in full, and filtered, newest-first lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.tables import Channel, Location, Order
from ordermesh.adapters.store.tables_sla_returns import Return, ReturnLine, ReturnReceipt
from ordermesh.domain.errors import InvalidInput, NotFound
from ordermesh.domain.returns import ReturnOrigin, ReturnStatus
from ordermesh.services.unit_of_work import Caller, UnitOfWork

MAX_PAGE = 200


@dataclass(frozen=True, slots=True)
class ReturnFilter:
    status: str | None = None
    origin: str | None = None
    order_id: int | None = None
    channel: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    after_id: int | None = None  # keyset: returns with a smaller id (newest first)
    limit: int = 50


def get_return(uow: UnitOfWork, caller: Caller, return_id: int) -> dict[str, Any]:
    with uow:
        record = uow.session.scalar(select(Return).where(Return.tenant_id == caller.tenant_id, Return.id == return_id))
        if record is None:
            raise NotFound(f"no return {return_id}", code="return_not_found")
        return render(uow.session, [record])[0]


def list_returns(uow: UnitOfWork, caller: Caller, filters: ReturnFilter) -> dict[str, Any]:
    if filters.status is not None and filters.status not in {s.value for s in ReturnStatus}:
        raise InvalidInput(f"unknown status {filters.status!r}", field="status")
    if filters.origin is not None and filters.origin not in {o.value for o in ReturnOrigin}:
        raise InvalidInput(f"unknown origin {filters.origin!r}", field="origin")
    if not 1 <= filters.limit <= MAX_PAGE:
        raise InvalidInput(f"limit must be 1 to {MAX_PAGE}", field="limit")
    with uow:
        query = select(Return).where(Return.tenant_id == caller.tenant_id)
        if filters.status:
            query = query.where(Return.status == filters.status)
        if filters.origin:
            query = query.where(Return.origin == filters.origin)
        if filters.order_id:
            query = query.where(Return.order_id == filters.order_id)
        if filters.channel:
            query = (
                query.join(Order, Order.id == Return.order_id)
                .join(Channel, Channel.id == Order.channel_id)
                .where(Channel.code == filters.channel)
            )
        if filters.created_after:
            query = query.where(Return.created_at >= filters.created_after)
        if filters.created_before:
            query = query.where(Return.created_at < filters.created_before)
        if filters.after_id:
            query = query.where(Return.id < filters.after_id)
        rows = list(uow.session.scalars(query.order_by(Return.id.desc()).limit(filters.limit + 1)))
        page = rows[: filters.limit]
        return {
            "items": render(uow.session, page),
            "next_after_id": page[-1].id if len(rows) > filters.limit else None,
        }


def render(session: Session, records: list[Return]) -> list[dict[str, Any]]:
    if not records:
        return []
    ids = [r.id for r in records]
    lines: dict[int, list[ReturnLine]] = {}
    for line in session.scalars(
        select(ReturnLine).where(ReturnLine.return_id.in_(ids)).order_by(ReturnLine.line_number)
    ):
        lines.setdefault(line.return_id, []).append(line)
    receipts: dict[int, list[ReturnReceipt]] = {}
    for receipt in session.scalars(
        select(ReturnReceipt).where(ReturnReceipt.return_id.in_(ids)).order_by(ReturnReceipt.id)
    ):
        receipts.setdefault(receipt.return_line_id, []).append(receipt)
    codes = dict(
        session.execute(select(Location.id, Location.code).where(Location.tenant_id == records[0].tenant_id)).all()
    )
    return [
        {
            "id": r.id,
            "order_id": r.order_id,
            "status": r.status,
            "origin": r.origin,
            "reason": r.reason,
            "note": r.note,
            "external_ref": r.external_ref,
            "refund_amount": str(r.refund_amount) if r.refund_amount is not None else None,
            "lines": [
                {
                    "line_number": line.line_number,
                    "quantity": line.quantity,
                    "received_quantity": line.received_quantity,
                    "refund_amount": str(line.refund_amount) if line.refund_amount is not None else None,
                    "receipts": [
                        {
                            "location": codes.get(receipt.location_id),
                            "disposition": receipt.disposition,
                            "quantity": receipt.quantity,
                            "at": receipt.created_at,
                        }
                        for receipt in receipts.get(line.id, [])
                    ],
                }
                for line in lines.get(r.id, [])
            ],
            "created_at": r.created_at,
            "updated_at": r.updated_at,
        }
        for r in records
    ]
