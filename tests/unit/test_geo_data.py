"""The data shipped with the routing engine: the province table and the default rate cards."""

from __future__ import annotations

import json
from collections import Counter
from importlib.resources import files
from typing import Any

import pytest

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing import (
    Zone,
    load_default_rate_cards,
    locate_province,
    nearest_province,
    normalise_place_name,
    province_data_source,
    provinces,
    rate_cards_from_dict,
)

# (min latitude, max latitude, min longitude, max longitude): generous national boxes.
BOUNDING_BOXES = {
    "VN": (8.3, 23.5, 102.1, 109.6),
    "ID": (-11.1, 6.1, 94.9, 141.1),
    "MY": (0.8, 7.5, 99.6, 119.3),
    "PH": (4.5, 21.2, 116.9, 126.7),
    "TH": (5.6, 20.5, 97.3, 105.7),
    "SG": (1.15, 1.48, 103.6, 104.1),
}


def _raw(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(files("ordermesh.domain").joinpath("data", name).read_text(encoding="utf-8"))
    return data


# --- province table ---------------------------------------------------------------------------------


def test_every_division_lies_inside_its_countrys_bounding_box() -> None:
    outside = []
    for province in provinces():
        low_lat, high_lat, low_lon, high_lon = BOUNDING_BOXES[province.country]
        if not (low_lat <= province.latitude <= high_lat and low_lon <= province.longitude <= high_lon):
            outside.append(f"{province.country} {province.name}")
    assert outside == []


def test_coordinates_are_rounded_to_a_hundredth_of_a_degree() -> None:
    for province in provinces():
        assert round(province.latitude, 2) == province.latitude, province.name
        assert round(province.longitude, 2) == province.longitude, province.name


def test_the_table_covers_the_six_markets() -> None:
    counts = Counter(p.country for p in provinces())
    assert set(counts) == {"VN", "ID", "MY", "PH", "TH", "SG"}
    assert counts["VN"] == 34  # since the 2025 merger
    assert counts["ID"] == 38
    assert counts["MY"] == 16  # 13 states, 3 federal territories
    assert counts["TH"] == 77  # Bangkok and 76 provinces
    assert counts["SG"] == 6  # the city-state and its five regions
    assert sum(p.kind == "region" for p in provinces("PH")) == 18  # 17 regions, plus Negros Island Region


def test_source_is_stated_without_an_invented_address() -> None:
    source = province_data_source()
    assert "capital" in source
    assert "compiled 2026-11" in source
    assert "http" not in source


def test_vietnams_63_former_provinces_each_resolve_to_exactly_one_current_province() -> None:
    former = [name for p in provinces("VN") for name in p.former]
    assert len(former) == 63
    assert len(set(former)) == 63
    for province in provinces("VN"):
        for name in province.former:
            assert locate_province(name, "VN") == province, name


@pytest.mark.parametrize(
    ("written", "country", "expected"),
    [
        ("Ho Chi Minh", "VN", "Hồ Chí Minh"),
        ("TP. Hồ Chí Minh", "VN", "Hồ Chí Minh"),
        ("Thành phố Hồ Chí Minh", "VN", "Hồ Chí Minh"),
        ("HCM", "VN", "Hồ Chí Minh"),
        ("ho chi minh city", None, "Hồ Chí Minh"),
        ("Tỉnh Bình Dương", "VN", "Hồ Chí Minh"),
        ("Bà Rịa \u2013 Vũng Tàu", "VN", "Hồ Chí Minh"),  # with an en dash
        ("Hanoi", "VN", "Hà Nội"),
        ("HA NOI", "VN", "Hà Nội"),
        ("Thừa Thiên Huế", "VN", "Huế"),
        ("Hoà Bình", "VN", "Phú Thọ"),
        ("Dak Lak", "VN", "Đắk Lắk"),
        ("Kiên Giang", "VN", "An Giang"),
        ("Metro Manila", "PH", "National Capital Region"),
        ("Quezon City", "PH", "National Capital Region"),
        ("Quezon", "PH", "Quezon"),
        ("Cebu", "PH", "Cebu"),
        ("Province of Cebu", "PH", "Cebu"),
        ("Davao del Sur", "PH", "Davao del Sur"),
        ("Region VII", "PH", "Central Visayas"),
        ("Bangkok", "TH", "Bangkok"),
        ("Krung Thep Maha Nakhon", "TH", "Bangkok"),
        ("กรุงเทพมหานคร", "TH", "Bangkok"),
        ("Chon Buri", "TH", "Chonburi"),
        ("Korat", "TH", "Nakhon Ratchasima"),
        ("Penang", "MY", "Pulau Pinang"),
        ("WP Kuala Lumpur", "MY", "Kuala Lumpur"),
        ("Provinsi Jawa Barat", "ID", "Jawa Barat"),
        ("West Java", "ID", "Jawa Barat"),
        ("DIY", "ID", "DI Yogyakarta"),
        ("singapore", None, "Singapore"),
    ],
)
def test_names_match_whatever_the_spelling(written: str, country: str | None, expected: str) -> None:
    province = locate_province(written, country)
    assert province is not None
    assert province.name == expected


def test_every_alias_resolves_to_its_own_division() -> None:
    wrong = []
    for province in provinces():
        for name in (province.name, *province.aliases, *province.former):
            if locate_province(name, province.country) != province:
                wrong.append(f"{province.country} {name!r}")
    assert wrong == []


def test_no_two_divisions_of_a_country_share_a_matching_key() -> None:
    for country in BOUNDING_BOXES:
        owners: dict[str, set[str]] = {}
        for province in provinces(country):
            for name in (province.name, *province.aliases, *province.former):
                owners.setdefault("".join(normalise_place_name(name).split()), set()).add(province.name)
        assert {key: names for key, names in owners.items() if len(names) > 1} == {}


def test_unknown_or_empty_names_match_nothing() -> None:
    assert locate_province("Atlantis", "VN") is None
    assert locate_province("", "VN") is None
    assert locate_province(None) is None
    assert locate_province("Cebu", "VN") is None


def test_every_divisions_region_is_one_its_country_lists() -> None:
    for code, country in _raw("provinces.json")["countries"].items():
        assert {p.region for p in provinces(code)} <= set(country["regions"]), code


def test_nearest_province_stands_in_for_an_address_with_only_coordinates() -> None:
    vung_tau = (10.35, 107.08)  # Vũng Tàu merged into Hồ Chí Minh City in 2025
    province = nearest_province(*vung_tau, "VN")
    assert province is not None
    assert province.name == "Hồ Chí Minh"
    assert nearest_province(*vung_tau, "XX") is None


# --- default rate cards -----------------------------------------------------------------------------

VN_ZONES = [Zone.SAME_PROVINCE, Zone.SAME_REGION, Zone.ADJACENT_REGION, Zone.FAR]


def test_rate_cards_say_they_are_illustrative_defaults() -> None:
    raw = _raw("rate_cards.json")
    assert "Illustrative defaults" in raw["source"]
    assert "live carrier quotes" in raw["source"]
    assert load_default_rate_cards().source == raw["source"]


def test_every_market_has_a_card_and_vietnam_has_the_three_local_carriers() -> None:
    cards = load_default_rate_cards()
    assert {card.country for card in cards.cards} == set(BOUNDING_BOXES)
    assert sorted(card.carrier for card in cards.cards_for("VN")) == ["generic", "ghn", "ghtk", "ninjavan"]
    assert {card.currency for card in cards.cards_for("VN")} == {"VND"}


def test_vietnamese_cards_price_every_zone_dearer_and_slower_the_farther_it_goes() -> None:
    for card in load_default_rate_cards().cards_for("VN"):
        rates = [card.rates[zone] for zone in VN_ZONES]
        assert [r.first_500g for r in rates] == sorted(r.first_500g for r in rates), card.carrier
        assert [r.lead_days for r in rates] == sorted(r.lead_days for r in rates), card.carrier


def test_other_markets_have_a_country_level_card_without_adjacent_zones() -> None:
    cards = load_default_rate_cards()
    for country in ("ID", "MY", "PH", "TH", "SG"):
        for card in cards.cards_for(country):
            assert set(card.rates) == {Zone.SAME_PROVINCE, Zone.SAME_REGION, Zone.FAR}, (country, card.carrier)
    assert set(cards.adjacent_regions) == {"VN"}


@pytest.mark.parametrize(
    ("origin", "destination", "zone"),
    [
        ("Hồ Chí Minh", "Bình Dương", Zone.SAME_PROVINCE),
        ("Hồ Chí Minh", "Cần Thơ", Zone.SAME_REGION),
        ("Hồ Chí Minh", "Đà Nẵng", Zone.ADJACENT_REGION),
        ("Hà Nội", "Huế", Zone.ADJACENT_REGION),
        ("Hồ Chí Minh", "Hà Nội", Zone.FAR),
    ],
)
def test_zones_follow_provinces_and_regions(origin: str, destination: str, zone: Zone) -> None:
    start, end = locate_province(origin, "VN"), locate_province(destination, "VN")
    assert start is not None
    assert end is not None
    assert load_default_rate_cards().zone_between(start, end) is zone


def test_fee_is_the_first_500_g_plus_each_started_500_g_above() -> None:
    ghn = next(card for card in load_default_rate_cards().cards_for("VN") if card.carrier == "ghn")
    rate = ghn.rates[Zone.FAR]  # 32,000 VND, then 5,000 VND per started 500 g
    assert [str(rate.fee(grams)) for grams in (0, 500, 501, 1000, 1001, 2600)] == [
        "32000",
        "32000",
        "37000",
        "37000",
        "42000",
        "57000",
    ]


def test_rate_cards_that_mix_currencies_in_one_country_are_refused() -> None:
    zones = {"far": {"first_500g": "1", "per_extra_500g": "1", "lead_days": 1}}
    data = {
        "cards": [
            {"carrier": "a", "service": "s", "country": "VN", "currency": "VND", "zones": zones},
            {"carrier": "b", "service": "s", "country": "VN", "currency": "USD", "zones": zones},
        ]
    }
    with pytest.raises(InvalidInput) as refused:
        rate_cards_from_dict(data)
    assert refused.value.details == {"countries": ["VN"]}


def test_rate_card_problems_are_all_reported_at_once() -> None:
    data = {
        "cards": [
            {"carrier": "a", "service": "s", "country": "VN", "currency": "VND", "zones": {
                "far": {"first_500g": "-1", "per_extra_500g": "1", "lead_days": 1},
            }},
            {"service": "s", "country": "VN", "currency": "VND", "zones": {}},
        ]
    }  # fmt: skip
    with pytest.raises(InvalidInput) as refused:
        rate_cards_from_dict(data)
    assert refused.value.details["problems"] == [
        "cards[0].zones.far: fees and lead_days must not be negative",
        "cards[1]: missing carrier",
    ]
