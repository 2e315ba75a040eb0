"""A Hypothesis state machine over cancellations and returns, driving the real services against a
real database (SQLite and PostgreSQL). After every step it reads the database back and checks:

- never refund more than was paid: per order, the refunds of its cancellations and returns add up
  to at most lines - discount + shipping;
- never restock more than shipped: per line, units restocked from returns <= units shipped, and
  the units held by live returns <= units shipped;
- every unit's final place is accounted for: per line, ordered = cancelled + still to ship +
  shipped, and shipped = with the buyer + coming back + restocked + quarantined + disposed;
- every level equals the sum of its ledger movements (restocks go through the ledger);
- a refused step changes nothing, and opening a return is refused exactly when it asks for more
  units than shipped and not already held by a live return.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from ordermesh.adapters.store.tables import (
    Allocation,
    InventoryLevel,
    InventoryMovement,
    Order,
    OrderEvent,
    OrderLine,
    OutboxMessage,
)
from ordermesh.adapters.store.tables_sla_returns import Cancellation, Return, ReturnLine, ReturnReceipt
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import OrdermeshError
from ordermesh.domain.lifecycle import ShipmentStatus
from ordermesh.domain.returns import Disposition, ReturnStatus
from ordermesh.services import allocation, cancellations, catalog, fulfilment, inventory, orders, returns, tenants
from ordermesh.services.orders import CancelLine, CancelReason, CancelRequest
from ordermesh.services.returns import ReceivedItem, ReturnItem
from ordermesh.services.unit_of_work import Caller
from tests.integration.shop import HANOI

MACHINE_SETTINGS = settings(
    max_examples=5,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LOCATIONS = ("HN", "SG")


WRITTEN = (Cancellation, Return, ReturnLine, ReturnReceipt, InventoryMovement, OutboxMessage, OrderEvent)


def fingerprint(app: Application) -> tuple[Any, ...]:
    """Rows in every table a cancellation or return writes, and every line's cancelled units and
    every return line's received units, in one query: unchanged means nothing was written."""
    counts = [select(func.count()).select_from(table).scalar_subquery() for table in WRITTEN]
    cancelled = select(func.coalesce(func.sum(OrderLine.cancelled_quantity), 0)).scalar_subquery()
    received = select(func.coalesce(func.sum(ReturnLine.received_quantity), 0)).scalar_subquery()
    statuses = select(func.count()).where(Return.status == ReturnStatus.REQUESTED.value).scalar_subquery()
    with app.engine.connect() as connection:
        return tuple(connection.execute(select(*counts, cancelled, received, statuses)).one())


