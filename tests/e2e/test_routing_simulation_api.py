"""POST /v1/routing/simulate: a draft profile's what-if over recent orders, through HTTP, changing nothing."""

from __future__ import annotations

from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.e2e.conftest import Api, assert_problem, new_key, order_body, row_counts, sqlite_only

EXCLUDE_HN = {"definition": {"excluded_nodes": ["HN"]}}


def test_simulating_a_draft_reports_moves_and_changes_nothing(stocked: Api) -> None:
    first = stocked.create_order(order_body("o-1", lines=[("TSHIRT-M", 1)]))["id"]
    second = stocked.create_order(order_body("o-2", lines=[("TSHIRT-M", 2)]))["id"]
    stocked.drain()
    before = row_counts(stocked.app)

    response = stocked.post("/v1/routing/simulate", json=EXCLUDE_HN)

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["orders_selected"], body["orders_simulated"], body["moved"]) == (2, 2, 2)
    assert [(e["order_id"], e["baseline"]["nodes"], e["draft"]["nodes"]) for e in body["examples"]] == [
        (second, ["HN"], ["HCM"]),
        (first, ["HN"], ["HCM"]),
    ]
    assert body["delta"]["distance_km"] > 0
    assert body["baseline"]["cost"].keys() == body["draft"]["cost"].keys() == {"VND"}
    assert body["selection"] == {"channel": None, "last": 200, "placed_after": None, "placed_before": None}
    assert row_counts(stocked.app) == before


def test_last_and_channel_narrow_the_orders(stocked: Api) -> None:
    for number in range(3):
        stocked.create_order(order_body(f"o-{number}", placed_at=f"2026-11-0{number + 1}T09:00:00+07:00"))

    newest = stocked.post("/v1/routing/simulate", json={**EXCLUDE_HN, "last": 1}).json()
    window = stocked.post(
        "/v1/routing/simulate",
        json={**EXCLUDE_HN, "placed_after": "2026-11-02T00:00:00+07:00", "placed_before": "2026-11-03T00:00:00+07:00"},
    ).json()
    other_channel = stocked.post("/v1/routing/simulate", json={**EXCLUDE_HN, "channel": "shopee"}).json()

    assert [e["external_id"] for e in newest["examples"]] == ["o-2"]
    assert [e["external_id"] for e in window["examples"]] == ["o-1"]
    assert other_channel["orders_selected"] == 0


def test_an_invalid_draft_answers_422_and_writes_nothing(stocked: Api) -> None:
    stocked.create_order(order_body("o-1"))
    stocked.drain()
    before = row_counts(stocked.app)

    response = stocked.post("/v1/routing/simulate", json={"definition": {"weights": {"cost": -1}, "speed": 2}})

    body = assert_problem(response, 422, "invalid_input")
    assert body["problems"] == ["speed"]
    response = stocked.post("/v1/routing/simulate", json={"definition": {"weights": {"cost": -1}}})
    assert assert_problem(response, 422, "invalid_input")["problems"] == ["weights.cost must be a finite number >= 0"]
    assert row_counts(stocked.app) == before


@sqlite_only
def test_a_malformed_request_answers_422(api: Api) -> None:
    assert_problem(api.post("/v1/routing/simulate", json={"last": 0}), 422, "validation_failed", field="last")
    naive = {"placed_after": "2026-11-01T00:00:00"}
    assert_problem(api.post("/v1/routing/simulate", json=naive), 422, "validation_failed", field="placed_after")
    assert_problem(api.post("/v1/routing/simulate", json={"draft": {}}), 422, "validation_failed")


def test_a_viewer_may_simulate(stocked: Api, tenant: tenants.NewTenant) -> None:
    stocked.create_order(order_body("o-1"))
    viewer = stocked.as_key(new_key(stocked.app, tenant, "viewer"))

    response = viewer.post("/v1/routing/simulate", json=EXCLUDE_HN)

    assert response.status_code == 200, response.text
    assert (response.json()["orders_simulated"], response.json()["moved"]) == (1, 1)


def test_another_tenant_simulates_none_of_your_orders(stocked: Api, app: Application) -> None:
    stocked.create_order(order_body("o-1"))
    other = stocked.as_key(tenants.create_tenant(app.uow(), "someone-else").api_key)

    response = other.post("/v1/routing/simulate", json=EXCLUDE_HN)

    assert response.status_code == 200, response.text
    assert (response.json()["orders_selected"], response.json()["examples"]) == (0, [])
