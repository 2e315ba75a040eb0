"""Signatures of the marketplaces, shared by the adapters (which sign and verify) and the simulators
(which verify and sign the other way), so both sides agree by construction. All HMAC-SHA256 over UTF-8
(CHANNELS.md §1.2, §2.1, §2.6; test vectors in §10)."""

from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(key: str, message: bytes) -> bytes:
    return hmac.new(key.encode(), message, hashlib.sha256).digest()


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two signatures (False when one is missing)."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().encode())


# -- Shopify (§1.2) ----------------------------------------------------------------------------------


def shopify_webhook_signature(client_secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 of the HMAC of the raw body, keyed by the app's client secret."""
    return base64.b64encode(_mac(client_secret, body)).decode()


def verify_shopify_webhook(client_secret: str, body: bytes, header: str | None) -> bool:
    return same(shopify_webhook_signature(client_secret, body), header)


# -- Shopee (§2.1, §2.6) -----------------------------------------------------------------------------


def shopee_public_sign(partner_key: str, partner_id: int | str, path: str, timestamp: int) -> str:
    """Public (partner-level) API sign: ``partner_id + api_path + timestamp``."""
    return _mac(partner_key, f"{partner_id}{path}{timestamp}".encode()).hex()


def shopee_shop_sign(
    partner_key: str, partner_id: int | str, path: str, timestamp: int, access_token: str, shop_id: int | str
) -> str:
    """Shop API sign: ``partner_id + api_path + timestamp + access_token + shop_id``."""
    return _mac(partner_key, f"{partner_id}{path}{timestamp}{access_token}{shop_id}".encode()).hex()


def shopee_push_signature(partner_key: str, callback_url: str, body: bytes) -> str:
    """``Authorization`` of a push: HMAC of ``callback_url + "|" + raw body``, hex."""
    return _mac(partner_key, callback_url.encode() + b"|" + body).hex()


def verify_shopee_push(partner_key: str, callback_url: str, body: bytes, header: str | None) -> bool:
    return same(shopee_push_signature(partner_key, callback_url, body), header)