def aftersales_machine(app: Application) -> type[RuleBasedStateMachine]:
    class AfterSales(RuleBasedStateMachine):
        order_ids = Bundle("orders")
        return_ids = Bundle("returns")

        @initialize()
        def open_shop(self) -> None:
            tenant = tenants.create_tenant(app.uow(), f"t-{uuid.uuid4().hex[:8]}")
            self.caller = Caller(tenant.tenant_id, "admin", "machine")
            for code in LOCATIONS:
                catalog.upsert_location(app.uow(), self.caller, code, catalog.LocationInput(code))
            catalog.upsert_skus(app.uow(), self.caller, [catalog.SkuInput("A", "A"), catalog.SkuInput("B", "B")])
            for sku in ("A", "B"):
                inventory.set_on_hand(app.uow(), self.caller, "HN", sku, inventory.StockCount(40, "count"))
            self.paid: dict[int, Decimal] = {}

        def attempt(self, action: Any) -> Any:
            """Run ``action``; a domain error must leave every table as it was."""
            before = fingerprint(app)
            try:
                return action()
            except OrdermeshError:
                assert fingerprint(app) == before
                return None

        @rule(
            target=order_ids,
            a=st.integers(1, 3),
            b=st.integers(1, 3),
            price=st.integers(0, 500),
            discount_share=st.integers(0, 100),
            shipping=st.integers(0, 300),
        )
        def place(self, a: int, b: int, price: int, discount_share: int, shipping: int) -> int:
            gross = Decimal(price) * (a + b)
            discount = (gross * discount_share / 100).quantize(Decimal(1))
            new = orders.NewOrder(
                "direct",
                uuid.uuid4().hex[:12],
                "VND",
                [orders.NewLine("A", a, Decimal(price)), orders.NewLine("B", b, Decimal(price))],
                HANOI,
                discount=discount,
                shipping_fee=Decimal(shipping),
            )
            order_id = orders.capture_order(app.uow(), self.caller, new).order_id
            allocation.allocate_batch(app.uow())
            self.paid[order_id] = gross - discount + shipping
            return order_id

        @rule(order_id=order_ids, line=st.integers(1, 2), quantity=st.integers(1, 3), from_channel=st.booleans())
        def cancel_some(self, order_id: int, line: int, quantity: int, from_channel: bool) -> None:
            if from_channel:
                self.attempt(
                    lambda: cancellations.request_from_channel(
                        app.uow(), self.caller, order_id, lines=[CancelLine(line, quantity)], return_if_shipped=True
                    )
                )
            else:
                request = CancelRequest(CancelReason.OPERATOR, lines=[CancelLine(line, quantity)])
                self.attempt(lambda: orders.cancel(app.uow(), self.caller, order_id, request))

        @rule(order_id=order_ids)
        def ship_everything(self, order_id: int) -> None:
            self.attempt(lambda: fulfilment.release(app.uow(), self.caller, order_id))
            with app.read_uow() as uow:
                pending = uow.session.scalars(
                    select(Allocation.shipment_id)
                    .where(
                        Allocation.order_id == order_id, Allocation.quantity > 0, Allocation.shipment_id.is_not(None)
                    )
                    .distinct()
                ).all()
            for shipment_id in pending:
                update = fulfilment.ShipmentUpdate(ShipmentStatus.SHIPPED, "GHN", f"T{shipment_id}")
                self.attempt(
                    lambda s=shipment_id, u=update: fulfilment.record_shipment_event(app.uow(), self.caller, s, u)
                )

        @rule(target=return_ids, order_id=order_ids, line=st.integers(1, 2), quantity=st.integers(1, 4))
        def open_return(self, order_id: int, line: int, quantity: int) -> int:
            returnable = self.returnable(order_id, line)
            opened = self.attempt(
                lambda: returns.open_return(app.uow(), self.caller, order_id, [ReturnItem(line, quantity)], "any")
            )
            assert (opened is not None) == (quantity <= returnable), (quantity, returnable)
            return opened or 0

        @rule(return_id=return_ids, approve=st.booleans())
        def decide(self, return_id: int, approve: bool) -> None:
            if return_id:
                action = returns.approve if approve else returns.reject
                self.attempt(lambda: action(app.uow(), self.caller, return_id, "decided"))

        @rule(
            return_id=return_ids,
            line=st.integers(1, 2),
            quantity=st.integers(1, 3),
            disposition=st.sampled_from(list(Disposition)),
            location=st.sampled_from(LOCATIONS),
        )
        def receive(self, return_id: int, line: int, quantity: int, disposition: Disposition, location: str) -> None:
            if return_id:
                item = ReceivedItem(line, quantity, disposition, location)
                self.attempt(lambda: returns.receive(app.uow(), self.caller, return_id, [item]))

        @rule(return_id=return_ids)
        def refund(self, return_id: int) -> None:
            if return_id:
                self.attempt(lambda: returns.refund(app.uow(), self.caller, return_id))

        # -- reading back --------------------------------------------------------------------------

        def returnable(self, order_id: int, line_number: int) -> int:
            with app.read_uow() as uow:
                line_id = uow.session.scalar(
                    select(OrderLine.id).where(OrderLine.order_id == order_id, OrderLine.line_number == line_number)
                )
                shipped = uow.session.scalar(
                    select(func.coalesce(func.sum(Allocation.shipped_quantity), 0)).where(
                        Allocation.order_line_id == line_id
                    )
                )
                held = uow.session.scalar(
                    select(func.coalesce(func.sum(ReturnLine.quantity), 0))
                    .join(Return, Return.id == ReturnLine.return_id)
                    .where(ReturnLine.order_line_id == line_id, Return.status != ReturnStatus.REJECTED.value)
                )
            return int(shipped) - int(held)

        @invariant()
        def refunds_never_exceed_what_was_paid(self) -> None:
            if not hasattr(self, "caller"):
                return
            with app.read_uow() as uow:
                refunded: dict[int, Decimal] = defaultdict(Decimal)
                for order_id, amount in uow.session.execute(
                    select(Cancellation.order_id, Cancellation.refund_amount).where(
                        Cancellation.tenant_id == self.caller.tenant_id
                    )
                ):
                    refunded[order_id] += amount
                for order_id, amount in uow.session.execute(
                    select(Return.order_id, Return.refund_amount).where(
                        Return.tenant_id == self.caller.tenant_id, Return.refund_amount.is_not(None)
                    )
                ):
                    refunded[order_id] += amount
            for order_id, amount in refunded.items():
                assert Decimal(0) <= amount <= self.paid[order_id], (order_id, amount, self.paid[order_id])

        @invariant()
        def every_unit_is_accounted_for(self) -> None:
            if not hasattr(self, "caller"):
                return
            with app.read_uow() as uow:
                session = uow.session
                lines = session.execute(
                    select(OrderLine.id, OrderLine.quantity, OrderLine.cancelled_quantity)
                    .join(Order)
                    .where(Order.tenant_id == self.caller.tenant_id)
                ).all()
                moved: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # line -> [reserved, shipped]
                for line_id, reserved, shipped in session.execute(
                    select(Allocation.order_line_id, Allocation.quantity, Allocation.shipped_quantity).where(
                        Allocation.tenant_id == self.caller.tenant_id
                    )
                ):
                    moved[line_id][0] += reserved
                    moved[line_id][1] += shipped
                coming_back: dict[int, int] = defaultdict(int)
                held: dict[int, int] = defaultdict(int)
                for line_id, quantity, received in session.execute(
                    select(ReturnLine.order_line_id, ReturnLine.quantity, ReturnLine.received_quantity)
                    .join(Return, Return.id == ReturnLine.return_id)
                    .where(Return.tenant_id == self.caller.tenant_id, Return.status != ReturnStatus.REJECTED.value)
                ):
                    assert 0 <= received <= quantity
                    held[line_id] += quantity
                    if received < quantity:
                        coming_back[line_id] += quantity - received
                placed: dict[tuple[int, str], int] = defaultdict(int)
                for line_id, disposition, quantity in session.execute(
                    select(ReturnLine.order_line_id, ReturnReceipt.disposition, ReturnReceipt.quantity)
                    .join(ReturnLine, ReturnLine.id == ReturnReceipt.return_line_id)
                    .where(ReturnReceipt.tenant_id == self.caller.tenant_id)
                ):
                    placed[(line_id, disposition)] += quantity
            for line in lines:
                reserved, shipped = moved[line.id]
                to_ship = line.quantity - line.cancelled_quantity - shipped
                assert to_ship >= 0
                assert reserved <= to_ship
                assert held[line.id] <= shipped
                restocked = placed[(line.id, Disposition.RESTOCK.value)]
                assert restocked <= shipped
                back = sum(placed[(line.id, d.value)] for d in Disposition)
                with_buyer = shipped - coming_back[line.id] - back
                assert with_buyer >= 0
                assert line.cancelled_quantity + to_ship + with_buyer + coming_back[line.id] + back == line.quantity

        @invariant()
        def levels_equal_their_ledger(self) -> None:
            if not hasattr(self, "caller"):
                return
            with app.read_uow() as uow:
                levels = {
                    (r.location_id, r.sku_id): (r.on_hand, r.reserved)
                    for r in uow.session.scalars(
                        select(InventoryLevel).where(InventoryLevel.tenant_id == self.caller.tenant_id)
                    )
                }
                sums = {
                    (location_id, sku_id): (int(on_hand), int(reserved))
                    for location_id, sku_id, on_hand, reserved in uow.session.execute(
                        select(
                            InventoryMovement.location_id,
                            InventoryMovement.sku_id,
                            func.sum(InventoryMovement.on_hand_delta),
                            func.sum(InventoryMovement.reserved_delta),
                        )
                        .where(InventoryMovement.tenant_id == self.caller.tenant_id)
                        .group_by(InventoryMovement.location_id, InventoryMovement.sku_id)
                    )
                }
            for key, value in levels.items():
                assert sums.get(key, (0, 0)) == value

    return AfterSales


def test_cancellations_and_returns_keep_money_and_units_accounted_for(app: Application) -> None:
    run_state_machine_as_test(aftersales_machine(app), settings=MACHINE_SETTINGS)
