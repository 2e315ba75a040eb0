"""Real server processes against one PostgreSQL database: two API processes (each running the workers,
which coordinate only through row locks and SKIP LOCKED) never lose, duplicate or oversell an order,
and an order acknowledged with a 2xx survives ``kill -9`` of the process that acknowledged it.

Every wait is bounded and every process is stopped in a ``finally``/fixture teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import Allocation, InventoryLevel, InventoryMovement, Order
from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.conftest import fresh_pg_database, make_app

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.xdist_group("servers")]

_SCRIPT = Path(sys.executable).with_name("ordermesh")  # the venv's console script
ORDERMESH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "ordermesh.cli"]
STARTUP_SECONDS = 60.0  # imports alone take seconds on a loaded 2-core machine
REQUEST_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
ADDRESS = {"name": "Lan", "address_lines": ["1 Le Loi"], "province": "Ha Noi", "country": "VN"}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def crash(self) -> None:
        """``kill -9``: no shutdown hooks, no flush, nothing graceful."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDERMESH_")}
    # A small pool per process: the test server is shared with other test runs (max_connections 100).
    return env | {
        "ORDERMESH_DATABASE_URL": database_url,
        "ORDERMESH_LOG_LEVEL": "warning",
        "ORDERMESH_DB_POOL_SIZE": "6",
    }


def launch(database_url: str, logs: Path) -> Server:
    """Start one ``ordermesh serve`` process (API + workers) on a free port; see ``wait_healthy``."""
    port = free_port()
    log = logs / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*ORDERMESH, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=environment(database_url),
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return Server(process, f"http://127.0.0.1:{port}", log)


