"""TikTok Shop Partner API adapter, version 202309 (CHANNELS.md §4, statuses §9.2, vectors §10).

Contract notes:
- Requests carry ``app_key``, ``timestamp`` (unix s), ``shop_cipher`` (shop-scoped paths) and ``sign`` in the
  query, and the seller token in the ``x-tts-access-token`` header. ``sign`` is hex HMAC-SHA256 keyed by the app
  secret over ``secret + path + sorted key+value pairs (minus sign and access_token) + raw body + secret``; the
  body is appended for every method but GET (and never for multipart). JSON bodies are serialised once and sent
  exactly as signed.
- Envelope ``{code: 0, message, request_id, data}``. Non-zero codes are the caller's fault (PermanentDeliveryError)
  except messages that say the platform is busy or throttling (TransientDeliveryError); TikTok Shop's rate limits
  and throttling codes are not published ([U], §4.4), so ``rate_per_second`` is a conservative 5/s.
- Line items come one per unit [U]; they are grouped into quantities per SKU and price.
- Webhooks: ``Authorization`` = hex HMAC-SHA256(app_secret, app_key + raw body); dedupe key is
  ``tts_notification_id`` (falling back to type + order + status + update time when a sender omits it, as the
  EcomPHP sample does).
- Stock: ``POST /product/202309/products/{product_id}/inventory/update``, absolute quantity per SKU and warehouse
  (inner body shape [U]); a listing without a warehouse uses the shop's default sales warehouse.
- Shipment: TikTok-shipped orders (``shipping_type`` TIKTOK) ship their package with ``handover_method``
  DROP_OFF and the platform's own tracking; seller-shipped orders mark a package shipped with ordermesh's
  tracking number and the TikTok shipping provider whose name matches the carrier (ordermesh's carrier codes
  match the initials of TikTok's full names: GHN is Giao Hang Nhanh).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from ordermesh.adapters.channels.base import (
    ChannelAddress,
    ChannelOrder,
    ChannelStatus,
    Listing,
    PushNotice,
    ShipmentNotice,
    StockUpdate,
)
from ordermesh.adapters.channels.units import (
    UnitRow,
    group_unit_lines,
    header,
    money,
    platform_time,
    verify_push_signature,
    whole_seconds,
)
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError, call

VERSION = "202309"
MAX_PAGE = 100
MAX_DETAIL_IDS = 50  # [U] whether orders?ids= is capped at 50; staying under it is safe either way
_UNSCOPED_PREFIXES = ("/authorization/", "/seller/", "/api/")  # no shop_cipher on these (§4.1)
_TRANSIENT_WORDS = ("too many", "rate limit", "busy", "internal", "timeout", "try again")

STATUSES: dict[str, ChannelStatus] = {
    "UNPAID": ChannelStatus.PENDING_PAYMENT,
    "ON_HOLD": ChannelStatus.ON_HOLD,
    "AWAITING_SHIPMENT": ChannelStatus.READY_TO_FULFILL,
    "PARTIALLY_SHIPPING": ChannelStatus.PARTIALLY_SHIPPED,
    "AWAITING_COLLECTION": ChannelStatus.FULFILLING,
    "IN_TRANSIT": ChannelStatus.SHIPPED,
    "DELIVERED": ChannelStatus.DELIVERED,
    "COMPLETED": ChannelStatus.COMPLETED,
    "CANCELLED": ChannelStatus.CANCELLED,
}
_LEGACY_CODES = {
    "100": "UNPAID",
    "105": "ON_HOLD",
    "111": "AWAITING_SHIPMENT",
    "112": "AWAITING_COLLECTION",
    "114": "PARTIALLY_SHIPPING",
    "121": "IN_TRANSIT",
    "122": "DELIVERED",
    "130": "COMPLETED",
    "140": "CANCELLED",
}
_NOT_YET_SHIPPED = {"UNPAID", "ON_HOLD", "AWAITING_SHIPMENT"}


def signature_base(path: str, params: Mapping[str, str], body: str | None = None) -> str:
    """``path`` + sorted ``key+value`` pairs without ``sign``/``access_token`` + the raw body (non-GET)."""
    pairs = "".join(f"{key}{params[key]}" for key in sorted(params) if key not in {"sign", "access_token"})
    return path + pairs + (body or "")


def sign_request(path: str, params: Mapping[str, str], app_secret: str, body: str | None = None) -> str:
    """TikTok Shop request signature (§4.1): hex HMAC-SHA256(secret, secret + base + secret)."""
    wrapped = app_secret + signature_base(path, params, body) + app_secret
    return hmac.new(app_secret.encode(), wrapped.encode(), hashlib.sha256).hexdigest()


def verify_request(path: str, params: Mapping[str, str], app_secret: str, body: str | None = None) -> bool:
    expected = sign_request(path, params, app_secret, body)
    return hmac.compare_digest(expected.encode(), (params.get("sign") or "").lower().encode())


def carrier_matches(carrier: str, provider_id: str, provider_name: str) -> bool:
    """Whether ordermesh's carrier (a code such as ``GHN``/``GHTK``/``NINJAVAN`` or a name) is this TikTok provider.

    TikTok names providers in full ("Giao Hang Nhanh", "J&T Express"), while ordermesh's carriers go by their
    codes, so a code also matches the initials of the provider's words, and spaces and punctuation are ignored.
    """
    wanted = "".join(ch for ch in carrier.lower() if ch.isalnum())
    if not wanted:
        return False
    name = "".join(ch for ch in provider_name.lower() if ch.isalnum())
    initials = "".join(word[0] for word in provider_name.lower().split() if word[:1].isalnum())
    return wanted in (provider_id, initials) or (bool(name) and (wanted in name or name in wanted))


def status_name(value: Any) -> str:
    text = str(value or "").strip().upper()
    return _LEGACY_CODES.get(text, text)


def _text(mapping: Mapping[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return str(value) if value not in (None, "", '""', "null") else None


def map_order(order: Mapping[str, Any]) -> ChannelOrder:
    """A 202309 order object (detail or search result) → the canonical order."""
    raw_status = status_name(order.get("status"))
    status = STATUSES.get(raw_status, ChannelStatus.ON_HOLD)
    if status not in {ChannelStatus.CANCELLED, ChannelStatus.COMPLETED} and order.get("is_buyer_request_cancel") in (
        True,
        "true",
    ):
        status = ChannelStatus.CANCEL_REQUESTED
    payment = order.get("payment") or {}
    items = list(order.get("line_items") or [])
    live = [item for item in items if status_name(item.get("display_status")) != "CANCELLED"] or items
    rows = []
    for item in live:
        sale = money(item.get("sale_price")) or Decimal(0)
        original = money(item.get("original_price"), default=None)
        unit = original if original is not None and original >= sale else sale
        rows.append(
            UnitRow(
                line_id=str(item.get("id")),
                seller_sku=item.get("seller_sku") or None,
                item_id=_text(item, "product_id"),
                variant_id=_text(item, "sku_id"),
                unit_price=unit,
                discount=unit - sale,
                title=item.get("product_name") or None,
                quantity=int(item.get("quantity") or 1),
            )
        )
    payment_name = str(order.get("payment_method_name") or "")
    cod = order.get("is_cod") in (True, "true") or "cash on delivery" in payment_name.lower() or payment_name == "COD"
    currency = payment.get("currency") or next((item.get("currency") for item in items if item.get("currency")), "")
    updated = platform_time(order.get("update_time")) or platform_time(order.get("create_time"))
    return ChannelOrder(
        external_id=str(order.get("id")),
        raw_status=raw_status,
        status=status,
        updated_at=updated or datetime.now(UTC),
        currency=str(currency or ""),
        lines=group_unit_lines(rows),
        placed_at=platform_time(order.get("create_time")),
        paid_at=platform_time(order.get("paid_time")),
        ship_by=platform_time(order.get("rts_sla_time")) or platform_time(order.get("shipping_due_time")),
        shipping_fee=money(payment.get("shipping_fee")) or Decimal(0),
        total=money(payment.get("total_amount"), default=None),
        cod=cod,
        address=_address(order.get("recipient_address") or {}),
        buyer_note=_text(order, "buyer_message"),
        cancel_reason=_text(order, "cancel_reason") if status is ChannelStatus.CANCELLED else None,
        raw=dict(order),
    )


def _address(address: Mapping[str, Any]) -> ChannelAddress:
    """``district_info`` lists the administrative levels by name; VN uses province / district / ward [S]."""
    levels: dict[str, str] = {}
    for level in address.get("district_info") or []:
        name = str(level.get("address_level_name") or "").lower()
        value = level.get("address_name")
        if not value:
            continue
        if any(word in name for word in ("province", "state", "region")) or name in {"l1", "city"}:
            levels.setdefault("province", str(value))
        elif any(word in name for word in ("district", "county")) or name == "l2":
            levels.setdefault("district", str(value))
        elif any(word in name for word in ("ward", "commune", "town")) or name == "l3":
            levels.setdefault("ward", str(value))
    region = _text(address, "region_code")
    return ChannelAddress(
        name=_text(address, "name"),
        phone=_text(address, "phone_number"),
        line1=_text(address, "address_line1") or _text(address, "address_detail") or _text(address, "full_address"),
        line2=_text(address, "address_line2"),
        ward=levels.get("ward"),
        district=levels.get("district"),
        province=levels.get("province"),
        country=region.upper() if region and len(region) == 2 else None,
        postal_code=_text(address, "postal_code"),
    )


class TikTokShopAdapter:
    """One TikTok Shop (app key/secret, the seller's access token and the shop's cipher)."""

    kind: ClassVar[str] = "tiktok"
    max_stock_batch: ClassVar[int] = 50
    rate_per_second: ClassVar[float] = 5.0
    burst: ClassVar[int] = 5

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        missing = [key for key in ("app_key", "app_secret", "access_token", "shop_cipher") if not credentials.get(key)]
        if missing:
            raise ValueError(f"tiktok credentials missing: {', '.join(missing)}")
        self.app_key = credentials["app_key"]
        self.app_secret = credentials["app_secret"]
        self.access_token = credentials["access_token"]
        self.shop_cipher = credentials["shop_cipher"]
        self.base_url = base_url.rstrip("/")
        self.client = client
        self._default_warehouse: str | None = None

    # -- transport ----------------------------------------------------------------------------------------------

    def request(
        self, method: str, path: str, *, query: Mapping[str, Any] | None = None, body: Any = None
    ) -> dict[str, Any]:
        params = {key: str(value) for key, value in (query or {}).items() if value is not None}
        params["app_key"] = self.app_key
        params["timestamp"] = str(int(time.time()))
        if not path.startswith(_UNSCOPED_PREFIXES):
            params["shop_cipher"] = self.shop_cipher
        raw = None if method == "GET" else json.dumps(body if body is not None else {}, separators=(",", ":"))
        params["sign"] = sign_request(path, params, self.app_secret, raw)
        headers = {"x-tts-access-token": self.access_token, "content-type": "application/json"}
        response = call(
            self.client,
            method,
            self.base_url + path,
            params=params,
            headers=headers,
            content=raw.encode() if raw is not None else None,
        )
        try:
            envelope = response.json()
        except ValueError as exc:
            raise TransientDeliveryError(f"tiktok {path}: unreadable response ({response.status_code})") from exc
        if not isinstance(envelope, dict):
            raise TransientDeliveryError(f"tiktok {path}: unexpected response shape")
        code = envelope.get("code", 0)
        if str(code) != "0":
            message = f"tiktok {path}: {code} {envelope.get('message', '')}".strip()
            if any(word in str(envelope.get("message", "")).lower() for word in _TRANSIENT_WORDS):
                raise TransientDeliveryError(message)
            raise PermanentDeliveryError(message)
        return envelope

    # -- webhooks -----------------------------------------------------------------------------------------------

    def verify_push(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_push_signature(self.app_key, self.app_secret, body, header(headers, "Authorization"))

    def parse_push(self, *, headers: Mapping[str, str], body: bytes) -> PushNotice:
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise ValueError("tiktok webhook body is not JSON") from exc
        if not isinstance(message, dict):
            raise ValueError("tiktok webhook body is not a JSON object")
        data: dict[str, Any] = message["data"] if isinstance(message.get("data"), dict) else {}
        kind = str(message.get("type", ""))
        order_id = str(data["order_id"]) if data.get("order_id") not in (None, "") else None
        stamp = data.get("update_time") or data.get("create_time") or message.get("timestamp")
        update_time = platform_time(stamp)
        notification = message.get("tts_notification_id")
        state = data.get("order_status") or data.get("cancel_status") or data.get("return_status") or ""
        key = (
            f"tiktok:{notification}"
            if notification
            else f"tiktok:{message.get('shop_id', '')}:{kind}:{order_id}:{state}:{stamp}"
        )
        if order_id is None:
            if not notification:
                key = f"tiktok:{message.get('shop_id', '')}:{kind}:{hashlib.sha256(body).hexdigest()}"
            return PushNotice(dedupe_key=key, topic="other", update_time=update_time)
        if kind in {"1", "3", "4"}:
            topic = "order"
        elif kind == "11":
            pending = str(data.get("cancel_status", "")).upper() in {"CANCELLATION_REQUEST_PENDING", "PENDING"}
            buyer = str(data.get("cancellations_role", "BUYER")).upper() == "BUYER"
            topic = "cancel_request" if pending and buyer else "order"
        elif kind in {"2", "12"}:
            topic = "return"
        else:
            topic = "other"
        return PushNotice(dedupe_key=key, topic=topic, order_ids=(order_id,), update_time=update_time)

    # -- orders -------------------------------------------------------------------------------------------------

    def fetch_orders(self, external_ids: Sequence[str]) -> list[ChannelOrder]:
        ids = list(dict.fromkeys(str(i) for i in external_ids))
        orders: list[ChannelOrder] = []
        for start in range(0, len(ids), MAX_DETAIL_IDS):
            chunk = ids[start : start + MAX_DETAIL_IDS]
            envelope = self.request("GET", f"/order/{VERSION}/orders", query={"ids": ",".join(chunk)})
            orders.extend(map_order(order) for order in (envelope.get("data") or {}).get("orders") or [])
        return orders

    def _raw_orders(self, external_id: str) -> dict[str, Any]:
        envelope = self.request("GET", f"/order/{VERSION}/orders", query={"ids": external_id})
        found = (envelope.get("data") or {}).get("orders") or []
        if not found:
            raise PermanentDeliveryError(f"tiktok order {external_id} not found")
        return dict(found[0])

    def orders_updated(self, since: datetime, until: datetime) -> Iterator[ChannelOrder]:
        token: str | None = None
        lower, upper = whole_seconds(since, until)
        body = {"update_time_ge": lower, "update_time_lt": upper}
        while True:
            query = {"page_size": MAX_PAGE, "sort_field": "update_time", "sort_order": "ASC", "page_token": token}
            envelope = self.request("POST", f"/order/{VERSION}/orders/search", query=query, body=body)
            data = envelope.get("data") or {}
            for order in data.get("orders") or []:
                mapped = map_order(order)
                if since <= mapped.updated_at < until:
                    yield mapped
            token = data.get("next_page_token") or None
            if not token:
                return

    # -- listings and stock -------------------------------------------------------------------------------------

    def listings(self) -> Iterator[Listing]:
        token: str | None = None
        while True:
            envelope = self.request(
                "POST",
                f"/product/{VERSION}/products/search",
                query={"page_size": MAX_PAGE, "page_token": token},
                body={"status": "ACTIVATE"},
            )
            data = envelope.get("data") or {}
            for product in data.get("products") or []:
                for sku in product.get("skus") or []:
                    warehouses = [entry.get("warehouse_id") for entry in sku.get("inventory") or []]
                    yield Listing(
                        seller_sku=sku.get("seller_sku") or None,
                        item_id=str(product.get("id")),
                        variant_id=str(sku.get("id")),
                        title=product.get("title"),
                        location_id=str(warehouses[0]) if warehouses and warehouses[0] else None,
                    )
            token = data.get("next_page_token") or None
            if not token:
                return

    def default_warehouse(self) -> str:
        if self._default_warehouse is None:
            envelope = self.request("GET", f"/logistics/{VERSION}/warehouses")
            warehouses = (envelope.get("data") or {}).get("warehouses") or []
            sales = [w for w in warehouses if str(w.get("type", "SALES_WAREHOUSE")) == "SALES_WAREHOUSE"]
            chosen = next((w for w in sales if w.get("is_default")), sales[0] if sales else None)
            if chosen is None:
                raise PermanentDeliveryError("tiktok shop has no sales warehouse to hold stock")
            self._default_warehouse = str(chosen["id"])
        return self._default_warehouse

    def set_stock(self, updates: Sequence[StockUpdate]) -> None:
        """One inventory update per product, carrying every SKU of that product in the batch."""
        by_product: dict[str, list[StockUpdate]] = {}
        for update in updates:
            if not update.listing.item_id or not update.listing.variant_id:
                raise PermanentDeliveryError(
                    f"tiktok listing {update.listing.seller_sku!r} lacks a product or SKU id; import listings first"
                )
            by_product.setdefault(update.listing.item_id, []).append(update)
        for product_id, product_updates in by_product.items():
            skus = []
            for update in product_updates:
                warehouse = update.listing.location_id or self.default_warehouse()
                skus.append(
                    {
                        "id": update.listing.variant_id,
                        "inventory": [{"warehouse_id": warehouse, "quantity": max(int(update.quantity), 0)}],
                    }
                )
            self.request("POST", f"/product/{VERSION}/products/{product_id}/inventory/update", body={"skus": skus})

    # -- fulfilment and cancellation ----------------------------------------------------------------------------

    def confirm_shipment(self, notice: ShipmentNotice) -> None:
        order = self._raw_orders(notice.external_order_id)
        status = status_name(order.get("status"))
        if status == "CANCELLED":
            raise PermanentDeliveryError(f"tiktok order {notice.external_order_id} is cancelled")
        if status in {"UNPAID", "ON_HOLD"}:
            raise PermanentDeliveryError(f"tiktok order {notice.external_order_id} cannot ship while {status}")
        items = list(order.get("line_items") or [])
        wanted = set(notice.line_ids)
        chosen = [item for item in items if not wanted or str(item.get("id")) in wanted]
        if not chosen:
            raise PermanentDeliveryError(
                f"tiktok order {notice.external_order_id}: no such line items {sorted(wanted)}"
            )
        open_items = [item for item in chosen if str(item.get("package_status", "TO_FULFILL")) in {"TO_FULFILL", ""}]
        if not open_items or status not in _NOT_YET_SHIPPED | {"PARTIALLY_SHIPPING"}:
            return  # already handed over: repeating the call is a no-op
        if str(order.get("shipping_type", "TIKTOK")).upper() == "SELLER":
            provider = self._provider_id(order, notice.carrier)
            self.request(
                "POST",
                f"/fulfillment/{VERSION}/orders/{notice.external_order_id}/packages",
                body={
                    "order_line_item_ids": [str(item.get("id")) for item in open_items],
                    "tracking_number": notice.tracking_number,
                    "shipping_provider_id": provider,
                },
            )
            return
        packages = sorted({str(item["package_id"]) for item in open_items if item.get("package_id")})
        if not packages:
            packages = [str(package["id"]) for package in order.get("packages") or [] if package.get("id")]
        if not packages:
            raise PermanentDeliveryError(f"tiktok order {notice.external_order_id} has no package to ship")
        for package_id in packages:
            self.request(
                "POST", f"/fulfillment/{VERSION}/packages/{package_id}/ship", body={"handover_method": "DROP_OFF"}
            )

    def _provider_id(self, order: Mapping[str, Any], carrier: str) -> str:
        option = order.get("delivery_option_id")
        if not option:
            raise PermanentDeliveryError(f"tiktok order {order.get('id')} has no delivery option for seller shipping")
        envelope = self.request("GET", f"/logistics/{VERSION}/delivery_options/{option}/shipping_providers")
        providers = (envelope.get("data") or {}).get("shipping_providers") or []
        for provider in providers:
            if carrier_matches(carrier, str(provider.get("id", "")), str(provider.get("name", ""))):
                return str(provider["id"])
        names = ", ".join(str(provider.get("name")) for provider in providers)
        raise PermanentDeliveryError(f"tiktok has no shipping provider matching carrier {carrier!r} (offers: {names})")

    def cancel_order(self, external_id: str, *, reason: str, line_ids: Sequence[str] = ()) -> None:
        order = self._raw_orders(external_id)
        if status_name(order.get("status")) == "CANCELLED":
            return
        body: dict[str, Any] = {"order_id": external_id, "cancel_reason": reason}
        if line_ids:
            body["order_line_item_ids"] = list(line_ids)
        self.request("POST", f"/return_refund/{VERSION}/cancellations", body=body)

    def answer_cancel_request(self, external_id: str, *, accept: bool, reason: str | None = None) -> None:
        envelope = self.request(
            "POST", f"/return_refund/{VERSION}/cancellations/search", body={"order_ids": [external_id]}
        )
        cancellations = (envelope.get("data") or {}).get("cancellations") or []
        pending = [c for c in cancellations if str(c.get("cancel_status")) == "CANCELLATION_REQUEST_PENDING"]
        if not pending:
            raise PermanentDeliveryError(f"tiktok order {external_id}: no pending cancellation request")
        for cancellation in pending:
            cancel_id = cancellation["cancel_id"]
            if accept:
                self.request("POST", f"/return_refund/{VERSION}/cancellations/{cancel_id}/approve", body={})
            else:
                self.request(
                    "POST",
                    f"/return_refund/{VERSION}/cancellations/{cancel_id}/reject",
                    body={"reject_reason": reason or "seller_rejected"},
                )
