"""Carriers' rate cards: which zone a route falls in, what a parcel costs there and how long it takes.

A card prices one carrier service in one country by zone (same province, same region, adjacent region,
far). The defaults shipped in data/rate_cards.json are illustrative, to be replaced by a tenant's
contracted cards and, later, by live carrier quotes; ``rate_cards_from_dict`` reads either shape.
A card that has no rate for a zone, or a parcel above its weight limit, does not serve that route.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any, NamedTuple

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing.calendar import add_working_days
from ordermesh.domain.routing.model import MONDAY_TO_SATURDAY
from ordermesh.domain.routing.provinces import Province

WEIGHT_STEP_GRAMS = 500
MEMO_LIMIT = 65536  # entries per memo before it is cleared
SECONDS_PER_DAY = 86400.0


class Zone(StrEnum):
    SAME_PROVINCE = "same_province"  # origin and destination in the same first-level division
    SAME_REGION = "same_region"  # different divisions of the same region
    ADJACENT_REGION = "adjacent_region"  # neighbouring regions (where the country lists adjacency)
    FAR = "far"  # any other pair in the same country


@dataclass(frozen=True, slots=True)
class ZoneRate:
    first_500g: Decimal
    per_extra_500g: Decimal
    lead_days: int  # working days from handover to delivery
    _first: float = field(init=False, repr=False, compare=False)
    _extra: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_first", float(self.first_500g))
        object.__setattr__(self, "_extra", float(self.per_extra_500g))

    def fee(self, weight_grams: int) -> Decimal:
        """The fee for one parcel: the first 500 g, then each started 500 g above it."""
        return self.first_500g + self.per_extra_500g * extra_steps(weight_grams)

    def approximate_fee(self, weight_grams: int) -> float:
        """``fee`` as a float, for scoring only (never for money)."""
        return self._first + self._extra * extra_steps(weight_grams)


def extra_steps(weight_grams: int) -> int:
    """Started 500 g steps above the first 500 g."""
    return max(0, -(-(weight_grams - WEIGHT_STEP_GRAMS) // WEIGHT_STEP_GRAMS))


@dataclass(frozen=True, slots=True)
class RateCard:
    carrier: str
    service: str
    country: str  # domestic routes of this country only
    currency: str  # ISO 4217
    rates: Mapping[Zone, ZoneRate]
    working_weekdays: frozenset[int] = MONDAY_TO_SATURDAY  # days its lead time counts
    max_weight_grams: int | None = None
    quoted: bool = False  # built from a carrier's live quote for one route, not from a tariff
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rates", MappingProxyType(dict(self.rates)))
        rates = tuple(sorted(self.rates.items()))
        identity = (self.carrier, self.service, self.country, self.currency, rates, self.working_weekdays)
        object.__setattr__(self, "_hash", hash((*identity, self.max_weight_grams)))

    def __hash__(self) -> int:  # a value (cards key the carrier-option cache); rates are read-only
        return self._hash

    def rate_for(self, zone: Zone) -> ZoneRate | None:
        return self.rates.get(zone)


@dataclass(frozen=True, slots=True)
class RateCards:
    """Every card the engine may quote from, and each country's adjacent regions."""

    cards: tuple[RateCard, ...]
    adjacent_regions: Mapping[str, frozenset[frozenset[str]]] = field(default_factory=dict)
    source: str = ""
    _by_country: Mapping[str, tuple[RateCard, ...]] = field(init=False, repr=False, compare=False)
    # Memos (the cards never change; routes and handovers repeat across orders). Bounded: cleared when full.
    _served: dict[tuple[str, Zone, frozenset[str]], tuple[RateCard, ...]] = field(init=False, repr=False, compare=False)
    _routes: dict[tuple[str, str | None, str | None, frozenset[str]], tuple[Zone, tuple[RateCard, ...]]] = field(
        init=False, repr=False, compare=False
    )
    _options: dict[tuple[Zone, int, float, float | None], tuple[CarrierOption, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        by_country: dict[str, list[RateCard]] = {}
        for card in self.cards:
            by_country.setdefault(card.country, []).append(card)
        mixed = sorted(country for country, cards in by_country.items() if len({c.currency for c in cards}) > 1)
        if mixed:
            # Costs of one order's shipments are added up and compared: one currency per country.
            raise InvalidInput(f"rate cards mix currencies within {', '.join(mixed)}", countries=mixed)
        object.__setattr__(self, "_by_country", {country: tuple(cards) for country, cards in by_country.items()})
        object.__setattr__(self, "_served", {})
        object.__setattr__(self, "_routes", {})
        object.__setattr__(self, "_options", {})

    def cards_for(self, country: str | None) -> tuple[RateCard, ...]:
        return self._by_country.get(country, ()) if country else ()

    def serving(
        self, country: str, zone: Zone, excluded_carriers: frozenset[str] = frozenset()
    ) -> tuple[RateCard, ...]:
        """The cards with a rate for ``zone`` in ``country``, leaving out ``excluded_carriers``."""
        key = (country, zone, excluded_carriers)
        found = self._served.get(key)
        if found is None:
            found = tuple(
                card for card in self.cards_for(country) if zone in card.rates and card.carrier not in excluded_carriers
            )
            self._served[key] = found
        return found

    def route(
        self,
        country: str,
        origin: Province | None,
        destination: Province | None,
        excluded_carriers: frozenset[str] = frozenset(),
    ) -> tuple[Zone, tuple[RateCard, ...]]:
        """A domestic route's zone and the cards serving it. A province that is not known at either end
        is priced as the far zone (the dearest, slowest guess)."""
        key = (country, origin.name if origin else None, destination.name if destination else None, excluded_carriers)
        found = self._routes.get(key)
        if found is None:
            zone = self.zone_between(origin, destination) if origin and destination else Zone.FAR
            found = (zone, self.serving(country, zone, excluded_carriers))
            if len(self._routes) >= MEMO_LIMIT:
                self._routes.clear()
            self._routes[key] = found
        return found

    def options(
        self,
        zone: Zone,
        cards: tuple[RateCard, ...],
        handover: datetime,
        handover_ts: float,
        deliver_by: datetime | None,
        deliver_by_ts: float | None,
    ) -> tuple[CarrierOption, ...]:
        """The options of ``cards`` (as returned by ``route``) for a parcel handed over at ``handover``
        (``handover_ts`` its timestamp), fastest first, leaving out those that miss ``deliver_by``."""
        key = (zone, id(cards), handover_ts, deliver_by_ts)  # cards: this instance's own tuples, alive as long
        found = self._options.get(key)
        if found is None:
            found = carrier_options(cards, zone, handover, deliver_by)
            if len(self._options) >= MEMO_LIMIT:
                self._options.clear()
            self._options[key] = found
        return found

    def zone_between(self, origin: Province, destination: Province) -> Zone:
        """The zone of a domestic route (the caller checks both ends are in one country)."""
        if origin.name == destination.name:
            return Zone.SAME_PROVINCE
        if origin.region == destination.region:
            return Zone.SAME_REGION
        pairs = self.adjacent_regions.get(origin.country, frozenset())
        if frozenset((origin.region, destination.region)) in pairs:
            return Zone.ADJACENT_REGION
        return Zone.FAR


@dataclass(frozen=True, slots=True)
class CarrierQuote:
    """A carrier's own price for one route and parcel, fetched (and cached) by the services layer.
    ``lead_days``: working days from handover to delivery; None when the carrier quoted only a fee,
    in which case its rate card's lead time for the zone is used."""

    carrier: str
    service: str
    fee: Decimal
    currency: str
    lead_days: int | None = None


def with_quotes(quotes: tuple[CarrierQuote, ...], zone: Zone, cards: tuple[RateCard, ...]) -> tuple[RateCard, ...]:
    """The cards of a route with live quotes in front: a quoted carrier is priced by its quote (the
    whole parcel's fee, whatever its weight); carriers without a quote keep their rate card (the
    fallback when a carrier is slow or down). A quote without a lead time borrows its card's."""
    by_carrier = {card.carrier: card for card in cards}
    country = cards[0].country if cards else ""
    built = []
    for quote in quotes:
        card = by_carrier.get(quote.carrier)
        rate = card.rates.get(zone) if card else None
        lead = quote.lead_days if quote.lead_days is not None else (rate.lead_days if rate else None)
        if lead is None or quote.fee < 0:
            continue
        built.append(
            RateCard(
                carrier=quote.carrier,
                service=quote.service,
                country=card.country if card else country,
                currency=quote.currency,
                rates={zone: ZoneRate(quote.fee, Decimal(0), max(0, lead))},
                working_weekdays=card.working_weekdays if card else MONDAY_TO_SATURDAY,
                quoted=True,
            )
        )
    priced = {card.carrier for card in built}
    return tuple(built) + tuple(card for card in cards if card.carrier not in priced)


class CarrierOption(NamedTuple):
    """One carrier service that serves a route from a given handover, with its delivery estimate.
    (Per-node and per-plan records are NamedTuples: immutable, and far cheaper to build than frozen
    dataclasses, which matters when every node of every order gets one.)"""

    card: RateCard
    rate: ZoneRate
    delivery_at: datetime
    transit_days: float  # from handover to delivery, in days
    first_fee: float  # the rate's fees as floats, for scoring (money stays Decimal in ``rate``)
    extra_fee: float
    max_weight_grams: int | None

    def fee(self, weight_grams: int) -> Decimal | None:
        """The price of a parcel, or None when it is too heavy for the card."""
        limit = self.max_weight_grams
        return None if limit is not None and weight_grams > limit else self.rate.fee(weight_grams)


def carrier_options(
    cards: tuple[RateCard, ...], zone: Zone, handover: datetime, deliver_by: datetime | None
) -> tuple[CarrierOption, ...]:
    """The cards' options for a route in ``zone`` handed over at ``handover``, fastest first, leaving
    out those that miss ``deliver_by``."""
    options = []
    for card in cards:
        rate = card.rates[zone]
        delivery = add_working_days(handover, rate.lead_days, card.working_weekdays)
        if deliver_by is not None and delivery > deliver_by:
            continue
        transit = (delivery - handover).total_seconds() / SECONDS_PER_DAY
        first, extra = rate.approximate_fee(0), float(rate.per_extra_500g)
        options.append(CarrierOption(card, rate, delivery, transit, first, extra, card.max_weight_grams))
    options.sort(key=lambda option: (option.transit_days, option.card.carrier, option.card.service))
    return tuple(options)


def rate_cards_from_dict(data: Mapping[str, Any]) -> RateCards:
    """Read rate cards in the shape of data/rate_cards.json; every problem is reported at once."""
    problems: list[str] = []
    cards = []
    for position, raw in enumerate(data.get("cards", ())):
        where = f"cards[{position}]"
        rates: dict[Zone, ZoneRate] = {}
        for zone_name, rate in dict(raw.get("zones", {})).items():
            try:
                zone = Zone(zone_name)
                first, extra = Decimal(str(rate["first_500g"])), Decimal(str(rate["per_extra_500g"]))
                lead = int(rate["lead_days"])
            except (ValueError, KeyError, TypeError, InvalidOperation) as error:
                problems.append(f"{where}.zones.{zone_name}: {error!r}")
                continue
            if first < 0 or extra < 0 or lead < 0:
                problems.append(f"{where}.zones.{zone_name}: fees and lead_days must not be negative")
                continue
            rates[zone] = ZoneRate(first, extra, lead)
        missing = [key for key in ("carrier", "service", "country", "currency") if not raw.get(key)]
        if missing:
            problems.append(f"{where}: missing {', '.join(missing)}")
            continue
        weekdays = frozenset(int(day) for day in raw.get("working_weekdays", MONDAY_TO_SATURDAY))
        if not weekdays or not weekdays <= frozenset(range(7)):
            problems.append(f"{where}: working_weekdays must be a non-empty set of 0..6")
            continue
        cards.append(
            RateCard(
                carrier=str(raw["carrier"]),
                service=str(raw["service"]),
                country=str(raw["country"]).upper(),
                currency=str(raw["currency"]).upper(),
                rates=rates,
                working_weekdays=weekdays,
                max_weight_grams=raw.get("max_weight_grams"),
            )
        )
    if problems:
        raise InvalidInput("invalid rate cards: " + "; ".join(problems), problems=problems)
    adjacent = {
        country.upper(): frozenset(frozenset(pair) for pair in pairs)
        for country, pairs in dict(data.get("adjacent_regions", {})).items()
    }
    return RateCards(tuple(cards), adjacent, str(data.get("source", "")))


@cache
def load_default_rate_cards() -> RateCards:
    """The illustrative cards shipped with ordermesh (see the file's ``source``)."""
    text = files("ordermesh.domain").joinpath("data", "rate_cards.json").read_text(encoding="utf-8")
    return rate_cards_from_dict(json.loads(text))
