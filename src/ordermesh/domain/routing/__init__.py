"""Routing: which node(s) ship an order, with which carrier, and why.

- ``decide(request, profile, now=...)``: the routing engine (hard constraints, weighted scoring,
  split search, a trace for every decision). See engine.py and the modules it names.
- ``route_order(lines, nodes, stock, destination)``: routing v1, nearest location first, kept with
  its exact behaviour for the batch allocator until it moves to ``decide``.
"""

from ordermesh.domain.routing.calendar import add_working_days, local_day_start, next_handover
from ordermesh.domain.routing.constraints import Candidate, Exclusion, ExclusionReason
from ordermesh.domain.routing.decision import (
    PlanOutcome,
    RoutingDecision,
    RoutingTrace,
    Shipment,
    ShippingPlan,
)
from ordermesh.domain.routing.engine import DEFAULT_PROFILE, decide
from ordermesh.domain.routing.model import (
    MONDAY_TO_FRIDAY,
    MONDAY_TO_SATURDAY,
    Assignment,
    DailySales,
    Destination,
    LineDemand,
    Node,
    NodeCalendar,
    Stock,
)
from ordermesh.domain.routing.nearest_first import (
    EXACT_SEARCH_MAX_NODES,
    EXACT_SEARCH_MAX_SPLIT,
    RoutingPlan,
    route_order,
)
from ordermesh.domain.routing.places import Place, PlaceBasis
from ordermesh.domain.routing.profile import (
    RoutingProfile,
    ScoreWeights,
    ShortPickPolicy,
    SlaFallback,
    SplitPolicy,
    profile_from_dict,
)
from ordermesh.domain.routing.provinces import (
    Province,
    locate_province,
    nearest_province,
    normalise_place_name,
    province_data_source,
    provinces,
)
from ordermesh.domain.routing.rate_cards import (
    CarrierOption,
    CarrierQuote,
    RateCard,
    RateCards,
    Zone,
    ZoneRate,
    load_default_rate_cards,
    rate_cards_from_dict,
    with_quotes,
)
from ordermesh.domain.routing.request import RoutingRequest
from ordermesh.domain.routing.scoring import Criterion, CriterionScores
from ordermesh.domain.routing.search import ConsideredPlan

__all__ = [
    "DEFAULT_PROFILE",
    "EXACT_SEARCH_MAX_NODES",
    "EXACT_SEARCH_MAX_SPLIT",
    "MONDAY_TO_FRIDAY",
    "MONDAY_TO_SATURDAY",
    "Assignment",
    "Candidate",
    "CarrierOption",
    "CarrierQuote",
    "ConsideredPlan",
    "Criterion",
    "CriterionScores",
    "DailySales",
    "Destination",
    "Exclusion",
    "ExclusionReason",
    "LineDemand",
    "Node",
    "NodeCalendar",
    "Place",
    "PlaceBasis",
    "PlanOutcome",
    "Province",
    "RateCard",
    "RateCards",
    "RoutingDecision",
    "RoutingPlan",
    "RoutingProfile",
    "RoutingRequest",
    "RoutingTrace",
    "ScoreWeights",
    "Shipment",
    "ShippingPlan",
    "ShortPickPolicy",
    "SlaFallback",
    "SplitPolicy",
    "Stock",
    "Zone",
    "ZoneRate",
    "add_working_days",
    "decide",
    "load_default_rate_cards",
    "local_day_start",
    "locate_province",
    "nearest_province",
    "next_handover",
    "normalise_place_name",
    "profile_from_dict",
    "province_data_source",
    "provinces",
    "rate_cards_from_dict",
    "route_order",
    "with_quotes",
]
