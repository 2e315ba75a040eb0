"""The order and shipment state machines: which transitions exist, and the status an order's numbers
call for. The allowed pairs are written out here again, on purpose: a test that read them from
``TRANSITIONS`` could not notice a transition added or dropped by mistake."""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from itertools import product

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.domain.errors import Conflict, IllegalTransition, OrdermeshError
from ordermesh.domain.lifecycle import (
    AWAITING_STOCK,
    CANCELLABLE,
    SHIPMENT_NOT_YET_SHIPPED,
    SHIPMENT_TRANSITIONS,
    TERMINAL,
    TRANSITIONS,
    OrderStatus,
    ShipmentStatus,
    derive_status,
    ensure_shipment_transition,
    ensure_transition,
    is_allowed,
    status_after_allocation,
)
from tests.strategies import order_statuses

S = OrderStatus
SH = ShipmentStatus

ALLOWED_ORDER_TRANSITIONS: set[tuple[StrEnum, StrEnum]] = {
    (S.PENDING, S.ON_HOLD),
    (S.PENDING, S.BACKORDERED),
    (S.PENDING, S.PARTIALLY_ALLOCATED),
    (S.PENDING, S.ALLOCATED),
    (S.PENDING, S.CANCELLED),
    (S.ON_HOLD, S.PENDING),
    (S.ON_HOLD, S.CANCELLED),
    (S.BACKORDERED, S.ON_HOLD),
    (S.BACKORDERED, S.PARTIALLY_ALLOCATED),
    (S.BACKORDERED, S.ALLOCATED),
    (S.BACKORDERED, S.CANCELLED),
    (S.PARTIALLY_ALLOCATED, S.ON_HOLD),
    (S.PARTIALLY_ALLOCATED, S.BACKORDERED),
    (S.PARTIALLY_ALLOCATED, S.ALLOCATED),
    (S.PARTIALLY_ALLOCATED, S.CANCELLED),
    (S.ALLOCATED, S.ON_HOLD),
    (S.ALLOCATED, S.RELEASED),
    (S.ALLOCATED, S.PARTIALLY_ALLOCATED),
    (S.ALLOCATED, S.BACKORDERED),
    (S.ALLOCATED, S.CANCELLED),
    (S.RELEASED, S.PARTIALLY_SHIPPED),
    (S.RELEASED, S.SHIPPED),
    (S.RELEASED, S.ALLOCATED),
    (S.RELEASED, S.PARTIALLY_ALLOCATED),  # a short pick emptied every shipment
    (S.RELEASED, S.BACKORDERED),
    (S.RELEASED, S.CANCELLED),
    (S.PARTIALLY_SHIPPED, S.SHIPPED),
    (S.PARTIALLY_SHIPPED, S.DELIVERED),  # the shipped part delivered, the rest cancelled
    (S.SHIPPED, S.DELIVERED),
    (S.SHIPPED, S.COMPLETED),
    (S.DELIVERED, S.COMPLETED),
}

ALLOWED_SHIPMENT_TRANSITIONS: set[tuple[StrEnum, StrEnum]] = {
    (SH.PENDING, SH.PICKED),
    (SH.PENDING, SH.PACKED),
    (SH.PENDING, SH.SHIPPED),
    (SH.PENDING, SH.CANCELLED),
    (SH.PICKED, SH.PACKED),
    (SH.PICKED, SH.SHIPPED),
    (SH.PICKED, SH.CANCELLED),
    (SH.PACKED, SH.SHIPPED),
    (SH.PACKED, SH.CANCELLED),
    (SH.SHIPPED, SH.DELIVERED),
}

ORDER_PAIRS: list[tuple[StrEnum, StrEnum]] = list(product(OrderStatus, OrderStatus))
SHIPMENT_PAIRS: list[tuple[StrEnum, StrEnum]] = list(product(ShipmentStatus, ShipmentStatus))


