"""Reservation arithmetic on one inventory level (invariants 1 and 2, without a database).

``StockLevel`` is frozen: a refused change raises before any movement exists, and the level a
caller holds cannot have moved. The tests still compare it to its value before the call, so a
future mutable level would be held to the same rule."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.domain.errors import InsufficientStock, InvalidInput, OrdermeshError
from ordermesh.domain.inventory import Movement, MovementReason, StockLevel
from tests.strategies import StockOperation, stock_operations

R = MovementReason


# --- available -------------------------------------------------------------------------------------


def test_available_is_on_hand_minus_reserved_minus_safety_stock() -> None:
    assert StockLevel(on_hand=10, reserved=3, safety_stock=2).available == 5


def test_a_movement_adds_its_deltas_to_the_level() -> None:
    level = StockLevel(on_hand=10, reserved=3, safety_stock=2)
    after = level.apply(Movement(R.SHIP, on_hand_delta=-2, reserved_delta=-2, safety_stock_delta=1))
    assert after == StockLevel(on_hand=8, reserved=1, safety_stock=3)
    assert level == StockLevel(on_hand=10, reserved=3, safety_stock=2)


# --- reserve ---------------------------------------------------------------------------------------


def test_reserve_moves_units_into_reserved_only() -> None:
    level = StockLevel(on_hand=10, reserved=3)
    movement = level.reserve(4)
    assert movement == Movement(R.RESERVE, reserved_delta=4)
    assert level.apply(movement) == StockLevel(on_hand=10, reserved=7)


def test_reserve_may_take_every_available_unit() -> None:
    level = StockLevel(on_hand=10, reserved=3, safety_stock=2)
    after = level.apply(level.reserve(5))
    assert after.available == 0
    assert after == StockLevel(on_hand=10, reserved=8, safety_stock=2)


def test_reserve_never_makes_available_negative() -> None:
    level = StockLevel(on_hand=10, reserved=3, safety_stock=2)
    with pytest.raises(InsufficientStock) as caught:
        level.reserve(6)
    assert caught.value.details == {"requested": 6, "available": 5}
    assert caught.value.detail == "cannot reserve 6: only 5 available"
    assert level == StockLevel(on_hand=10, reserved=3, safety_stock=2)


def test_reserve_respects_safety_stock() -> None:
    level = StockLevel(on_hand=10, safety_stock=4)
    assert level.reserve(6) == Movement(R.RESERVE, reserved_delta=6)
    with pytest.raises(InsufficientStock):
        level.reserve(7)
    assert level == StockLevel(on_hand=10, safety_stock=4)


def test_reserve_is_refused_while_available_is_negative() -> None:
    level = StockLevel(on_hand=2, reserved=5)
    with pytest.raises(InsufficientStock) as caught:
        level.reserve(1)
    assert caught.value.detail == "cannot reserve 1: only 0 available"
    assert caught.value.details == {"requested": 1, "available": -3}
    assert level == StockLevel(on_hand=2, reserved=5)


@pytest.mark.parametrize("quantity", [0, -1, -10])
def test_reserve_needs_a_positive_quantity(quantity: int) -> None:
    level = StockLevel(on_hand=10)
    with pytest.raises(InvalidInput) as caught:
        level.reserve(quantity)
    assert caught.value.details == {"field": "quantity", "value": quantity}
    assert level == StockLevel(on_hand=10)


# --- release and ship ------------------------------------------------------------------------------


def test_release_returns_reserved_units_to_available() -> None:
    level = StockLevel(on_hand=10, reserved=4)
    movement = level.release(4)
    assert movement == Movement(R.RELEASE, reserved_delta=-4)
    assert level.apply(movement) == StockLevel(on_hand=10, reserved=0)


def test_release_never_takes_reserved_below_zero() -> None:
    level = StockLevel(on_hand=10, reserved=4)
    with pytest.raises(InsufficientStock) as caught:
        level.release(5)
    assert caught.value.details == {"requested": 5, "reserved": 4}
    assert level == StockLevel(on_hand=10, reserved=4)


@pytest.mark.parametrize("quantity", [0, -3])
def test_release_needs_a_positive_quantity(quantity: int) -> None:
    with pytest.raises(InvalidInput):
        StockLevel(on_hand=10, reserved=4).release(quantity)


def test_ship_takes_units_out_of_on_hand_and_reserved_together() -> None:
    level = StockLevel(on_hand=10, reserved=4, safety_stock=1)
    movement = level.ship(3)
    assert movement == Movement(R.SHIP, on_hand_delta=-3, reserved_delta=-3)
    after = level.apply(movement)
    assert after == StockLevel(on_hand=7, reserved=1, safety_stock=1)
    assert after.available == level.available


def test_ship_may_take_every_reserved_unit() -> None:
    level = StockLevel(on_hand=4, reserved=4)
    assert level.apply(level.ship(4)) == StockLevel()


def test_ship_never_takes_more_than_is_reserved() -> None:
    level = StockLevel(on_hand=10, reserved=4)
    with pytest.raises(InsufficientStock) as caught:
        level.ship(5)
    assert caught.value.details == {"requested": 5, "reserved": 4, "on_hand": 10}
    assert level == StockLevel(on_hand=10, reserved=4)


def test_ship_never_takes_more_than_is_on_hand() -> None:
    level = StockLevel(on_hand=2, reserved=4)  # a count found fewer units than were promised
    with pytest.raises(InsufficientStock) as caught:
        level.ship(3)
    assert caught.value.details == {"requested": 3, "reserved": 4, "on_hand": 2}
    assert level == StockLevel(on_hand=2, reserved=4)
    assert level.ship(2) == Movement(R.SHIP, on_hand_delta=-2, reserved_delta=-2)


@pytest.mark.parametrize("quantity", [0, -2])
def test_ship_needs_a_positive_quantity(quantity: int) -> None:
    with pytest.raises(InvalidInput):
        StockLevel(on_hand=10, reserved=4).ship(quantity)


# --- count (override) ------------------------------------------------------------------------------


def test_count_overrides_on_hand_with_the_counted_value() -> None:
    level = StockLevel(on_hand=10, reserved=2, safety_stock=1)
    movement = level.count(7)
    assert movement == Movement(R.COUNT, on_hand_delta=-3)
    assert level.apply(movement) == StockLevel(on_hand=7, reserved=2, safety_stock=1)


def test_count_equal_to_on_hand_is_a_zero_movement() -> None:
    assert StockLevel(on_hand=5).count(5) == Movement(R.COUNT, on_hand_delta=0)


def test_count_below_reserved_is_allowed_and_shows_negative_available() -> None:
    level = StockLevel(on_hand=10, reserved=6, safety_stock=1)
    after = level.apply(level.count(4))
    assert after == StockLevel(on_hand=4, reserved=6, safety_stock=1)
    assert after.available == -3


def test_count_to_zero_is_allowed() -> None:
    level = StockLevel(on_hand=10, reserved=6)
    assert level.apply(level.count(0)) == StockLevel(on_hand=0, reserved=6)


def test_count_cannot_be_negative() -> None:
    level = StockLevel(on_hand=10)
    with pytest.raises(InvalidInput) as caught:
        level.count(-1)
    assert caught.value.details == {"field": "on_hand", "value": -1}
    assert level == StockLevel(on_hand=10)


# --- adjust ----------------------------------------------------------------------------------------


def test_adjust_adds_received_units() -> None:
    level = StockLevel(on_hand=3, reserved=1)
    movement = level.adjust(5)
    assert movement == Movement(R.ADJUSTMENT, on_hand_delta=5)
    assert level.apply(movement) == StockLevel(on_hand=8, reserved=1)


def test_adjust_may_remove_every_unit_on_hand() -> None:
    level = StockLevel(on_hand=3)
    assert level.apply(level.adjust(-3)) == StockLevel(on_hand=0)


def test_adjust_never_takes_on_hand_below_zero() -> None:
    level = StockLevel(on_hand=3, reserved=1)
    with pytest.raises(InsufficientStock) as caught:
        level.adjust(-4)
    assert caught.value.details == {"requested": 4, "on_hand": 3}
    assert caught.value.detail == "cannot remove 4: only 3 on hand"
    assert level == StockLevel(on_hand=3, reserved=1)


def test_adjust_needs_a_non_zero_delta() -> None:
    level = StockLevel(on_hand=3)
    with pytest.raises(InvalidInput) as caught:
        level.adjust(0)
    assert caught.value.details == {"field": "delta"}
    assert level == StockLevel(on_hand=3)


def test_adjust_records_the_reason_it_is_given() -> None:
    assert StockLevel().adjust(2, R.RESTOCK) == Movement(R.RESTOCK, on_hand_delta=2)


# --- safety stock ----------------------------------------------------------------------------------


def test_safety_stock_is_held_back_from_available() -> None:
    level = StockLevel(on_hand=10, reserved=2)
    movement = level.set_safety_stock(3)
    assert movement == Movement(R.SAFETY_STOCK, safety_stock_delta=3)
    after = level.apply(movement)
    assert after == StockLevel(on_hand=10, reserved=2, safety_stock=3)
    assert after.available == 5


def test_safety_stock_can_be_lowered_and_cleared() -> None:
    level = StockLevel(on_hand=10, safety_stock=4)
    assert level.set_safety_stock(1) == Movement(R.SAFETY_STOCK, safety_stock_delta=-3)
    assert level.apply(level.set_safety_stock(0)) == StockLevel(on_hand=10)


def test_safety_stock_cannot_be_negative() -> None:
    level = StockLevel(on_hand=10, safety_stock=4)
    with pytest.raises(InvalidInput) as caught:
        level.set_safety_stock(-1)
    assert caught.value.details == {"field": "safety_stock", "value": -1}
    assert level == StockLevel(on_hand=10, safety_stock=4)


# --- properties ------------------------------------------------------------------------------------


def _attempt(level: StockLevel, operation: StockOperation) -> Movement:
    method = getattr(level, operation.name)
    movement: Movement = method(operation.amount)
    return movement


@given(st.lists(stock_operations, max_size=60))
def test_any_sequence_of_legal_movements_keeps_the_level_sound_and_equal_to_its_ledger(
    operations: list[StockOperation],
) -> None:
    level = StockLevel()
    ledger: list[Movement] = []
    for operation in operations:
        before = level
        try:
            movement = _attempt(level, operation)
        except OrdermeshError:
            assert level == before  # a refused change changes nothing
            continue
        level = level.apply(movement)
        ledger.append(movement)
        assert level.reserved >= 0
        assert level.on_hand >= 0
        assert level.safety_stock >= 0
        if operation.name == "reserve":
            assert level.available >= 0  # invariant 1
    assert level == StockLevel(
        on_hand=sum(m.on_hand_delta for m in ledger),
        reserved=sum(m.reserved_delta for m in ledger),
        safety_stock=sum(m.safety_stock_delta for m in ledger),
    )


@given(st.lists(stock_operations, max_size=60))
def test_available_goes_negative_only_through_on_hand_or_safety_stock_changes(
    operations: list[StockOperation],
) -> None:
    level = StockLevel()
    for operation in operations:
        try:
            movement = _attempt(level, operation)
        except OrdermeshError:
            continue
        after = level.apply(movement)
        if after.available < 0 and after.available < level.available:
            # availability fell below zero: on-hand fell (count or removal) or safety stock rose
            assert movement.reason in {R.COUNT, R.ADJUSTMENT, R.SAFETY_STOCK}
            assert movement.reserved_delta == 0
        level = after


@given(
    on_hand=st.integers(min_value=0, max_value=50),
    reserved=st.integers(min_value=0, max_value=50),
    safety_stock=st.integers(min_value=0, max_value=10),
    quantity=st.integers(min_value=1, max_value=60),
)
def test_reserve_succeeds_exactly_when_enough_is_available(
    on_hand: int, reserved: int, safety_stock: int, quantity: int
) -> None:
    level = StockLevel(on_hand=on_hand, reserved=reserved, safety_stock=safety_stock)
    if quantity <= level.available:
        assert level.apply(level.reserve(quantity)).available == level.available - quantity
    else:
        with pytest.raises(InsufficientStock):
            level.reserve(quantity)
