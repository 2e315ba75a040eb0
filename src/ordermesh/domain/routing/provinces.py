"""The province table: first-level divisions of the markets ordermesh ships in, with the coordinates
of each division's capital and the region it belongs to (data/provinces.json, its source stated there).

It stands in for an address without coordinates (distance from the province's capital) and gives
carriers' rate zones their province and region. Names match whatever the spelling: accents, case,
punctuation and spaces are ignored ("TP. Hồ Chí Minh", "Ho Chi Minh City" and "HCM" all match), and a
leading "Tỉnh", "Thành phố", "Provinsi", "Province of" (or a trailing "Province", "State") is dropped.
Viet Nam's 63 provinces before the 2025 merger resolve to the province that absorbed them.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any

from ordermesh.domain.geo import haversine_km

# Words around a division's name that do not name it, as normalised token sequences.
_PREFIXES = (
    ("thanh", "pho"),
    ("tp",),
    ("tinh",),
    ("thu", "do"),
    ("provinsi",),
    ("prov",),
    ("province", "of"),
    ("changwat",),
    ("negeri",),
    ("city", "of"),
)
_SUFFIXES = (("province",), ("state",), ("city",), ("region",))


@dataclass(frozen=True, slots=True)
class Province:
    country: str  # ISO 3166-1 alpha-2
    name: str
    kind: str  # province, municipality, state, region, city, country
    capital: str
    latitude: float
    longitude: float
    region: str  # the country's region the division belongs to (rate zones)
    aliases: tuple[str, ...] = ()
    former: tuple[str, ...] = ()  # divisions merged into this one (Viet Nam, 2025)


def normalise_place_name(text: str) -> str:
    """A matching key: accents and case dropped, đ read as d, only letters and digits kept."""
    decomposed = unicodedata.normalize("NFKD", text.replace("đ", "d").replace("Đ", "D")).casefold()
    return "".join(" " if not char.isalnum() else char for char in decomposed if not unicodedata.combining(char))


def _key(text: str) -> str:
    return "".join(normalise_place_name(text).split())


def _stripped_key(text: str) -> str:
    tokens = normalise_place_name(text).split()
    for prefix in _PREFIXES:
        if tuple(tokens[: len(prefix)]) == prefix and len(tokens) > len(prefix):
            tokens = tokens[len(prefix) :]
            break
    for suffix in _SUFFIXES:
        if tuple(tokens[-len(suffix) :]) == suffix and len(tokens) > len(suffix):
            tokens = tokens[: -len(suffix)]
            break
    return "".join(tokens)


@cache
def _table() -> dict[str, Any]:
    text = files("ordermesh.domain").joinpath("data", "provinces.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def provinces(country: str | None = None) -> tuple[Province, ...]:
    """Every division in the table, or in one country."""
    found = []
    for code, entry in _table()["countries"].items():
        if country is not None and code != country.upper():
            continue
        for division in entry["divisions"]:
            found.append(
                Province(
                    country=code,
                    name=division["name"],
                    kind=division["kind"],
                    capital=division["capital"],
                    latitude=division["lat"],
                    longitude=division["lon"],
                    region=division["region"],
                    aliases=tuple(division.get("aliases", ())),
                    former=tuple(division.get("former", ())),
                )
            )
    return tuple(found)


def province_data_source() -> str:
    source: str = _table()["source"]
    return source


@cache
def _index() -> dict[str, dict[str, Province]]:
    """Country -> matching key -> division. Official names win over aliases if two ever collide."""
    by_country: dict[str, dict[str, Province]] = {}
    for province in provinces():
        keys = by_country.setdefault(province.country, {})
        for name in (*province.aliases, *province.former):
            keys.setdefault(_key(name), province)
    for province in provinces():
        by_country[province.country][_key(province.name)] = province
    return by_country


@lru_cache(maxsize=4096)
def locate_province(name: str | None, country: str | None = None) -> Province | None:
    """The division ``name`` designates, in ``country`` when given (otherwise only a name that matches
    in exactly one country). None when nothing matches."""
    if not name:
        return None
    index = _index()
    countries = [country.upper()] if country else sorted(index)
    for key in (_key(name), _stripped_key(name)):
        matches = {index[code][key] for code in countries if code in index and key in index[code]}
        if len(matches) == 1:
            return matches.pop()
        if matches:
            return None  # the same name in several countries: ambiguous without one
    return None


# A place with coordinates but no country takes the country of the nearest capital in the table, when
# one is this close: far enough for any point of a province, too near to cross into an unserved market.
INFER_COUNTRY_WITHIN_KM = 300.0


def nearest_province(latitude: float, longitude: float, country: str | None) -> Province | None:
    """The division of ``country`` whose capital is nearest: a stand-in for an address that has
    coordinates but no recognisable province. Without a country: the nearest division of any
    country in the table, if its capital is within ``INFER_COUNTRY_WITHIN_KM``."""
    candidates = provinces(country)
    if not candidates:
        return None
    nearest = min(candidates, key=lambda p: haversine_km(latitude, longitude, p.latitude, p.longitude))
    if (
        country is None
        and haversine_km(latitude, longitude, nearest.latitude, nearest.longitude) > INFER_COUNTRY_WITHIN_KM
    ):
        return None
    return nearest
