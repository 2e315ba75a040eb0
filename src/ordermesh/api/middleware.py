"""Request middleware as plain ASGI callables: NUL refusal and request metrics."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.requests import Request

from ordermesh.api import errors

REQUESTS = Counter("ordermesh_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "ordermesh_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class RefuseNul:
    """No text ordermesh stores may contain NUL (PostgreSQL cannot hold it): refuse it at the door,
    in the path, the query or a JSON body, before anything is read or written."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = scope.get("raw_path", b"") + b"?" + scope.get("query_string", b"")
        refused = b"%00" in raw or b"\x00" in raw
        if scope["method"] in BODY_METHODS and not refused:
            body = await read_body(receive)
            if body is None:  # the client went away
                return
            refused = b"\x00" in body or b"\\u0000" in body
            receive = replaying(body, receive)
        if refused:
            response = errors.problem(
                422,
                "nul_character",
                "NUL character",
                "text may not contain the NUL character (U+0000)",
                Request(scope),
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class Measure:
    """Count requests by method, matched route and status; observe their latency."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = getattr(scope.get("route"), "path", "unmatched")
            LATENCY.labels(scope["method"], path).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], path, str(status)).inc()


async def read_body(receive: Any) -> bytes | None:
    """The whole request body, or None if the client went away first."""
    chunks, more = [], True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def replaying(body: bytes, receive: Any) -> Any:
    """A ``receive`` that yields ``body`` (already read) once, then whatever the client sends next."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
