"""Building a channel simulator from command-line options, with one clear message for each bad option."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI

from ordermesh.simulators import lazada, tiktok

KINDS = ("lazada", "tiktok")


def build_channel_simulator(
    kind: str,
    *,
    app_key: str | None,
    app_secret: str | None,
    access_token: str | None = None,
    shop_cipher: str | None = None,
    push_url: str | None = None,
) -> FastAPI:
    """The simulator app for ``kind``; raises ``ValueError`` naming the first bad option."""
    if kind not in KINDS:
        raise ValueError(f"unknown channel simulator {kind!r}; choose one of {', '.join(KINDS)}")
    if not app_key or not app_secret:
        raise ValueError(f"the {kind} simulator needs --app-key and --app-secret (the credentials it verifies)")
    if push_url is not None:
        parts = urlsplit(push_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"--push-url must be an http(s) URL, got {push_url!r}")
    if kind == "lazada":
        if shop_cipher:
            raise ValueError("--shop-cipher is a TikTok Shop option; Lazada has no shop cipher")
        return lazada.create_app(app_key=app_key, app_secret=app_secret, access_token=access_token, push_url=push_url)
    return tiktok.create_app(
        app_key=app_key, app_secret=app_secret, access_token=access_token, shop_cipher=shop_cipher, push_url=push_url
    )
