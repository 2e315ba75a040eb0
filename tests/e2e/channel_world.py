"""A running ordermesh (real HTTP server, workers driven by the test) with a Shopify and a Shopee
simulator connected to it, all on local ports. Pushes from the simulators reach ordermesh's webhook
routes over HTTP; ordermesh's adapters call the simulators over HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from ordermesh.api.app import create_app
from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from ordermesh.simulators import shopee, shopify
from ordermesh.simulators.common import running
from ordermesh.workers.runner import drain

SHOPIFY = {"shop_domain": "sim-shop.myshopify.com", "access_token": "shpat_test", "client_secret": "hush"}
SHOPEE = {"partner_id": "2001887", "partner_key": "test_partner_key", "shop_id": "600000", "access_token": "tok"}


@dataclass
class World:
    app: Application
    api: httpx.Client
    ordermesh: str
    shopify: httpx.Client
    shopee: httpx.Client
    channel_ids: dict[str, int]

    def drain(self) -> None:
        self.flush()
        drain(self.app)
        self.flush()
        drain(self.app)

    def flush(self) -> None:
        for sim in (self.shopify, self.shopee):
            assert sim.post("/_sim/flush").status_code == 200

    def orders(self, channel: str) -> list[dict[str, Any]]:
        response = self.api.get("/v1/orders", params={"channel": channel, "limit": 200})
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    def order(self, order_id: int) -> dict[str, Any]:
        response = self.api.get(f"/v1/orders/{order_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def ship(self, order_id: int, tracking: str) -> None:
        assert self.api.post(f"/v1/orders/{order_id}/release").status_code == 200
        (shipment,) = self.order(order_id)["shipments"]
        for status in ("picked", "packed"):
            assert self.api.post(f"/v1/shipments/{shipment['id']}/events", json={"status": status}).status_code == 200
        body = {"status": "shipped", "carrier": "GHN", "tracking_number": tracking}
        response = self.api.post(f"/v1/shipments/{shipment['id']}/events", json=body)
        assert response.status_code == 200, response.text


@contextlib.contextmanager
def world(app: Application) -> Iterator[World]:
    tenant = tenants.create_tenant(app.uow(), "shop-owner")
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    shopify_sim = shopify.create_app(**SHOPIFY, bucket_size=200, leak_rate=100.0)
    shopee_sim = shopee.create_app(**SHOPEE)
    with (
        running(create_app(app, run_workers=False)) as om_url,
        running(shopify_sim) as shopify_url,
        running(shopee_sim) as shopee_url,
        httpx.Client(base_url=om_url, headers=headers, timeout=30) as api,
        httpx.Client(base_url=shopify_url, timeout=30) as shopify_client,
        httpx.Client(base_url=shopee_url, timeout=30) as shopee_client,
    ):
        for code, sku in (("HN", None), ("HCM", None)):
            assert api.put(f"/v1/locations/{code}", json={"name": f"Warehouse {code}"}).status_code in (200, 201), sku
        skus = [{"code": c, "name": c} for c in ("TSHIRT-M", "CAP")]
        skus.append({"code": "GIFT-SET", "name": "T-shirt and cap", "components": {"TSHIRT-M": 1, "CAP": 1}})
        assert api.post("/v1/skus", json={"skus": skus}).status_code == 200
        for location, sku, quantity in (("HN", "TSHIRT-M", 6), ("HCM", "TSHIRT-M", 4), ("HN", "CAP", 3)):
            body = {"on_hand": quantity, "reason": "cycle count"}
            assert api.put(f"/v1/inventory/{location}/{sku}", json=body).status_code == 200
        product = {"title": "Tee", "variants": [{"sku": "TSHIRT-M"}, {"sku": "CAP"}, {"sku": "GIFT-SET"}]}
        assert shopify_client.post("/_sim/products", json=product).status_code == 200
        tee = {
            "item_name": "Tee",
            "item_sku": "TSHIRT",
            "models": [{"model_sku": "TSHIRT-M"}, {"model_sku": "XL-NOT-MAPPED"}],
        }
        assert shopee_client.post("/_sim/items", json=tee).status_code == 200
        assert shopee_client.post("/_sim/items", json={"item_name": "Cap", "item_sku": "CAP"}).status_code == 200
        channel_ids = {}
        for code, kind, base_url, credentials, rules in (
            ("shopify-main", "shopify", shopify_url, SHOPIFY, {}),
            ("shopee-vn", "shopee", shopee_url, SHOPEE, {"buffer": 1}),
        ):
            body = {"kind": kind, "base_url": base_url, "credentials": credentials, "stock_rules": rules}
            response = api.put(f"/v1/channels/{code}", json=body)
            assert response.status_code == 201, response.text
            channel_ids[code] = int(response.json()["webhook_path"].rsplit("/", 1)[1])
            push_url = f"{om_url}{response.json()['webhook_path']}"
            sim = shopify_client if kind == "shopify" else shopee_client
            assert sim.post("/_sim/config", json={"push_url": push_url}).status_code == 200
            imported = api.post(f"/v1/channels/{code}/listings/import")
            assert imported.status_code == 200, imported.text
        yield World(app, api, om_url, shopify_client, shopee_client, channel_ids)
