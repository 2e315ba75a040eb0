"""Lazada and TikTok Shop signers and push verifiers against CHANNELS.md §10 (vectors 1-4 and 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ordermesh.adapters.channels import lazada, tiktok
from ordermesh.adapters.channels.units import push_signature, verify_push_signature

FIXTURES = Path(__file__).parents[1] / "fixtures" / "channels"
PUSHES = json.loads((FIXTURES / "pushes_lazada_tiktok.json").read_text())

LAZADA_PARAMS = {
    "app_key": "123456",
    "access_token": "test",
    "timestamp": "1517820392000",
    "sign_method": "sha256",
    "order_id": "1234",
}
LAZADA_BASE = "/order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000"
LAZADA_SIGN = "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"


def test_lazada_official_vector_base_string_and_signature() -> None:
    assert lazada.signature_base("/order/get", LAZADA_PARAMS) == LAZADA_BASE
    assert lazada.sign_request("/order/get", LAZADA_PARAMS, "helloworld") == LAZADA_SIGN


def test_lazada_signs_the_api_path_without_the_rest_gateway_prefix() -> None:
    assert lazada.signing_path("/rest/order/get") == "/order/get"
    assert lazada.signing_path("/order/get") == "/order/get"
    assert lazada.signing_path("/restaurants/get") == "/restaurants/get"  # only a whole /rest segment is a prefix
    assert lazada.sign_request("/rest/order/get", LAZADA_PARAMS, "helloworld") == LAZADA_SIGN


def test_lazada_verifier_accepts_the_vector_and_rejects_forgeries() -> None:
    signed = {**LAZADA_PARAMS, "sign": LAZADA_SIGN}
    assert lazada.verify_request("/order/get", signed, "helloworld")
    assert lazada.verify_request("/order/get", {**signed, "sign": LAZADA_SIGN.lower()}, "helloworld")
    assert not lazada.verify_request("/order/get", {**signed, "order_id": "1235"}, "helloworld")
    assert not lazada.verify_request("/order/get", signed, "hello-world")
    assert not lazada.verify_request("/order/get", LAZADA_PARAMS, "helloworld")  # no sign at all


def test_lazada_push_vector() -> None:
    body = PUSHES["lazada_trade_order"].encode()
    expected = "b0cfd0349e915667babf3c35e2335fb09653527421c46a94bd9e70e874c16322"
    assert push_signature("123456", "helloworld", body) == expected
    adapter = lazada.LazadaAdapter.__new__(lazada.LazadaAdapter)
    adapter.app_key, adapter.app_secret = "123456", "helloworld"
    assert adapter.verify_push(
        url="https://oms.example/webhooks/lazada/x", headers={"authorization": expected}, body=body
    )
    assert not adapter.verify_push(url="", headers={"Authorization": expected}, body=body + b" ")
    assert not adapter.verify_push(url="", headers={}, body=body)


def test_tiktok_ecomphp_get_vector() -> None:
    assert tiktok.signature_base("/test-api", {"foo": "bar"}) == "/test-apifoobar"
    expected = "d3cb7fe11ecae942802ceeca67e7cf10120cc12f1517d45fbc1c8cfe5413c80f"
    assert tiktok.sign_request("/test-api", {"foo": "bar"}, "app_secret") == expected


def test_tiktok_post_vector_signs_the_raw_body_and_skips_sign_and_access_token() -> None:
    path = "/product/202309/products/1729592969712207000/inventory/update"
    params = {"app_key": "app_key", "shop_cipher": "ROW_abc", "timestamp": "1700000000"}
    body = '{"skus":[{"id":"1729592969712207013","inventory":[{"warehouse_id":"7068517275539719942","quantity":10}]}]}'
    expected = "c4b6796920e5e35c9770413f260a6cba67617710fa0501770133e9c19e4b8986"
    assert tiktok.sign_request(path, params, "app_secret", body) == expected
    noisy = {**params, "sign": "whatever", "access_token": "tok"}
    assert tiktok.sign_request(path, noisy, "app_secret", body) == expected
    assert tiktok.verify_request(path, {**params, "sign": expected}, "app_secret", body)
    assert not tiktok.verify_request(path, {**params, "sign": expected}, "app_secret", body.replace("10", "11"))


def test_tiktok_webhook_vector() -> None:
    body = PUSHES["tiktok_order_status"].encode()
    expected = "21109834de72ec53c9959716d8514ae388ce1f123e5ffdcafc46713fcdf62b27"
    assert push_signature("fake_app_key", "fake_app_secret", body) == expected
    assert verify_push_signature("fake_app_key", "fake_app_secret", body, expected.upper())
    assert not verify_push_signature("fake_app_key", "other_secret", body, expected)
    assert not verify_push_signature("fake_app_key", "fake_app_secret", body, "Bearer " + expected)


@pytest.mark.parametrize("presented", [None, "", "zz", "0" * 64])
def test_push_verifier_rejects_missing_or_wrong_signatures(presented: str | None) -> None:
    assert not verify_push_signature("k", "s", b"{}", presented)
