"""Helpers for adapter ↔ simulator tests: a push receiver and JSON control calls, all over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request

from ordermesh.simulators.common import running


class PushInbox:
    """What a webhook endpoint received: (headers, raw body) in arrival order."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.app = FastAPI()

        @self.app.post("/push")
        async def receive(request: Request) -> dict[str, bool]:
            body = await request.body()
            with self.lock:
                self.received.append((dict(request.headers), body))
            return {"ok": True}

    def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} pushes, got {len(self.received)}")


@contextmanager
def push_inbox() -> Iterator[tuple[PushInbox, str]]:
    inbox = PushInbox()
    with running(inbox.app) as base_url:
        yield inbox, base_url + "/push"


def control(client: httpx.Client, base_url: str, method: str, path: str, payload: Any = None) -> Any:
    response = client.request(method, base_url + path, json=payload)
    assert response.status_code < 300, response.text
    return response.json()
