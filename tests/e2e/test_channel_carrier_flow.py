"""Across areas, through three simulators over HTTP: a buyer orders on Shopee, ordermesh allocates and
releases, books the parcel with GHN, GHN's pickup webhook marks the shipment shipped, and Shopee is told
the carrier's tracking number (``ship_order``); delivery then completes the order in ordermesh."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from ordermesh.bootstrap import Application
from tests.e2e.channel_world import World, world
from tests.e2e.conftest import sqlite_only
from tests.e2e.test_carriers import connect


@pytest.fixture
def shops(app: Application) -> Iterator[World]:
    with world(app) as connected:
        connected.drain()
        yield connected


@sqlite_only
def test_a_shopee_order_booked_with_ghn_reaches_shopee_with_ghns_tracking(shops: World) -> None:
    with ExitStack() as sims:
        carrier = connect(shops.api, sims, shops.ordermesh, "ghn")
        sn = shops.shopee.post("/_sim/orders", json={"lines": [{"sku": "TSHIRT-M", "quantity": 1}]}).json()["order_sn"]
        shops.drain()
        (order,) = shops.orders("shopee-vn")
        assert order["status"] == "allocated"
        released = shops.api.post(f"/v1/orders/{order['id']}/release")
        assert released.status_code == 200, released.text
        shipment_id = released.json()["shipments"][0]["id"]
        shops.drain()  # the outbox hands the shipment to the GHN booking handler
        carrier.sim.state.pusher.flush(10)
        booked = shops.api.get(f"/v1/shipments/{shipment_id}/booking").json()
        assert booked["status"] == "booked", booked
        tracking = booked["tracking_number"]

        carrier.advance(steps=3, order_code=tracking)  # GHN picks the parcel up and says so by webhook
        shops.drain()  # the shipment is shipped; the outbox tells Shopee

        assert shops.order(order["id"])["status"] == "shipped"
        platform = shops.shopee.get(f"/_sim/orders/{sn}").json()
        assert (platform["order_status"], platform["tracking_number"]) == ("PROCESSED", tracking)

        carrier.advance(order_code=tracking)  # delivered, confirmed by GHN's detail call
        shops.drain()
        assert shops.order(order["id"])["status"] == "delivered"
