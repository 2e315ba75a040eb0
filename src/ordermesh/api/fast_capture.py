"""``POST /v1/orders`` on the flash-sale hot path, without FastAPI's per-request machinery.

The route in ``routes/orders.py`` stays the contract: the OpenAPI document and every answer other
than "201, captured". This ASGI middleware answers that common case itself and hands everything
else to the route untouched (the body replayed), so each error keeps its one canonical answer:

- it takes a request only when it is ``POST /v1/orders`` with a JSON body, no ``Idempotency-Key``
  and group commit on;
- the body must validate (``OrderCreate``, parsed by pydantic from the raw bytes); otherwise the
  route answers (400, 422);
- the caller is authorized and the order captured through the group committer as the route does;
  an error on the way (401, 403, an unknown SKU, a busy pool's 429, ...) is answered by the
  application's own exception handler for it, the one the route's error would reach; an order
  found stored already (the 200 answer) is handed to the route, which answers with it (capture is
  idempotent by channel and external id, so nothing is written twice);
- the 201 answer is the route's: the view validated as ``OrderPublic`` and serialized by pydantic
  the way FastAPI does it (by alias), with the same ``Location`` header.

It sits inside the other middleware (metrics, back-pressure, NUL refusal), which see it as the
route. In a hot-SKU profile of the API, routing the request through FastAPI (route matching over
every route, the request/response wrappers, dependency solving, response validation) was about a
third of the process's CPU per captured order.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import BaseRoute

from ordermesh.api.deps import authorize
from ordermesh.api.middleware import read_body, replaying
from ordermesh.api.schemas import OrderCreate, OrderPublic
from ordermesh.domain.access import Permission
from ordermesh.services.orders import NewLine, NewOrder

PATH = "/v1/orders"
_PUBLIC = TypeAdapter(OrderPublic)


def new_order_of(body: OrderCreate) -> NewOrder:
    """The service's view of a validated ``POST /v1/orders`` body."""
    return NewOrder(
        channel=body.channel,
        external_id=body.external_id,
        currency=body.currency,
        lines=[NewLine(line.sku, line.quantity, line.unit_price) for line in body.lines],
        shipping_address=body.shipping_address.model_dump(exclude_none=True),
        placed_at=body.placed_at,
        ship_by=body.ship_by,
        tags=body.tags,
        discount=body.discount,
        shipping_fee=body.shipping_fee,
    )


class FastCapture:
    def __init__(self, app: Any, api: FastAPI) -> None:
        self.app = app
        self.api = api
        self._route: BaseRoute | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        application = self.api.state.ordermesh
        headers = Headers(scope=scope)
        content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if not application.settings.group_commit or "idempotency-key" in headers or content_type != "application/json":
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the client went away
        replayed = replaying(body, receive)
        try:
            order = OrderCreate.model_validate_json(body)
        except ValidationError:  # the route words validation errors (and malformed JSON) its own way
            await self.app(scope, replayed, send)
            return
        scope["route"] = self.route()  # what the metrics middleware labels the request with
        request = Request(scope, replayed)
        try:
            caller = await authorize(request, Permission.WRITE_ORDERS)
            captured = await application.intake.capture_async(caller, new_order_of(order))
        except Exception as error:
            # Answered by the application's own handler for it, as the route's would be: handing it to
            # the route would capture again, and under overload (a pool timeout) wait twice for its 429.
            await self.answer(error, request, scope, replayed, send)
            return
        if captured.view is None:  # stored before: the route answers 200 with the stored order
            await self.app(scope, replayed, send)
            return
        content = _PUBLIC.dump_json(_PUBLIC.validate_python(captured.view), by_alias=True)
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(content)).encode()),
                    (b"location", f"{PATH}/{captured.order_id}".encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": content})

    async def answer(self, error: Exception, request: Request, scope: dict[str, Any], receive: Any, send: Any) -> None:
        handlers = self.api.exception_handlers
        handler = next((handlers[kind] for kind in type(error).__mro__ if kind in handlers), None)
        if handler is None:
            raise error
        response = handler(request, error)  # Starlette allows plain functions as handlers too
        if inspect.isawaitable(response):
            response = await response
        await response(scope, receive, send)

    def route(self) -> BaseRoute | None:
        if self._route is None:
            self._route = next(
                (
                    route
                    for route in self.api.routes
                    if getattr(route, "path", None) == PATH and "POST" in (getattr(route, "methods", None) or ())
                ),
                None,
            )
        return self._route