def _pairs(pairs: list[tuple[StrEnum, StrEnum]], *, allowed: set[tuple[StrEnum, StrEnum]], keep: bool) -> list[object]:
    """The pairs that are (``keep=True``) or are not allowed, each named ``current->target``."""
    return [pytest.param(a, b, id=f"{a.value}->{b.value}") for a, b in pairs if ((a, b) in allowed) is keep]


# --- order transitions -----------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), _pairs(ORDER_PAIRS, allowed=ALLOWED_ORDER_TRANSITIONS, keep=True))
def test_allowed_order_transition_is_accepted(current: OrderStatus, target: OrderStatus) -> None:
    assert is_allowed(current, target) is True
    ensure_transition(current, target, order_id=7)  # does not raise


@pytest.mark.parametrize(("current", "target"), _pairs(ORDER_PAIRS, allowed=ALLOWED_ORDER_TRANSITIONS, keep=False))
def test_every_other_order_transition_is_refused(current: OrderStatus, target: OrderStatus) -> None:
    assert is_allowed(current, target) is False
    with pytest.raises(IllegalTransition) as caught:
        ensure_transition(current, target, order_id=7)
    error = caught.value
    assert error.code == "illegal_transition"
    assert error.details == {"current": current.value, "target": target.value, "subject": "order", "id": 7}
    assert error.detail == f"order cannot move from {current.value} to {target.value}"


def test_transition_table_lists_every_status_exactly_once() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert set(SHIPMENT_TRANSITIONS) == set(ShipmentStatus)


def test_no_status_transitions_to_itself() -> None:
    assert [s for s in OrderStatus if is_allowed(s, s)] == []
    assert [s for s in ShipmentStatus if s in SHIPMENT_TRANSITIONS[s]] == []


def test_illegal_transition_is_a_conflict() -> None:
    assert issubclass(IllegalTransition, Conflict)
    assert issubclass(IllegalTransition, OrdermeshError)


def test_terminal_states_are_completed_and_cancelled() -> None:
    assert frozenset({S.COMPLETED, S.CANCELLED}) == TERMINAL


@pytest.mark.parametrize("terminal", [S.COMPLETED, S.CANCELLED])
def test_terminal_state_has_no_way_out(terminal: OrderStatus) -> None:
    for target in OrderStatus:
        with pytest.raises(IllegalTransition):
            ensure_transition(terminal, target)


def _reachable(start: OrderStatus) -> set[OrderStatus]:
    seen, queue = {start}, deque([start])
    while queue:
        for target in TRANSITIONS[queue.popleft()]:
            if target not in seen:
                seen.add(target)
                queue.append(target)
    return seen


def test_every_status_is_reachable_from_pending() -> None:
    assert _reachable(S.PENDING) == set(OrderStatus)


@pytest.mark.parametrize("status", [s for s in OrderStatus if s not in {S.COMPLETED, S.CANCELLED}])
def test_every_open_status_can_still_reach_a_terminal_state(status: OrderStatus) -> None:
    assert _reachable(status) & TERMINAL != set()


def test_awaiting_stock_statuses_are_pending_backordered_and_partially_allocated() -> None:
    assert frozenset({S.PENDING, S.BACKORDERED, S.PARTIALLY_ALLOCATED}) == AWAITING_STOCK


def test_units_are_cancellable_only_before_everything_has_shipped() -> None:
    assert (
        frozenset(
            {S.PENDING, S.ON_HOLD, S.BACKORDERED, S.PARTIALLY_ALLOCATED, S.ALLOCATED, S.RELEASED, S.PARTIALLY_SHIPPED}
        )
        == CANCELLABLE
    )


def test_every_cancellable_status_except_partially_shipped_may_move_to_cancelled() -> None:
    # partially_shipped keeps the shipped units: cancelling the rest ends in shipped or delivered
    assert {s for s in CANCELLABLE if is_allowed(s, S.CANCELLED)} == CANCELLABLE - {S.PARTIALLY_SHIPPED}


