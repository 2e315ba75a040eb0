"""A routing request: one order's open lines and everything the engine may weigh for it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.routing.model import DailySales, Destination, LineDemand, Node, Stock
from ordermesh.domain.routing.rate_cards import CarrierQuote, RateCards


@dataclass(frozen=True, slots=True)
class RoutingRequest:
    """``stock`` and ``assigned_today`` are the caller's running view: a batch allocator routes orders
    one after another against the same copy, lowering stock and raising the counts as it applies
    each decision. ``assigned_today``: shipments already assigned to each node since the start of its
    local day (``local_day_start``). ``daily_sales``: recent units sold per day, for days of cover."""

    lines: tuple[LineDemand, ...]
    nodes: tuple[Node, ...]
    stock: Stock
    destination: Destination = field(default_factory=Destination)
    channel: str | None = None  # channel code (e.g. "shopee"), for node channel rules and split policy
    ship_by: datetime | None = None  # the marketplace's deadline to hand over to a carrier
    deliver_by: datetime | None = None  # a delivery promise made to the buyer, when there is one
    total_weight_grams: int = 0  # used when lines do not all carry a unit weight
    daily_sales: DailySales = field(default_factory=dict)
    assigned_today: Mapping[int, int] = field(default_factory=dict)
    rate_cards: RateCards | None = None  # None: the illustrative defaults shipped with ordermesh
    order_reference: str = ""  # shown in the trace
    # Live carrier quotes per node id (fetched and cached by the services layer; never fetched here).
    quotes: Mapping[int, tuple[CarrierQuote, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))
        object.__setattr__(self, "nodes", tuple(self.nodes))
        problems = []
        for name in ("ship_by", "deliver_by"):
            moment = getattr(self, name)
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                problems.append(f"{name} must be timezone-aware")
        if self.total_weight_grams < 0:
            problems.append("total_weight_grams must not be negative")
        if len({line.line_id for line in self.lines}) != len(self.lines):
            problems.append("line ids must be unique")
        if len({node.id for node in self.nodes}) != len(self.nodes):
            problems.append("node ids must be unique")
        for line in self.lines:
            if line.quantity < 0 or not line.components or min(line.components.values()) < 1:
                problems.append(f"line {line.line_id}: quantity >= 0 and components of at least 1 unit each")
            if line.unit_weight_grams is not None and line.unit_weight_grams < 0:
                problems.append(f"line {line.line_id}: unit_weight_grams must not be negative")
        if problems:
            raise InvalidInput("invalid routing request: " + "; ".join(problems), problems=problems)
