"""Every refused request answers an RFC 9457 problem (4xx, ``code``, ``detail``, the field named) and
writes nothing: the row count of every table is the same before and after.

Each test shares one database across its cases (``subtests``), so a case that wrote something shows
up as its own failure, and the suite stays fast on both backends.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from ordermesh.bootstrap import Application
from tests.e2e.conftest import ADDRESS, Api, assert_problem, order_body, row_counts, sqlite_only

BASE = order_body("SO-BAD", [("CAP", 1)])


def _with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


def _line(**changes: Any) -> dict[str, Any]:
    return _with(lines=[{"sku": "CAP", "quantity": 1, "unit_price": "10", **changes}])


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in BASE.items() if k != field}


# (case, body, status, code, field)
BAD_ORDERS: list[tuple[str, Any, int, str, str | None]] = [
    ("unknown sku", _line(sku="NO-SUCH-SKU"), 422, "unknown_sku", "lines.0.sku"),
    (
        "unknown sku in a later line",
        _with(lines=[BASE["lines"][0], {"sku": "GHOST", "quantity": 1, "unit_price": "1"}]),
        422,
        "unknown_sku",
        "lines.1.sku",
    ),
    ("zero quantity", _line(quantity=0), 422, "validation_failed", "lines.0.quantity"),
    ("negative quantity", _line(quantity=-3), 422, "validation_failed", "lines.0.quantity"),
    ("fractional quantity", _line(quantity=1.5), 422, "validation_failed", "lines.0.quantity"),
    ("negative price", _line(unit_price="-1"), 422, "validation_failed", "lines.0.unit_price"),
    ("price not a number", _line(unit_price="NaN"), 422, "validation_failed", "lines.0.unit_price"),
    (
        "total beyond NUMERIC(20, 4)",
        _line(quantity=100_000, unit_price="999999999999.9999"),
        422,
        "invalid_input",
        "lines",
    ),
    ("missing currency", _without("currency"), 422, "validation_failed", "currency"),
    ("missing external_id", _without("external_id"), 422, "validation_failed", "external_id"),
    ("missing lines", _without("lines"), 422, "validation_failed", "lines"),
    ("missing shipping_address", _without("shipping_address"), 422, "validation_failed", "shipping_address"),
    ("no lines", _with(lines=[]), 422, "validation_failed", "lines"),
    ("line without sku", _with(lines=[{"quantity": 1, "unit_price": "1"}]), 422, "validation_failed", "lines.0.sku"),
    ("extra field", _with(discount_code="FREE"), 422, "validation_failed", "discount_code"),
    ("extra field in a line", _line(discount="5"), 422, "validation_failed", "lines.0.discount"),
    ("naive placed_at", _with(placed_at="2026-11-11T00:05:00"), 422, "validation_failed", "placed_at"),
    ("naive ship_by", _with(ship_by="2026-11-12T17:00:00"), 422, "validation_failed", "ship_by"),
    ("placed_at out of range", _with(placed_at="0001-01-01T00:00:00+07:00"), 422, "validation_failed", "placed_at"),
    ("two-letter currency", _with(currency="VN"), 422, "validation_failed", "currency"),
    ("currency with digits", _with(currency="V1D"), 422, "validation_failed", "currency"),
    ("four-letter currency", _with(currency="VNDD"), 422, "validation_failed", "currency"),
    ("external_id too long", _with(external_id="x" * 129), 422, "validation_failed", "external_id"),
    ("empty external_id", _with(external_id=""), 422, "validation_failed", "external_id"),
    ("unknown channel", _with(channel="shopee-vn"), 422, "unknown_channel", "channel"),
    (
        "three-letter country",
        _with(shipping_address={**ADDRESS, "country": "VNM"}),
        422,
        "validation_failed",
        "shipping_address.country",
    ),
    (
        "latitude beyond 90",
        _with(shipping_address={**ADDRESS, "latitude": 91}),
        422,
        "validation_failed",
        "shipping_address.latitude",
    ),
    ("body is a list", [BASE], 422, "validation_failed", None),
]


def test_invalid_orders_answer_problem_and_write_nothing(stocked: Api, subtests: pytest.Subtests) -> None:
    for case, body, status, code, field in BAD_ORDERS:
        with subtests.test(case=case):
            before = row_counts(stocked.app)
            assert_problem(stocked.post("/v1/orders", json=body), status, code, field=field)
            assert row_counts(stocked.app) == before
    assert stocked.all_orders() == []


def test_external_id_of_128_characters_is_accepted(stocked: Api) -> None:
    # The boundary next to "too long": the limit is inclusive.
    assert stocked.post("/v1/orders", json=_with(external_id="x" * 128)).status_code == 201


@sqlite_only  # refused before any query
def test_malformed_json_answers_400_and_writes_nothing(stocked: Api, subtests: pytest.Subtests) -> None:
    before = row_counts(stocked.app)
    for raw in (b"{", b'{"external_id": "SO-1",}', b"\xff\xfe", b'{"lines": [}'):
        with subtests.test(body=raw):
            response = stocked.post("/v1/orders", content=raw, headers={"Content-Type": "application/json"})
            body = assert_problem(response, 400, "malformed_json")
            assert body["detail"] == "the request body is not valid JSON"
    empty = stocked.post("/v1/orders", content=b"", headers={"Content-Type": "application/json"})
    assert_problem(empty, 422, "validation_failed")
    assert row_counts(stocked.app) == before


def test_refused_order_does_not_consume_its_idempotency_key(stocked: Api) -> None:
    headers = {"Idempotency-Key": "retry-after-fix"}
    refused = stocked.post("/v1/orders", json=_line(quantity=0), headers=headers)
    assert_problem(refused, 422, "validation_failed", field="lines.0.quantity")
    unknown = stocked.post("/v1/orders", json=_line(sku="GHOST"), headers=headers)
    assert_problem(unknown, 422, "unknown_sku", field="lines.0.sku")

    fixed = stocked.post("/v1/orders", json=BASE, headers=headers)

    assert fixed.status_code == 201
    assert "idempotent-replayed" not in fixed.headers


@sqlite_only  # refused before any query
def test_idempotency_key_longer_than_255_characters_is_refused(stocked: Api) -> None:
    before = row_counts(stocked.app)
    response = stocked.post("/v1/orders", json=BASE, headers={"Idempotency-Key": "k" * 256})
    assert_problem(response, 422, "invalid_input", field="Idempotency-Key")
    assert row_counts(stocked.app) == before


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_QUERIES: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("garbage cursor", "/v1/orders", {"cursor": "not-a-cursor!"}, "invalid_input", "cursor"),
    ("cursor of another kind", "/v1/orders", {"cursor": _cursor("e:5")}, "invalid_input", "cursor"),
    ("cursor without a number", "/v1/orders", {"cursor": _cursor("o:abc")}, "invalid_input", "cursor"),
    ("cursor beyond any id", "/v1/orders", {"cursor": _cursor(f"o:{10**30}")}, "invalid_input", "cursor"),
    ("cursor of a negative id", "/v1/orders", {"cursor": _cursor("o:-5")}, "invalid_input", "cursor"),
    ("unknown status", "/v1/orders", {"status": "lost"}, "invalid_input", "status"),
    ("status in capitals", "/v1/orders", {"status": "PENDING"}, "invalid_input", "status"),
    ("naive placed_after", "/v1/orders", {"placed_after": "2026-11-11T00:00:00"}, "validation_failed", "placed_after"),
    (
        "naive placed_before",
        "/v1/orders",
        {"placed_before": "2026-11-11T00:00:00"},
        "validation_failed",
        "placed_before",
    ),
    ("placed_after not a time", "/v1/orders", {"placed_after": "yesterday"}, "validation_failed", "placed_after"),
    ("limit zero", "/v1/orders", {"limit": 0}, "validation_failed", "limit"),
    ("limit too large", "/v1/orders", {"limit": 201}, "validation_failed", "limit"),
    ("order id beyond BIGINT", f"/v1/orders/{2**63}", {}, "validation_failed", "order_id"),
    ("order id zero", "/v1/orders/0", {}, "validation_failed", "order_id"),
    ("order id not a number", "/v1/orders/abc", {}, "validation_failed", "order_id"),
    ("shipment id beyond BIGINT", f"/v1/shipments/{10**30}", {}, "validation_failed", "shipment_id"),
    ("negative event cursor", "/v1/events", {"after": -1}, "invalid_input", "after"),
    ("event cursor beyond BIGINT", "/v1/events", {"after": f"1.{10**30}"}, "invalid_input", "after"),
    (
        "movements before beyond BIGINT",
        "/v1/inventory/HN/CAP/movements",
        {"before": 10**30},
        "validation_failed",
        "before",
    ),
]


def test_invalid_queries_answer_problem(stocked: Api, subtests: pytest.Subtests) -> None:
    stocked.create_order(BASE)
    for case, url, params, code, field in BAD_QUERIES:
        with subtests.test(case=case):
            assert_problem(stocked.get(url, params=params), 422, code, field=field)


def test_actions_on_out_of_range_ids_answer_422_and_write_nothing(stocked: Api) -> None:
    before = row_counts(stocked.app)
    huge = 10**30
    assert_problem(
        stocked.post(f"/v1/orders/{huge}/cancel", json={"reason": "customer"}),
        422,
        "validation_failed",
        field="order_id",
    )
    assert_problem(stocked.post(f"/v1/orders/{huge}/release"), 422, "validation_failed", field="order_id")
    assert_problem(
        stocked.post(f"/v1/shipments/{huge}/events", json={"status": "picked"}),
        422,
        "validation_failed",
        field="shipment_id",
    )
    assert_problem(stocked.post(f"/v1/events/{huge}/retry"), 422, "validation_failed", field="event_id")
    assert row_counts(stocked.app) == before


# (case, code in URL, body, code, field)
BAD_LOCATIONS: list[tuple[str, str, dict[str, Any], str, str]] = [
    ("latitude without longitude", "DN", {"latitude": 16.05}, "invalid_input", "latitude"),
    ("longitude without latitude", "DN", {"longitude": 108.2}, "invalid_input", "latitude"),
    ("latitude beyond 90", "DN", {"latitude": 90.5, "longitude": 108.2}, "validation_failed", "latitude"),
    ("unknown time zone", "DN", {"time_zone": "Asia/Da_Nang"}, "invalid_input", "time_zone"),
    ("path as time zone", "DN", {"time_zone": "../../etc/passwd"}, "invalid_input", "time_zone"),
    ("empty time zone", "DN", {"time_zone": ""}, "invalid_input", "time_zone"),
    ("cutoff hour 25", "DN", {"cutoff_time": "25:00"}, "validation_failed", "cutoff_time"),
    ("cutoff minute 60", "DN", {"cutoff_time": "12:60"}, "validation_failed", "cutoff_time"),
    ("cutoff without leading zero", "DN", {"cutoff_time": "9:00"}, "validation_failed", "cutoff_time"),
    ("cutoff with seconds", "DN", {"cutoff_time": "15:00:00"}, "validation_failed", "cutoff_time"),
    ("unknown kind", "DN", {"kind": "shop"}, "validation_failed", "kind"),
    ("negative capacity", "DN", {"daily_capacity": -1}, "validation_failed", "daily_capacity"),
    ("capacity beyond INTEGER", "DN", {"daily_capacity": 10**12}, "validation_failed", "daily_capacity"),
    ("blank name", "DN", {"name": "   "}, "invalid_input", "name"),
    ("extra field", "DN", {"manager": "Lan"}, "validation_failed", "manager"),
    ("code with a space", "D N", {}, "invalid_input", "code"),
    ("bad update of an existing location", "HN", {"time_zone": "Mars/Olympus"}, "invalid_input", "time_zone"),
]


def test_invalid_locations_answer_problem_and_write_nothing(stocked: Api, subtests: pytest.Subtests) -> None:
    hn = stocked.get("/v1/locations/HN").json()
    for case, code, fields, problem_code, field in BAD_LOCATIONS:
        with subtests.test(case=case):
            before = row_counts(stocked.app)
            response = stocked.put(f"/v1/locations/{code}", json={"name": "Da Nang", **fields})
            assert_problem(response, 422, problem_code, field=field)
            assert row_counts(stocked.app) == before
    assert [loc["code"] for loc in stocked.get("/v1/locations").json()] == ["HCM", "HN"]
    assert stocked.get("/v1/locations/HN").json() == hn


def test_invalid_stock_changes_answer_problem_and_leave_levels_and_ledger_alone(
    stocked: Api, subtests: pytest.Subtests
) -> None:
    stocked.create_skus(bundles={"CAP-PAIR": {"CAP": 2}})
    level, ledger = stocked.level("HN", "CAP"), stocked.movements("HN", "CAP")
    cases: list[tuple[str, str, str, dict[str, Any], int, str, str | None]] = [
        (
            "negative count",
            "PUT",
            "/v1/inventory/HN/CAP",
            {"on_hand": -1, "reason": "count"},
            422,
            "validation_failed",
            "on_hand",
        ),
        (
            "fractional count",
            "PUT",
            "/v1/inventory/HN/CAP",
            {"on_hand": 1.5, "reason": "count"},
            422,
            "validation_failed",
            "on_hand",
        ),
        ("count without reason", "PUT", "/v1/inventory/HN/CAP", {"on_hand": 5}, 422, "validation_failed", "reason"),
        (
            "count with blank reason",
            "PUT",
            "/v1/inventory/HN/CAP",
            {"on_hand": 5, "reason": "  "},
            422,
            "invalid_input",
            "reason",
        ),
        (
            "negative safety stock",
            "PUT",
            "/v1/inventory/HN/CAP",
            {"on_hand": 5, "reason": "count", "safety_stock": -1},
            422,
            "validation_failed",
            "safety_stock",
        ),
        (
            "count at unknown location",
            "PUT",
            "/v1/inventory/XX/CAP",
            {"on_hand": 5, "reason": "count"},
            404,
            "location_not_found",
            None,
        ),
        (
            "count of unknown SKU",
            "PUT",
            "/v1/inventory/HN/GHOST",
            {"on_hand": 5, "reason": "count"},
            404,
            "sku_not_found",
            None,
        ),
        (
            "count of a bundle",
            "PUT",
            "/v1/inventory/HN/CAP-PAIR",
            {"on_hand": 5, "reason": "count"},
            422,
            "bundle_has_no_stock",
            "sku",
        ),
        (
            "removing more than on hand",
            "POST",
            "/v1/inventory/HN/CAP/adjustments",
            {"delta": -3, "reason": "damaged"},
            409,
            "insufficient_stock",
            None,
        ),
        (
            "zero adjustment",
            "POST",
            "/v1/inventory/HN/CAP/adjustments",
            {"delta": 0, "reason": "x"},
            422,
            "invalid_input",
            "delta",
        ),
        (
            "adjustment beyond the limit",
            "POST",
            "/v1/inventory/HN/CAP/adjustments",
            {"delta": 10**10, "reason": "x"},
            422,
            "validation_failed",
            "delta",
        ),
        (
            "adjustment without reason",
            "POST",
            "/v1/inventory/HN/CAP/adjustments",
            {"delta": 1},
            422,
            "validation_failed",
            "reason",
        ),
    ]
    for case, method, url, body, status, code, field in cases:
        with subtests.test(case=case):
            before = row_counts(stocked.app)
            assert_problem(stocked.request(method, url, json=body), status, code, field=field)
            assert row_counts(stocked.app) == before
    assert stocked.level("HN", "CAP") == level
    assert stocked.movements("HN", "CAP") == ledger


def test_removing_more_than_on_hand_reports_what_is_there(stocked: Api) -> None:
    body = assert_problem(
        stocked.post("/v1/inventory/HN/CAP/adjustments", json={"delta": -3, "reason": "damaged"}),
        409,
        "insufficient_stock",
    )
    assert (body["requested"], body["on_hand"]) == (3, 2)


def test_invalid_sku_batch_writes_none_of_it(stocked: Api, subtests: pytest.Subtests) -> None:
    skus = stocked.get("/v1/skus").json()
    good = {"code": "NEW-1", "name": "Fine"}
    cases: list[tuple[str, list[dict[str, Any]], str, str | None]] = [
        ("unknown component", [good, {"code": "KIT", "name": "Kit", "components": {"GHOST": 1}}], "invalid_rows", None),
        ("bundle of itself", [good, {"code": "KIT", "name": "Kit", "components": {"KIT": 1}}], "invalid_rows", None),
        ("duplicate codes", [good, {"code": "NEW-1", "name": "Again"}], "invalid_rows", None),
        (
            "zero component quantity",
            [good, {"code": "KIT", "name": "K", "components": {"CAP": 0}}],
            "validation_failed",
            "skus.1.components.CAP",
        ),
        ("bad code", [good, {"code": "has space", "name": "x"}], "validation_failed", "skus.1.code"),
        (
            "negative weight",
            [good, {"code": "W", "name": "x", "weight_grams": -1}],
            "validation_failed",
            "skus.1.weight_grams",
        ),
    ]
    for case, batch, code, field in cases:
        with subtests.test(case=case):
            before = row_counts(stocked.app)
            body = assert_problem(stocked.post("/v1/skus", json={"skus": batch}), 422, code, field=field)
            if code == "invalid_rows":
                assert [error["row"] for error in body["errors"]] == [2]
            assert row_counts(stocked.app) == before
    assert stocked.get("/v1/skus").json() == skus
    assert_problem(stocked.post("/v1/skus", json={"skus": []}), 422, "validation_failed", field="skus")


def test_invalid_order_actions_answer_problem_and_change_nothing(stocked: Api, subtests: pytest.Subtests) -> None:
    order = stocked.create_order(order_body("SO-ACT", [("TSHIRT-M", 2)]))
    stocked.drain()
    order = stocked.post(f"/v1/orders/{order['id']}/release").json()
    order_id, shipment_id = order["id"], order["shipments"][0]["id"]
    cases: list[tuple[str, str, Any, int, str, str | None]] = [
        (
            "cancel with unknown reason",
            f"/v1/orders/{order_id}/cancel",
            {"reason": "bored"},
            422,
            "validation_failed",
            "reason",
        ),
        ("cancel without reason", f"/v1/orders/{order_id}/cancel", {}, 422, "validation_failed", "reason"),
        (
            "cancel a line the order lacks",
            f"/v1/orders/{order_id}/cancel",
            {"reason": "customer", "lines": [{"line_number": 9, "quantity": 1}]},
            422,
            "invalid_input",
            "lines.0.line_number",
        ),
        (
            "cancel zero units",
            f"/v1/orders/{order_id}/cancel",
            {"reason": "customer", "lines": [{"line_number": 1, "quantity": 0}]},
            422,
            "validation_failed",
            "lines.0.quantity",
        ),
        ("hold without reason", f"/v1/orders/{order_id}/hold", {}, 422, "validation_failed", "reason"),
        ("hold a released order", f"/v1/orders/{order_id}/hold", {"reason": "check"}, 409, "illegal_transition", None),
        ("complete a released order", f"/v1/orders/{order_id}/complete", None, 409, "illegal_transition", None),
        (
            "shipped without tracking",
            f"/v1/shipments/{shipment_id}/events",
            {"status": "shipped", "carrier": "GHN"},
            422,
            "invalid_input",
            "tracking_number",
        ),
        (
            "unknown shipment status",
            f"/v1/shipments/{shipment_id}/events",
            {"status": "lost"},
            422,
            "validation_failed",
            "status",
        ),
        (
            "delivered before shipped",
            f"/v1/shipments/{shipment_id}/events",
            {"status": "delivered"},
            409,
            "illegal_transition",
            None,
        ),
        ("unknown order", "/v1/orders/999999/cancel", {"reason": "customer"}, 404, "order_not_found", None),
    ]
    for case, url, body, status, code, field in cases:
        with subtests.test(case=case):
            before = row_counts(stocked.app)
            assert_problem(stocked.post(url, json=body), status, code, field=field)
            assert row_counts(stocked.app) == before
    assert stocked.order(order_id) == order
    assert stocked.level("HN", "TSHIRT-M")["reserved"] == 2


def test_text_with_nul_characters_is_refused_and_writes_nothing(stocked: Api) -> None:
    before = row_counts(stocked.app)
    responses = [
        stocked.post("/v1/orders", json=_with(external_id="SO\x00-1")),
        stocked.put("/v1/locations/DN", json={"name": "Da\x00Nang"}),
        stocked.get("/v1/orders", params={"sku": "CAP\x00"}),
    ]
    for response in responses:
        assert_problem(response, 422, "nul_character")
    assert row_counts(stocked.app) == before


def test_adjustment_beyond_the_largest_count_is_refused(stocked: Api) -> None:
    url = "/v1/inventory/HN/CAP/adjustments"
    stocked.set_stock("HN", "CAP", 999_999_999)
    assert stocked.post(url, json={"delta": 1, "reason": "receipt"}).status_code == 201
    before = row_counts(stocked.app)

    response = stocked.post(url, json={"delta": 1, "reason": "receipt"})

    assert_problem(response, 422, "quantity_too_large", field="delta")
    assert row_counts(stocked.app) == before


def test_credentials_without_a_secret_key_are_refused_and_nothing_is_stored(
    api: Api, app: Application, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ORDERMESH_SECRET_KEY: a connection or carrier account cannot be sealed, so the API says what
    to set (503 problem+json from the app-wide handler) and stores nothing."""
    monkeypatch.setattr(app.settings, "secret_key", None)
    app.__dict__.pop("secrets", None)  # the cached box, if a previous request built one
    before = row_counts(app)
    channel = {
        "kind": "shopee",
        "base_url": "http://127.0.0.1:9",
        "credentials": {"partner_id": "1", "partner_key": "k", "shop_id": "2", "access_token": "t"},
    }
    carrier = {"kind": "ghn", "base_url": "http://127.0.0.1:9", "credentials": {"token": "t", "shop_id": "1"}}
    for path, body in (("/v1/channels/shopee-vn", channel), ("/v1/carriers/ghn", carrier)):
        problem = assert_problem(api.put(path, json=body), 503, "not_configured")
        assert "ORDERMESH_SECRET_KEY" in problem["detail"]
    assert row_counts(app) == before