# --- shipment transitions --------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "target"), _pairs(SHIPMENT_PAIRS, allowed=ALLOWED_SHIPMENT_TRANSITIONS, keep=True))
def test_allowed_shipment_transition_is_accepted(current: ShipmentStatus, target: ShipmentStatus) -> None:
    ensure_shipment_transition(current, target, shipment_id=3)  # does not raise


@pytest.mark.parametrize(
    ("current", "target"), _pairs(SHIPMENT_PAIRS, allowed=ALLOWED_SHIPMENT_TRANSITIONS, keep=False)
)
def test_every_other_shipment_transition_is_refused(current: ShipmentStatus, target: ShipmentStatus) -> None:
    with pytest.raises(IllegalTransition) as caught:
        ensure_shipment_transition(current, target, shipment_id=3)
    assert caught.value.details == {"current": current.value, "target": target.value, "subject": "shipment", "id": 3}


def test_shipment_terminal_states_are_delivered_and_cancelled() -> None:
    assert {s for s, targets in SHIPMENT_TRANSITIONS.items() if not targets} == {SH.DELIVERED, SH.CANCELLED}


def test_not_yet_shipped_means_pending_picked_or_packed() -> None:
    assert frozenset({SH.PENDING, SH.PICKED, SH.PACKED}) == SHIPMENT_NOT_YET_SHIPPED


def test_a_shipment_can_be_cancelled_exactly_while_not_yet_shipped() -> None:
    assert {s for s in ShipmentStatus if SH.CANCELLED in SHIPMENT_TRANSITIONS[s]} == SHIPMENT_NOT_YET_SHIPPED


# --- status_after_allocation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ordered", "reserved", "expected"),
    [
        (3, 3, S.ALLOCATED),
        (3, 4, S.ALLOCATED),
        (3, 2, S.PARTIALLY_ALLOCATED),
        (3, 1, S.PARTIALLY_ALLOCATED),
        (3, 0, S.BACKORDERED),
        (1, 0, S.BACKORDERED),
        (0, 0, S.CANCELLED),
        (0, 2, S.CANCELLED),
        (-1, 0, S.CANCELLED),
    ],
)
def test_status_after_allocation_follows_the_reserved_share(ordered: int, reserved: int, expected: OrderStatus) -> None:
    assert status_after_allocation(ordered, reserved) is expected


@given(ordered=st.integers(min_value=1, max_value=1000), data=st.data())
def test_status_after_allocation_is_allocated_exactly_when_every_unit_is_reserved(
    ordered: int, data: st.DataObject
) -> None:
    reserved = data.draw(st.integers(min_value=0, max_value=ordered))
    status = status_after_allocation(ordered, reserved)
    assert (status is S.ALLOCATED) == (reserved == ordered)
    assert (status is S.BACKORDERED) == (reserved == 0)


# --- derive_status ---------------------------------------------------------------------------------


def _derive(
    current: OrderStatus,
    *,
    open_units: int = 4,
    reserved: int = 0,
    shipped: int = 0,
    released: bool = False,
    all_delivered: bool = False,
) -> OrderStatus:
    return derive_status(
        current,
        open_units=open_units,
        reserved_units=reserved,
        shipped_units=shipped,
        released=released,
        all_delivered=all_delivered,
    )


@pytest.mark.parametrize("terminal", [S.COMPLETED, S.CANCELLED])
def test_derive_status_never_leaves_a_terminal_state(terminal: OrderStatus) -> None:
    assert _derive(terminal, open_units=0) is terminal
    assert _derive(terminal, shipped=4, released=True, all_delivered=True) is terminal
    assert _derive(terminal, reserved=4) is terminal


@pytest.mark.parametrize("current", [S.PENDING, S.ON_HOLD, S.BACKORDERED, S.ALLOCATED, S.RELEASED])
def test_everything_cancelled_derives_cancelled(current: OrderStatus) -> None:
    assert _derive(current, open_units=0) is S.CANCELLED


