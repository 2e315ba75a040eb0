"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from ordermesh import __version__
from ordermesh.api import backpressure, errors
from ordermesh.api.deps import caller_of
from ordermesh.api.fast_capture import FastCapture
from ordermesh.api.middleware import Measure, RefuseNul
from ordermesh.api.routes import aftersales, carriers, catalog, channels, events, inventory, orders, routing
from ordermesh.bootstrap import Application, bootstrap
from ordermesh.services import catalog as catalog_service
from ordermesh.services import events as events_service
from ordermesh.services import inventory as inventory_service
from ordermesh.services import order_views, return_views, routing_profiles
from ordermesh.services.unit_of_work import Caller, IdempotentReplay
from ordermesh.workers.runner import Worker

# What a repeated Idempotency-Key answers with: the current view of the resource the first request made.
REPLAYS: dict[str, Callable[[Application, Caller, str], Any]] = {
    "order": lambda app, caller, id_: order_views.get_order(app.read_uow(), caller, int(id_)),
    "shipment": lambda app, caller, id_: order_views.get_shipment(app.read_uow(), caller, int(id_)),
    "location": lambda app, caller, id_: catalog_service.get_location(app.read_uow(), caller, id_),
    "routing_profile": lambda app, caller, id_: routing_profiles.get_profile(
        app.read_uow(), caller, id_.split("/")[0], int(id_.split("/")[1])
    ),
    "inventory_level": lambda app, caller, id_: inventory_service.get_level(app.read_uow(), caller, *id_.split("/", 1)),
    "event": lambda app, caller, id_: events_service.get_event(app.read_uow(), caller, int(id_)),
    "return": lambda app, caller, id_: return_views.get_return(app.read_uow(), caller, int(id_)),
}


def create_app(application: Application | None = None, *, run_workers: bool = True) -> FastAPI:
    application = application or bootstrap()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = Worker(application, name="embedded") if run_workers else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    otel = application.settings.opentelemetry
    app = FastAPI(
        title="ordermesh",
        version=__version__,
        description="Order management for brands selling on several marketplaces. Every /v1 call needs "
        "`Authorization: Bearer <api key>`. Errors are RFC 9457 problem+json with a stable `code`.",
        lifespan=lifespan,
        # Off unless asked for: otherwise FastAPI asks OpenTelemetry on every request whether a
        # provider is configured (reading the environment), 5% of the API's CPU in a steady profile.
        telemetry={"tracing": otel, "metrics": otel, "logs": otel},
    )
    app.state.ordermesh = application
    errors.install(app)

    @app.exception_handler(IdempotentReplay)
    async def _replay(request: Request, replay: IdempotentReplay) -> Response:
        caller = caller_of(application, request.headers.get("authorization"))
        body = REPLAYS[replay.resource.type](application, caller, replay.resource.id)
        from fastapi.encoders import jsonable_encoder

        return JSONResponse(jsonable_encoder(body), status_code=200, headers={"Idempotent-Replayed": "true"})

    # Plain ASGI middleware (Starlette's BaseHTTPMiddleware costs a task group and memory streams
    # per request, measurable in the flash-sale profile). Outermost last: measure -> limit -> NUL
    # -> the order capture fast path.
    app.add_middleware(FastCapture, api=app)
    app.add_middleware(RefuseNul)
    backpressure.install(app, max_pending_writes=application.settings.max_pending_writes)
    app.add_middleware(Measure)

    @app.get("/healthz", tags=["system"])
    def healthz() -> Any:
        """Liveness and database reachability."""
        try:
            # A read: on SQLite it must not queue behind the writers (BEGIN DEFERRED).
            with application.engine.execution_options(sqlite_begin="DEFERRED").connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:
            return JSONResponse({"status": "unavailable", "database": str(error)[:200]}, status_code=503)
        return {"status": "ok", "database": application.engine.dialect.name, "version": __version__}

    @app.get("/metrics", tags=["system"], response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    for module in (orders, inventory, catalog, events, routing, carriers, aftersales):
        app.include_router(module.router)
    app.include_router(channels.router)
    app.include_router(channels.webhooks)
    return app
