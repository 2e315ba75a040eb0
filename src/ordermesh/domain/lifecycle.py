"""Order lifecycle: the statuses an order can be in and the transitions between them."""

from __future__ import annotations

from enum import StrEnum

from ordermesh.domain.errors import IllegalTransition


class OrderStatus(StrEnum):
    PENDING = "pending"  # captured, waiting for the allocator
    ON_HOLD = "on_hold"  # parked by a rule or an operator (unmapped SKU, fraud check); not allocated
    BACKORDERED = "backordered"  # nothing could be reserved; re-tried when stock arrives
    PARTIALLY_ALLOCATED = "partially_allocated"  # some units reserved, the rest waits for stock
    ALLOCATED = "allocated"  # every open unit reserved at one or more locations
    RELEASED = "released"  # handed to the node(s): one shipment per location exists
    PARTIALLY_SHIPPED = "partially_shipped"  # at least one shipment handed to a carrier, not all
    SHIPPED = "shipped"  # every open unit handed to a carrier
    DELIVERED = "delivered"  # every shipment delivered
    COMPLETED = "completed"  # closed: nothing more will happen (terminal)
    CANCELLED = "cancelled"  # every unit cancelled before shipping (terminal)


S = OrderStatus

# Allowed transitions. A status "moving" to itself is not a transition and is never recorded as one.
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING: frozenset({S.ON_HOLD, S.BACKORDERED, S.PARTIALLY_ALLOCATED, S.ALLOCATED, S.CANCELLED}),
    S.ON_HOLD: frozenset({S.PENDING, S.CANCELLED}),
    S.BACKORDERED: frozenset({S.ON_HOLD, S.PARTIALLY_ALLOCATED, S.ALLOCATED, S.CANCELLED}),
    S.PARTIALLY_ALLOCATED: frozenset({S.ON_HOLD, S.BACKORDERED, S.ALLOCATED, S.CANCELLED}),
    # allocated -> partially_allocated/backordered: a reservation withdrawn before release (reroute)
    S.ALLOCATED: frozenset({S.ON_HOLD, S.RELEASED, S.PARTIALLY_ALLOCATED, S.BACKORDERED, S.CANCELLED}),
    # released -> allocated: every shipment withdrawn before pickup; -> shipped: the unshipped rest cancelled;
    # -> partially_allocated/backordered: a node short-picked and no other shipment is left
    S.RELEASED: frozenset(
        {S.PARTIALLY_SHIPPED, S.SHIPPED, S.ALLOCATED, S.PARTIALLY_ALLOCATED, S.BACKORDERED, S.CANCELLED}
    ),
    # partially_shipped -> delivered: the shipped part already delivered, the unshipped rest cancelled
    S.PARTIALLY_SHIPPED: frozenset({S.SHIPPED, S.DELIVERED}),
    S.SHIPPED: frozenset({S.DELIVERED, S.COMPLETED}),
    S.DELIVERED: frozenset({S.COMPLETED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
}

TERMINAL = frozenset(s for s, targets in TRANSITIONS.items() if not targets)

# Statuses in which the allocator still has work to do for the order.
AWAITING_STOCK = frozenset({S.PENDING, S.BACKORDERED, S.PARTIALLY_ALLOCATED})
# Statuses of orders already at their nodes that can still take units from elsewhere (after a short
# pick): what the allocator reserves for them is released to the node at once, as a new shipment.
IN_FULFILMENT = frozenset({S.RELEASED, S.PARTIALLY_SHIPPED})

# Statuses in which units may still be cancelled (nothing of the cancelled units has left a node).
CANCELLABLE = frozenset(
    {S.PENDING, S.ON_HOLD, S.BACKORDERED, S.PARTIALLY_ALLOCATED, S.ALLOCATED, S.RELEASED, S.PARTIALLY_SHIPPED}
)


def is_allowed(current: OrderStatus, target: OrderStatus) -> bool:
    return target in TRANSITIONS[current]


def ensure_transition(current: OrderStatus, target: OrderStatus, *, order_id: int | None = None) -> None:
    """Raise IllegalTransition unless ``current -> target`` is an allowed transition."""
    if not is_allowed(current, target):
        raise IllegalTransition(current.value, target.value, subject="order", subject_id=order_id)


def status_after_allocation(ordered: int, reserved_or_beyond: int) -> OrderStatus:
    """Status of an order whose open units number ``ordered`` and of which ``reserved_or_beyond`` are
    reserved (or further along). Used after every allocation attempt and every partial cancellation."""
    if ordered <= 0:
        return S.CANCELLED
    if reserved_or_beyond >= ordered:
        return S.ALLOCATED
    if reserved_or_beyond > 0:
        return S.PARTIALLY_ALLOCATED
    return S.BACKORDERED


class ShipmentStatus(StrEnum):
    PENDING = "pending"  # released to the node, not yet picked
    PICKED = "picked"  # units picked from the shelf
    PACKED = "packed"  # packed, waiting for the carrier
    SHIPPED = "shipped"  # handed over to the carrier; stock has left the building
    DELIVERED = "delivered"  # the carrier reports delivery
    CANCELLED = "cancelled"  # withdrawn before hand-over (terminal)


SH = ShipmentStatus

SHIPMENT_TRANSITIONS: dict[ShipmentStatus, frozenset[ShipmentStatus]] = {
    SH.PENDING: frozenset({SH.PICKED, SH.PACKED, SH.SHIPPED, SH.CANCELLED}),
    SH.PICKED: frozenset({SH.PACKED, SH.SHIPPED, SH.CANCELLED}),
    SH.PACKED: frozenset({SH.SHIPPED, SH.CANCELLED}),
    SH.SHIPPED: frozenset({SH.DELIVERED}),
    SH.DELIVERED: frozenset(),
    SH.CANCELLED: frozenset(),
}

SHIPMENT_NOT_YET_SHIPPED = frozenset({SH.PENDING, SH.PICKED, SH.PACKED})


def ensure_shipment_transition(
    current: ShipmentStatus, target: ShipmentStatus, *, shipment_id: int | None = None
) -> None:
    if target not in SHIPMENT_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value, subject="shipment", subject_id=shipment_id)


def derive_status(
    current: OrderStatus,
    *,
    open_units: int,
    reserved_units: int,
    shipped_units: int,
    released: bool,
    all_delivered: bool,
) -> OrderStatus:
    """The status an order's numbers call for, after any change to them.

    ``open_units``: ordered minus cancelled; ``reserved_units``: promised at a location, not yet shipped;
    ``shipped_units``: handed to a carrier; ``released``: a live (not cancelled) shipment exists;
    ``all_delivered``: every live shipment is delivered. The caller still checks that moving from
    ``current`` to the result is an allowed transition.
    """
    if current in TERMINAL:
        return current
    if open_units <= 0:
        return S.CANCELLED
    if shipped_units >= open_units:
        if current is S.DELIVERED or all_delivered:
            return S.DELIVERED
        return S.SHIPPED
    if shipped_units > 0:
        return S.PARTIALLY_SHIPPED
    if released:
        return S.RELEASED
    if current in (S.PENDING, S.ON_HOLD):
        return current
    return status_after_allocation(open_units, reserved_units)
