"""Lazada Open Platform adapter (CHANNELS.md §3, statuses §9.2).

Contract notes:
- Every call is signed per §3.1: all parameters except ``sign`` sorted by name, ``name+value`` concatenated,
  prefixed with the API path WITHOUT the ``/rest`` gateway prefix, HMAC-SHA256 with the app secret, UPPER hex.
  Parameters travel in the query (GET) or as form fields (POST), so the signed set is exactly what is sent.
- The API answers HTTP 200 with ``code != "0"`` for business errors. Throttling (``ApiCallLimit``-style codes)
  and ``ISP``/``SYSTEM`` errors are retried (TransientDeliveryError); ``ISV`` errors (the caller's fault: bad
  parameter, signature, token) are not (PermanentDeliveryError). Error code names beyond ``IncompleteSignature``
  are [U].
- Items come one row per unit [U]; rows are grouped into quantities per SKU (``units.group_unit_lines``).
- Stock is pushed with ``/product/stock/sellable/update`` (absolute sellable quantity, [S]): ordermesh computes
  what may be SOLD, while ``UpdatePriceQuantity``'s ``Quantity`` is the total that Lazada reduces by its own
  locks for open orders (which ordermesh already reserved), so sending ordermesh's number there would subtract
  those orders twice. At most 50 SKUs per call and 50 calls/s per seller ([C] articleId=121234).
- Shipment: pack (``/order/fulfill/pack``) then ready-to-ship (``/order/package/rts``). Lazada assigns the tracking
  number in this dropship flow; ordermesh's carrier/tracking are not sent (the platform has no field for them).
  The ``readyToShipReq`` parameter name is [U].
- Buyer cancellation answers use ``/order/reverse/cancel/seller/decide`` with ``reverse_order_id`` and ``action``
  (``agree``/``refuse``); those parameter names are [U]. Seller cancellation validates first, then creates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from ordermesh.adapters.channels.base import (
    ChannelOrder,
    Listing,
    PushNotice,
    ShipmentNotice,
    StockUpdate,
)
from ordermesh.adapters.channels.lazada_orders import flag, map_order, zone_of
from ordermesh.adapters.channels.units import (
    header,
    platform_time,
    verify_push_signature,
    whole_seconds,
)
from ordermesh.adapters.outbound import PermanentDeliveryError, RateLimiter, TransientDeliveryError, call

GATEWAY_PREFIX = "/rest"
MAX_PAGE = 100  # GetOrders limit
MAX_OFFSET = 5000  # GetOrders offset ceiling
MAX_ITEMS_ORDERS = 50  # /orders/items/get order_ids per call
MAX_STOCK_SKUS = 50
STOCK_CALLS_PER_SECOND = 50.0
_CANCEL_REQUESTED = {"CANCEL_INIT", "REQUEST_INITIATE"}
_CANCEL_DECIDED = {"AGREE_CANCEL_ORDER", "REJECT_CANCEL_ORDER", "REQUEST_REJECT", "REQUEST_CANCEL"}
_TRANSIENT_CODES = {"ApiCallLimit", "AppCallLimit", "ServiceTimeout", "ServiceUnavailable", "InternalError"}

_UNKNOWN_ORDER_CODES = {"16", "E016", "InvalidOrderId"}  # "E016: Invalid Order ID" in the vendor samples


class LazadaApiError(PermanentDeliveryError):
    """An ``ISV`` error envelope: the request itself is wrong and repeating it will not help."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


def signing_path(api_path: str) -> str:
    """The path Lazada signs: the API path without the ``/rest`` gateway prefix (``/rest/order/get`` → ``/order/get``).

    Lazada signs the API name only, whatever gateway prefix the URL carries."""
    path = "/" + api_path.lstrip("/")
    if path == GATEWAY_PREFIX or path.startswith(GATEWAY_PREFIX + "/"):
        path = path[len(GATEWAY_PREFIX) :] or "/"
    return path


def signature_base(api_path: str, params: Mapping[str, str], body: str | None = None) -> str:
    """``path`` + sorted ``name+value`` pairs (``sign`` excluded) + the raw body when there is one."""
    pairs = "".join(f"{name}{params[name]}" for name in sorted(params) if name != "sign")
    return signing_path(api_path) + pairs + (body or "")


