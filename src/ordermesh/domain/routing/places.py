"""Where a node or a destination is, for distance and for rate zones.

Coordinates come from the address (or the node) when it has both; otherwise from its province's
capital in the province table. The province comes from its name; a destination with coordinates but
no recognisable province takes the province whose capital is nearest. Each answer says which basis
it used, so the trace can tell a measured distance from an estimated one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from math import asin, cos, radians, sin, sqrt

from ordermesh.domain.geo import EARTH_RADIUS_KM
from ordermesh.domain.routing.model import Destination, Node
from ordermesh.domain.routing.provinces import Province, locate_province, nearest_province


class PlaceBasis(StrEnum):
    GIVEN = "given"  # from the address or node record itself
    PROVINCE_CAPITAL = "province_capital"  # the capital of its province stands in for coordinates
    NEAREST_CAPITAL = "nearest_capital"  # province inferred: the one whose capital is nearest
    UNKNOWN = "unknown"  # neither coordinates nor a recognisable province


@dataclass(frozen=True, slots=True)
class Place:
    latitude: float | None
    longitude: float | None
    coordinates_basis: PlaceBasis
    province: Province | None
    province_basis: PlaceBasis
    country: str | None
    # Radians and cosine of the latitude, computed once: distances are measured for every node of every order.
    _trig: tuple[float, float, float] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        trig = None
        if self.latitude is not None and self.longitude is not None:
            trig = (radians(self.latitude), radians(self.longitude), cos(radians(self.latitude)))
        object.__setattr__(self, "_trig", trig)

    def distance_km(self, other: Place) -> float | None:
        """Great-circle distance (the haversine formula of ``geo.haversine_km``); None when either
        place has no coordinates."""
        here, there = self._trig, other._trig
        if here is None or there is None:
            return None
        half_dphi = (there[0] - here[0]) / 2
        half_dlambda = (there[1] - here[1]) / 2
        a = sin(half_dphi) ** 2 + here[2] * there[2] * sin(half_dlambda) ** 2
        return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))

    def to_dict(self) -> dict[str, object]:
        return {
            "latitude": self.latitude,
            "longitude": self.longitude,
            "coordinates_basis": self.coordinates_basis.value,
            "province": self.province.name if self.province else None,
            "region": self.province.region if self.province else None,
            "province_basis": self.province_basis.value,
            "country": self.country,
        }


@lru_cache(maxsize=65536)
def locate(latitude: float | None, longitude: float | None, province_name: str | None, country: str | None) -> Place:
    """Resolve one address or node (cached: nodes and popular addresses repeat across orders)."""
    country = country.upper() if country else None
    province = locate_province(province_name, country)
    province_basis = PlaceBasis.GIVEN if province else PlaceBasis.UNKNOWN
    if country is None and province is not None:
        country = province.country
    if latitude is not None and longitude is not None:
        if province is None:
            province = nearest_province(latitude, longitude, country)
            province_basis = PlaceBasis.NEAREST_CAPITAL if province else PlaceBasis.UNKNOWN
            if country is None and province is not None:
                country = province.country
        return Place(latitude, longitude, PlaceBasis.GIVEN, province, province_basis, country)
    if province is not None:
        return Place(
            province.latitude, province.longitude, PlaceBasis.PROVINCE_CAPITAL, province, province_basis, country
        )
    return Place(None, None, PlaceBasis.UNKNOWN, None, PlaceBasis.UNKNOWN, country)


def locate_destination(destination: Destination) -> Place:
    return locate(destination.latitude, destination.longitude, destination.province, destination.country)


def locate_node(node: Node) -> Place:
    return locate(node.latitude, node.longitude, node.province, node.country)
