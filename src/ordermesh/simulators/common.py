"""What every simulator shares: injected faults, a push sender that misbehaves on demand, and a server.

Faults are set over HTTP, so a test, the demo or a person with curl can make a simulator fail the way real
platforms do::

    POST /_sim/faults {"fail": [{"status": 503, "count": 2, "path_prefix": "/api"}],
                       "delay_seconds": 0.5,
                       "push": {"duplicate": 1, "reorder": true, "drop": 1}}
    POST /_sim/reset

``fail`` answers the next ``count`` matching requests with ``status`` (429 carries ``Retry-After: 1``);
``delay_seconds`` slows every platform request; ``push`` makes the next pushes arrive twice (``duplicate``),
swapped with the one after (``reorder``) or never (``drop``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

log = logging.getLogger("ordermesh.simulators")

CONTROL_PREFIX = "/_sim"


class FailRule(BaseModel):
    status: int = Field(ge=400, le=599)
    count: int = Field(default=1, ge=1)
    path_prefix: str = "/"


class PushFaults(BaseModel):
    duplicate: int = Field(default=0, ge=0)  # the next N pushes are delivered twice
    reorder: bool = False  # hold the next push back and deliver it after the one that follows
    drop: int = Field(default=0, ge=0)  # the next N pushes are lost


class FaultSettings(BaseModel):
    fail: list[FailRule] = Field(default_factory=list)
    delay_seconds: float = Field(default=0.0, ge=0, le=60)
    push: PushFaults = Field(default_factory=PushFaults)


@dataclass
class Faults:
    """Thread-safe fault switches shared by a simulator's middleware and its push sender."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    injected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, settings: FaultSettings) -> None:
        with self._lock:
            self.settings = settings

    def reset(self) -> None:
        self.update(FaultSettings())

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return self.settings.model_dump() | {"injected": self.injected}

    def delay(self) -> float:
        with self._lock:
            return self.settings.delay_seconds

    def take_failure(self, path: str) -> int | None:
        with self._lock:
            for rule in self.settings.fail:
                if rule.count > 0 and path.startswith(rule.path_prefix):
                    rule.count -= 1
                    if rule.count == 0:
                        self.settings.fail.remove(rule)
                    self.injected += 1
                    return rule.status
        return None

    def take_push_fault(self) -> str | None:
        """ "drop", "duplicate", "reorder" or None for the next push."""
        with self._lock:
            push = self.settings.push
            if push.drop:
                push.drop -= 1
                return "drop"
            if push.duplicate:
                push.duplicate -= 1
                return "duplicate"
            if push.reorder:
                push.reorder = False
                return "reorder"
        return None


