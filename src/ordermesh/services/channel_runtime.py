"""What the channel services need at run time: one HTTP client, a rate limiter per connection, and a
ready adapter for a connection (its credentials opened from the sealed column)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from sqlalchemy import select

from ordermesh.adapters.channels.base import ChannelAdapter
from ordermesh.adapters.channels.registry import ADAPTERS, adapter_for
from ordermesh.adapters.outbound import RateLimiter
from ordermesh.adapters.store.tables import Channel
from ordermesh.adapters.store.tables_channels import ChannelConnection
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import NotFound

if TYPE_CHECKING:
    from ordermesh.bootstrap import Application

HTTP_TIMEOUT = httpx.Timeout(10.0, connect=3.0)


@dataclass
class Runtime:
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=HTTP_TIMEOUT))
    limiters: dict[int, RateLimiter] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def limiter(self, channel_id: int, kind: str) -> RateLimiter:
        with self.lock:
            if channel_id not in self.limiters:
                cls: Any = ADAPTERS[kind]
                self.limiters[channel_id] = RateLimiter(float(cls.rate_per_second), int(cls.burst))
            return self.limiters[channel_id]


_RUNTIMES: dict[int, Runtime] = {}
_GUARD = threading.Lock()


def runtime(app: Application) -> Runtime:
    with _GUARD:
        found = _RUNTIMES.get(id(app))
        if found is None:
            found = _RUNTIMES[id(app)] = Runtime()
        return found


def use_http_client(app: Application, client: httpx.Client) -> None:
    """Send this application's platform calls through ``client`` (tests, simulators, proxies)."""
    runtime(app).client = client


@dataclass(frozen=True, slots=True)
class Connected:
    tenant_id: int
    channel_id: int
    code: str
    kind: str
    push_url: str | None
    adapter: ChannelAdapter
    runtime: Runtime

    def throttle(self) -> None:
        """Wait for this connection's rate limiter before a platform call."""
        self.runtime.limiter(self.channel_id, self.kind).acquire()


def connect(app: Application, channel_id: int, tenant_id: int | None = None) -> Connected:
    with app.read_uow() as uow:
        query = (
            select(Channel, ChannelConnection)
            .join(ChannelConnection, ChannelConnection.channel_id == Channel.id)
            .where(Channel.id == channel_id)
        )
        if tenant_id is not None:
            query = query.where(Channel.tenant_id == tenant_id)
        row = uow.session.execute(query).first()
        if row is None:
            raise NotFound(f"no channel connection {channel_id}", code="channel_not_found")
        channel, connection = row
        credentials = app.secrets.open(connection.credentials)
        shared = runtime(app)
        return Connected(
            tenant_id=channel.tenant_id,
            channel_id=channel.id,
            code=channel.code,
            kind=channel.kind,
            push_url=connection.push_url,
            adapter=adapter_for(channel.kind, connection.base_url, credentials, shared.client),
            runtime=shared,
        )


def note_error(app: Application, channel_id: int, message: str) -> None:
    with app.uow() as uow:
        connection = uow.session.get(ChannelConnection, channel_id)
        if connection is not None:
            connection.last_error, connection.last_error_at = message[:1000], utcnow()
            uow.commit()
