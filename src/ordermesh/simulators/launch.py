"""Building a channel simulator from command-line options, with one clear message for each bad option."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI

from ordermesh.simulators import lazada, shopee, shopify, tiktok

KINDS = ("shopify", "shopee", "lazada", "tiktok")


def build_channel_simulator(
    kind: str,
    *,
    app_key: str | None = None,
    app_secret: str | None = None,
    access_token: str | None = None,
    shop_cipher: str | None = None,
    push_url: str | None = None,
    client_secret: str | None = None,
    shop_domain: str = "sim-shop.myshopify.com",
    partner_id: str | None = None,
    partner_key: str | None = None,
    shop_id: str = "600000",
) -> FastAPI:
    """The simulator app for ``kind``, taking the credentials it verifies in the platform's own terms;
    raises ``ValueError`` naming the first bad option."""
    if kind not in KINDS:
        raise ValueError(f"unknown channel simulator {kind!r}; choose one of {', '.join(KINDS)}")
    if push_url is not None:
        parts = urlsplit(push_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"--push-url must be an http(s) URL, got {push_url!r}")
    if kind == "shopify":
        if not client_secret:
            raise ValueError("the shopify simulator needs --client-secret (it signs webhooks with it)")
        return shopify.create_app(
            client_secret=client_secret,
            access_token=access_token or "shpat_sim",
            shop_domain=shop_domain,
            push_url=push_url,
        )
    if kind == "shopee":
        if not (partner_id and partner_key) or not partner_id.isdigit():
            raise ValueError("the shopee simulator needs --partner-id (a number) and --partner-key")
        return shopee.create_app(
            partner_id=partner_id,
            partner_key=partner_key,
            shop_id=shop_id,
            access_token=access_token or "sim_access_token",
            push_url=push_url,
        )
    if not app_key or not app_secret:
        raise ValueError(f"the {kind} simulator needs --app-key and --app-secret (the credentials it verifies)")
    if kind == "lazada":
        if shop_cipher:
            raise ValueError("--shop-cipher is a TikTok Shop option; Lazada has no shop cipher")
        return lazada.create_app(app_key=app_key, app_secret=app_secret, access_token=access_token, push_url=push_url)
    return tiktok.create_app(
        app_key=app_key, app_secret=app_secret, access_token=access_token, shop_cipher=shop_cipher, push_url=push_url
    )