def wait_healthy(servers: list[Server]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    for server in servers:
        while not healthy(server):
            if server.process.poll() is not None or time.monotonic() > deadline:
                stop_all(servers)
                pytest.fail(f"server {server.url} did not become healthy:\n{server.log_tail()}", pytrace=False)
            time.sleep(0.1)


def stop_all(servers: list[Server]) -> None:
    """SIGTERM every server at once, then wait (boundedly) for each; SIGKILL any that lingers."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        server.stop()


def healthy(server: Server) -> bool:
    try:
        return httpx.get(f"{server.url}/healthz", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def cli_tenant(database_url: str, name: str) -> subprocess.Popen[str]:
    """``ordermesh tenant create NAME --json``, started in the background (see ``tenant_created``)."""
    return subprocess.Popen(
        [*ORDERMESH, "tenant", "create", name, "--json"],
        env=environment(database_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def tenant_created(process: subprocess.Popen[str]) -> dict[str, Any]:
    try:
        stdout, stderr = process.communicate(timeout=STARTUP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate(timeout=10)
        raise
    assert process.returncode == 0, stderr
    created: dict[str, Any] = json.loads(stdout)
    return created


def service_tenant(app: Application, name: str) -> str:
    return tenants.create_tenant(app.uow(), name).api_key


def order_body(external_id: str, sku: str = "HOT") -> dict[str, Any]:
    return {
        "external_id": external_id,
        "currency": "VND",
        "lines": [{"sku": sku, "quantity": 1, "unit_price": "99000"}],
        "shipping_address": ADDRESS,
    }


class Clients:
    """One httpx client per thread and server (a client is not shared across threads)."""

    def __init__(self, api_key: str) -> None:
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self._local = threading.local()
        self._all: list[httpx.Client] = []
        self._lock = threading.Lock()

    def get(self, server: Server) -> httpx.Client:
        clients: dict[str, httpx.Client] = self._local.__dict__.setdefault("clients", {})
        if server.url not in clients:
            client = httpx.Client(base_url=server.url, headers=self.headers, timeout=REQUEST_TIMEOUT)
            clients[server.url] = client
            with self._lock:
                self._all.append(client)
        return clients[server.url]

    def close(self) -> None:
        for client in self._all:
            client.close()


def setup_stock(server: Server, api_key: str, stock: dict[str, int], sku: str = "HOT") -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {api_key}"}, timeout=REQUEST_TIMEOUT
    ) as api:
        for location in stock:
            response = api.put(f"/v1/locations/{location}", json={"name": location})
            assert response.status_code == 201, response.text
        response = api.post("/v1/skus", json={"skus": [{"code": sku, "name": "Flash sale item"}]})
        assert response.status_code == 200, response.text
        for location, on_hand in stock.items():
            response = api.put(f"/v1/inventory/{location}/{sku}", json={"on_hand": on_hand, "reason": "stock take"})
            assert response.status_code == 200, response.text


def wait_until(predicate: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()


@pytest.fixture(scope="module")
def database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """One fresh PostgreSQL database for the module; each test works in its own tenant."""
    yield from fresh_pg_database(request.getfixturevalue("pg_template"))


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[Application]:
    """Direct access to the database, for asserting what the servers wrote."""
    application = make_app(database_url, db_pool_size=2)
    yield application
    application.close()


@dataclass
class Cluster:
    servers: list[Server]  # two server processes, each running the API and the workers
    flash_tenant: dict[str, Any]  # created through the CLI while the servers start


@pytest.fixture(scope="module")
def cluster(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    logs = tmp_path_factory.mktemp("servers")
    cli = cli_tenant(database_url, f"flash-{uuid.uuid4().hex[:6]}")
    servers: list[Server] = []
    try:
        servers += [launch(database_url, logs), launch(database_url, logs)]
        flash_tenant = tenant_created(cli)
        wait_healthy(servers)
        yield Cluster(servers, flash_tenant)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(10)
        stop_all(servers)


def test_never_oversells_hot_sku_across_two_servers(cluster: Cluster, db: Application) -> None:
    """300 orders for one SKU with 40 units (25 + 15 at two locations), posted concurrently from 48
    threads to two server processes whose workers allocate at the same time."""
    two_servers = cluster.servers
    tenant_id, api_key = cluster.flash_tenant["tenant_id"], cluster.flash_tenant["api_key"]
    setup_stock(two_servers[0], api_key, {"W1": 25, "W2": 15})
    clients = Clients(api_key)

    def post(n: int) -> tuple[int, int | None]:
        response = clients.get(two_servers[n % 2]).post("/v1/orders", json=order_body(f"flash-{n:04d}"))
        return response.status_code, response.json().get("id")

    try:
        with ThreadPoolExecutor(48) as pool:
            answers = list(pool.map(post, range(300), timeout=120))
    finally:
        clients.close()

    assert Counter(status for status, _ in answers) == {201: 300}
    acknowledged_ids = {order_id for _, order_id in answers}
    assert len(acknowledged_ids) == 300

    def backlog() -> int:
        with db.read_uow() as uow:
            return int(
                uow.session.scalar(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.tenant_id == tenant_id, (Order.status == "pending") | Order.needs_allocation)
                )
            )

    assert wait_until(lambda: backlog() == 0, 60), [s.log_tail() for s in two_servers]

    with db.read_uow() as uow:
        session = uow.session
        stored = dict(session.execute(select(Order.id, Order.external_id).where(Order.tenant_id == tenant_id)).all())
        statuses = Counter(session.scalars(select(Order.status).where(Order.tenant_id == tenant_id)))
        promised = session.scalar(select(func.sum(Allocation.quantity)).where(Allocation.tenant_id == tenant_id))
        promised_to = Counter(
            session.scalars(
                select(Allocation.order_id).where(Allocation.tenant_id == tenant_id, Allocation.quantity > 0)
            )
        )
        allocated_ids = set(
            session.scalars(select(Order.id).where(Order.tenant_id == tenant_id, Order.status == "allocated"))
        )
        levels = {
            row.location_id: (row.on_hand, row.reserved, row.safety_stock)
            for row in session.scalars(select(InventoryLevel).where(InventoryLevel.tenant_id == tenant_id))
        }
        ledger = {
            location_id: (int(on_hand), int(reserved), int(safety))
            for location_id, on_hand, reserved, safety in session.execute(
                select(
                    InventoryMovement.location_id,
                    func.sum(InventoryMovement.on_hand_delta),
                    func.sum(InventoryMovement.reserved_delta),
                    func.sum(InventoryMovement.safety_stock_delta),
                )
                .where(InventoryMovement.tenant_id == tenant_id)
                .group_by(InventoryMovement.location_id)
            )
        }

    assert set(stored) == acknowledged_ids  # none lost
    assert sorted(stored.values()) == [f"flash-{n:04d}" for n in range(300)]  # none duplicated
    assert statuses == {"allocated": 40, "backordered": 260}
    assert promised == 40
    assert promised_to == dict.fromkeys(allocated_ids, 1)  # one unit to each allocated order, none to others
    assert sorted(levels.values()) == [(15, 15, 0), (25, 25, 0)]
    assert levels == ledger
    assert all(0 <= reserved <= on_hand for on_hand, reserved, _ in levels.values())
    # No worker pass failed (a deadlock between the two servers' workers would be logged and retried).
    assert [s.log_tail() for s in two_servers if "Traceback" in s.log_tail() or "failed" in s.log_tail()] == []


def test_one_external_id_posted_twenty_times_at_once_makes_one_order(cluster: Cluster, db: Application) -> None:
    two_servers = cluster.servers
    api_key = service_tenant(db, f"dupes-{uuid.uuid4().hex[:6]}")
    setup_stock(two_servers[1], api_key, {"W1": 1})
    clients = Clients(api_key)
    start = threading.Barrier(20, timeout=30)

    def post(n: int) -> tuple[int, int]:
        client = clients.get(two_servers[n % 2])
        start.wait()
        response = client.post("/v1/orders", json=order_body("same-webhook"))
        return response.status_code, response.json()["id"]

    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(post, range(20), timeout=120))
    finally:
        clients.close()

    assert Counter(status for status, _ in answers) == {201: 1, 200: 19}
    assert len({order_id for _, order_id in answers}) == 1
    with db.read_uow() as uow:
        assert (
            uow.session.scalar(select(func.count()).select_from(Order).where(Order.external_id == "same-webhook")) == 1
        )


def test_one_idempotency_key_sent_twenty_times_at_once_makes_one_order(cluster: Cluster, db: Application) -> None:
    two_servers = cluster.servers
    api_key = service_tenant(db, f"keys-{uuid.uuid4().hex[:6]}")
    setup_stock(two_servers[0], api_key, {"W1": 1})
    clients = Clients(api_key)
    start = threading.Barrier(20, timeout=30)
    body = order_body("keyed-order")

    def post(n: int) -> tuple[int, int]:
        client = clients.get(two_servers[n % 2])
        start.wait()
        response = client.post("/v1/orders", json=body, headers={"Idempotency-Key": "retry-storm-1"})
        return response.status_code, response.json()["id"]

    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(post, range(20), timeout=120))
    finally:
        clients.close()

    assert Counter(status for status, _ in answers) == {201: 1, 200: 19}
    assert len({order_id for _, order_id in answers}) == 1
    with db.read_uow() as uow:
        assert (
            uow.session.scalar(select(func.count()).select_from(Order).where(Order.external_id == "keyed-order")) == 1
        )


def test_an_acknowledged_order_survives_kill_9_of_the_server(
    cluster: Cluster, database_url: str, db: Application, tmp_path: Path
) -> None:
    """Invariant 4: post orders from several threads to one server, SIGKILL it mid-stream, start a
    new one: every order that was answered 201 is there, exactly as acknowledged. (Runs last: it
    replaces the first server of the cluster.)"""
    api_key = service_tenant(db, f"crash-{uuid.uuid4().hex[:6]}")
    server = cluster.servers[0]
    clients = Clients(api_key)
    acknowledged: dict[str, int] = {}  # external id -> order id
    guard = threading.Lock()
    stop = threading.Event()

    def post_until_stopped(worker: int) -> None:
        for n in range(10_000):
            if stop.is_set():
                return
            external_id = f"crash-{worker}-{n}"
            try:
                response = clients.get(server).post("/v1/orders", json=order_body(external_id))
            except httpx.HTTPError:
                return  # the server is gone: this request was never acknowledged
            if response.status_code == 201:
                with guard:
                    acknowledged[external_id] = response.json()["id"]

    try:
        setup_stock(server, api_key, {"W1": 5})
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(post_until_stopped, worker) for worker in range(8)]
            try:
                assert wait_until(lambda: len(acknowledged) >= 24, 30), server.log_tail()
                server.crash()  # while requests are still in flight
            finally:
                stop.set()
            for future in futures:
                future.result(timeout=60)
        with guard:
            acked = dict(acknowledged)

        replacement = launch(database_url, tmp_path)
        cluster.servers[0] = replacement  # stopped by the cluster's teardown, whatever happens here
        wait_healthy([replacement])
        survivors = {}
        for external_id, order_id in acked.items():
            response = clients.get(replacement).get(f"/v1/orders/{order_id}")
            assert response.status_code == 200, (external_id, response.text)
            survivors[external_id] = response.json()["external_id"]
        assert survivors == {external_id: external_id for external_id in acked}
        with db.read_uow() as uow:
            stored = dict(
                uow.session.execute(select(Order.external_id, Order.id).where(Order.id.in_(list(acked.values())))).all()
            )
        assert stored == acked
    finally:
        clients.close()