def sign_request(api_path: str, params: Mapping[str, str], app_secret: str, body: str | None = None) -> str:
    """Lazada request signature (§3.1): UPPER-case hex HMAC-SHA256 of the signature base."""
    base = signature_base(api_path, params, body)
    return hmac.new(app_secret.encode(), base.encode(), hashlib.sha256).hexdigest().upper()


def verify_request(api_path: str, params: Mapping[str, str], app_secret: str, body: str | None = None) -> bool:
    """The platform-side check: recompute and compare in constant time (case-insensitive hex)."""
    presented = params.get("sign") or ""
    expected = sign_request(api_path, params, app_secret, body)
    return hmac.compare_digest(expected.encode(), presented.upper().encode())


def param_value(value: Any) -> str:
    """Parameters as Lazada expects them: booleans lowercase, lists/objects as compact JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class LazadaAdapter:
    """One Lazada seller account (app key, app secret and the seller's access token)."""

    kind: ClassVar[str] = "lazada"
    max_stock_batch: ClassVar[int] = MAX_STOCK_SKUS
    rate_per_second: ClassVar[float] = STOCK_CALLS_PER_SECOND
    burst: ClassVar[int] = 10
    max_offset: int = MAX_OFFSET  # GetOrders' offset ceiling; an attribute so tests can lower it

    _limiters: ClassVar[dict[tuple[str, str], RateLimiter]] = {}
    _limiters_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        missing = [key for key in ("app_key", "app_secret", "access_token") if not credentials.get(key)]
        if missing:
            raise ValueError(f"lazada credentials missing: {', '.join(missing)}")
        self.app_key = credentials["app_key"]
        self.app_secret = credentials["app_secret"]
        self.access_token = credentials["access_token"]
        self.base_url = self._gateway(base_url)
        self.client = client
        # 50 calls/s is per seller, so adapters built for the same account share one bucket.
        with self._limiters_lock:
            self.stock_limiter = self._limiters.setdefault(
                (self.base_url, self.access_token), RateLimiter(STOCK_CALLS_PER_SECOND, int(STOCK_CALLS_PER_SECOND))
            )

    @staticmethod
    def _gateway(base_url: str) -> str:
        """Lazada hosts serve the API under ``/rest``; accept a base URL with or without it."""
        base = base_url.rstrip("/")
        if not urlsplit(base).path.endswith(GATEWAY_PREFIX):
            base += GATEWAY_PREFIX
        return base

    # -- transport ----------------------------------------------------------------------------------------------

    def signed_params(self, api_path: str, business: Mapping[str, Any]) -> dict[str, str]:
        params = {name: param_value(value) for name, value in business.items() if value is not None}
        params.update(
            app_key=self.app_key,
            access_token=self.access_token,
            sign_method="sha256",
            timestamp=str(int(time.time() * 1000)),
        )
        params["sign"] = sign_request(api_path, params, self.app_secret)
        return params

    def request(self, method: str, api_path: str, business: Mapping[str, Any] | None = None) -> dict[str, Any]:
        params = self.signed_params(api_path, business or {})
        url = self.base_url + api_path
        if method == "GET":
            response = call(self.client, "GET", url, params=params)
        else:
            response = call(self.client, method, url, data=params)
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientDeliveryError(f"lazada {api_path}: unreadable response ({response.status_code})") from exc
        if not isinstance(body, dict):
            raise TransientDeliveryError(f"lazada {api_path}: unexpected response shape")
        code = str(body.get("code", "0"))
        if code != "0":
            message = f"lazada {api_path}: {code} ({body.get('type', '')}) {body.get('message', '')}".strip()
            if code in _TRANSIENT_CODES or str(body.get("type", "")).upper() in {"ISP", "SYSTEM"}:
                raise TransientDeliveryError(message)
            raise LazadaApiError(message, code=code)
        return body

    # -- pushes -------------------------------------------------------------------------------------------------

    def verify_push(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        return verify_push_signature(self.app_key, self.app_secret, body, header(headers, "Authorization"))

    def parse_push(self, *, headers: Mapping[str, str], body: bytes) -> PushNotice:
        """Type 0 (trade order) and 10 (reverse order) pushes; anything else is ``other``.

        The dedupe key is the push's own identity plus its update time, so a redelivery maps to the same key
        while a later status of the same order line does not.
        """
        try:
            message = json.loads(body)
        except ValueError as exc:
            raise ValueError("lazada push body is not JSON") from exc
        if not isinstance(message, dict):
            raise ValueError("lazada push body is not a JSON object")
        data: dict[str, Any] = message["data"] if isinstance(message.get("data"), dict) else {}
        message_type = message.get("message_type")
        seller = str(message.get("seller_id", ""))
        update_time = platform_time(data.get("status_update_time")) or platform_time(message.get("timestamp"))
        order_id = str(data["trade_order_id"]) if data.get("trade_order_id") not in (None, "") else None
        stamp = data.get("status_update_time") or message.get("timestamp")
        if message_type in (0, "0") and order_id:
            status = str(data.get("order_status", ""))
            topic = (
                "return" if data.get("reverse_order_id") and status.lower() in {"returned", "shipped_back"} else "order"
            )
            key = f"lazada:{seller}:0:{order_id}:{data.get('trade_order_line_id', '')}:{status}:{stamp}"
            return PushNotice(dedupe_key=key, topic=topic, order_ids=(order_id,), update_time=update_time)
        if message_type in (10, "10") and order_id:
            reverse = str(data.get("reverse_status", "")).upper()
            if reverse in _CANCEL_REQUESTED:
                topic = "cancel_request"
            elif reverse.startswith("CANCEL") or reverse in _CANCEL_DECIDED:
                topic = "order"  # the cancellation went through or was refused: refetch the order
            else:
                topic = "return"
            key = (
                f"lazada:{seller}:10:{data.get('reverse_order_id', '')}:{data.get('reverse_order_line_id', '')}:"
                f"{reverse}:{stamp}"
            )
            return PushNotice(dedupe_key=key, topic=topic, order_ids=(order_id,), update_time=update_time)
        digest = hashlib.sha256(body).hexdigest()
        return PushNotice(dedupe_key=f"lazada:{seller}:{message_type}:{digest}", topic="other", update_time=update_time)

    # -- orders -------------------------------------------------------------------------------------------------

    def _items_by_order(self, order_ids: Sequence[str]) -> dict[str, list[dict[str, Any]]]:
        items: dict[str, list[dict[str, Any]]] = {order_id: [] for order_id in order_ids}
        for start in range(0, len(order_ids), MAX_ITEMS_ORDERS):
            chunk = list(order_ids[start : start + MAX_ITEMS_ORDERS])
            body = self.request(
                "GET", "/orders/items/get", {"order_ids": [int(i) if i.isdigit() else i for i in chunk]}
            )
            for entry in body.get("data") or []:
                order_id = str(entry.get("order_id"))
                items.setdefault(order_id, []).extend(entry.get("order_items") or [])
        return items

    def fetch_orders(self, external_ids: Sequence[str]) -> list[ChannelOrder]:
        ids = list(dict.fromkeys(str(i) for i in external_ids))
        orders = []
        for order_id in ids:
            try:
                body = self.request("GET", "/order/get", {"order_id": order_id})
            except LazadaApiError as error:
                if error.code in _UNKNOWN_ORDER_CODES:
                    continue  # like the other platforms' batch reads: an unknown id is simply absent
                raise
            if body.get("data"):
                orders.append(body["data"])
        items = self._items_by_order([str(order.get("order_id")) for order in orders])
        return [map_order(order, items.get(str(order.get("order_id")), [])) for order in orders]

    def orders_updated(self, since: datetime, until: datetime) -> Iterator[ChannelOrder]:
        """Walk GetOrders by ``updated_at`` ascending, 100 a page; past offset 5000 restart the window from the
        last update time seen (orders already yielded are skipped), so any number of orders is reachable."""
        seen: set[str] = set()
        window_start = since
        while window_start < until:
            lower, upper = whole_seconds(window_start, until)
            offset = 0
            last_update: datetime | None = None
            exhausted = False
            while True:
                body = self.request(
                    "GET",
                    "/orders/get",
                    {
                        "update_after": datetime.fromtimestamp(lower, UTC).isoformat(timespec="seconds"),
                        "update_before": datetime.fromtimestamp(upper, UTC).isoformat(timespec="seconds"),
                        "sort_by": "updated_at",
                        "sort_direction": "ASC",
                        "offset": offset,
                        "limit": MAX_PAGE,
                    },
                )
                page = (body.get("data") or {}).get("orders") or []
                fresh = [order for order in page if str(order.get("order_id")) not in seen]
                if fresh:
                    items = self._items_by_order([str(order.get("order_id")) for order in fresh])
                    for order in fresh:
                        mapped = map_order(order, items.get(str(order.get("order_id")), []))
                        seen.add(mapped.external_id)
                        stamp = platform_time(order.get("updated_at"), default_tz=zone_of(order.get("created_at")))
                        if stamp is not None:
                            last_update = stamp if last_update is None else max(last_update, stamp)
                        if stamp is None or since <= stamp < until:
                            yield mapped
                if len(page) < MAX_PAGE:
                    exhausted = True
                    break
                offset += MAX_PAGE
                if offset > self.max_offset:
                    break
            if exhausted:
                return
            if last_update is not None and last_update - timedelta(seconds=1) > window_start:
                # Overlap one second in case update_after is exclusive [U]; orders already seen are skipped.
                window_start = last_update - timedelta(seconds=1)
            elif last_update is not None and last_update > window_start:
                window_start = last_update
            else:
                # More than 5000 orders share one second: step past it rather than loop forever.
                window_start += timedelta(seconds=1)

    # -- listings and stock -------------------------------------------------------------------------------------

    def listings(self) -> Iterator[Listing]:
        offset = 0
        while True:
            body = self.request("GET", "/products/get", {"filter": "all", "offset": offset, "limit": 50})
            products = (body.get("data") or {}).get("products") or []
            for product in products:
                title = (product.get("attributes") or {}).get("name")
                for sku in product.get("skus") or []:
                    yield Listing(
                        seller_sku=sku.get("SellerSku") or None,
                        item_id=str(product.get("item_id")),
                        variant_id=str(sku.get("SkuId")) if sku.get("SkuId") not in (None, "") else None,
                        title=title,
                    )
            if len(products) < 50:
                return
            offset += 50

    def set_stock(self, updates: Sequence[StockUpdate]) -> None:
        """Absolute sellable quantities, 50 SKUs a call, at most 50 calls a second for this seller."""
        for start in range(0, len(updates), MAX_STOCK_SKUS):
            chunk = updates[start : start + MAX_STOCK_SKUS]
            skus = []
            for update in chunk:
                sku: dict[str, Any] = {"SellableQuantity": max(int(update.quantity), 0)}
                if update.listing.item_id:
                    sku["ItemId"] = update.listing.item_id
                if update.listing.variant_id:
                    sku["SkuId"] = update.listing.variant_id
                if update.listing.seller_sku:
                    sku["SellerSku"] = update.listing.seller_sku
                skus.append(sku)
            payload = {"Request": {"Product": {"Skus": {"Sku": skus}}}}
            self.stock_limiter.acquire()
            self.request("POST", "/product/stock/sellable/update", {"payload": payload})

    # -- fulfilment and cancellation ----------------------------------------------------------------------------

    def _order_items(self, order_id: str) -> list[dict[str, Any]]:
        body = self.request("GET", "/order/items/get", {"order_id": order_id})
        return list(body.get("data") or [])

    def confirm_shipment(self, notice: ShipmentNotice) -> None:
        """Pack the items (unless already packed), then mark their packages ready to ship. Safe to repeat."""
        items = self._order_items(notice.external_order_id)
        wanted = set(notice.line_ids)
        chosen = [item for item in items if not wanted or str(item.get("order_item_id")) in wanted]
        if not chosen:
            raise PermanentDeliveryError(f"lazada order {notice.external_order_id}: no such items {sorted(wanted)}")
        blocked = [item for item in chosen if str(item.get("status")).lower() in {"canceled", "unpaid"}]
        if blocked:
            raise PermanentDeliveryError(
                f"lazada order {notice.external_order_id}: items not shippable "
                + ", ".join(f"{item.get('order_item_id')}={item.get('status')}" for item in blocked)
            )
        packages = {str(item["package_id"]) for item in chosen if item.get("package_id")}
        to_pack = [item for item in chosen if str(item.get("status")).lower() in {"pending", "repacked", "topack"}]
        if to_pack:
            providers = self.request("GET", "/order/shipment/providers/get", {"order_id": notice.external_order_id})
            allocate = ((providers.get("result") or providers).get("data") or {}).get("shipping_allocate_type") or "TFS"
            pack_request = {
                "pack_order_list": [
                    {
                        "order_id": int(notice.external_order_id)
                        if notice.external_order_id.isdigit()
                        else notice.external_order_id,
                        "order_item_list": [int(item["order_item_id"]) for item in to_pack],
                    }
                ],
                "delivery_type": "dropship",
                "shipping_allocate_type": allocate,
            }
            packed = self.request("POST", "/order/fulfill/pack", {"packReq": pack_request})
            data = (packed.get("result") or {}).get("data") or packed.get("data") or {}
            for order in data.get("pack_order_list") or []:
                for result in order.get("order_item_list") or []:
                    if str(result.get("item_err_code", "0")) != "0":
                        error = PermanentDeliveryError if not result.get("retry") else TransientDeliveryError
                        raise error(f"lazada pack item {result.get('order_item_id')}: {result.get('msg')}")
                    if result.get("package_id"):
                        packages.add(str(result["package_id"]))
        ready = {
            str(item["package_id"])
            for item in chosen
            if item.get("package_id")
            and str(item.get("status")).lower() not in {"packed", "pending", "repacked", "topack"}
        }
        pending = sorted(packages - ready)
        if not pending:
            return
        answer = self.request(
            "POST", "/order/package/rts", {"readyToShipReq": {"packages": [{"package_id": p} for p in pending]}}
        )
        data = (answer.get("result") or {}).get("data") or answer.get("data") or {}
        for package in data.get("packages") or []:
            if str(package.get("item_err_code", "0")) != "0":
                error = TransientDeliveryError if package.get("retry") else PermanentDeliveryError
                raise error(f"lazada ready-to-ship {package.get('package_id')}: {package.get('msg')}")

    def cancel_order(self, external_id: str, *, reason: str, line_ids: Sequence[str] = ()) -> None:
        items = self._order_items(external_id)
        wanted = set(line_ids)
        ids = [
            int(item["order_item_id"])
            for item in items
            if (not wanted or str(item.get("order_item_id")) in wanted)
            and str(item.get("status")).lower() not in {"canceled", "cancelled"}
        ]
        if not ids:
            return  # already cancelled: nothing to tell the platform
        check = self.request(
            "GET", "/order/reverse/cancel/validate", {"order_id": external_id, "order_item_id_list": ids}
        )
        options = ((check.get("data") or {}).get("reason_options")) or []
        if not options:
            raise PermanentDeliveryError(f"lazada order {external_id}: the platform offers no cancellation reason")
        chosen = next(
            (option for option in options if reason and reason.lower() in str(option.get("reason_name", "")).lower()),
            options[0],
        )
        self.request(
            "GET",
            "/order/reverse/cancel/create",
            {"order_id": external_id, "reason_id": chosen.get("reason_id"), "order_item_id_list": ids},
        )

    def answer_cancel_request(self, external_id: str, *, accept: bool, reason: str | None = None) -> None:
        items = self._order_items(external_id)
        reverse_ids = sorted(
            {
                str(item["reverse_order_id"])
                for item in items
                if item.get("reverse_order_id") and flag(item.get("is_cancel_pending"))
            }
        )
        if not reverse_ids:
            raise PermanentDeliveryError(f"lazada order {external_id}: no open buyer cancellation request")
        for reverse_id in reverse_ids:
            self.request(
                "GET",
                "/order/reverse/cancel/seller/decide",
                {"reverse_order_id": reverse_id, "action": "agree" if accept else "refuse", "reason": reason},
            )
