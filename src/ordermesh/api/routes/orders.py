from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from ordermesh.api.deps import (
    HEADER_PARAMETERS,
    AppDep,
    IdempotencyDep,
    IdPath,
    OrderManager,
    Reader,
    authorize,
    idempotency_key_of,
    write_uow,
)
from ordermesh.api.fast_capture import new_order_of
from ordermesh.api.schemas import (
    AwareDatetime,
    CancelRequestBody,
    HoldRequest,
    OrderCreate,
    OrderPage,
    OrderPublic,
    ShipmentEventCreate,
    ShortPickCreate,
)
from ordermesh.bootstrap import Application
from ordermesh.domain.access import Permission
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.services import fulfilment, order_views, orders
from ordermesh.services.orders import CancelLine, CancelReason, CancelRequest

router = APIRouter(prefix="/v1", tags=["orders"])


@router.post(
    "/orders",
    status_code=status.HTTP_201_CREATED,
    response_model=OrderPublic,
    responses={200: {"description": "The order already existed (same channel and external_id, or Idempotency-Key)"}},
    openapi_extra={"parameters": HEADER_PARAMETERS},
)
async def create_order(body: OrderCreate, request: Request, response: Response) -> Any:
    """Capture an order. Repeating it (same channel and external_id, or same Idempotency-Key) answers
    200 with the order already stored and creates nothing."""
    # The common case is answered before FastAPI routes the request (api/fast_capture.py); this
    # route answers every other case. Async, with no dependencies to resolve (see deps.authorize).
    app: Application = request.app.state.ordermesh
    caller = await authorize(request, Permission.WRITE_ORDERS)
    key = await idempotency_key_of(request)
    new = new_order_of(body)
    # A grouped capture awaits its group's commit without holding a worker thread.
    if key is None and app.settings.group_commit:
        captured = await app.intake.capture_async(caller, new)  # shares a transaction with concurrent captures
    else:
        captured = await run_in_threadpool(
            orders.capture_order, write_uow(app, caller, key), caller, new, lookup=app.read_uow()
        )
    response.headers["Location"] = f"/v1/orders/{captured.order_id}"
    if captured.view is not None:
        return captured.view
    response.status_code = status.HTTP_200_OK
    return await run_in_threadpool(order_views.get_order, app.read_uow(), caller, captured.order_id)


@router.get("/orders/{order_id}", response_model=OrderPublic)
def get_order(order_id: IdPath, app: AppDep, caller: Reader) -> Any:
    """The order, its lines with what is allocated where, its shipments and its full history."""
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.get("/orders", response_model=OrderPage)
def list_orders(
    app: AppDep,
    caller: Reader,
    status_: Annotated[str | None, Query(alias="status")] = None,
    channel: str | None = None,
    sku: str | None = None,
    placed_after: AwareDatetime | None = None,
    placed_before: AwareDatetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """Newest first. Pass ``next_cursor`` back as ``cursor`` for the next page."""
    filters = order_views.OrderFilter(status_, channel, sku, placed_after, placed_before, cursor, limit)
    return order_views.list_orders(app.read_uow(), caller, filters)


@router.post("/orders/{order_id}/cancel", response_model=OrderPublic)
def cancel_order(
    order_id: IdPath, body: CancelRequestBody, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    """Cancel the whole order (no ``lines``) or some units of some lines. Releases reservations;
    units already shipped cannot be cancelled."""
    request = CancelRequest(
        reason=CancelReason(body.reason),
        note=body.note,
        lines=[CancelLine(line.line_number, line.quantity) for line in body.lines],
    )
    orders.cancel(write_uow(app, caller, key), caller, order_id, request)
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.post("/orders/{order_id}/hold", response_model=OrderPublic)
def hold_order(order_id: IdPath, body: HoldRequest, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    orders.hold(write_uow(app, caller, key), caller, order_id, body.reason)
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.post("/orders/{order_id}/unhold", response_model=OrderPublic)
def unhold_order(order_id: IdPath, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    orders.release_hold(write_uow(app, caller, key), caller, order_id)
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.post("/orders/{order_id}/release", response_model=OrderPublic)
def release_order(order_id: IdPath, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    """Hand an allocated order to its node(s): one shipment per location."""
    fulfilment.release(write_uow(app, caller, key), caller, order_id)
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.post("/orders/{order_id}/complete", response_model=OrderPublic)
def complete_order(order_id: IdPath, app: AppDep, caller: OrderManager, key: IdempotencyDep) -> Any:
    orders.complete(write_uow(app, caller, key), caller, order_id)
    return order_views.get_order(app.read_uow(), caller, order_id)


@router.get("/shipments/{shipment_id}", tags=["shipments"])
def get_shipment(shipment_id: IdPath, app: AppDep, caller: Reader) -> Any:
    return order_views.get_shipment(app.read_uow(), caller, shipment_id)


@router.post("/shipments/{shipment_id}/events", tags=["shipments"])
def shipment_event(
    shipment_id: IdPath, body: ShipmentEventCreate, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    """A node's report: picked, packed, shipped (with carrier and tracking number), delivered."""
    update = fulfilment.ShipmentUpdate(ShipmentStatus(body.status), body.carrier, body.tracking_number, body.note)
    fulfilment.record_shipment_event(write_uow(app, caller, key), caller, shipment_id, update)
    return order_views.get_shipment(app.read_uow(), caller, shipment_id)


@router.post("/shipments/{shipment_id}/short-pick", tags=["shipments"])
def short_pick(
    shipment_id: IdPath, body: ShortPickCreate, app: AppDep, caller: OrderManager, key: IdempotencyDep
) -> Any:
    """The node cannot pick some units of a line. On-hand there falls by them; the units are routed
    again elsewhere, left waiting for stock or cancelled, as the routing profile says."""
    pick = fulfilment.ShortPick(body.line_number, body.quantity, body.note)
    fulfilment.report_short_pick(write_uow(app, caller, key), caller, shipment_id, pick)
    return order_views.get_shipment(app.read_uow(), caller, shipment_id)
