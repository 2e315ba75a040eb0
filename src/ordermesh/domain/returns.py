"""Returns (RMA) and refunds: the return's lifecycle, what happens to each unit that comes back,
and how much money goes back to the buyer.

Refunds are computed cumulatively: ``refund_due`` gives the total an order owes back once some of
its units are cancelled and some returned; each refund is that total minus what was already paid
back. The total of a fully cancelled order is exactly what was paid, it never decreases as more
units go back, and amounts are rounded down to the currency's minor unit, so the sum of all refunds
of an order can never exceed what the buyer paid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum

from ordermesh.domain.errors import IllegalTransition


class ReturnStatus(StrEnum):
    REQUESTED = "requested"  # asked for (buyer, channel or operator); nothing decided yet
    APPROVED = "approved"  # accepted: the goods may come back
    REJECTED = "rejected"  # refused (terminal)
    IN_TRANSIT = "in_transit"  # on its way back (a carrier returning it, or a label issued)
    RECEIVED = "received"  # some units arrived at a location; more are still expected
    INSPECTED = "inspected"  # every unit arrived and has a disposition
    REFUNDED = "refunded"  # the refund for the received units is recorded
    CLOSED = "closed"  # nothing more will happen (terminal)


R = ReturnStatus

RETURN_TRANSITIONS: dict[ReturnStatus, frozenset[ReturnStatus]] = {
    R.REQUESTED: frozenset({R.APPROVED, R.REJECTED}),
    R.APPROVED: frozenset({R.IN_TRANSIT, R.RECEIVED, R.INSPECTED, R.REJECTED, R.CLOSED}),
    R.IN_TRANSIT: frozenset({R.RECEIVED, R.INSPECTED, R.CLOSED}),
    # received -> refunded: refund what arrived and stop waiting for the rest
    R.RECEIVED: frozenset({R.RECEIVED, R.INSPECTED, R.REFUNDED}),
    R.INSPECTED: frozenset({R.REFUNDED, R.CLOSED}),
    R.REFUNDED: frozenset({R.CLOSED}),
    R.REJECTED: frozenset(),
    R.CLOSED: frozenset(),
}

# Returns that still hold units of an order's lines (a rejected one gave them back).
LIVE_RETURN = frozenset(s for s in ReturnStatus if s is not R.REJECTED)
CAN_RECEIVE = frozenset({R.APPROVED, R.IN_TRANSIT, R.RECEIVED})


def ensure_return_transition(current: ReturnStatus, target: ReturnStatus, *, return_id: int | None = None) -> None:
    if target not in RETURN_TRANSITIONS[current]:
        raise IllegalTransition(current.value, target.value, subject="return", subject_id=return_id)


class Disposition(StrEnum):
    RESTOCK = "restock"  # sellable: back on the shelf, on-hand rises through the ledger
    QUARANTINE = "quarantine"  # kept aside for inspection or repair; not sellable
    DISPOSE = "dispose"  # written off (destroyed, recycled, given away)


class ReturnOrigin(StrEnum):
    OPERATOR = "operator"  # an operator opened it (POST /v1/orders/{id}/returns)
    CHANNEL = "channel"  # the marketplace sent a return request
    CARRIER = "carrier"  # delivery failed and the carrier sends the parcel back


# Currencies without minor units (ISO 4217 exponent 0) among those ordermesh's markets use.
ZERO_DECIMAL_CURRENCIES = frozenset({"VND", "JPY", "KRW", "CLP", "ISK", "PYG", "UGX", "XAF", "XOF"})


def minor_unit(currency: str) -> Decimal:
    return Decimal(1) if currency.upper() in ZERO_DECIMAL_CURRENCIES else Decimal("0.01")


@dataclass(frozen=True, slots=True)
class PricedLine:
    line_number: int
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class Payment:
    """What the buyer paid for an order: its lines, less an order discount, plus shipping."""

    currency: str
    lines: Sequence[PricedLine]
    discount: Decimal = Decimal(0)
    shipping_fee: Decimal = Decimal(0)

    @property
    def gross(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal(0))

    @property
    def paid(self) -> Decimal:
        return self.gross - self.discount + self.shipping_fee

    def merchandise(self, units: Mapping[int, int]) -> Decimal:
        """Net value (after the discount, shared by value) of ``units`` per line number."""
        gross = self.gross
        by_number = {line.line_number: line for line in self.lines}
        if gross == 0:
            return Decimal(0)
        value = sum((by_number[n].unit_price * q for n, q in units.items() if q), Decimal(0))
        return value * (gross - self.discount) / gross

    def shipping_share(self, units: Mapping[int, int]) -> Decimal:
        """The part of the shipping fee that ``units`` carry: by value, or by count when all is free."""
        by_number = {line.line_number: line for line in self.lines}
        gross = self.gross
        if gross > 0:
            weight = sum((by_number[n].unit_price * q for n, q in units.items() if q), Decimal(0)) / gross
        else:
            total = sum(line.quantity for line in self.lines)
            weight = Decimal(sum(units.values())) / total if total else Decimal(0)
        return self.shipping_fee * weight

    def round(self, amount: Decimal) -> Decimal:
        return amount.quantize(minor_unit(self.currency), rounding=ROUND_DOWN)


def refund_due(payment: Payment, *, cancelled: Mapping[int, int], returned: Mapping[int, int]) -> Decimal:
    """Everything the order owes back once ``cancelled`` units (never shipped: their shipping share
    goes back too) and ``returned`` units (shipped and refunded: the shipping was used) are known,
    each per line number. A whole order cancelled gives back exactly what was paid (rounded down to
    the minor unit)."""
    both = {n: cancelled.get(n, 0) + returned.get(n, 0) for n in set(cancelled) | set(returned)}
    return payment.round(payment.merchandise(both) + payment.shipping_share(cancelled))


def line_refunds(payment: Payment, units: Mapping[int, int], *, with_shipping: bool) -> dict[int, Decimal]:
    """Each line's part of a refund for ``units``: its net value (and its shipping share for a
    cancellation), rounded down. Informative; the refund itself is ``refund_due``'s difference."""
    return {
        n: payment.round(
            payment.merchandise({n: q}) + (payment.shipping_share({n: q}) if with_shipping else Decimal(0))
        )
        for n, q in sorted(units.items())
        if q
    }
