"""Channel connections, their listings and health (``/v1/channels``), and the marketplaces' webhook
endpoints (``/webhooks/<kind>/<connection id>``, one fixed path per kind)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ordermesh.adapters.channels.registry import ADAPTERS
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError
from ordermesh.adapters.store.tables_channels import ChannelConnection
from ordermesh.adapters.store.types import utcnow
from ordermesh.api import errors
from ordermesh.api.deps import Administrator, AppDep, CatalogWriter, Reader
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import NotFound
from ordermesh.services import channel_intake, channel_sync, channels, inbox
from ordermesh.services.channel_runtime import Connected, connect
from ordermesh.services.unit_of_work import Caller

log = logging.getLogger("ordermesh.channels")
router = APIRouter(prefix="/v1/channels", tags=["channels"])
webhooks = APIRouter(prefix="/webhooks", tags=["webhooks"])

Code = Annotated[str, Path(min_length=1, max_length=64)]
Text = Annotated[str, Field(min_length=1, max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StockRulesIn(Strict):
    buffer: int = Field(default=0, ge=0, le=1_000_000_000)
    share_percent: int = Field(default=100, ge=0, le=100)
    max_exposed: int | None = Field(default=None, ge=0, le=1_000_000_000)


class ChannelPut(Strict):
    kind: str = Field(min_length=1, max_length=20)
    name: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str = Field(min_length=1, max_length=500, description="the platform's API host, or a simulator")
    push_url: str | None = Field(default=None, max_length=500, description="callback URL as registered (Shopee)")
    credentials: dict[str, Annotated[str, Field(max_length=2000)]] | None = Field(
        default=None, description="in the platform's own terms; omit on an update to keep the stored ones"
    )
    locations: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(default=[], max_length=200)
    stock_rules: StockRulesIn = StockRulesIn()


class ListingIn(Strict):
    sku: Text
    item_id: str | None = Field(default=None, min_length=1, max_length=100)
    variant_id: str | None = Field(default=None, min_length=1, max_length=100)
    seller_sku: str | None = Field(default=None, min_length=1, max_length=200)
    title: str | None = Field(default=None, max_length=500)
    location_id: str | None = Field(default=None, max_length=100)
    inventory_item_id: str | None = Field(default=None, max_length=100)


class ListingsPut(Strict):
    listings: list[ListingIn] = Field(min_length=1, max_length=channels.MAX_LISTINGS_PER_CALL)


@router.put("/{code}")
def put_channel(code: Code, body: ChannelPut, app: AppDep, caller: Administrator, response: Response) -> Any:
    """Create or update a marketplace connection. Credentials are stored encrypted and never returned.
    Without ``ORDERMESH_SECRET_KEY`` the app-wide handler answers 503 ``not_configured``."""
    box = app.secrets
    rules = body.stock_rules
    data = channels.ConnectionInput(
        kind=body.kind,
        name=body.name,
        base_url=body.base_url,
        push_url=body.push_url,
        credentials=body.credentials,
        locations=body.locations,
        buffer=rules.buffer,
        share_percent=rules.share_percent,
        max_exposed=rules.max_exposed,
    )
    view, created = channels.put_connection(app.uow(), caller, box, code, data)
    response.status_code = 201 if created else 200
    return view


@router.get("")
def list_channels(app: AppDep, caller: Reader) -> Any:
    return channels.list_connections(app.read_uow(), caller)


@router.get("/{code}")
def get_channel(code: Code, app: AppDep, caller: Reader) -> Any:
    return channels.get_connection(app.read_uow(), caller, code)


@router.get("/{code}/health")
def channel_health(code: Code, app: AppDep, caller: Reader) -> Any:
    """Last push and poll, polling lag, last error, outbound backlog and dead letters (with a retry action)."""
    return channel_sync.health(app.read_uow(), caller, code)


@router.get("/{code}/orders/{external_id}")
def get_channel_order(
    code: Code, external_id: Annotated[str, Path(min_length=1, max_length=128)], app: AppDep, caller: Reader
) -> Any:
    """The platform's side of an order: its raw status beside ordermesh's, money, COD, buyer note."""
    return channels.get_channel_order(app.read_uow(), caller, code, external_id)


@router.put("/{code}/listings")
def put_listings(code: Code, body: ListingsPut, app: AppDep, caller: CatalogWriter) -> Any:
    """Map channel items (item + variant ids, or seller SKU) to ordermesh SKUs."""
    items = [channels.ListingInput(**item.model_dump()) for item in body.listings]
    views = channels.put_listings(app.uow(), caller, code, items)
    _remap(app, caller, code)
    return views


@router.get("/{code}/listings")
def list_listings(code: Code, app: AppDep, caller: Reader) -> Any:
    return channels.list_listings(app.read_uow(), caller, code)


@router.post("/{code}/listings/import")
def import_listings(code: Code, app: AppDep, caller: CatalogWriter, request: Request) -> Any:
    """Read the shop's listings from the platform; map those whose seller SKU is an ordermesh SKU code."""
    ctx = _connected(app, caller, code)
    try:
        found = list(ctx.adapter.listings())
    except (TransientDeliveryError, PermanentDeliveryError) as error:
        return _platform_problem(error, request)
    report = channels.import_listings(app.uow(), caller, code, found)
    _remap(app, caller, code)
    return {"imported": report.imported, "mapped": report.mapped, "unmapped": report.unmapped}


