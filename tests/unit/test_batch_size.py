"""The allocator's batch size follows the backlog: doubling while batches come back full."""

from __future__ import annotations

from ordermesh.workers.runner import next_batch_size


def test_a_full_batch_doubles_the_next_up_to_the_largest() -> None:
    sizes = [500]
    for _ in range(4):
        sizes.append(next_batch_size(sizes[-1], sizes[-1], base=500, largest=2000))
    assert sizes == [500, 1000, 2000, 2000, 2000]


def test_a_batch_that_was_not_full_goes_back_to_the_base() -> None:
    assert next_batch_size(2000, 1999, base=500, largest=2000) == 500
    assert next_batch_size(500, 0, base=500, largest=2000) == 500


def test_a_largest_below_the_base_never_shrinks_the_base() -> None:
    assert next_batch_size(500, 500, base=500, largest=100) == 500
