"""Hypothesis strategies shared by the property tests and state machines (one module, as
CONVENTIONS.md asks). Each strategy draws values a real caller could pass; tests filter nothing
they could instead generate correctly."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from hypothesis import strategies as st

from ordermesh.domain.lifecycle import OrderStatus, ShipmentStatus
from ordermesh.domain.routing import Destination, LineDemand, Node

# --- lifecycle -----------------------------------------------------------------------------------

order_statuses = st.sampled_from(list(OrderStatus))
shipment_statuses = st.sampled_from(list(ShipmentStatus))

# --- inventory arithmetic ------------------------------------------------------------------------

STOCK_OPERATIONS = ("reserve", "release", "ship", "count", "adjust", "set_safety_stock")


@dataclass(frozen=True, slots=True)
class StockOperation:
    """One call on a ``StockLevel``: ``name`` is the method, ``amount`` its argument (which may be
    illegal in the level's state: the method must then refuse it)."""

    name: str
    amount: int


stock_operations = st.builds(
    StockOperation,
    name=st.sampled_from(STOCK_OPERATIONS),
    amount=st.integers(min_value=-5, max_value=25),
)

# --- routing -------------------------------------------------------------------------------------

# Kept to a band around Vietnam so distances stay meaningful and never wrap around the globe.
latitudes = st.floats(min_value=8.0, max_value=23.0, allow_nan=False, allow_infinity=False)
longitudes = st.floats(min_value=102.0, max_value=110.0, allow_nan=False, allow_infinity=False)
coordinates = st.tuples(latitudes, longitudes)
maybe_coordinates = st.one_of(st.none(), coordinates)

ROUTING_SKUS = (1, 2, 3)


@st.composite
def routing_nodes(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 6) -> list[Node]:
    """Nodes with distinct ids and codes, some without coordinates, some inactive."""
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    nodes = []
    for index in range(count):
        position = draw(maybe_coordinates)
        latitude, longitude = position if position is not None else (None, None)
        nodes.append(Node(index + 1, f"N{index + 1:02d}", latitude, longitude, active=draw(st.booleans())))
    return nodes


component_maps = st.one_of(
    st.sampled_from(ROUTING_SKUS).map(lambda sku: {sku: 1}),  # a plain SKU
    st.dictionaries(st.sampled_from(ROUTING_SKUS), st.integers(min_value=1, max_value=3), min_size=2, max_size=3),
)


@st.composite
def line_demands(draw: st.DrawFn, *, max_lines: int = 4) -> list[LineDemand]:
    components = draw(st.lists(component_maps, min_size=1, max_size=max_lines))
    return [
        LineDemand(line_id=index + 1, quantity=draw(st.integers(min_value=0, max_value=6)), components=parts)
        for index, parts in enumerate(components)
    ]


def stock_for(nodes: list[Node]) -> st.SearchStrategy[dict[tuple[int, int], int]]:
    """Units available per (node, SKU); negative after a count below what is reserved."""
    keys = [(node.id, sku) for node in nodes for sku in ROUTING_SKUS]
    return st.dictionaries(st.sampled_from(keys), st.integers(min_value=-3, max_value=12)) if keys else st.just({})


destinations = maybe_coordinates.map(lambda position: Destination(*position) if position is not None else Destination())


@dataclass(frozen=True, slots=True)
class RoutingProblem:
    lines: list[LineDemand]
    nodes: list[Node]
    stock: dict[tuple[int, int], int]
    destination: Destination


@st.composite
def routing_problems(draw: st.DrawFn, *, max_nodes: int = 6) -> RoutingProblem:
    nodes = draw(routing_nodes(max_size=max_nodes))
    return RoutingProblem(draw(line_demands()), nodes, draw(stock_for(nodes)), draw(destinations))


@st.composite
def routing_problems_with_a_complete_node(draw: st.DrawFn) -> RoutingProblem:
    """A routing problem in which at least one active node alone has every unit the lines need."""
    problem = draw(routing_problems())
    needs: dict[int, int] = {}
    for line in problem.lines:
        for sku, per_unit in line.components.items():
            needs[sku] = needs.get(sku, 0) + line.quantity * per_unit
    index = draw(st.integers(min_value=0, max_value=len(problem.nodes) - 1))
    nodes = list(problem.nodes)
    nodes[index] = replace(nodes[index], active=True)
    stock = dict(problem.stock)
    for sku, units in needs.items():
        stock[(nodes[index].id, sku)] = units + draw(st.integers(min_value=0, max_value=3))
    return RoutingProblem(problem.lines, nodes, stock, problem.destination)


# --- the stock state machine (real services) -----------------------------------------------------

PLAIN_SKUS = ("SKU-A", "SKU-B")
BUNDLE_SKU = "KIT-AB"  # two of SKU-A and one of SKU-B
BUNDLE_COMPONENTS = {"SKU-A": 2, "SKU-B": 1}
ORDERABLE_SKUS = (*PLAIN_SKUS, BUNDLE_SKU)

order_line_specs = st.lists(
    st.tuples(st.sampled_from(ORDERABLE_SKUS), st.integers(min_value=1, max_value=3)), min_size=1, max_size=3
)


def shipping_addresses(places: dict[str, tuple[float, float]]) -> st.SearchStrategy[dict[str, Any]]:
    """An address near one of ``places``, or one without coordinates."""
    near = st.sampled_from(sorted(places)).map(
        lambda name: {
            "city": name,
            "latitude": places[name][0] + 0.01,
            "longitude": places[name][1] + 0.01,
        }
    )
    return st.one_of(near, st.just({"city": "unknown"}))


# --- routing engine (``decide``) -----------------------------------------------------------------
# Appended for the routing engine. Imports stay inside the functions so the module's head is unchanged.

ENGINE_PROVINCES = ("Hồ Chí Minh", "Hà Nội", "Đà Nẵng", "Cần Thơ", "Hải Phòng", "Khánh Hòa")
ENGINE_CHANNELS = ("shopee", "lazada", "tiktok")
ENGINE_TIME_ZONES = ("Asia/Ho_Chi_Minh", "Asia/Bangkok", "Asia/Singapore", "Asia/Jakarta", "UTC")


@dataclass(frozen=True, slots=True)
class EngineProblem:
    request: Any  # RoutingRequest
    profile: Any  # RoutingProfile
    now: Any  # datetime, UTC


def decision_moments() -> st.SearchStrategy[Any]:
    """A ``now`` in UTC within one week (weekdays and a weekend)."""
    from datetime import UTC, datetime

    return st.datetimes(
        min_value=datetime(2026, 11, 23), max_value=datetime(2026, 11, 30, 23, 59), timezones=st.just(UTC)
    )


@st.composite
def node_calendars(draw: st.DrawFn, now: Any) -> Any:
    """A calendar, or None (no cut-off): any time zone, cut-off hour, working weekdays, and closed
    dates near ``now``."""
    from datetime import time, timedelta

    from ordermesh.domain.routing import NodeCalendar

    if draw(st.booleans()):
        return None
    today = now.date()
    closed = draw(st.frozensets(st.integers(min_value=-1, max_value=6).map(lambda d: today + timedelta(days=d))))
    return NodeCalendar(
        time_zone=draw(st.sampled_from(ENGINE_TIME_ZONES)),
        cutoff=time(draw(st.integers(min_value=0, max_value=23)), draw(st.sampled_from((0, 30, 59)))),
        working_weekdays=draw(st.frozensets(st.integers(min_value=0, max_value=6), min_size=1)),
        closed_dates=closed,
    )


@st.composite
def engine_nodes(draw: st.DrawFn, now: Any, *, max_size: int = 6, plain: bool = False) -> list[Any]:
    """Nodes with every engine field drawn; ``plain`` nodes are active, unrestricted, uncapped and
    without cut-off (for properties about scoring rather than constraints)."""
    from ordermesh.domain.routing import Node, locate_province

    count = draw(st.integers(min_value=1, max_value=max_size))
    nodes = []
    for index in range(count):
        province = locate_province(draw(st.sampled_from(ENGINE_PROVINCES)), "VN")
        assert province is not None
        with_coordinates = draw(st.booleans())
        jitter = draw(st.floats(min_value=-0.2, max_value=0.2)) if with_coordinates else 0.0
        nodes.append(
            Node(
                id=index + 1,
                code=f"N{index + 1:02d}",
                latitude=province.latitude + jitter if with_coordinates else None,
                longitude=province.longitude + jitter if with_coordinates else None,
                active=True if plain else draw(st.booleans()),
                country="VN",
                province=province.name,
                channels=None if plain else draw(st.one_of(st.none(), st.frozensets(st.sampled_from(ENGINE_CHANNELS)))),
                daily_capacity=None if plain else draw(st.one_of(st.none(), st.integers(min_value=0, max_value=5))),
                calendar=None if plain else draw(node_calendars(now)),
            )
        )
    return nodes


@st.composite
def routing_profiles(draw: st.DrawFn, codes: list[str]) -> Any:
    from ordermesh.domain.routing import RoutingProfile, ScoreWeights, SplitPolicy

    weight = st.floats(min_value=0.0, max_value=2.0, allow_nan=False)
    return RoutingProfile(
        name="drawn",
        version=draw(st.integers(min_value=1, max_value=9)),
        weights=ScoreWeights(*(draw(weight) for _ in range(6))),
        split=SplitPolicy(
            allowed=draw(st.booleans()),
            penalty=draw(weight),
            max_shipments=draw(st.integers(min_value=1, max_value=3)),
            channels_without_split=draw(st.frozensets(st.sampled_from(ENGINE_CHANNELS))),
            allow_partial=draw(st.booleans()),
        ),
        excluded_nodes=draw(st.frozensets(st.sampled_from(codes))) if codes else frozenset(),
        excluded_carriers=draw(st.frozensets(st.sampled_from(("ghn", "ghtk", "ninjavan")))),
        enforce_capacity=draw(st.booleans()),
        max_distance_km=draw(st.one_of(st.none(), st.floats(min_value=50.0, max_value=2000.0))),
    )


@st.composite
def engine_problems(
    draw: st.DrawFn, *, plain_skus: bool = False, plain_nodes: bool = False, covered: bool = False
) -> EngineProblem:
    """A whole routing request with a profile and a ``now``. ``plain_skus``: every line is one SKU
    (no bundles), so "can these nodes ship everything" is a per-SKU sum. ``covered``: each SKU the
    lines need is fully stocked at one drawn node (so some set of nodes ships everything)."""
    from datetime import timedelta

    from ordermesh.domain.routing import Destination, RoutingProfile, RoutingRequest, locate_province

    now = draw(decision_moments())
    nodes = draw(engine_nodes(now, plain=plain_nodes))
    lines = draw(line_demands())
    if plain_skus:
        lines = [replace(line, components={min(line.components): 1}) for line in lines]
    province = locate_province(draw(st.sampled_from(ENGINE_PROVINCES)), "VN")
    assert province is not None
    if draw(st.booleans()):
        destination = Destination(province.latitude + 0.05, province.longitude - 0.05, province.name, "VN")
    else:
        destination = Destination(province=province.name, country="VN")
    hours = st.integers(min_value=0, max_value=96).map(lambda h: now + timedelta(hours=h))
    keys = [(node.id, sku) for node in nodes for sku in ROUTING_SKUS]
    stock = draw(stock_for(nodes))
    if covered:
        for sku in sorted({sku for line in lines for sku in line.components}):
            need = sum(line.quantity * line.components.get(sku, 0) for line in lines)
            holder = draw(st.sampled_from(nodes))
            stock[(holder.id, sku)] = max(stock.get((holder.id, sku), 0), need)
    request = RoutingRequest(
        lines=tuple(lines),
        nodes=tuple(nodes),
        stock=stock,
        destination=destination,
        channel=draw(st.one_of(st.none(), st.sampled_from(ENGINE_CHANNELS))),
        ship_by=None if plain_nodes else draw(st.one_of(st.none(), hours)),
        deliver_by=None if plain_nodes else draw(st.one_of(st.none(), hours)),
        total_weight_grams=draw(st.integers(min_value=0, max_value=3000)),
        daily_sales=draw(st.dictionaries(st.sampled_from(keys), st.floats(min_value=0.0, max_value=5.0))),
        assigned_today={node.id: draw(st.integers(min_value=0, max_value=6)) for node in nodes},
    )
    profile = RoutingProfile() if plain_nodes else draw(routing_profiles([node.code for node in nodes]))
    return EngineProblem(request, profile, now)
