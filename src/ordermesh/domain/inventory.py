"""Reservation arithmetic for one (location, SKU) inventory level, and the movements that change it.

A level is never edited directly: every change is a ``Movement`` and the level is the sum of its
movements (invariant 2). ``available = on_hand - reserved - safety_stock`` is derived, never stored.
Reserving never makes it negative (invariant 1). It can go negative only when the physical world
says so: a count (an override of on-hand) or a removal (damage, loss) leaves fewer units than are
already reserved, or safety stock is raised above what is free. The reservations stay; the orders
that hold them are the ones to re-route.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ordermesh.domain.errors import InsufficientStock, InvalidInput

# The most units one level may hold (and the largest safety stock): far beyond any real shelf, and
# well inside the 32-bit columns that store levels.
MAX_UNITS = 1_000_000_000


class MovementReason(StrEnum):
    COUNT = "count"  # on-hand set to a counted value (an override)
    ADJUSTMENT = "adjustment"  # on-hand changed by a delta (receipt, damage, correction)
    SAFETY_STOCK = "safety_stock"  # safety stock changed
    RESERVE = "reserve"  # units promised to an order line
    RELEASE = "release"  # a promise withdrawn (cancellation, reroute)
    SHIP = "ship"  # reserved units left the building: on-hand and reserved fall together
    RESTOCK = "restock"  # returned units put back on the shelf


@dataclass(frozen=True, slots=True)
class Movement:
    reason: MovementReason
    on_hand_delta: int = 0
    reserved_delta: int = 0
    safety_stock_delta: int = 0


@dataclass(frozen=True, slots=True)
class StockLevel:
    on_hand: int = 0
    reserved: int = 0
    safety_stock: int = 0

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved - self.safety_stock

    def apply(self, movement: Movement) -> StockLevel:
        return StockLevel(
            on_hand=self.on_hand + movement.on_hand_delta,
            reserved=self.reserved + movement.reserved_delta,
            safety_stock=self.safety_stock + movement.safety_stock_delta,
        )

    # Each method below returns the movement that performs the change, after checking it is legal.

    def reserve(self, quantity: int) -> Movement:
        _require_positive(quantity)
        if quantity > self.available:
            raise InsufficientStock(
                f"cannot reserve {quantity}: only {max(self.available, 0)} available",
                requested=quantity,
                available=self.available,
            )
        return Movement(MovementReason.RESERVE, reserved_delta=quantity)

    def release(self, quantity: int) -> Movement:
        _require_positive(quantity)
        if quantity > self.reserved:
            raise InsufficientStock(
                f"cannot release {quantity}: only {self.reserved} reserved",
                requested=quantity,
                reserved=self.reserved,
            )
        return Movement(MovementReason.RELEASE, reserved_delta=-quantity)

    def ship(self, quantity: int) -> Movement:
        _require_positive(quantity)
        if quantity > self.reserved or quantity > self.on_hand:
            raise InsufficientStock(
                f"cannot ship {quantity}: {self.reserved} reserved, {self.on_hand} on hand",
                requested=quantity,
                reserved=self.reserved,
                on_hand=self.on_hand,
            )
        return Movement(MovementReason.SHIP, on_hand_delta=-quantity, reserved_delta=-quantity)

    def count(self, on_hand: int) -> Movement:
        if on_hand < 0:
            raise InvalidInput("on_hand cannot be negative", field="on_hand", value=on_hand)
        _require_within_limit(on_hand, "on_hand")
        return Movement(MovementReason.COUNT, on_hand_delta=on_hand - self.on_hand)

    def adjust(self, delta: int, reason: MovementReason = MovementReason.ADJUSTMENT) -> Movement:
        if delta == 0:
            raise InvalidInput("an adjustment needs a non-zero delta", field="delta")
        if self.on_hand + delta < 0:
            raise InsufficientStock(
                f"cannot remove {-delta}: only {self.on_hand} on hand",
                requested=-delta,
                on_hand=self.on_hand,
            )
        _require_within_limit(self.on_hand + delta, "delta")
        return Movement(reason, on_hand_delta=delta)

    def set_safety_stock(self, safety_stock: int) -> Movement:
        if safety_stock < 0:
            raise InvalidInput("safety_stock cannot be negative", field="safety_stock", value=safety_stock)
        _require_within_limit(safety_stock, "safety_stock")
        return Movement(MovementReason.SAFETY_STOCK, safety_stock_delta=safety_stock - self.safety_stock)


def _require_positive(quantity: int) -> None:
    if quantity <= 0:
        raise InvalidInput("quantity must be positive", field="quantity", value=quantity)


def _require_within_limit(units: int, field: str) -> None:
    if units > MAX_UNITS:
        raise InvalidInput(
            f"a level cannot hold more than {MAX_UNITS:,} units", code="quantity_too_large", field=field, value=units
        )
