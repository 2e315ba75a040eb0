"""End-to-end fixtures: the real FastAPI app over HTTP (Starlette's TestClient), once per backend.

``api`` is a client already authenticated as the tenant's admin, with helpers that set up the
catalogue and stock *through the API*, so every e2e test exercises the same paths a user would.
The allocator runs only when a test calls ``api.drain()``: no background threads, no sleeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import Base
from ordermesh.api.app import create_app
from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from ordermesh.workers.runner import drain

PROBLEM_JSON = "application/problem+json"

# For tests whose outcome cannot depend on the backend (refused before any query, static pages):
# run them on SQLite only, which keeps the suite fast.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

ADDRESS: dict[str, Any] = {
    "name": "Nguyen Van A",
    "address_lines": ["12 Ly Thuong Kiet"],
    "province": "Ha Noi",
    "country": "VN",
    "latitude": 21.0245,
    "longitude": 105.8412,
}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def order_body(external_id: str | None = None, lines: list[tuple[str, int]] | None = None, **extra: Any) -> dict:
    """A valid POST /v1/orders body; ``lines`` as (sku, quantity)."""
    return {
        "external_id": external_id or f"ext-{uuid.uuid4().hex[:10]}",
        "currency": "VND",
        "lines": [{"sku": sku, "quantity": qty, "unit_price": "150000"} for sku, qty in (lines or [("TSHIRT-M", 1)])],
        "shipping_address": ADDRESS,
        **extra,
    }


def assert_problem(response: httpx.Response, status: int, code: str, *, field: str | None = None) -> dict[str, Any]:
    """``response`` is an RFC 9457 problem with this status and code (and names ``field``, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["title"]
    if field is not None:
        named = {body.get("field")} | {item["field"] for item in body.get("errors", [])}
        assert field in named, body
    return body


def row_counts(app: Application) -> dict[str, int]:
    """Rows in every table: equal before and after a refused request means nothing was written."""
    with app.engine.connect() as connection:
        return {
            table.name: connection.scalar(select(func.count()).select_from(table))
            for table in Base.metadata.sorted_tables
        }


class Api:
    """A TestClient bound to one API key, plus setup helpers that go through HTTP."""

    def __init__(self, client: TestClient, app: Application, key: str) -> None:
        self.client = client
        self.app = app
        self.key = key

    def as_key(self, key: str) -> Api:
        return Api(self.client, self.app, key)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        headers = {**bearer(self.key), **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    # -- setup through the API -------------------------------------------------------------------

    def create_skus(self, *codes: str, bundles: dict[str, dict[str, int]] | None = None) -> None:
        skus = [{"code": code, "name": f"Item {code}"} for code in codes]
        skus += [
            {"code": code, "name": f"Bundle {code}", "components": parts} for code, parts in (bundles or {}).items()
        ]
        response = self.post("/v1/skus", json={"skus": skus})
        assert response.status_code == 200, response.text

    def put_location(self, code: str, **fields: Any) -> dict[str, Any]:
        body = {"name": f"Warehouse {code}", **fields}
        response = self.put(f"/v1/locations/{code}", json=body)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def set_stock(self, location: str, sku: str, on_hand: int) -> dict[str, Any]:
        response = self.put(f"/v1/inventory/{location}/{sku}", json={"on_hand": on_hand, "reason": "cycle count"})
        assert response.status_code == 200, response.text
        return response.json()

    def level(self, location: str, sku: str) -> dict[str, Any]:
        response = self.get(f"/v1/inventory/{location}/{sku}")
        assert response.status_code == 200, response.text
        return response.json()

    def movements(self, location: str, sku: str) -> list[dict[str, Any]]:
        response = self.get(f"/v1/inventory/{location}/{sku}/movements")
        assert response.status_code == 200, response.text
        return response.json()

    def create_order(self, body: dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        response = self.post("/v1/orders", json=body or order_body(), **kwargs)
        assert response.status_code == 201, response.text
        return response.json()

    def order(self, order_id: int) -> dict[str, Any]:
        response = self.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def all_orders(self) -> list[dict[str, Any]]:
        response = self.get("/v1/orders", params={"limit": 200})
        assert response.status_code == 200, response.text
        return response.json()["items"]

    def drain(self) -> None:
        drain(self.app)


@pytest.fixture
def client(app: Application) -> Iterator[TestClient]:
    with TestClient(create_app(app, run_workers=False)) as test_client:
        yield test_client


@pytest.fixture
def api(client: TestClient, app: Application, tenant: tenants.NewTenant) -> Api:
    """The tenant's admin, over HTTP."""
    return Api(client, app, tenant.api_key)


@pytest.fixture
def stocked(api: Api) -> Api:
    """Two warehouses (Ha Noi, Ho Chi Minh City) and three SKUs with stock at both."""
    api.put_location("HN", latitude=21.03, longitude=105.85, time_zone="Asia/Ho_Chi_Minh", cutoff_time="15:00")
    api.put_location("HCM", latitude=10.78, longitude=106.70, time_zone="Asia/Ho_Chi_Minh")
    api.create_skus("TSHIRT-M", "TSHIRT-L", "CAP")
    for sku, hn, hcm in (("TSHIRT-M", 10, 10), ("TSHIRT-L", 3, 5), ("CAP", 2, 0)):
        api.set_stock("HN", sku, hn)
        api.set_stock("HCM", sku, hcm)
    return api


def new_key(app: Application, tenant: tenants.NewTenant, role: str) -> str:
    return tenants.create_api_key(app.uow(), tenant.name, role)
