"""Which adapter class speaks for which kind of channel connection."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ordermesh.adapters.channels.base import ChannelAdapter
from ordermesh.adapters.channels.lazada import LazadaAdapter
from ordermesh.adapters.channels.shopee import ShopeeAdapter
from ordermesh.adapters.channels.shopify import ShopifyAdapter
from ordermesh.adapters.channels.tiktok import TikTokShopAdapter

# kind -> adapter class, each constructed as ``Adapter(base_url, credentials, client)``.
ADAPTERS: dict[str, type] = {
    ShopifyAdapter.kind: ShopifyAdapter,
    ShopeeAdapter.kind: ShopeeAdapter,
    LazadaAdapter.kind: LazadaAdapter,
    TikTokShopAdapter.kind: TikTokShopAdapter,
}

# The credentials each kind needs, in the platform's own terms (issue 4).
CREDENTIAL_KEYS: dict[str, tuple[str, ...]] = {
    "shopify": ("shop_domain", "access_token", "client_secret"),
    "shopee": ("partner_id", "partner_key", "shop_id", "access_token"),
    "lazada": ("app_key", "app_secret", "access_token"),
    "tiktok": ("app_key", "app_secret", "access_token", "shop_cipher"),
    "direct": (),
}


def adapter_for(kind: str, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> ChannelAdapter:
    try:
        cls = ADAPTERS[kind]
    except KeyError:
        raise LookupError(f"no adapter for channel kind {kind!r}") from None
    adapter: ChannelAdapter = cls(base_url, credentials, client)
    return adapter
