"""What a sales channel may sell of a listing: the stock rules of a channel connection.

sellable = min over the listing's components of (units available over the feeding locations //
units per listing unit), then minus the connection's buffer, times its share, capped at its maximum
exposed quantity, never below zero. A plain SKU is a bundle of one component, one unit each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StockRules:
    buffer: int = 0  # units always held back from the channel
    share_percent: int = 100  # of what is left after the buffer, the part this channel may sell
    max_exposed: int | None = None  # never show more than this

    def __post_init__(self) -> None:
        if self.buffer < 0:
            raise ValueError("buffer cannot be negative")
        if not 0 <= self.share_percent <= 100:
            raise ValueError("share_percent must be 0 to 100")
        if self.max_exposed is not None and self.max_exposed < 0:
            raise ValueError("max_exposed cannot be negative")


def sellable_quantity(available: Mapping[int, int], components: Mapping[int, int], rules: StockRules) -> int:
    """``available``: SKU id -> units available summed over the feeding locations (a missing SKU has
    none); ``components``: SKU id -> units of it in one listing unit."""
    if not components:
        return 0
    units = min(max(available.get(sku, 0), 0) // per_unit for sku, per_unit in components.items() if per_unit > 0)
    after_buffer = max(units - rules.buffer, 0)
    shared = after_buffer * rules.share_percent // 100
    if rules.max_exposed is not None:
        shared = min(shared, rules.max_exposed)
    return shared
