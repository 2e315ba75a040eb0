"""All four platforms connected to one running ordermesh: the Shopify + Shopee world of ``channel_world``
plus a Lazada and a TikTok Shop simulator, each connected with ``PUT /v1/channels/{code}``, its listings
imported, and its pushes aimed at the framework's webhook route (``/webhooks/<kind>/<connection id>``).

``Marketplace`` hides the two simulators' control APIs behind one vocabulary (place an order, move it on,
a buyer asks to cancel, read the platform's side), so a test can run unchanged on Lazada and on TikTok."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ordermesh.bootstrap import Application
from ordermesh.simulators import lazada, tiktok
from ordermesh.simulators.common import running
from tests.e2e.channel_world import World, world

LAZADA = {"app_key": "105827", "app_secret": "lazada-app-secret", "access_token": "lazada-seller-token"}
TIKTOK = {
    "app_key": "6d9a1tiktok",
    "app_secret": "tiktok-app-secret",
    "access_token": "tiktok-seller-token",
    "shop_cipher": "ROW_sim_cipher",
}
# The seller SKUs on both marketplaces: two mapped to ordermesh SKU codes, one that maps to nothing.
PRODUCTS = [
    {"name": "Tee", "skus": [{"seller_sku": "TSHIRT-M"}, {"seller_sku": "XL-NOT-MAPPED"}]},
    {"name": "Cap", "skus": [{"seller_sku": "CAP"}]},
]


@dataclass
class Marketplace:
    """One Lazada or TikTok simulator as the tests drive it."""

    kind: str  # "lazada" | "tiktok"
    code: str  # the ordermesh channel code
    sim: httpx.Client
    channel_id: int = 0

    def place(self, lines: list[tuple[str, int]], **spec: Any) -> str:
        """A buyer orders ``lines`` (seller SKU, quantity); the platform's order id."""
        body = {"lines": [{"seller_sku": sku, "quantity": quantity} for sku, quantity in lines], **spec}
        response = self.sim.post("/_sim/orders", json=body)
        assert response.status_code == 200, response.text
        answer = response.json()
        return str(answer["order_id"] if self.kind == "lazada" else answer["id"])

    def set_status(self, order_id: str, status: str) -> None:
        response = self.sim.post(f"/_sim/orders/{order_id}/status", json={"status": status})
        assert response.status_code == 200, response.text

    def buyer_cancels(self, order_id: str) -> None:
        response = self.sim.post(f"/_sim/orders/{order_id}/cancel_request")
        assert response.status_code == 200, response.text

    def platform_order(self, order_id: str) -> dict[str, Any]:
        response = self.sim.get(f"/_sim/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def statuses(self, order_id: str) -> set[str]:
        """The platform's status names for the order (Lazada: one per item; TikTok: the order's)."""
        order = self.platform_order(order_id)
        if self.kind == "lazada":
            return {str(item["status"]) for item in order["items"]}
        return {str(order["status"])}

    def cancel_pending(self, order_id: str) -> bool:
        order = self.platform_order(order_id)
        if self.kind == "lazada":
            return any(item["is_cancel_pending"] == "true" for item in order["items"])
        return bool(order["is_buyer_request_cancel"])

    def sellable(self) -> dict[str, int]:
        return {sku: int(level["sellable"]) for sku, level in self.sim.get("/_sim/stock").json().items()}

    def faults(self, settings: dict[str, Any]) -> None:
        assert self.sim.post("/_sim/faults", json=settings).status_code == 200

    def flush(self) -> list[list[Any]]:
        response = self.sim.post("/_sim/flush")
        assert response.status_code == 200, response.text
        return list(response.json()["sent"])

    @property
    def webhook_path(self) -> str:
        return f"/webhooks/{self.kind}/{self.channel_id}"


@dataclass
class SeaWorld:
    """Shopify, Shopee, Lazada and TikTok Shop connected to one ordermesh."""

    base: World
    lazada: Marketplace
    tiktok: Marketplace

    @property
    def api(self) -> httpx.Client:
        return self.base.api

    @property
    def app(self) -> Application:
        return self.base.app

    def market(self, kind: str) -> Marketplace:
        return self.lazada if kind == "lazada" else self.tiktok

    def flush(self) -> None:
        self.base.flush()
        self.lazada.flush()
        self.tiktok.flush()

    def drain(self) -> None:
        """Deliver every queued push, run the workers, and repeat until the answers they caused settle."""
        for _ in range(3):
            self.flush()
            self.base.drain()

    def orders(self, code: str) -> list[dict[str, Any]]:
        return self.base.orders(code)

    def order(self, order_id: int) -> dict[str, Any]:
        return self.base.order(order_id)

    def only_order(self, code: str) -> dict[str, Any]:
        (found,) = self.orders(code)
        return self.order(int(found["id"]))


@contextlib.contextmanager
def sea_world(app: Application) -> Iterator[SeaWorld]:
    """The two-shop world, plus Lazada and TikTok Shop connected through the same API a user would call."""
    with (
        world(app) as base,
        running(lazada.create_app(**LAZADA)) as lazada_url,
        running(tiktok.create_app(**TIKTOK)) as tiktok_url,
        httpx.Client(base_url=lazada_url, timeout=30) as lazada_client,
        httpx.Client(base_url=tiktok_url, timeout=30) as tiktok_client,
    ):
        markets = {
            "lazada": Marketplace("lazada", "lazada-vn", lazada_client),
            "tiktok": Marketplace("tiktok", "tiktok-vn", tiktok_client),
        }
        for kind, url, credentials in (("lazada", lazada_url, LAZADA), ("tiktok", tiktok_url, TIKTOK)):
            market = markets[kind]
            for product in PRODUCTS:
                assert market.sim.post("/_sim/products", json=product).status_code == 200
            body = {"kind": kind, "base_url": url, "credentials": credentials}
            response = base.api.put(f"/v1/channels/{market.code}", json=body)
            assert response.status_code == 201, response.text
            market.channel_id = int(response.json()["webhook_path"].rsplit("/", 1)[1])
            assert response.json()["webhook_path"] == market.webhook_path
            push_url = f"{base.ordermesh}{market.webhook_path}"
            assert market.sim.post("/_sim/config", json={"push_url": push_url}).status_code == 200
            imported = base.api.post(f"/v1/channels/{market.code}/listings/import")
            assert imported.status_code == 200, imported.text
            unmapped = [item["seller_sku"] for item in imported.json()["unmapped"]]
            assert unmapped == ["XL-NOT-MAPPED"], imported.text
        connected = SeaWorld(base, markets["lazada"], markets["tiktok"])
        connected.drain()
        yield connected