def install_faults(app: FastAPI, faults: Faults) -> None:
    """Add the fault middleware and the ``/_sim/faults`` control routes to a simulator app."""

    @app.middleware("http")
    async def inject(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if not path.startswith(CONTROL_PREFIX):
            pause = faults.delay()
            if pause:
                await _sleep(pause)
            status = faults.take_failure(path)
            if status is not None:
                headers = {"Retry-After": "1"} if status == 429 else {}
                return JSONResponse({"error": "injected_fault", "status": status}, status_code=status, headers=headers)
        response: Response = await call_next(request)
        return response

    @app.get(f"{CONTROL_PREFIX}/faults")
    def read_faults() -> dict[str, Any]:
        return faults.snapshot()

    @app.post(f"{CONTROL_PREFIX}/faults")
    def set_faults(settings: FaultSettings) -> dict[str, Any]:
        faults.update(settings)
        return faults.snapshot()

    @app.post(f"{CONTROL_PREFIX}/reset")
    def reset_faults() -> dict[str, Any]:
        faults.reset()
        return faults.snapshot()


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@dataclass(frozen=True, slots=True)
class Sent:
    url: str
    status: int | None  # None: the receiver could not be reached
    body: bytes


class PushSender:
    """Delivers a platform's pushes from a background thread, honouring the push faults.

    Like the platforms, it does not retry a failed delivery on its own schedule here; tests that need the
    platform's redelivery use ``duplicate``. Everything attempted is recorded in ``sent``."""

    def __init__(self, faults: Faults, *, timeout: float = 10.0) -> None:
        self.faults = faults
        self.sent: list[Sent] = []
        self.dropped: list[bytes] = []
        self._queue: queue.Queue[tuple[str, bytes, dict[str, str]] | None] = queue.Queue()
        self._held: tuple[str, bytes, dict[str, str]] | None = None
        self._client = httpx.Client(timeout=timeout)
        self._idle = threading.Event()
        self._idle.set()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-push", daemon=True)
        self._thread.start()

    def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        fault = self.faults.take_push_fault()
        item = (url, body, dict(headers))
        if fault == "drop":
            self.dropped.append(body)
            return
        with self._lock:
            if fault == "reorder" and self._held is None:
                self._held = item  # delivered right after the next push
                return
            held, self._held = self._held, None
        self._enqueue(item)
        if fault == "duplicate":
            self._enqueue(item)
        if held is not None:
            self._enqueue(held)

    def _enqueue(self, item: tuple[str, bytes, dict[str, str]]) -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._queue.put(item)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued push was attempted (a held, reordered push is released first)."""
        with self._lock:
            held, self._held = self._held, None
        if held is not None:
            self._enqueue(held)
        return self._idle.wait(timeout)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            url, body, headers = item
            status: int | None
            try:
                status = self._client.post(url, content=body, headers=headers).status_code
            except httpx.HTTPError as error:
                log.info("push to %s failed: %s", url, error)
                status = None
            self.sent.append(Sent(url, status, body))
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()


def simulator_app(title: str, faults: Faults, **options: Any) -> FastAPI:
    """A simulator app with the fault controls installed; callables in ``app.state.on_close`` run at shutdown."""
    closers: list[Callable[[], None]] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        for close in closers:
            close()

    app = FastAPI(title=title, lifespan=lifespan, **options)
    app.state.on_close = closers
    app.state.faults = faults
    install_faults(app, faults)
    return app


def carrier_app(title: str, push_url: str | None, **control: Any) -> tuple[FastAPI, PushSender, dict[str, Any]]:
    """A carrier simulator's app, its push sender (closed at shutdown) and its settings, set by ``/_sim/control``."""
    faults = Faults()
    app = simulator_app(title, faults)
    pusher = PushSender(faults)
    app.state.on_close.append(pusher.close)
    settings: dict[str, Any] = {"slow_create_seconds": 0.0, "push_url": push_url, **control}
    app.state.pusher, app.state.control = pusher, settings

    @app.post(f"{CONTROL_PREFIX}/control")
    async def set_control(request: Request) -> JSONResponse:
        """``slow_create_seconds`` and ``push_url``; answers every setting."""
        body = await request.json()
        for key in ("slow_create_seconds", "push_url"):
            if key in body:
                settings[key] = body[key]
        return JSONResponse(dict(settings))

    return app, pusher, settings


def install_control_errors(app: FastAPI) -> None:
    """Malformed control-API input (the platform paths answer their own envelopes) is a 422, not a 500."""

    async def bad_control_input(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"message": f"invalid request: {exc!r}"}, status_code=422)

    for error in (AttributeError, KeyError, TypeError, ValueError):
        app.add_exception_handler(error, bad_control_input)


def install_shop_control(app: FastAPI, shop: Any, refusal: type[Exception]) -> None:
    """A channel shop's buyer-side controls: ``POST /_sim/products``, ``GET /_sim/stock``, ``GET /_sim/calls`` (write
    calls received) and ``POST /_sim/orders`` (a buyer places an order; a ``refusal`` answers 409)."""

    @app.post(f"{CONTROL_PREFIX}/products")
    async def add_product(request: Request) -> dict[str, Any]:
        product: dict[str, Any] = shop.add_product(await request.json())
        return product

    @app.get(f"{CONTROL_PREFIX}/stock")
    def read_stock() -> dict[str, Any]:
        stock: dict[str, Any] = shop.stock()
        return stock

    @app.get(f"{CONTROL_PREFIX}/calls")
    def read_calls() -> list[dict[str, Any]]:
        with shop.lock:
            return list(shop.calls)

    @app.post(f"{CONTROL_PREFIX}/orders", response_model=None)
    async def place_order(request: Request) -> dict[str, Any] | JSONResponse:
        try:
            order: dict[str, Any] = shop.place_order(await request.json())
        except refusal as exc:
            refused: Any = exc  # the platform's error: it carries ``code`` and ``message``
            return JSONResponse({"code": refused.code, "message": refused.message}, status_code=409)
        return order


