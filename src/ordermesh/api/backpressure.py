"""Back-pressure: a busy server answers 429 with ``Retry-After`` at once instead of queueing
without bound, timing out or failing with a 5xx.

Two limits, both per server process:
- ``max_pending_writes``: write requests (anything but GET/HEAD/OPTIONS) being handled at once,
  queued for a worker thread included; the next one is refused before its body is read;
- the database pool: a request that waited ``db_pool_timeout_seconds`` for a connection is
  answered 429 too (see ``install``), since the pool is exhausted by load, not broken.

Reads are never refused here: they are cheap and an operator needs them most under load.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter, Gauge
from sqlalchemy.exc import TimeoutError as PoolTimeout

from ordermesh.api.errors import PROBLEM, problem

REFUSED = Counter("ordermesh_http_refused_busy_total", "Requests answered 429 because the server was busy", ["cause"])
PENDING_WRITES = Gauge("ordermesh_http_pending_writes", "Write requests being handled by this process")
RETRY_AFTER_SECONDS = 1
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class WriteLimiter:
    """ASGI middleware: at most ``limit`` write requests in this process at once."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.pending = 0  # touched only from the event loop's thread

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in READ_METHODS:
            await self.app(scope, receive, send)
            return
        if self.pending >= self.limit:
            REFUSED.labels("pending_writes").inc()
            await _refuse(scope, send)
            return
        self.pending += 1
        PENDING_WRITES.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.pending -= 1
            PENDING_WRITES.dec()


async def _refuse(scope: dict[str, Any], send: Any) -> None:
    body = json.dumps(
        {
            "type": "https://ordermesh.dev/problems/busy",
            "title": "Too many requests",
            "status": 429,
            "detail": f"the server is at capacity; retry after {RETRY_AFTER_SECONDS} s",
            "instance": scope.get("path", ""),
            "code": "busy",
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 429,
            "headers": [
                (b"content-type", PROBLEM.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, *, max_pending_writes: int) -> None:
    app.add_middleware(WriteLimiter, limit=max_pending_writes)

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, error: PoolTimeout) -> JSONResponse:
        REFUSED.labels("db_pool").inc()
        response = problem(
            429, "busy", "Too many requests", f"the server is at capacity; retry after {RETRY_AFTER_SECONDS} s", request
        )
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
