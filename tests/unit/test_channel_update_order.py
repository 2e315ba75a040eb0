"""Which of two updates of a marketplace order wins (services/channel_orders.supersedes): time first;
within the platforms' one-second resolution, only forward progress, never back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordermesh.adapters.channels.base import ChannelStatus as S
from ordermesh.services.channel_orders import supersedes

T = datetime(2026, 11, 11, 0, 0, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("new", "old", "wins"),
    [
        (S.CANCELLED, S.READY_TO_FULFILL, True),  # the platform cancelled in the same second
        (S.CANCEL_REQUESTED, S.READY_TO_FULFILL, True),  # a buyer asked right after paying
        (S.CANCEL_REQUESTED, S.FULFILLING, True),
        (S.FULFILLING, S.READY_TO_FULFILL, True),  # packed in the same second
        (S.READY_TO_FULFILL, S.FULFILLING, False),  # a stale copy never moves it back
        (S.READY_TO_FULFILL, S.CANCEL_REQUESTED, False),  # the answer comes with a later time
        (S.READY_TO_FULFILL, S.CANCELLED, False),
        (S.CANCEL_REQUESTED, S.CANCELLED, False),
        (S.SHIPPED, S.SHIPPED, False),  # a duplicate
    ],
)
def test_within_one_second_only_progress_wins(new: S, old: S, wins: bool) -> None:
    assert supersedes(T, new, T, old.value) is wins


def test_time_decides_first() -> None:
    later, earlier = T + timedelta(seconds=1), T - timedelta(seconds=1)
    assert supersedes(later, S.READY_TO_FULFILL, T, S.CANCELLED.value)  # the platform says so, later
    assert not supersedes(earlier, S.CANCELLED, T, S.READY_TO_FULFILL.value)


@given(st.sampled_from(list(S)), st.sampled_from(list(S)))
def test_of_two_updates_in_one_second_at_most_one_supersedes_the_other(a: S, b: S) -> None:
    assert not (supersedes(T, a, T, b.value) and supersedes(T, b, T, a.value))
