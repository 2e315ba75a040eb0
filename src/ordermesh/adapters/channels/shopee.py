"""Shopee Open Platform v2: every call signed with the partner key (shop-level base string), pushes
signed over ``callback_url|body``; order pushes carry only the order number, so details are fetched
(CHANNELS.md §2).

Contract notes:
- ``orders_updated`` walks Shopee's 15-day windows and 100-order pages, and fetches details 50 at a time.
- The envelope's ``error`` is the platform's verdict: busy/server/rate errors are transient, every
  other error (auth, params, state) permanent.
- Item and model listing calls (``get_item_list``, ``get_item_base_info``, ``get_model_list``) and the
  ``update_stock`` response (``failure_list``) are not in CHANNELS.md's confirmed set [U]: the adapter
  reads them tolerantly (missing keys mean empty).
- Lost-push recovery (``get_lost_push_message`` / ``confirm_consumed_lost_push_message``) is signed
  with the partner-level (public) base string [U].
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx

from ordermesh.adapters.channels.base import (
    ChannelAddress,
    ChannelLine,
    ChannelOrder,
    ChannelStatus,
    Listing,
    PushNotice,
    ShipmentNotice,
    StockUpdate,
)
from ordermesh.adapters.channels.common import digest, from_unix, mapping, money, required, text
from ordermesh.adapters.channels.signing import shopee_public_sign, shopee_shop_sign, verify_shopee_push
from ordermesh.adapters.outbound import PermanentDeliveryError, TransientDeliveryError, call

WINDOW = timedelta(days=15)  # get_order_list: time_from..time_to at most 15 days apart
PAGE_SIZE = 100
DETAIL_BATCH = 50  # get_order_detail: at most 50 order_sn per call
DETAIL_FIELDS = (
    "buyer_user_id,buyer_username,estimated_shipping_fee,recipient_address,actual_shipping_fee,item_list,"
    "pay_time,total_amount,cancel_by,cancel_reason,buyer_cancel_reason,package_list,shipping_carrier,"
    "payment_method,pickup_done_time"
)
TRANSIENT_ERRORS = ("busy", "server", "inner", "too_many", "timeout", "system")

STATUSES: dict[str, ChannelStatus] = {
    "UNPAID": ChannelStatus.PENDING_PAYMENT,
    "PENDING": ChannelStatus.ON_HOLD,
    "INVOICE_PENDING": ChannelStatus.ON_HOLD,
    "READY_TO_SHIP": ChannelStatus.READY_TO_FULFILL,
    "RETRY_SHIP": ChannelStatus.READY_TO_FULFILL,
    "PROCESSED": ChannelStatus.FULFILLING,
    "SHIPPED": ChannelStatus.SHIPPED,
    "TO_CONFIRM_RECEIVE": ChannelStatus.DELIVERED,
    "COMPLETED": ChannelStatus.COMPLETED,
    "IN_CANCEL": ChannelStatus.CANCEL_REQUESTED,
    "CANCELLED": ChannelStatus.CANCELLED,
    "TO_RETURN": ChannelStatus.DELIVERED,  # a return flag on a delivered order (§9.2)
}
CANCEL_REASONS = {"customer": "CUSTOMER_REQUEST"}  # anything else: OUT_OF_STOCK with the items


def order_from_detail(detail: Mapping[str, Any]) -> ChannelOrder:
    """One ``get_order_detail`` entry in canonical terms."""
    lines = []
    for item in detail.get("item_list") or []:
        model_id = int(item.get("model_id") or 0)
        original, discounted = money(item.get("model_original_price")), money(item.get("model_discounted_price"))
        quantity = int(item.get("model_quantity_purchased") or 0)
        lines.append(
            ChannelLine(
                line_ids=(f"{item.get('item_id')}:{model_id}",),
                seller_sku=text(item.get("model_sku")) if model_id else text(item.get("item_sku")),
                item_id=text(item.get("item_id")),
                variant_id=str(model_id),
                quantity=quantity,
                unit_price=original,
                discount=max((original - discounted) * quantity, money(0)) if discounted else money(0),
                title=text(item.get("item_name")),
            )
        )
    recipient = mapping(detail.get("recipient_address"))
    raw_status = str(detail.get("order_status") or "")
    updated = from_unix(detail.get("update_time")) or from_unix(detail.get("create_time"))
    if updated is None:
        raise PermanentDeliveryError(f"Shopee order {detail.get('order_sn')} without update_time")
    return ChannelOrder(
        external_id=str(detail.get("order_sn")),
        raw_status=raw_status,
        status=STATUSES.get(raw_status, ChannelStatus.ON_HOLD),  # unknown status: hold for a person to look
        updated_at=updated,
        currency=str(detail.get("currency") or "").upper(),
        lines=tuple(lines),
        placed_at=from_unix(detail.get("create_time")),
        paid_at=from_unix(detail.get("pay_time")),
        ship_by=from_unix(detail.get("ship_by_date")),
        shipping_fee=money(detail.get("estimated_shipping_fee")),
        total=money(detail.get("total_amount")) if detail.get("total_amount") is not None else None,
        cod=bool(detail.get("cod")),
        address=ChannelAddress(
            name=text(recipient.get("name")),
            phone=text(recipient.get("phone")),
            line1=text(recipient.get("full_address")),
            ward=text(recipient.get("town")),
            district=text(recipient.get("district")),
            province=text(recipient.get("state")) or text(recipient.get("city")),
            country=text(recipient.get("region")) or text(detail.get("region")),
            postal_code=text(recipient.get("zipcode")),
        )
        if recipient
        else None,
        buyer_note=text(detail.get("message_to_seller")),
        cancel_reason=text(detail.get("buyer_cancel_reason")) or text(detail.get("cancel_reason")),
        raw=detail,
    )


def notice_from_push(body: bytes) -> PushNotice:
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise PermanentDeliveryError(f"Shopee push body is not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise PermanentDeliveryError("Shopee push body is not an object")
    code, data = payload.get("code"), mapping(payload.get("data"))
    order_sn = text(data.get("ordersn")) or text(data.get("order_sn"))
    if code == 3 and order_sn:
        status = data.get("status")
        return PushNotice(
            dedupe_key=f"3:{order_sn}:{status}:{data.get('update_time')}",
            topic="cancel_request" if status == "IN_CANCEL" else "order",
            order_ids=(order_sn,),
            update_time=from_unix(data.get("update_time")),
        )
    if code == 4 and order_sn:
        return PushNotice(dedupe_key=f"4:{order_sn}:{data.get('tracking_no')}", topic="other", order_ids=(order_sn,))
    return PushNotice(dedupe_key=f"{code}:{digest(body)}", topic="other")


class ShopeeAdapter:
    kind: ClassVar[str] = "shopee"
    max_stock_batch: ClassVar[int] = 50
    rate_per_second: ClassVar[float] = 10.0  # no published per-shop figure [U]: conservative
    burst: ClassVar[int] = 10

    def __init__(self, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials)
        self.client = client

    # -- inbound -------------------------------------------------------------------------------------

    def verify_push(self, *, url: str, headers: Mapping[str, str], body: bytes) -> bool:
        key = self.credentials.get("partner_key") or ""
        header = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
        return bool(key) and verify_shopee_push(key, url, body, header)

    def parse_push(self, *, headers: Mapping[str, str], body: bytes) -> PushNotice:
        return notice_from_push(body)

    # -- reads ---------------------------------------------------------------------------------------

    def fetch_orders(self, external_ids: Sequence[str]) -> list[ChannelOrder]:
        found = []
        ids = list(dict.fromkeys(external_ids))
        for start in range(0, len(ids), DETAIL_BATCH):
            response = self._call(
                "GET",
                "/api/v2/order/get_order_detail",
                params={
                    "order_sn_list": ",".join(ids[start : start + DETAIL_BATCH]),
                    "response_optional_fields": DETAIL_FIELDS,
                    "request_order_status_pending": "true",
                },
            )
            found += [order_from_detail(detail) for detail in response.get("order_list") or []]
        return found

    def orders_updated(self, since: datetime, until: datetime) -> Iterator[ChannelOrder]:
        start = since
        while start < until:
            end = min(start + WINDOW, until)
            cursor = ""
            while True:
                page = self._call(
                    "GET",
                    "/api/v2/order/get_order_list",
                    params={
                        "time_range_field": "update_time",
                        "time_from": int(start.timestamp()),
                        "time_to": int(end.timestamp()),
                        "page_size": PAGE_SIZE,
                        "cursor": cursor,
                        "request_order_status_pending": "true",
                    },
                )
                numbers = [str(o["order_sn"]) for o in page.get("order_list") or [] if o.get("order_sn")]
                for order in self.fetch_orders(numbers):
                    if since <= order.updated_at < until:
                        yield order
                if not page.get("more"):
                    break
                cursor = str(page.get("next_cursor") or "")
            start = end

    def listings(self) -> Iterator[Listing]:
        offset = 0
        while True:
            page = self._call(
                "GET",
                "/api/v2/product/get_item_list",
                params={"offset": offset, "page_size": PAGE_SIZE, "item_status": "NORMAL"},
            )
            ids = [int(i["item_id"]) for i in page.get("item") or [] if i.get("item_id") is not None]
            for start in range(0, len(ids), DETAIL_BATCH):
                info = self._call(
                    "GET",
                    "/api/v2/product/get_item_base_info",
                    params={"item_id_list": ",".join(str(i) for i in ids[start : start + DETAIL_BATCH])},
                )
                for item in info.get("item_list") or []:
                    yield from self._item_listings(item)
            if not page.get("has_next_page"):
                return
            offset = int(page.get("next_offset") or offset + len(ids))

    def _item_listings(self, item: Mapping[str, Any]) -> Iterator[Listing]:
        item_id = str(item.get("item_id"))
        if not item.get("has_model"):
            yield Listing(
                seller_sku=text(item.get("item_sku")),
                item_id=item_id,
                variant_id="0",
                title=text(item.get("item_name")),
            )
            return
        models = self._call("GET", "/api/v2/product/get_model_list", params={"item_id": item_id})
        for model in models.get("model") or []:
            yield Listing(
                seller_sku=text(model.get("model_sku")),
                item_id=item_id,
                variant_id=str(model.get("model_id")),
                title=text(f"{item.get('item_name') or ''} {model.get('model_name') or ''}"),
            )

    def lost_pushes(self) -> tuple[list[PushNotice], str | None]:
        """Pushes Shopee could not deliver, and the id to confirm them with once handled."""
        response = self._call("GET", "/api/v2/push/get_lost_push_message", partner_level=True)
        notices = []
        for message in response.get("push_message_list") or []:
            data = message.get("data")
            body = {"code": message.get("code"), "shop_id": message.get("shop_id"), "data": data}
            if isinstance(data, str):
                try:
                    body["data"] = json.loads(data)
                except ValueError:
                    continue
            notices.append(notice_from_push(json.dumps(body).encode()))
        last = response.get("last_message_id")
        return notices, str(last) if last not in (None, "", 0) else None

    def confirm_lost_pushes(self, last_message_id: str) -> None:
        self._call(
            "POST",
            "/api/v2/push/confirm_consumed_lost_push_message",
            json={"last_message_id": int(last_message_id)},
            partner_level=True,
        )

    # -- writes --------------------------------------------------------------------------------------

    def set_stock(self, updates: Sequence[StockUpdate]) -> None:
        by_item: dict[str, list[StockUpdate]] = {}
        for update in updates:
            if not update.listing.item_id:
                raise PermanentDeliveryError(f"listing {update.listing.seller_sku}: no Shopee item_id")
            by_item.setdefault(update.listing.item_id, []).append(update)
        for item_id, group in by_item.items():
            stock_list = [
                {"model_id": int(u.listing.variant_id or 0), "seller_stock": [{"stock": max(u.quantity, 0)}]}
                for u in group
            ]
            response = self._call(
                "POST", "/api/v2/product/update_stock", json={"item_id": int(item_id), "stock_list": stock_list}
            )
            failures = response.get("failure_list") or []
            if failures:
                reasons = "; ".join(f"model {f.get('model_id')}: {f.get('failed_reason')}" for f in failures)
                raise PermanentDeliveryError(f"update_stock item {item_id}: {reasons}"[:500])

    def confirm_shipment(self, notice: ShipmentNotice) -> None:
        self._call(
            "POST",
            "/api/v2/logistics/ship_order",
            json={"order_sn": notice.external_order_id, "non_integrated": {"tracking_number": notice.tracking_number}},
        )

    def cancel_order(self, external_id: str, *, reason: str, line_ids: Sequence[str] = ()) -> None:
        body: dict[str, Any] = {"order_sn": external_id, "cancel_reason": CANCEL_REASONS.get(reason, "OUT_OF_STOCK")}
        if body["cancel_reason"] == "OUT_OF_STOCK":
            ids = line_ids or self._line_ids(external_id)
            body["item_list"] = [
                {"item_id": int(item), "model_id": int(model)} for item, _, model in (i.partition(":") for i in ids)
            ]
        self._call("POST", "/api/v2/order/cancel_order", json=body)

    def _line_ids(self, external_id: str) -> tuple[str, ...]:
        orders = self.fetch_orders([external_id])
        return tuple(i for order in orders for line in order.lines for i in line.line_ids)

    def answer_cancel_request(self, external_id: str, *, accept: bool, reason: str | None = None) -> None:
        self._call(
            "POST",
            "/api/v2/order/handle_buyer_cancellation",
            json={"order_sn": external_id, "operation": "ACCEPT" if accept else "REJECT"},
        )

    # -- transport -----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, partner_level: bool = False, **kwargs: Any) -> Mapping[str, Any]:
        creds = required(self.credentials, "partner_id", "partner_key", "shop_id", "access_token")
        timestamp = int(time.time())
        common: dict[str, Any] = {"partner_id": int(creds["partner_id"]), "timestamp": timestamp}
        if partner_level:
            common["sign"] = shopee_public_sign(creds["partner_key"], creds["partner_id"], path, timestamp)
        else:
            common.update(access_token=creds["access_token"], shop_id=int(creds["shop_id"]))
            common["sign"] = shopee_shop_sign(
                creds["partner_key"], creds["partner_id"], path, timestamp, creds["access_token"], creds["shop_id"]
            )
        params = {**common, **kwargs.pop("params", {})}
        response = call(self.client, method, f"{self.base_url}{path}", params=params, **kwargs)
        try:
            envelope = response.json()
        except ValueError as bad:
            raise TransientDeliveryError(f"Shopee {path}: not JSON ({response.status_code})") from bad
        verdict = str(envelope.get("error") or "")
        if verdict:
            message = f"Shopee {path}: {verdict}: {envelope.get('message') or ''}"[:500]
            if any(word in verdict.lower() for word in TRANSIENT_ERRORS):
                raise TransientDeliveryError(message)
            raise PermanentDeliveryError(message)
        return mapping(envelope.get("response"))