@router.post("/{code}/poll")
def poll_channel(code: Code, app: AppDep, caller: Administrator, request: Request) -> Any:
    """Run the polling fallback for this connection now (it also runs on a schedule)."""
    ctx = _connected(app, caller, code)
    try:
        seen = channel_sync.poll_connection(app, ctx.channel_id)
    except (TransientDeliveryError, PermanentDeliveryError) as error:
        return _platform_problem(error, request)
    return {"orders_seen": seen}


def _connected(app: Application, caller: Caller, code: str) -> Connected:
    with app.read_uow() as uow:
        channel, _ = channels.load(uow, caller, code)
        channel_id = channel.id
    return connect(app, channel_id, caller.tenant_id)


def _remap(app: Application, caller: Caller, code: str) -> None:
    channel_intake.remap_held_orders(app, _connected(app, caller, code))


def _platform_problem(error: Exception, request: Request) -> JSONResponse:
    return errors.problem(502, "channel_unavailable", "Channel platform error", str(error)[:500], request)


# -- webhooks ----------------------------------------------------------------------------------------


def _webhook_route(kind: str) -> Any:
    async def receive(connection: str, request: Request) -> Response:
        return await _receive(kind, connection, request)

    receive.__name__ = f"{kind}_webhook"
    receive.__doc__ = f"{kind} pushes, verified with the platform's own signature over the raw body."
    return receive


# One fixed path per platform (``/webhooks/shopify/{connection}``, ``/webhooks/shopee/{connection}``,
# and any kind added to the registry), answered with an empty 2xx once stored.
for _kind in ADAPTERS:
    webhooks.add_api_route(f"/{_kind}/{{connection}}", _webhook_route(_kind), methods=["POST"], status_code=200)


async def _receive(kind: str, connection: str, request: Request) -> Response:
    app: Application = request.app.state.ordermesh
    body = await request.body()
    headers = {key.lower(): value for key, value in request.headers.items()}
    try:
        ctx = await run_in_threadpool(_webhook_connection, app, kind, connection)
    except NotFound:
        return errors.problem(404, "channel_not_found", "Not found", f"no {kind} connection {connection}", request)
    url = ctx.push_url or str(request.url)
    if not ctx.adapter.verify_push(url=url, headers=headers, body=body):
        return errors.problem(401, "bad_signature", "Bad signature", "the push signature is missing or wrong", request)
    if not body.strip():
        return Response(status_code=200)  # the platform's probe of a new callback URL: nothing to store
    delivery_id, duplicate = await run_in_threadpool(_store, app, ctx, headers, body)
    if not duplicate:
        await run_in_threadpool(_process_now, app, delivery_id)
    return Response(status_code=200)


def _webhook_connection(app: Application, kind: str, connection: str) -> Connected:
    if not connection.isdigit() or len(connection) > 18:
        raise NotFound("no such connection")
    ctx = connect(app, int(connection))
    if ctx.kind != kind:
        raise NotFound("no such connection")
    return ctx


def _store(app: Application, ctx: Connected, headers: dict[str, str], body: bytes) -> tuple[int, bool]:
    try:
        dedupe_key: str | None = ctx.adapter.parse_push(headers=headers, body=body).dedupe_key[:200]
    except Exception:  # unreadable but signed: keep it; processing will report it
        dedupe_key = None
    delivery_id, duplicate = inbox.store(
        app.uow(),
        tenant_id=ctx.tenant_id,
        source=ctx.kind,
        account=str(ctx.channel_id),
        dedupe_key=dedupe_key,
        headers=headers,
        body=body,
    )
    with app.uow() as uow:
        connection = uow.session.get(ChannelConnection, ctx.channel_id)
        if connection is not None:
            connection.last_push_at = utcnow()
        uow.commit()
    return delivery_id, duplicate


def _process_now(app: Application, delivery_id: int) -> None:
    """The quick path; when it fails the worker retries the stored delivery with backoff."""
    try:
        inbox.process_one(app, delivery_id)
    except Exception as error:
        log.warning("delivery %s left for the worker: %s", delivery_id, error)
