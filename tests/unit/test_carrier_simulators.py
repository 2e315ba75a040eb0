"""The carrier simulators answer like the carriers (auth, envelopes) and the CLI refuses bad options."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from ordermesh.adapters.carriers.base import CarrierAddress, Parcel, ParcelItem
from ordermesh.adapters.carriers.ninjavan import NinjaVanAdapter, TokenCache
from ordermesh.adapters.outbound import PermanentDeliveryError
from ordermesh.cli import app as cli
from ordermesh.simulators import ghn, ghtk, ninjavan
from ordermesh.simulators.common import running

PARCEL = Parcel(
    reference="OM1-9",
    sender=CarrierAddress("Kho", "0900000000", "1 Pho Hue", province="Ha Noi"),
    recipient=CarrierAddress("Buyer", "0911111111", "2 Le Loi", province="Ho Chi Minh"),
    weight_grams=1200,
    items=(ParcelItem("Cap", "CAP", 2, Decimal(90000), 600),),
)


def test_ghn_simulator_refuses_a_wrong_token_in_ghns_envelope() -> None:
    with running(ghn.create_app(token="right", shop_id="7")) as base:
        answer = httpx.post(f"{base}/shiip/public-api/v2/shipping-order/detail", json={}, headers={"Token": "wrong"})
    assert answer.status_code == 401
    assert answer.json() == {"code": 401, "message": "Token is not valid", "data": None}


def test_ghtk_simulator_prices_from_its_zone_table() -> None:
    zones = {
        "same_province": {"fee": 1000, "per_extra_500g": 10, "lead_days": 1},
        "other": {"fee": 5000, "per_extra_500g": 100, "lead_days": 4},
    }
    headers = {"Token": "t", "X-Client-Source": "S9"}
    with running(ghtk.create_app(token="t", client_source="S9", zones=zones)) as base:
        params = {
            "pick_province": "Ha Noi",
            "pick_district": "x",
            "province": "Ho Chi Minh",
            "district": "y",
            "weight": 1200,
        }
        fee = httpx.get(f"{base}/services/shipment/fee", params=params, headers=headers).json()
    assert fee["success"] is True
    assert fee["fee"]["fee"] == 5000 + 2 * 100  # two started 500 g steps above the first


def test_ninjavan_adapter_gets_a_new_token_when_the_simulator_revokes_it() -> None:
    sim = ninjavan.create_app(client_id="c", client_secret="s")
    with running(sim) as base, httpx.Client(timeout=5) as client:
        adapter = NinjaVanAdapter(
            f"{base}/vn", {"client_id": "c", "client_secret": "s", "country_code": "VN"}, client, tokens=TokenCache()
        )
        adapter.book(PARCEL)
        client.post(f"{base}/_sim/expire_tokens")
        adapter.label("OM1-9")
        assert sim.state.control["tokens_issued"] == 2
        wrong = NinjaVanAdapter(
            f"{base}/vn", {"client_id": "c", "client_secret": "bad", "country_code": "VN"}, client, tokens=TokenCache()
        )
        with pytest.raises(PermanentDeliveryError):
            wrong.book(PARCEL)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["dhl"], "unknown carrier 'dhl'"),
        (["ghtk", "--shop-id", "3"], "ghtk does not use --shop-id"),
        (["ninjavan", "--token", "x"], "ninjavan does not use --token"),
    ],
)
def test_simulate_carrier_refuses_bad_options_in_one_line(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["simulate", "carrier", *arguments])
    assert result.exit_code == 1
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_simulate_carrier_refuses_a_bad_zone_table(tmp_path: Path) -> None:
    table = tmp_path / "zones.json"
    table.write_text('{"same_province": {"fee": 1}}')
    result = CliRunner().invoke(cli, ["simulate", "carrier", "ghn", "--zones", str(table)])
    assert result.exit_code == 1
    assert "--zones" in result.output
