"""Refund arithmetic: cumulative, never more than paid, exact for a whole order cancelled."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.domain.errors import IllegalTransition
from ordermesh.domain.returns import (
    RETURN_TRANSITIONS,
    Payment,
    PricedLine,
    ReturnStatus,
    ensure_return_transition,
    line_refunds,
    refund_due,
)

SHOP = Payment(
    "VND",
    [PricedLine(1, 3, Decimal(100_000)), PricedLine(2, 1, Decimal(200_000))],
    discount=Decimal(50_000),
    shipping_fee=Decimal(30_000),
)  # gross 500,000; paid 480,000


@pytest.mark.parametrize(
    ("cancelled", "returned", "expected"),
    [
        ({}, {}, Decimal(0)),
        ({1: 3, 2: 1}, {}, Decimal(480_000)),  # everything cancelled: exactly what was paid
        ({1: 1}, {}, Decimal(96_000)),  # 100,000 less 10% discount, plus 1/5 of shipping
        ({}, {1: 1}, Decimal(90_000)),  # a return keeps the shipping
        ({}, {1: 3, 2: 1}, Decimal(450_000)),  # everything returned: all but the shipping
        ({2: 1}, {1: 1}, Decimal(180_000 + 12_000 + 90_000)),
    ],
)
def test_refund_due(cancelled: dict[int, int], returned: dict[int, int], expected: Decimal) -> None:
    assert refund_due(SHOP, cancelled=cancelled, returned=returned) == expected


def test_two_decimal_currencies_round_down_to_the_cent() -> None:
    payment = Payment("USD", [PricedLine(1, 3, Decimal("10.00"))], discount=Decimal("1.00"))

    assert refund_due(payment, cancelled={1: 1}, returned={}) == Decimal("9.66")  # 9.666... rounded down
    assert refund_due(payment, cancelled={1: 3}, returned={}) == Decimal("29.00")


def test_line_refunds_share_the_discount_by_value() -> None:
    assert line_refunds(SHOP, {1: 2, 2: 1}, with_shipping=False) == {1: Decimal(180_000), 2: Decimal(180_000)}
    assert line_refunds(SHOP, {1: 1}, with_shipping=True) == {1: Decimal(96_000)}


@st.composite
def payments_and_steps(draw: st.DrawFn) -> tuple[Payment, list[tuple[str, int, int]]]:
    count = draw(st.integers(1, 4))
    lines = [
        PricedLine(n, draw(st.integers(1, 5)), Decimal(draw(st.integers(0, 10_000_00))) / 100)
        for n in range(1, count + 1)
    ]
    gross = sum((line.unit_price * line.quantity for line in lines), Decimal(0))
    discount = (gross * Decimal(draw(st.integers(0, 100))) / 100).quantize(Decimal("0.01"))
    shipping = Decimal(draw(st.integers(0, 5_000_00))) / 100
    payment = Payment(draw(st.sampled_from(["VND", "USD"])), lines, discount, shipping)
    steps = draw(
        st.lists(
            st.tuples(st.sampled_from(["cancel", "return"]), st.integers(1, count), st.integers(1, 5)), max_size=12
        )
    )
    return payment, steps


@given(payments_and_steps())
def test_refunds_never_exceed_what_was_paid_and_never_go_negative(
    case: tuple[Payment, list[tuple[str, int, int]]],
) -> None:
    payment, steps = case
    quantities = {line.line_number: line.quantity for line in payment.lines}
    cancelled: dict[int, int] = {}
    returned: dict[int, int] = {}
    refunded = Decimal(0)
    for kind, number, units in steps:
        left = quantities[number] - cancelled.get(number, 0) - returned.get(number, 0)
        take = min(units, left)
        if take == 0:
            continue
        target = cancelled if kind == "cancel" else returned
        target[number] = target.get(number, 0) + take
        due = refund_due(payment, cancelled=cancelled, returned=returned)
        assert due >= refunded  # cumulative: more units back never means less money back
        refunded = due
        assert refunded <= payment.paid
    if cancelled == quantities:
        assert refunded == payment.round(payment.paid)


def test_return_transitions_only_move_along_the_lifecycle() -> None:
    ensure_return_transition(ReturnStatus.REQUESTED, ReturnStatus.APPROVED)
    with pytest.raises(IllegalTransition):
        ensure_return_transition(ReturnStatus.REQUESTED, ReturnStatus.REFUNDED)
    assert RETURN_TRANSITIONS[ReturnStatus.CLOSED] == frozenset()
    assert RETURN_TRANSITIONS[ReturnStatus.REJECTED] == frozenset()
