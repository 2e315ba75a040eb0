"""Carrier adapters against the carriers' documented payloads (tests/fixtures/carriers/README.md names
each source), over httpx's mock transport: auth, request building, response and status mapping."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs

import httpx
import pytest

from ordermesh.adapters.carriers import ghn, ghtk, ninjavan
from ordermesh.adapters.carriers.base import CarrierAddress, CarrierState, Inspection, Parcel, ParcelItem
from ordermesh.adapters.outbound import PermanentDeliveryError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "carriers"
SENDER = CarrierAddress("Kho Ha Noi", "0900000000", "1 Pho Hue", "Phuong Bach Khoa", "Hai Ba Trung", "Ha Noi")
BUYER = CarrierAddress("Nguyen Van A", "0911111111", "12 Ly Thuong Kiet", "Phuong Tran Hung Dao", "Hoan Kiem", "Ha Noi")
PARCEL = Parcel(
    reference="OM7-42",
    sender=SENDER,
    recipient=BUYER,
    weight_grams=700,
    items=(ParcelItem("T-shirt M", "TSHIRT-M", 1, Decimal(150000), 700),),
    cod_amount=Decimal(150000),
    declared_value=Decimal(150000),
    inspection=Inspection.TRY,
    order_reference="ext-1",
)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


# -- GHN ---------------------------------------------------------------------------------------------


def test_ghn_create_sends_token_shop_and_client_order_code_and_maps_the_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=fixture("ghn_create_response.json"))

    adapter = ghn.GhnAdapter(
        "https://dev-online-gateway.ghn.vn/shiip/public-api", {"token": "t0k", "shop_id": "1001"}, client(handler)
    )
    booking = adapter.book(PARCEL)

    request = seen[0]
    assert request.url.path == "/shiip/public-api/v2/shipping-order/create"
    assert request.headers["Token"] == "t0k"
    assert request.headers["ShopId"] == "1001"
    body = json.loads(request.content)
    assert body["client_order_code"] == "OM7-42"
    assert body["required_note"] == "CHOTHUHANG"
    assert body["cod_amount"] == 150000
    assert body["insurance_value"] == 150000
    assert body["payment_type_id"] == 1
    assert body["service_type_id"] == 2
    assert body["to_ward_name"] == "Phuong Tran Hung Dao"
    assert body["to_district_name"] == "Hoan Kiem"
    assert booking.tracking_number == "FFFNL9HH"
    assert booking.fee == Decimal(33000)
    assert booking.expected_delivery_at == datetime(2026, 11, 30, 16, 59, 59, tzinfo=UTC)


def test_ghn_repeated_client_order_code_returns_the_first_booking() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        if request.url.path.endswith("/create"):
            return httpx.Response(400, json={"code": 400, "message": "client_order_code already exists", "data": None})
        return httpx.Response(200, content=fixture("ghn_detail_response.json"))

    adapter = ghn.GhnAdapter("https://ghn.test/shiip/public-api", {"token": "t", "shop_id": "1"}, client(handler))
    assert adapter.book(PARCEL).tracking_number == "FFFNL9HH"
    assert paths[-1] == "/shiip/public-api/v2/shipping-order/detail-by-client-code"


def test_ghn_create_refused_for_a_new_code_is_permanent() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"code": 400, "message": "to_phone is invalid", "data": None})

    adapter = ghn.GhnAdapter("https://ghn.test/shiip/public-api", {"token": "t", "shop_id": "1"}, client(handler))
    with pytest.raises(PermanentDeliveryError):
        adapter.book(PARCEL)


def test_ghn_webhook_maps_status_and_keeps_raw() -> None:
    adapter = ghn.GhnAdapter("https://ghn.test", {"token": "t", "shop_id": "1"}, client(lambda r: httpx.Response(500)))
    [update] = adapter.parse_webhook(headers={}, body=fixture("ghn_webhook_switch_status.json"))
    assert update.tracking_number == "FFFNL9HH"
    assert update.reference == "OM7-42"
    assert update.state is CarrierState.DELIVERED
    assert update.raw_status == "delivered"
    assert update.event_time == datetime(2026, 11, 29, 9, 12, tzinfo=UTC)
    assert update.cod_collected == Decimal(150000)
    assert not update.cod_reconciled


def test_ghn_cod_update_is_a_fact_not_a_state() -> None:
    adapter = ghn.GhnAdapter("https://ghn.test", {"token": "t", "shop_id": "1"}, client(lambda r: httpx.Response(500)))
    [update] = adapter.parse_webhook(headers={}, body=fixture("ghn_webhook_update_cod.json"))
    assert update.state is None
    assert update.cod_reconciled


def test_ghn_webhook_secret_must_match() -> None:
    adapter = ghn.GhnAdapter("https://ghn.test", {"token": "t", "shop_id": "1"}, client(lambda r: httpx.Response(500)))
    assert adapter.verify_webhook(query={"token": "s3cret"}, headers={}, body=b"{}", secret="s3cret")
    assert not adapter.verify_webhook(query={"token": "guess"}, headers={}, body=b"{}", secret="s3cret")
    assert not adapter.verify_webhook(query={}, headers={}, body=b"{}", secret="s3cret")


@pytest.mark.parametrize(
    ("raw", "state"),
    [
        ("ready_to_pick", CarrierState.LABEL_CREATED),
        ("money_collect_picking", CarrierState.PICKING),
        ("picked", CarrierState.PICKED_UP),
        ("sorting", CarrierState.IN_TRANSIT),
        ("money_collect_delivering", CarrierState.OUT_FOR_DELIVERY),
        ("delivery_fail", CarrierState.DELIVERY_FAILED),
        ("waiting_to_return", CarrierState.RETURNING),
        ("returned", CarrierState.RETURNED),
        ("return_fail", CarrierState.EXCEPTION),
        ("cancel", CarrierState.CANCELLED),
        ("damage", CarrierState.DAMAGED),
        ("lost", CarrierState.LOST),
        ("something_new", None),
    ],
)
def test_ghn_status_mapping(raw: str, state: CarrierState | None) -> None:
    assert ghn.map_status(raw) is state


# -- GHTK --------------------------------------------------------------------------------------------


def test_ghtk_create_sends_token_and_client_source_and_maps_the_answer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=fixture("ghtk_create_response.json"))

    adapter = ghtk.GhtkAdapter("https://services.ghtklab.test", {"token": "gt", "client_source": "S1"}, client(handler))
    booking = adapter.book(PARCEL)
    request = seen[0]
    assert request.url.path == "/services/shipment/order/"
    assert request.url.params["ver"] == "1.5"
    assert request.headers["Token"] == "gt"
    assert request.headers["X-Client-Source"] == "S1"
    body = json.loads(request.content)
    assert body["order"]["id"] == "OM7-42"
    assert body["order"]["pick_money"] == 150000
    assert body["order"]["value"] == 150000
    assert body["products"][0]["weight"] == 0.7  # kg
    assert booking.tracking_number == "S1.A1.17373471"
    assert booking.fee == Decimal(30400)


def test_ghtk_order_id_exist_returns_the_first_booking() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(
                200, json={"success": False, "message": "exists", "error": {"code": "ORDER_ID_EXIST"}}
            )
        assert request.url.path == "/services/shipment/v2/partner_id:OM7-42"
        return httpx.Response(200, content=fixture("ghtk_status_response.json"))

    adapter = ghtk.GhtkAdapter("https://ghtk.test", {"token": "gt", "client_source": "S1"}, client(handler))
    assert adapter.book(PARCEL).tracking_number == "S1.A1.17373471"


def test_ghtk_form_webhook_delivered_and_shipper_report() -> None:
    adapter = ghtk.GhtkAdapter(
        "https://ghtk.test", {"token": "gt", "client_source": "S1"}, client(lambda r: httpx.Response(500))
    )
    form = {"content-type": "application/x-www-form-urlencoded"}
    [delivered] = adapter.parse_webhook(headers=form, body=fixture("ghtk_webhook_delivered.form"))
    assert delivered.state is CarrierState.DELIVERED
    assert delivered.raw_status == "5"
    assert delivered.event_time == datetime(2026, 11, 29, 8, 30, tzinfo=UTC)
    assert delivered.cod_collected == Decimal(150000)
    [report] = adapter.parse_webhook(headers=form, body=fixture("ghtk_webhook_shipper_report.form"))
    assert report.state is None
    assert report.raw_status == "45"
    assert adapter.verify_webhook(query={"hash": "h"}, headers={}, body=b"", secret="h")
    assert not adapter.verify_webhook(query={"hash": "x"}, headers={}, body=b"", secret="h")


def test_ghtk_detail_maps_the_status_api() -> None:
    adapter = ghtk.GhtkAdapter(
        "https://ghtk.test",
        {"token": "gt", "client_source": "S1"},
        client(lambda r: httpx.Response(200, content=fixture("ghtk_status_response.json"))),
    )
    detail = adapter.detail("S1.A1.17373471", "OM7-42")
    assert detail is not None
    assert detail.state is CarrierState.DELIVERED
    assert not detail.cod_reconciled


@pytest.mark.parametrize(
    ("code", "state"),
    [
        (-1, CarrierState.CANCELLED),
        (1, CarrierState.LABEL_CREATED),
        (2, CarrierState.LABEL_CREATED),
        (12, CarrierState.PICKING),
        (8, CarrierState.PICKING),
        (7, CarrierState.PICKUP_FAILED),
        (3, CarrierState.PICKED_UP),
        (10, CarrierState.IN_TRANSIT),
        (4, CarrierState.OUT_FOR_DELIVERY),
        (9, CarrierState.DELIVERY_FAILED),
        (5, CarrierState.DELIVERED),
        (6, CarrierState.DELIVERED),
        (20, CarrierState.RETURNING),
        (21, CarrierState.RETURNED),
        (11, CarrierState.RETURNED),
        (13, CarrierState.LOST),
        (123, None),
        (127, None),
        (128, None),
        (45, None),
        (49, None),
        (410, None),
    ],
)
def test_ghtk_status_mapping_never_applies_shipper_reports(code: int, state: CarrierState | None) -> None:
    assert ghtk.map_status(code) is state


# -- Ninja Van ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


NV_CREDENTIALS = {"client_id": "cid", "client_secret": "csecret", "country_code": "VN"}


def nv_server(tokens_issued: list[str], accepted: set[str]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/oauth/access_token"):
            body = json.loads(request.content)
            assert body == {"client_id": "cid", "client_secret": "csecret", "grant_type": "client_credentials"}
            token = f"tok{len(tokens_issued) + 1}"
            tokens_issued.append(token)
            accepted.add(token)
            return httpx.Response(200, json={"access_token": token, "expires_in": 43200, "token_type": "bearer"})
        if request.headers.get("Authorization", "").removeprefix("Bearer ") not in accepted:
            return httpx.Response(401, json={"error": {"title": "UNAUTHORIZED"}})
        return httpx.Response(200, json={"tracking_number": json.loads(request.content)["requested_tracking_number"]})

    return handler


def test_ninjavan_token_is_cached_and_reused() -> None:
    issued: list[str] = []
    tokens = ninjavan.TokenCache(Clock(1_000_000.0))
    adapter = ninjavan.NinjaVanAdapter(
        "https://nv.test/vn", NV_CREDENTIALS, client(nv_server(issued, set())), tokens=tokens
    )
    assert adapter.book(PARCEL).tracking_number == "OM7-42"
    adapter.book(PARCEL)
    assert issued == ["tok1"]


def test_ninjavan_token_refreshed_five_minutes_before_expiry() -> None:
    issued: list[str] = []
    clock = Clock(1_000_000.0)
    tokens = ninjavan.TokenCache(clock)
    adapter = ninjavan.NinjaVanAdapter(
        "https://nv.test/vn", NV_CREDENTIALS, client(nv_server(issued, set())), tokens=tokens
    )
    adapter.book(PARCEL)
    clock.now += 43200 - 301  # still more than five minutes left
    adapter.book(PARCEL)
    assert issued == ["tok1"]
    clock.now += 2  # inside the last five minutes
    adapter.book(PARCEL)
    assert issued == ["tok1", "tok2"]


def test_ninjavan_401_drops_the_token_and_retries_once_with_a_new_one() -> None:
    issued: list[str] = []
    accepted: set[str] = set()
    tokens = ninjavan.TokenCache(Clock(1_000_000.0))
    adapter = ninjavan.NinjaVanAdapter(
        "https://nv.test/vn", NV_CREDENTIALS, client(nv_server(issued, accepted)), tokens=tokens
    )
    adapter.book(PARCEL)
    accepted.clear()  # the carrier revokes every token
    assert adapter.book(PARCEL).tracking_number == "OM7-42"
    assert issued == ["tok1", "tok2"]


def test_ninjavan_create_body_uses_our_reference_as_requested_tracking_number() -> None:
    body = ninjavan.NinjaVanAdapter(
        "https://nv.test/vn", NV_CREDENTIALS, client(lambda r: httpx.Response(500))
    ).create_body(PARCEL)
    assert body["requested_tracking_number"] == "OM7-42"
    assert body["service_type"] == "Parcel"
    assert body["service_level"] == "Standard"
    assert body["parcel_job"]["cash_on_delivery"] == 150000.0
    assert body["parcel_job"]["pickup_timeslot"]["start_time"] == "09:00"
    assert body["reference"] == {"merchant_order_number": "ext-1"}
    assert ninjavan.requested_tracking_number("OM 7_42--x") == "OM742-x"


def test_ninjavan_signature_matches_the_published_vector_and_rejects_forgeries() -> None:
    body = fixture("ninjavan_webhook_delivered.json")
    assert ninjavan.signature("test_client_secret", body) == "vAhwDHlXtG7cMGWRq74v5g+4YzylTcVnrfKnh5VfnRk="
    adapter = ninjavan.NinjaVanAdapter(
        "https://nv.test/sg",
        {"client_id": "c", "client_secret": "test_client_secret", "country_code": "SG"},
        client(lambda r: httpx.Response(500)),
    )
    good = {"X-Ninjavan-Hmac-Sha256": "vAhwDHlXtG7cMGWRq74v5g+4YzylTcVnrfKnh5VfnRk="}
    assert adapter.verify_webhook(query={}, headers=good, body=body, secret="")
    assert adapter.verify_webhook(query={}, headers={k.lower(): v for k, v in good.items()}, body=body, secret="")
    assert not adapter.verify_webhook(query={}, headers=good, body=body + b" ", secret="")
    assert not adapter.verify_webhook(query={}, headers={}, body=body, secret="")
    [update] = adapter.parse_webhook(headers=good, body=body)
    assert update.state is CarrierState.DELIVERED
    assert update.tracking_number == "NVSGTEST000001"
    assert update.event_time == datetime(2024, 1, 1, 2, 0, tzinfo=UTC)


def test_ninjavan_rts_leg_means_returning_whatever_the_event() -> None:
    adapter = ninjavan.NinjaVanAdapter("https://nv.test/vn", NV_CREDENTIALS, client(lambda r: httpx.Response(500)))
    [update] = adapter.parse_webhook(headers={}, body=fixture("ninjavan_webhook_rts.json"))
    assert update.state is CarrierState.RETURNING
    assert update.reference == "OM7-42"


@pytest.mark.parametrize(
    ("event", "state"),
    [
        ("Pending Pickup", CarrierState.LABEL_CREATED),
        ("Pending Pickup, Shipper Dropoff", CarrierState.LABEL_CREATED),
        ("Driver dispatched for Pickup", CarrierState.PICKING),
        ("Pickup Exception, Max Attempts Reached", CarrierState.PICKUP_FAILED),
        ("Picked Up, In Transit To Origin Hub", CarrierState.PICKED_UP),
        ("Arrived at Destination Hub", CarrierState.IN_TRANSIT),
        ("In Transit to Next Sorting Hub", CarrierState.IN_TRANSIT),
        ("On Vehicle for Delivery", CarrierState.OUT_FOR_DELIVERY),
        ("At PUDO, Pending Customer Collection", CarrierState.OUT_FOR_DELIVERY),
        ("Delivered, Left at Doorstep", CarrierState.DELIVERED),
        ("DELIVERY EXCEPTION, REATTEMPT SCHEDULED", CarrierState.DELIVERY_FAILED),
        ("Delivery Exception, Return to Sender Initiated", CarrierState.RETURNING),
        ("Delivery Exception, Parcel Lost", CarrierState.LOST),
        ("Delivery Exception, Parcel Damaged", CarrierState.DAMAGED),
        ("Returned to Sender", CarrierState.RETURNED),
        ("Cancelled", CarrierState.CANCELLED),
        ("Return to Shipper Exception, Unreachable", CarrierState.EXCEPTION),
        ("Parcel Measurements Update", None),
    ],
)
def test_ninjavan_event_mapping_is_case_insensitive(event: str, state: CarrierState | None) -> None:
    assert ninjavan.map_event(event) is state


def test_fixture_sources_are_documented() -> None:
    readme = (FIXTURES / "README.md").read_text()
    for path in FIXTURES.iterdir():
        if path.name != "README.md":
            assert path.name in readme, path.name
    assert parse_qs(fixture("ghtk_webhook_delivered.form").decode())["status_id"] == ["5"]
