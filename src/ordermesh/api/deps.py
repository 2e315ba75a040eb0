"""Everything a route needs, as ``Annotated`` dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from ordermesh.bootstrap import Application
from ordermesh.domain.access import Permission, ensure_permitted
from ordermesh.domain.errors import InvalidInput, Unauthenticated
from ordermesh.services import tenants
from ordermesh.services.unit_of_work import Caller, IdempotencyKey, UnitOfWork

AUTH_CACHE_SECONDS = 30.0
MAX_ID = 2**63 - 1  # ids are BIGINT: a larger number names nothing and must not reach the database

IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
_auth_cache: dict[str, tuple[float, Caller]] = {}


async def get_app(request: Request) -> Application:
    application: Application = request.app.state.ordermesh
    return application


AppDep = Annotated[Application, Depends(get_app)]


def caller_of(app: Application, authorization: str | None) -> Caller:
    """The caller an ``Authorization`` header names (a database read at most every 30 s per key)."""
    key = _bearer_key(authorization)
    cached = _cached(key)
    return cached if cached is not None else _authenticate(app, key)


# The dependencies below are async on purpose: FastAPI runs a plain ``def`` dependency in a worker
# thread, and the thread hops cost more CPU than the work on the hot path (the flash-sale profile).
async def get_caller(app: AppDep, authorization: Annotated[str | None, Header()] = None) -> Caller:
    key = _bearer_key(authorization)
    cached = _cached(key)
    if cached is not None:
        return cached
    # One lookup per key at a time: when the entry expires (or at start) under load, hundreds of
    # requests with the same key miss together, and each ran its own query (2% of the API's CPU in
    # a hot-SKU profile). The first looks it up; the others wait for its answer, success or error.
    flight = (asyncio.get_running_loop(), tenants.hash_key(key))
    lookup = _lookups.get(flight)
    if lookup is None:
        lookup = _lookups[flight] = asyncio.ensure_future(run_in_threadpool(_authenticate, app, key))
        lookup.add_done_callback(lambda done: _landed(flight, done))
    return await asyncio.shield(lookup)  # a caller that goes away does not cancel the others' lookup


_lookups: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Caller]] = {}


def _landed(flight: tuple[asyncio.AbstractEventLoop, str], lookup: asyncio.Future[Caller]) -> None:
    _lookups.pop(flight, None)
    if not lookup.cancelled():
        lookup.exception()  # seen here, so an error whose waiters all left is not reported as lost


def _bearer_key(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("send Authorization: Bearer <api key>")
    scheme, _, key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("send Authorization: Bearer <api key>")
    return key.strip()


def _cached(key: str) -> Caller | None:
    cached = _auth_cache.get(tenants.hash_key(key))
    return cached[1] if cached and cached[0] > time.monotonic() else None


def _authenticate(app: Application, key: str) -> Caller:
    caller = tenants.authenticate(app.read_uow(), key)
    _auth_cache[tenants.hash_key(key)] = (time.monotonic() + AUTH_CACHE_SECONDS, caller)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def require(permission: Permission) -> Any:
    async def check(caller: CallerDep) -> Caller:
        ensure_permitted(caller.role, permission)
        return caller

    return Depends(check)


Reader = Annotated[Caller, require(Permission.READ)]
OrderWriter = Annotated[Caller, require(Permission.WRITE_ORDERS)]
OrderManager = Annotated[Caller, require(Permission.MANAGE_ORDERS)]
InventoryWriter = Annotated[Caller, require(Permission.WRITE_INVENTORY)]
CatalogWriter = Annotated[Caller, require(Permission.WRITE_CATALOG)]
Administrator = Annotated[Caller, require(Permission.ADMINISTER)]


async def get_idempotency_key(
    request: Request, idempotency_key: Annotated[str | None, Header()] = None
) -> IdempotencyKey | None:
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= 255:
        raise InvalidInput("Idempotency-Key must be 1 to 255 characters", field="Idempotency-Key")
    body = await request.body()
    fingerprint = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + body).hexdigest()
    return IdempotencyKey(idempotency_key, fingerprint)


IdempotencyDep = Annotated[IdempotencyKey | None, Depends(get_idempotency_key)]


async def authorize(request: Request, permission: Permission) -> Caller:
    """What ``require(permission)`` gives a route, for a route on the hot path that takes no
    dependencies: FastAPI's dependency resolution was 15% of an order capture's CPU (profiled)."""
    caller = await get_caller(request.app.state.ordermesh, request.headers.get("authorization"))
    ensure_permitted(caller.role, permission)
    return caller


async def idempotency_key_of(request: Request) -> IdempotencyKey | None:
    return await get_idempotency_key(request, request.headers.get("idempotency-key"))


# How those two headers appear in the OpenAPI document of a route that reads them itself.
HEADER_PARAMETERS = [
    {"name": "authorization", "in": "header", "required": True, "schema": {"type": "string"}},
    {"name": "idempotency-key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255}},
]


def write_uow(app: Application, caller: Caller, key: IdempotencyKey | None) -> UnitOfWork:
    return app.uow(idempotency=(caller.tenant_id, key) if key else None)
