"""Routing through HTTP: profiles (versioned, restorable, validated) and each order's decision trace."""

from __future__ import annotations

from ordermesh.bootstrap import Application
from ordermesh.services import tenants
from tests.e2e.conftest import Api, assert_problem, new_key, order_body, row_counts


def test_profiles_are_versioned_and_restorable_over_http(api: Api) -> None:
    first = api.put("/v1/routing/profiles/default", json={"definition": {"split": {"penalty": 2}}})
    second = api.put("/v1/routing/profiles/default", json={"definition": {}, "note": "back to defaults"})
    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["version"], second.json()["version"]) == (1, 2)

    restored = api.post("/v1/routing/profiles/default/versions/1/restore")

    assert restored.status_code == 200
    assert (restored.json()["version"], restored.json()["definition"]["split"]["penalty"]) == (3, 2)
    versions = api.get("/v1/routing/profiles/default/versions").json()
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert [p["version"] for p in api.get("/v1/routing/profiles").json()] == [3]


def test_an_invalid_profile_answers_422_and_stores_nothing(api: Api) -> None:
    before = row_counts(api.app)
    response = api.put("/v1/routing/profiles/default", json={"definition": {"weights": {"cost": -1}}})
    body = assert_problem(response, 422, "invalid_input")
    assert body["problems"] == ["weights.cost must be a finite number >= 0"]
    assert row_counts(api.app) == before
    assert_problem(api.get("/v1/routing/profiles/default"), 404, "routing_profile_not_found")


def test_a_viewer_cannot_change_routing(api: Api, tenant: tenants.NewTenant) -> None:
    viewer = api.as_key(new_key(api.app, tenant, "viewer"))
    assert_problem(viewer.put("/v1/routing/profiles/default", json={"definition": {}}), 403, "forbidden")
    assert viewer.get("/v1/routing/profiles").status_code == 200


def test_an_orders_routing_explains_where_and_why(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("CAP", 1)]))["id"]
    stocked.drain()

    routing = stocked.get(f"/v1/orders/{order_id}/routing")

    assert routing.status_code == 200
    [decision] = routing.json()["decisions"]
    assert decision["outcome"] == "single_node"
    assert decision["trace"]["plan"]["shipments"][0]["node_code"] == "HN"  # HCM has no CAP
    excluded = {e["code"]: e["reason"] for e in decision["trace"]["trace"]["excluded"]}
    assert excluded == {"HCM": "no_stock"}
    history = stocked.order(order_id)["events"]
    [allocated] = [e for e in history if e["type"] == "allocated"]
    assert allocated["data"]["trace"] == f"/v1/orders/{order_id}/routing"


def test_another_tenants_order_routing_answers_404(stocked: Api, app: Application) -> None:
    order_id = stocked.create_order(order_body(lines=[("CAP", 1)]))["id"]
    stocked.drain()
    other = stocked.as_key(tenants.create_tenant(app.uow(), "someone-else").api_key)
    assert_problem(other.get(f"/v1/orders/{order_id}/routing"), 404, "order_not_found")


def test_locations_carry_their_routing_facts(api: Api) -> None:
    body = {
        "name": "Ha Noi DC",
        "country": "VN",
        "province": "Ha Noi",
        "channels": ["direct", "shopee"],
        "working_weekdays": [0, 1, 2, 3, 4],
        "closed_dates": ["2027-02-16"],
        "cutoff_time": "15:00",
        "time_zone": "Asia/Ho_Chi_Minh",
    }
    created = api.put("/v1/locations/HN", json=body)
    assert created.status_code == 201
    assert {k: created.json()[k] for k in ("country", "channels", "working_weekdays", "closed_dates")} == {
        "country": "VN",
        "channels": ["direct", "shopee"],
        "working_weekdays": [0, 1, 2, 3, 4],
        "closed_dates": ["2027-02-16"],
    }
    assert_problem(api.put("/v1/locations/HN", json={**body, "working_weekdays": [7]}), 422, "validation_failed")
    assert_problem(api.put("/v1/locations/HN", json={**body, "closed_dates": ["soon"]}), 422, "validation_failed")


def test_a_short_pick_over_http_reroutes_the_units(stocked: Api) -> None:
    order_id = stocked.create_order(order_body(lines=[("TSHIRT-L", 1)]))["id"]
    stocked.drain()
    released = stocked.post(f"/v1/orders/{order_id}/release").json()
    [shipment] = released["shipments"]

    response = stocked.post(f"/v1/shipments/{shipment['id']}/short-pick", json={"line_number": 1, "quantity": 1})
    stocked.drain()

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    order = stocked.order(order_id)
    [line] = order["lines"]
    assert [a["location"] for a in line["allocations"] if a["quantity"]] == ["HCM"]
    assert order["status"] == "allocated"
    too_many = stocked.post(f"/v1/shipments/{shipment['id']}/short-pick", json={"line_number": 1, "quantity": 1})
    assert_problem(too_many, 409, "illegal_transition")
