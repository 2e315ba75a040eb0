"""Back-pressure: a busy server answers 429 with Retry-After, never a 5xx and never a timeout.

The first test runs a real ``ordermesh serve`` process with a forced limit of one write request
at a time and fires concurrent orders at it; the second exhausts the database pool in-process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import Order
from ordermesh.api.app import create_app
from ordermesh.services import catalog, tenants
from ordermesh.services.unit_of_work import Caller
from tests.conftest import make_app
from tests.e2e.conftest import PROBLEM_JSON, assert_problem, bearer, order_body, sqlite_only


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
@sqlite_only
def test_a_real_server_over_its_limit_answers_429_and_loses_nothing(db_url: str) -> None:
    setup = make_app(db_url)
    tenant = tenants.create_tenant(setup.uow(), "busy")
    catalog.upsert_skus(setup.uow(), Caller(tenant.tenant_id, "admin", "test"), [catalog.SkuInput("TSHIRT-M", "T")])
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ordermesh.cli", "serve", "--no-workers", "--port", str(port)],
        env={**os.environ, "ORDERMESH_DATABASE_URL": db_url, "ORDERMESH_MAX_PENDING_WRITES": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        statuses: Counter[int] = Counter()
        accepted: set[str] = set()

        def post(external_id: str, client: httpx.Client) -> httpx.Response:
            response = client.post("/v1/orders", json=order_body(external_id))
            statuses[response.status_code] += 1
            if response.status_code in (200, 201):
                accepted.add(external_id)
            return response

        refused = None
        with httpx.Client(base_url=base, headers=bearer(tenant.api_key), timeout=30) as client:
            for round_ in range(5):  # concurrent rounds until the limit has been hit at least once
                with ThreadPoolExecutor(24) as pool:
                    answers = list(pool.map(lambda n, r=round_: post(f"r{r}-{n}", client), range(48)))
                refused = next((a for a in answers if a.status_code == 429), refused)
                if refused is not None:
                    break
            assert refused is not None, statuses
            # Sent again (one at a time, as Retry-After asks), every refused order gets in, once.
            sent = {f"r{r}-{n}" for r in range(round_ + 1) for n in range(48)}
            for external_id in sorted(sent - accepted):
                assert post(external_id, client).status_code == 201
        assert_problem(refused, 429, "busy")
        assert refused.headers["content-type"] == PROBLEM_JSON
        assert int(refused.headers["retry-after"]) >= 1
        assert not [code for code in statuses if code >= 500], statuses
        assert set(statuses) <= {201, 429}
        # Reads are never refused for being busy.
        assert httpx.get(f"{base}/v1/orders", headers=bearer(tenant.api_key)).status_code == 200
    finally:
        server.terminate()
        server.wait(20)
    with setup.read_uow() as uow:
        stored = set(uow.session.scalars(select(Order.external_id)))
        assert uow.session.scalar(select(func.count()).select_from(Order)) == len(stored)
    assert stored == accepted == sent
    setup.close()


@sqlite_only
def test_an_exhausted_connection_pool_answers_429(db_url: str) -> None:
    application = make_app(db_url, db_pool_size=1, db_pool_timeout_seconds=0.1)
    tenant = tenants.create_tenant(application.uow(), "pool")
    catalog.upsert_skus(
        application.uow(), Caller(tenant.tenant_id, "admin", "test"), [catalog.SkuInput("TSHIRT-M", "T")]
    )
    with TestClient(create_app(application, run_workers=False)) as client:
        client.get("/v1/orders", headers=bearer(tenant.api_key))  # the key is cached: no connection needed
        held = [application.engine.connect(), application.engine.connect()]  # pool 1 + overflow 1
        try:
            response = client.post("/v1/orders", json=order_body("p-1"), headers=bearer(tenant.api_key))
        finally:
            for connection in held:
                connection.close()
        assert_problem(response, 429, "busy")
        assert response.headers["retry-after"] == "1"
        again = client.post("/v1/orders", json=order_body("p-1"), headers=bearer(tenant.api_key))
        assert again.status_code == 201, again.text
    application.close()
