"""SLA policies and the SLA board; returns (RMA)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status

from ordermesh.api.deps import AppDep, CatalogWriter, IdempotencyDep, IdPath, IdQuery, OrderManager, Reader, write_uow
from ordermesh.api.schemas import AwareDatetime, Code
from ordermesh.api.schemas_aftersales import ReturnCreate, ReturnNote, ReturnReceive, ReturnRejection, SlaPolicyPut
from ordermesh.domain.returns import Disposition
from ordermesh.services import return_views, returns, sla

router = APIRouter(prefix="/v1")
ChannelCode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]*$")]


@router.put("/channels/{code}/sla-policy", tags=["sla"])
def put_sla_policy(code: ChannelCode, body: SlaPolicyPut, app: AppDep, caller: CatalogWriter) -> Any:
    """How the channel's ship-by deadlines are set (marketplace deadline, else the rule) and what the
    SLA monitor does about orders at risk or breached."""
    return sla.put_policy(app.uow(), caller, code, body.model_dump())


@router.get("/channels/{code}/sla-policy", tags=["sla"])
def get_sla_policy(code: ChannelCode, app: AppDep, caller: Reader) -> Any:
    """The channel's policy (the defaults when none was set)."""
    return sla.get_policy(app.read_uow(), caller, code)


@router.get("/sla/board", tags=["sla"])
def sla_board(
    app: AppDep,
    caller: Reader,
    channel: Code | None = None,
    location: Code | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """Counts of open orders by SLA state, by channel and by node; at-risk and breached orders,
    soonest deadline first."""
    return sla.board(app.read_uow(), caller, channel=channel, location=location, limit=limit)


@router.post("/orders/{order_id}/returns", tags=["returns"], status_code=status.HTTP_201_CREATED)
def open_return(order_id: IdPath, body: ReturnCreate, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    """Open a return of some shipped units (lines and quantities); it starts as requested."""
    items = [returns.ReturnItem(line.line_number, line.quantity) for line in body.lines]
    return_id = returns.open_return(write_uow(app, caller, key), caller, order_id, items, body.reason, body.note)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.get("/returns", tags=["returns"])
def list_returns(
    app: AppDep,
    caller: Reader,
    status_: Annotated[str | None, Query(alias="status")] = None,
    origin: str | None = None,
    order_id: IdQuery = None,
    channel: Code | None = None,
    created_after: AwareDatetime | None = None,
    created_before: AwareDatetime | None = None,
    after_id: IdQuery = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """Newest first; pass ``next_after_id`` back as ``after_id`` for the next page."""
    filters = return_views.ReturnFilter(
        status_, origin, order_id, channel, created_after, created_before, after_id, limit
    )
    return return_views.list_returns(app.read_uow(), caller, filters)


@router.get("/returns/{return_id}", tags=["returns"])
def get_return(return_id: IdPath, app: AppDep, caller: Reader) -> Any:
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/approve", tags=["returns"])
def approve_return(return_id: IdPath, body: ReturnNote, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    returns.approve(write_uow(app, caller, key), caller, return_id, body.note)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/reject", tags=["returns"])
def reject_return(
    return_id: IdPath, body: ReturnRejection, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    returns.reject(write_uow(app, caller, key), caller, return_id, body.reason)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/in-transit", tags=["returns"])
def return_in_transit(
    return_id: IdPath, body: ReturnNote, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    returns.mark_in_transit(write_uow(app, caller, key), caller, return_id, body.note)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/receive", tags=["returns"])
def receive_return(
    return_id: IdPath, body: ReturnReceive, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    """What arrived, where, and what becomes of each unit: restock (on-hand rises through the ledger),
    quarantine or dispose. Any location may receive, not only the one that shipped."""
    items = [
        returns.ReceivedItem(item.line_number, item.quantity, Disposition(item.disposition), item.location)
        for item in body.items
    ]
    returns.receive(write_uow(app, caller, key), caller, return_id, items, body.location)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/refund", tags=["returns"])
def refund_return(return_id: IdPath, body: ReturnNote, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    """Record the refund of the received units (computed per line) and tell the channel and the ERP."""
    returns.refund(write_uow(app, caller, key), caller, return_id, body.note)
    return return_views.get_return(app.read_uow(), caller, return_id)


@router.post("/returns/{return_id}/close", tags=["returns"])
def close_return(return_id: IdPath, body: ReturnNote, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    returns.close(write_uow(app, caller, key), caller, return_id, body.note)
    return return_views.get_return(app.read_uow(), caller, return_id)
