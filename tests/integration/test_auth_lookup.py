"""API key lookups under load (``api/deps.get_caller``): many requests that miss the cache at once
with the same key share one database read, an unknown key fails every one of them, and the answer
is cached afterwards."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ordermesh.api import deps
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import Unauthenticated
from ordermesh.services import tenants


@pytest.fixture(autouse=True)
def cold_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deps, "_auth_cache", {})


def counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    looked_up: list[str] = []
    real = tenants.authenticate

    def authenticate(uow: Any, key: str) -> Any:
        looked_up.append(key)
        return real(uow, key)

    monkeypatch.setattr(tenants, "authenticate", authenticate)
    return looked_up


def test_two_hundred_requests_missing_the_cache_at_once_read_the_key_once(
    app: Application, tenant: tenants.NewTenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up = counting(monkeypatch)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(deps.get_caller(app, f"Bearer {tenant.api_key}") for _ in range(200)))

    callers = asyncio.run(burst())

    assert looked_up == [tenant.api_key]
    assert {caller.tenant_id for caller in callers} == {tenant.tenant_id}
    asyncio.run(deps.get_caller(app, f"Bearer {tenant.api_key}"))  # cached now
    assert len(looked_up) == 1


def test_an_unknown_key_fails_every_request_that_waited_for_its_lookup(
    app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up = counting(monkeypatch)

    async def burst() -> list[Any]:
        calls = (deps.get_caller(app, "Bearer om_not_a_key") for _ in range(50))
        return await asyncio.gather(*calls, return_exceptions=True)

    outcomes = asyncio.run(burst())

    assert len(looked_up) == 1
    assert all(isinstance(outcome, Unauthenticated) for outcome in outcomes)
    with pytest.raises(Unauthenticated):
        asyncio.run(deps.get_caller(app, "Bearer om_not_a_key"))
    assert len(looked_up) == 2  # a failure is not cached: the next request asks again
