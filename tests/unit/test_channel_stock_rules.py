"""A channel's sellable quantity from available stock and the connection's stock rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.domain.channel_stock import StockRules, sellable_quantity


def test_buffer_then_share_then_cap() -> None:
    rules = StockRules(buffer=2, share_percent=60, max_exposed=5)
    assert sellable_quantity({1: 12}, {1: 1}, rules) == 5  # (12 - 2) * 60% = 6, capped at 5
    assert sellable_quantity({1: 7}, {1: 1}, StockRules(buffer=2, share_percent=60)) == 3  # 5 * 0.6 = 3


def test_bundle_is_the_minimum_over_components() -> None:
    assert sellable_quantity({1: 10, 2: 3}, {1: 2, 2: 1}, StockRules()) == 3
    assert sellable_quantity({1: 10}, {1: 2, 2: 1}, StockRules()) == 0  # a component with no stock at all


def test_negative_availability_counts_as_none() -> None:
    assert sellable_quantity({1: -4}, {1: 1}, StockRules()) == 0


@pytest.mark.parametrize("rules", [{"buffer": -1}, {"share_percent": 101}, {"max_exposed": -1}])
def test_rules_refuse_impossible_values(rules: dict) -> None:
    with pytest.raises(ValueError, match=r"negative|percent"):
        StockRules(**rules)


@given(
    available=st.integers(-5, 10_000),
    buffer=st.integers(0, 100),
    share=st.integers(0, 100),
    cap=st.none() | st.integers(0, 1000),
)
def test_never_negative_never_above_cap_or_stock(available: int, buffer: int, share: int, cap: int | None) -> None:
    value = sellable_quantity({7: available}, {7: 1}, StockRules(buffer, share, cap))
    assert 0 <= value <= max(available, 0)
    if cap is not None:
        assert value <= cap