def test_partial_ship_derives_partially_shipped() -> None:
    assert _derive(S.RELEASED, shipped=1, reserved=3, released=True) is S.PARTIALLY_SHIPPED
    assert _derive(S.PARTIALLY_SHIPPED, shipped=3, reserved=1, released=True) is S.PARTIALLY_SHIPPED


def test_everything_shipped_derives_shipped() -> None:
    assert _derive(S.RELEASED, shipped=4, released=True) is S.SHIPPED
    assert _derive(S.PARTIALLY_SHIPPED, shipped=4, released=True) is S.SHIPPED


def test_everything_shipped_and_every_shipment_delivered_derives_delivered() -> None:
    assert _derive(S.SHIPPED, shipped=4, released=True, all_delivered=True) is S.DELIVERED


def test_delivered_stays_delivered_once_every_unit_has_shipped() -> None:
    assert _derive(S.DELIVERED, shipped=4, released=True, all_delivered=False) is S.DELIVERED


def test_delivered_shipments_with_units_still_unshipped_derive_partially_shipped() -> None:
    assert _derive(S.PARTIALLY_SHIPPED, shipped=2, reserved=2, released=True, all_delivered=True) is (
        S.PARTIALLY_SHIPPED
    )


def test_the_rest_cancelled_after_the_shipped_part_was_delivered_derives_delivered() -> None:
    # 4 ordered, 2 shipped and delivered, the other 2 cancelled: open_units is 2 and all are shipped
    status = _derive(S.PARTIALLY_SHIPPED, open_units=2, shipped=2, released=True, all_delivered=True)
    assert status is S.DELIVERED
    assert is_allowed(S.PARTIALLY_SHIPPED, status)


def test_a_live_shipment_derives_released() -> None:
    assert _derive(S.ALLOCATED, reserved=4, released=True) is S.RELEASED
    assert _derive(S.RELEASED, reserved=2, open_units=2, released=True) is S.RELEASED


@pytest.mark.parametrize("current", [S.PENDING, S.ON_HOLD])
def test_pending_and_on_hold_are_kept_until_something_ships_or_is_released(current: OrderStatus) -> None:
    assert _derive(current, reserved=0) is current
    assert _derive(current, reserved=4) is current
    assert _derive(current, reserved=2, open_units=3) is current


@pytest.mark.parametrize(("reserved", "expected"), [(4, S.ALLOCATED), (1, S.PARTIALLY_ALLOCATED), (0, S.BACKORDERED)])
@pytest.mark.parametrize("current", [S.BACKORDERED, S.PARTIALLY_ALLOCATED, S.ALLOCATED])
def test_unreleased_allocation_statuses_follow_the_reserved_units(
    current: OrderStatus, reserved: int, expected: OrderStatus
) -> None:
    assert _derive(current, reserved=reserved) is expected


def test_released_order_whose_shipments_were_all_withdrawn_derives_allocated() -> None:
    status = _derive(S.RELEASED, reserved=4, released=False)
    assert status is S.ALLOCATED
    assert is_allowed(S.RELEASED, status)


@given(
    current=order_statuses,
    open_units=st.integers(min_value=0, max_value=6),
    reserved=st.integers(min_value=0, max_value=6),
    shipped=st.integers(min_value=0, max_value=6),
    released=st.booleans(),
    all_delivered=st.booleans(),
)
def test_derive_status_is_idempotent(
    current: OrderStatus, open_units: int, reserved: int, shipped: int, released: bool, all_delivered: bool
) -> None:
    numbers = {
        "open_units": open_units,
        "reserved_units": reserved,
        "shipped_units": shipped,
        "released": released,
        "all_delivered": all_delivered,
    }
    once = derive_status(current, **numbers)  # type: ignore[arg-type]
    assert derive_status(once, **numbers) is once  # type: ignore[arg-type]
