"""Channel connections and listings over the API: validation, sealed credentials, refusals that
change nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from ordermesh.adapters.store.tables_channels import ChannelConnection
from tests.e2e.conftest import Api, assert_problem, row_counts, sqlite_only

SHOPEE = {"partner_id": "2001887", "partner_key": "very-secret-key", "shop_id": "600000", "access_token": "tok"}


def body(**overrides: Any) -> dict[str, Any]:
    return {"kind": "shopee", "base_url": "http://127.0.0.1:9", "credentials": dict(SHOPEE), **overrides}


def test_credentials_are_sealed_and_never_returned(api: Api) -> None:
    api.put_location("HN")
    response = api.put("/v1/channels/shopee-vn", json=body(locations=["HN"], stock_rules={"share_percent": 60}))
    assert response.status_code == 201, response.text
    view = response.json()
    assert "credentials" not in view
    assert "very-secret-key" not in response.text
    assert view["credential_keys"] == ["partner_id", "partner_key", "shop_id", "access_token"]
    assert view["stock_rules"] == {"buffer": 0, "share_percent": 60, "max_exposed": None}
    with api.app.read_uow() as uow:
        stored = uow.session.scalar(select(ChannelConnection.credentials))
    assert stored is not None
    assert "very-secret-key" not in stored
    assert api.app.secrets.open(stored) == SHOPEE
    # An update without credentials keeps them.
    again = api.put("/v1/channels/shopee-vn", json={"kind": "shopee", "base_url": "http://127.0.0.1:10"})
    assert again.status_code == 200, again.text
    assert api.get("/v1/channels/shopee-vn").json()["base_url"] == "http://127.0.0.1:10"
    with api.app.read_uow() as uow:
        assert api.app.secrets.open(uow.session.scalar(select(ChannelConnection.credentials))) == SHOPEE
    assert [c["code"] for c in api.get("/v1/channels").json()] == ["shopee-vn"]
    health = api.get("/v1/channels/shopee-vn/health")
    assert health.status_code == 200, health.text
    assert health.json()["listings"] == {"total": 0, "unmapped": 0, "out_of_sync": 0}
    assert health.json()["lag_seconds"] is None


@sqlite_only
@pytest.mark.parametrize(
    ("payload", "status", "code", "field"),
    [
        (body(kind="ebay"), 422, "unknown_channel_kind", "kind"),
        (body(credentials={**SHOPEE, "partner_key": ""}), 422, "invalid_input", "credentials.partner_key"),
        (body(credentials={**SHOPEE, "app_key": "x"}), 422, "invalid_input", "credentials"),
        (body(credentials={**SHOPEE, "shop_id": "abc"}), 422, "invalid_input", "credentials.shop_id"),
        (body(credentials=None), 422, "invalid_input", "credentials"),
        (body(locations=["NOWHERE"]), 422, "unknown_location", "locations.0"),
        (body(base_url="ftp://x"), 422, "invalid_input", "base_url"),
        (body(stock_rules={"share_percent": 101}), 422, "validation_failed", "stock_rules.share_percent"),
        (body(stock_rules={"buffer": -1}), 422, "validation_failed", "stock_rules.buffer"),
    ],
)
def test_bad_connections_are_refused_and_change_nothing(
    api: Api, payload: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = row_counts(api.app)
    assert_problem(api.put("/v1/channels/shop-1", json=payload), status, code, field=field)
    assert row_counts(api.app) == before


@sqlite_only
def test_the_direct_channel_cannot_become_a_marketplace(api: Api) -> None:
    before = row_counts(api.app)
    assert_problem(api.put("/v1/channels/direct", json=body()), 409, "channel_kind_mismatch")
    assert row_counts(api.app) == before


@sqlite_only
def test_listings_need_known_skus_and_a_connection(api: Api) -> None:
    api.create_skus("TSHIRT-M")
    assert api.put("/v1/channels/shopee-vn", json=body()).status_code == 201
    before = row_counts(api.app)
    listing = {"sku": "NOPE", "item_id": "1", "variant_id": "2"}
    assert_problem(api.put("/v1/channels/shopee-vn/listings", json={"listings": [listing]}), 422, "unknown_sku")
    assert_problem(api.put("/v1/channels/ghost/listings", json={"listings": [listing]}), 404, "channel_not_found")
    assert row_counts(api.app) == before
    ok = api.put("/v1/channels/shopee-vn/listings", json={"listings": [{**listing, "sku": "TSHIRT-M"}]})
    assert ok.status_code == 200, ok.text
    assert ok.json()[0]["sku"] == "TSHIRT-M"


@sqlite_only
def test_webhooks_for_unknown_connections_and_viewers(api: Api) -> None:
    assert_problem(api.client.post("/webhooks/shopee/999", content=b"{}"), 404, "channel_not_found")
    assert_problem(api.client.post("/webhooks/shopify/abc", content=b"{}"), 404, "channel_not_found")
    assert api.put("/v1/channels/shopee-vn", json=body()).status_code == 201
    channel_id = api.get("/v1/channels/shopee-vn").json()["webhook_path"].rsplit("/", 1)[1]
    # A Shopee connection is not reachable on the Shopify path.
    assert_problem(api.client.post(f"/webhooks/shopify/{channel_id}", content=b"{}"), 404, "channel_not_found")
    health = api.get("/v1/channels/shopee-vn/health").json()
    assert health["outbound"] == {"pending": 0, "dead": 0}
    assert health["listings"] == {"total": 0, "unmapped": 0, "out_of_sync": 0}