class PushTarget:
    """Where a simulator's pushes go and the sender delivering them.

    ``lazy``: the sender (which owns a thread) is started only once pushes have a target, here or via
    ``/_sim/config``, and the configured URL is normalised to a string or None; otherwise the sender starts at
    once and the URL is stored as given. ``state_attr`` names the ``app.state`` attribute holding the sender."""

    def __init__(self, faults: Faults, push_url: str | None, *, lazy: bool) -> None:
        self.faults = faults
        self.url: Any = push_url
        self.lazy = lazy
        self.sender: PushSender | None = PushSender(faults) if push_url or not lazy else None

    def configure(self, url: Any) -> PushSender | None:
        if self.lazy:
            self.url = str(url) if url else None
            if self.url and self.sender is None:
                self.sender = PushSender(self.faults)
        else:
            self.url = url
        return self.sender

    def flush(self) -> dict[str, Any]:
        if self.sender is None:
            return {"sent": []}
        self.sender.flush(10.0)
        return {"sent": [[item.url, item.status] for item in self.sender.sent]}

    def close(self) -> None:
        if self.sender is not None:
            self.sender.close()


def install_push_control(
    app: FastAPI,
    faults: Faults,
    push_url: str | None,
    *,
    lazy: bool = True,
    state_attr: str = "pushes",
    options: dict[str, bool] | None = None,
) -> PushTarget:
    """``POST /_sim/config`` (``{"push_url": ...}``: where pushes go, as ordermesh's webhook path is known only once
    connected) and ``POST /_sim/flush`` (wait until every queued push was attempted; lists URL and HTTP status of
    what was sent); the sender is closed when the app shuts down. ``options``: the simulator's own switches
    (e.g. ``sell_beyond_stock``), set through the same ``/_sim/config`` and answered back."""
    switches = options if options is not None else {}
    target = PushTarget(faults, push_url, lazy=lazy)
    setattr(app.state, state_attr, target.sender)
    closers = getattr(app.state, "on_close", None)
    if closers is not None:
        closers.append(target.close)

    @app.post(f"{CONTROL_PREFIX}/config")
    async def configure(request: Request) -> dict[str, Any]:
        body = await request.json()
        if "push_url" in body:
            setattr(app.state, state_attr, target.configure(body["push_url"]))
        for name in switches:
            if name in body:
                switches[name] = bool(body[name])
        return {"push_url": target.url, **switches}

    @app.post(f"{CONTROL_PREFIX}/flush")
    def flush() -> dict[str, Any]:
        return target.flush()

    return target


def stock_report(skus: Mapping[str, Mapping[str, Any]], locked: Callable[[str], int]) -> dict[str, dict[str, int]]:
    """Per seller SKU: the total ``quantity``, the units ``locked`` in open orders and what is ``sellable``."""
    result = {}
    for seller_sku, sku in skus.items():
        held = locked(seller_sku)
        result[seller_sku] = {"quantity": sku["quantity"], "locked": held, "sellable": max(sku["quantity"] - held, 0)}
    return result


def serve(app: FastAPI, *, host: str = "127.0.0.1", port: int) -> None:
    uvicorn.run(app, host=host, port=port, log_level="warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running(app: FastAPI, *, port: int | None = None) -> Iterator[str]:
    """Serve ``app`` on a free local port in a background thread; yields its base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, name=f"sim-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"simulator did not start on port {port}")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
