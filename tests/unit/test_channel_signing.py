"""Signers and verifiers of Shopify and Shopee against CHANNELS.md §10 (vectors 5-8)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from ordermesh.adapters.channels import signing
from ordermesh.adapters.channels.shopee import ShopeeAdapter
from ordermesh.adapters.channels.shopify import ShopifyAdapter

FIXTURES = Path(__file__).parent.parent / "fixtures" / "channels"
SHOPEE_PUSH = (FIXTURES / "shopee_push_order_status.json").read_bytes()


def test_shopify_webhook_vector_5() -> None:
    body = b'{"id":820982911946154508,"name":"#1001"}'
    assert signing.shopify_webhook_signature("hush", body) == "Mkf2s8BiWQBb/dlay3RDP15QWaH8IejS3UDTmBxVmfo="


def test_shopee_public_sign_vector_6() -> None:
    expected = "7aaf77cf2fb63bdf25623b6c3c2ad87ad51ccf4fe66e370b93b89f28bcafe45c"
    assert signing.shopee_public_sign("test_partner_key", 2001887, "/api/v2/shop/auth_partner", 1655714431) == expected


def test_shopee_shop_sign_vector_7() -> None:
    expected = "febf2f36eed519cabf8ee5f32d41d79b48661af50308e738dc9becde68e7d2db"
    sign = signing.shopee_shop_sign(
        "test_partner_key", 2001887, "/api/v2/order/get_order_list", 1655714431, "access_token_abc", 600000
    )
    assert sign == expected


def test_shopee_push_vector_8() -> None:
    expected = "d5c9433cebab96931b2257dc00a1004bb51022b66e3076c15ce39df581801c43"
    assert signing.shopee_push_signature("test_partner_key", "https://example.com/shopee/push", SHOPEE_PUSH) == expected


def _shopify() -> ShopifyAdapter:
    credentials = {"shop_domain": "x.myshopify.com", "access_token": "t", "client_secret": "hush"}
    return ShopifyAdapter("https://x.myshopify.com", credentials, httpx.Client())


def _shopee() -> ShopeeAdapter:
    credentials = {"partner_id": "2001887", "partner_key": "test_partner_key", "shop_id": "1", "access_token": "a"}
    return ShopeeAdapter("https://partner.shopeemobile.com", credentials, httpx.Client())


def test_shopify_adapter_accepts_only_the_exact_body_and_signature() -> None:
    body = b'{"id":820982911946154508,"name":"#1001"}'
    good = {"X-Shopify-Hmac-Sha256": "Mkf2s8BiWQBb/dlay3RDP15QWaH8IejS3UDTmBxVmfo="}
    adapter = _shopify()
    assert adapter.verify_push(url="", headers=good, body=body)
    assert not adapter.verify_push(url="", headers=good, body=body + b" ")  # re-serialised JSON is another body
    assert not adapter.verify_push(url="", headers={}, body=body)
    assert not adapter.verify_push(url="", headers={"X-Shopify-Hmac-Sha256": "Mkf2s8Bi"}, body=body)


@pytest.mark.parametrize(
    ("url", "header", "accepted"),
    [
        ("https://example.com/shopee/push", "d5c9433cebab96931b2257dc00a1004bb51022b66e3076c15ce39df581801c43", True),
        ("https://example.com/shopee/push/", "d5c9433cebab96931b2257dc00a1004bb51022b66e3076c15ce39df581801c43", False),
        ("https://example.com/shopee/push", "D5C9433CEBAB96931B2257DC00A1004BB51022B66E3076C15CE39DF581801C43", False),
        ("https://example.com/shopee/push", None, False),
    ],
)
def test_shopee_adapter_verifies_over_the_registered_url_and_raw_body(
    url: str, header: str | None, accepted: bool
) -> None:
    headers = {"Authorization": header} if header else {}
    assert _shopee().verify_push(url=url, headers=headers, body=SHOPEE_PUSH) is accepted


def test_a_missing_secret_never_verifies() -> None:
    adapter = ShopifyAdapter("https://x", {"client_secret": ""}, httpx.Client())
    assert not adapter.verify_push(
        url="", headers={"X-Shopify-Hmac-Sha256": signing.shopify_webhook_signature("", b"{}")}, body=b"{}"
    )
