"""Carrier accounts, labels, COD and carrier health; the carriers' tracking webhooks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from ordermesh.api.deps import Administrator, AppDep, IdPath, OrderManager, Reader
from ordermesh.domain.errors import InvalidInput, NotFound, Unauthenticated
from ordermesh.services import carrier_accounts, carrier_booking, carrier_health, carrier_tracking, carrier_webhooks

router = APIRouter(tags=["carriers"])


class CarrierAccountPut(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["ghn", "ghtk", "ninjavan"]
    base_url: str = Field(min_length=8, max_length=500)
    credentials: dict[str, Annotated[str, Field(max_length=500)]] | None = Field(
        default=None,
        description="in the carrier's own terms: ghn {token, shop_id}; ghtk {token, client_source}; "
        "ninjavan {client_id, client_secret, country_code}. Write-only: never returned. Omit to keep.",
    )
    service_levels: list[Annotated[str, Field(min_length=1, max_length=40)]] = Field(
        default_factory=list, max_length=10
    )
    pickup_addresses: dict[str, dict[str, Any]] | None = Field(
        default=None, description="location code -> {name, phone, line1, ward, district, province, country, ...}"
    )
    active: bool = True


@router.put("/v1/carriers/{code}")
def put_carrier(code: str, body: CarrierAccountPut, app: AppDep, caller: Administrator, response: Response) -> Any:
    """Create or replace a carrier account. Register ``webhook_url`` with the carrier."""
    spec = carrier_accounts.AccountSpec(
        kind=body.kind,
        base_url=body.base_url,
        credentials=body.credentials,
        service_levels=body.service_levels,
        pickup_addresses=body.pickup_addresses,
        active=body.active,
    )
    view, created = carrier_accounts.put_account(app.uow(), caller, app.secrets, code, spec)
    response.status_code = 201 if created else 200
    return view


@router.get("/v1/carriers")
def list_carriers(app: AppDep, caller: Reader) -> Any:
    return carrier_accounts.list_accounts(app.read_uow(), caller)


@router.get("/v1/carriers/{code}")
def get_carrier(code: str, app: AppDep, caller: Reader) -> Any:
    return carrier_accounts.get_account(app.read_uow(), caller, code)


@router.get("/v1/carriers/{code}/health")
def carrier_health_view(code: str, app: AppDep, caller: Reader) -> Any:
    """Bookings in the last 24 hours, their error rate, recent errors and dead letters (with retry links)."""
    return carrier_health.health(app.read_uow(), caller, code)


@router.get("/v1/shipments/{shipment_id}/booking", tags=["shipments"])
def get_booking(shipment_id: IdPath, app: AppDep, caller: Reader) -> Any:
    """The shipment's carrier booking: tracking, fee, expected delivery, carrier state, COD."""
    return carrier_booking.get_booking(app.read_uow(), caller, shipment_id)


@router.post("/v1/shipments/{shipment_id}/return-to-sender", tags=["shipments"])
def return_to_sender(shipment_id: IdPath, app: AppDep, caller: OrderManager) -> Any:
    """Ask the carrier to bring a collected, undelivered parcel back (GHN; 409 where the carrier's API
    offers no such request)."""
    return carrier_booking.request_return(app.uow, app.secrets, caller, shipment_id)


@router.get("/v1/shipments/{shipment_id}/label", tags=["shipments"], response_class=Response)
def get_label(shipment_id: IdPath, app: AppDep, caller: Reader) -> Response:
    """The carrier's label document, as the carrier produced it (PDF or HTML)."""
    document, content_type = carrier_booking.label_of(app.read_uow(), caller, shipment_id)
    return Response(document, media_type=content_type)


@router.get("/v1/cod")
def cod(
    app: AppDep,
    caller: Reader,
    status: Annotated[str | None, Query(description="pending, owed, reconciled or all")] = None,
) -> Any:
    """Cash on delivery per shipment, and what each carrier still owes."""
    return carrier_tracking.cod_report(app.read_uow(), caller, status)


def _webhook(kind: str) -> Any:
    async def receive(account: str, request: Request, app: AppDep) -> Any:
        body = await request.body()
        try:
            outcome = await carrier_webhooks.receive_async(
                app, kind, account, dict(request.query_params), dict(request.headers), body
            )
        except carrier_webhooks.Forged as forged:
            raise Unauthenticated(str(forged)) from None
        except carrier_webhooks.UnknownAccount as unknown:
            raise NotFound(str(unknown), code="carrier_account_not_found") from None
        except carrier_webhooks.Unreadable as unreadable:
            raise InvalidInput(str(unreadable), code="unreadable_webhook") from None
        return outcome

    receive.__name__ = f"{kind}_webhook"
    return receive


for _kind in ("ghn", "ghtk", "ninjavan"):
    router.add_api_route(
        f"/webhooks/{_kind}/{{account}}",
        _webhook(_kind),
        methods=["POST"],
        summary=f"{_kind} tracking webhook",
        tags=["webhooks"],
    )
