"""A Hypothesis state machine that drives the real services against a real database, on SQLite and
on PostgreSQL, and after every step reads the database back to check the invariants of DESIGN.md:

1. every level has ``on_hand >= 0``, ``reserved >= 0``, ``safety_stock >= 0``, and ``reserved`` is
   exactly what the live allocations promise (quantity times component units);
2. every level equals the sum of its ledger movements;
3. capturing the same order again changes nothing;
5. every order's status is a legal status reached by allowed, recorded transitions, and is the
   status its numbers call for; no line has more units allocated, shipped and cancelled than ordered.

After each allocator run it also checks that no reservation left a level with negative availability
and that no waiting line could still take a whole unit from an active location (stock never idles
while an order waits for it); the inactive location never gets an allocation.

A rule that raises a domain error must leave the database exactly as it was. Where the rule's
legality follows from the state (e.g. cancelling a cancellable order), the machine also insists the
service accepts or refuses it, so a service that refuses legal work cannot hide behind "refused
cleanly". One app per test function (per backend); one fresh tenant per state-machine run.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import pairwise, product
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from ordermesh.adapters.store.tables import (
    Allocation,
    InventoryLevel,
    InventoryMovement,
    Location,
    Order,
    OrderEvent,
    OrderLine,
    Shipment,
    Sku,
)
from ordermesh.bootstrap import Application
from ordermesh.domain.errors import OrdermeshError
from ordermesh.domain.lifecycle import (
    AWAITING_STOCK,
    CANCELLABLE,
    SHIPMENT_TRANSITIONS,
    TERMINAL,
    OrderStatus,
    ShipmentStatus,
    derive_status,
    is_allowed,
)
from ordermesh.services import allocation, catalog, fulfilment, inventory, orders, tenants
from ordermesh.services.unit_of_work import Caller
from tests.strategies import (
    BUNDLE_COMPONENTS,
    BUNDLE_SKU,
    ORDERABLE_SKUS,
    PLAIN_SKUS,
    order_line_specs,
    shipping_addresses,
)

S = OrderStatus
SH = ShipmentStatus

# code -> (latitude, longitude, active); the inactive node may hold stock but must never be used.
LOCATIONS: dict[str, tuple[float, float, bool]] = {
    "HCM": (10.776, 106.700, True),
    "HAN": (21.028, 105.854, True),
    "DAD": (16.054, 108.202, False),
}
PLACES = {code: (lat, lon) for code, (lat, lon, _) in LOCATIONS.items()}
# Hand-over and delivery are what move an order on: drawn more often than picked and packed.
SHIPMENT_REPORTS = (SH.PICKED, SH.PACKED, SH.SHIPPED, SH.SHIPPED, SH.DELIVERED, SH.DELIVERED)
OPEN_STATUSES = set(OrderStatus) - TERMINAL

MACHINE_SETTINGS = settings(
    max_examples=25,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LevelKey = tuple[int, int]  # (location id, SKU id)


# --- what the database holds for one tenant ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LineRow:
    order_id: int
    line_number: int
    quantity: int
    cancelled: int
    components: tuple[tuple[int, int], ...]  # (SKU id, units per line unit)


@dataclass(frozen=True, slots=True)
class AllocationRow:
    order_id: int
    line_id: int
    location_id: int
    quantity: int
    shipped: int
    shipment_id: int | None


@dataclass(frozen=True, slots=True)
class ShipmentRow:
    order_id: int
    location_id: int
    status: str


@dataclass(frozen=True, slots=True)
class EventRow:
    order_id: int
    type: str
    from_status: str | None
    to_status: str | None


@dataclass(frozen=True)
class Snapshot:
    levels: dict[LevelKey, tuple[int, int, int]]  # (on_hand, reserved, safety_stock)
    ledger: dict[LevelKey, tuple[int, int, int]]  # sums of the movements' deltas
    movement_count: int
    orders: dict[int, tuple[str, bool]]  # (status, needs_allocation)
    lines: dict[int, LineRow]
    allocations: dict[int, AllocationRow]
    shipments: dict[int, ShipmentRow]
    events: tuple[EventRow, ...]  # in the order they were written

    def level(self, key: LevelKey) -> tuple[int, int, int]:
        return self.levels.get(key, (0, 0, 0))

    def available(self, key: LevelKey) -> int:
        on_hand, reserved, safety = self.level(key)
        return on_hand - reserved - safety

    def lines_of(self, order_id: int) -> dict[int, LineRow]:
        return {line_id: line for line_id, line in self.lines.items() if line.order_id == order_id}

    def allocations_of(self, order_id: int) -> list[AllocationRow]:
        return [a for a in self.allocations.values() if a.order_id == order_id]

    def reserved_for(self, line_id: int) -> int:
        return sum(a.quantity for a in self.allocations.values() if a.line_id == line_id)

    def shipped_for(self, line_id: int) -> int:
        return sum(a.shipped for a in self.allocations.values() if a.line_id == line_id)

    def cancellable(self, line_id: int) -> int:
        line = self.lines[line_id]
        return line.quantity - line.cancelled - self.shipped_for(line_id)


def read_snapshot(app: Application, tenant_id: int) -> Snapshot:
    with app.read_uow() as uow:
        session = uow.session
        levels = {
            (location_id, sku_id): (on_hand, reserved, safety)
            for location_id, sku_id, on_hand, reserved, safety in session.execute(
                select(
                    InventoryLevel.location_id,
                    InventoryLevel.sku_id,
                    InventoryLevel.on_hand,
                    InventoryLevel.reserved,
                    InventoryLevel.safety_stock,
                ).where(InventoryLevel.tenant_id == tenant_id)
            )
        }
        ledger: dict[LevelKey, list[int]] = defaultdict(lambda: [0, 0, 0])
        movement_count = 0
        for location_id, sku_id, on_hand, reserved, safety in session.execute(
            select(
                InventoryMovement.location_id,
                InventoryMovement.sku_id,
                InventoryMovement.on_hand_delta,
                InventoryMovement.reserved_delta,
                InventoryMovement.safety_stock_delta,
            ).where(InventoryMovement.tenant_id == tenant_id)
        ):
            sums = ledger[(location_id, sku_id)]
            sums[0] += on_hand
            sums[1] += reserved
            sums[2] += safety
            movement_count += 1
        order_rows = {
            order_id: (status, needs_allocation)
            for order_id, status, needs_allocation in session.execute(
                select(Order.id, Order.status, Order.needs_allocation).where(Order.tenant_id == tenant_id)
            )
        }
        lines = {
            line_id: LineRow(
                order_id,
                line_number,
                quantity,
                cancelled,
                tuple(sorted((int(sku), units) for sku, units in components.items())),
            )
            for line_id, order_id, line_number, quantity, cancelled, components in session.execute(
                select(
                    OrderLine.id,
                    OrderLine.order_id,
                    OrderLine.line_number,
                    OrderLine.quantity,
                    OrderLine.cancelled_quantity,
                    OrderLine.components,
                ).where(OrderLine.tenant_id == tenant_id)
            )
        }
        allocations = {
            row[0]: AllocationRow(*row[1:])
            for row in session.execute(
                select(
                    Allocation.id,
                    Allocation.order_id,
                    Allocation.order_line_id,
                    Allocation.location_id,
                    Allocation.quantity,
                    Allocation.shipped_quantity,
                    Allocation.shipment_id,
                ).where(Allocation.tenant_id == tenant_id)
            )
        }
        shipments = {
            shipment_id: ShipmentRow(order_id, location_id, status)
            for shipment_id, order_id, location_id, status in session.execute(
                select(Shipment.id, Shipment.order_id, Shipment.location_id, Shipment.status).where(
                    Shipment.tenant_id == tenant_id
                )
            )
        }
        events = tuple(
            EventRow(order_id, event_type, from_status, to_status)
            for order_id, event_type, from_status, to_status in session.execute(
                select(OrderEvent.order_id, OrderEvent.type, OrderEvent.from_status, OrderEvent.to_status)
                .where(OrderEvent.tenant_id == tenant_id)
                .order_by(OrderEvent.id)
            )
        )
    return Snapshot(
        levels=levels,
        ledger={key: (sums[0], sums[1], sums[2]) for key, sums in ledger.items()},
        movement_count=movement_count,
        orders=order_rows,
        lines=lines,
        allocations=allocations,
        shipments=shipments,
        events=events,
    )


# --- the machine --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    accepted: bool
    value: Any = None
    error: OrdermeshError | None = field(default=None, repr=False)


def stock_machine(app: Application) -> type[RuleBasedStateMachine]:
    class StockAndOrders(RuleBasedStateMachine):
        placed = Bundle("orders")

        def __init__(self) -> None:
            super().__init__()
            tenant = tenants.create_tenant(app.uow(), f"sm-{uuid.uuid4().hex[:12]}")
            self.tenant_id = tenant.tenant_id
            self.caller = Caller(tenant_id=tenant.tenant_id, role="admin", actor="test:state-machine")
            catalog.upsert_skus(
                app.uow(),
                self.caller,
                [
                    *(catalog.SkuInput(code, f"Item {code}") for code in PLAIN_SKUS),
                    catalog.SkuInput(BUNDLE_SKU, "Kit", components=dict(BUNDLE_COMPONENTS)),
                ],
            )
            for code, (latitude, longitude, active) in LOCATIONS.items():
                catalog.upsert_location(
                    app.uow(),
                    self.caller,
                    code,
                    catalog.LocationInput(name=code, latitude=latitude, longitude=longitude, active=active),
                )
            with app.read_uow() as uow:
                rows = uow.session.execute(select(Sku.code, Sku.id).where(Sku.tenant_id == self.tenant_id))
                self.sku_ids: dict[str, int] = {row.code: row.id for row in rows}
                rows = uow.session.execute(
                    select(Location.code, Location.id).where(Location.tenant_id == self.tenant_id)
                )
                self.location_ids: dict[str, int] = {row.code: row.id for row in rows}
            self.inactive_ids = {self.location_ids[code] for code, (_, _, active) in LOCATIONS.items() if not active}
            self.captured: dict[int, orders.NewOrder] = {}
            self.sequence = 0
            self.snap = read_snapshot(app, self.tenant_id)

        # -- helpers --

        def attempt(self, action: Callable[[], Any], *, must_succeed: bool | None) -> Outcome:
            """Run one service call. ``must_succeed``: True if the state makes it legal, False if the
            state makes it illegal, None if the machine does not predict it. A refused call must leave
            the tenant's data exactly as it was."""
            before = self.snap
            refusal: OrdermeshError | None = None
            value = None
            try:
                value = action()
            except OrdermeshError as error:
                refusal = error
            self.snap = read_snapshot(app, self.tenant_id)
            if refusal is not None:
                assert self.snap == before, f"refused with {refusal!r} but changed the database"
                assert must_succeed is not True, f"a legal step was refused: {refusal!r}"
                return Outcome(False, error=refusal)
            assert must_succeed is not False, "an illegal step was accepted"
            return Outcome(True, value)

        def teardown(self) -> None:
            # Leave the allocator's queue empty: the next run (another tenant, same database) must not
            # find this run's orders ahead of its own.
            while allocation.allocate_batch(app.uow()).claimed:
                pass

        def status_of(self, order_id: int) -> OrderStatus:
            return OrderStatus(self.snap.orders[order_id][0])

        def orders_in(self, statuses: set[OrderStatus]) -> list[int]:
            return sorted(order_id for order_id, (status, _) in self.snap.orders.items() if status in statuses)

        def level_key(self, location: str, sku: str) -> LevelKey:
            return (self.location_ids[location], self.sku_ids[sku])

        # -- stock --

        @initialize(stock=st.lists(st.integers(min_value=0, max_value=5), min_size=6, max_size=6))
        def stock_the_shelves(self, stock: list[int]) -> None:
            for (location, sku), on_hand in zip(product(sorted(LOCATIONS), PLAIN_SKUS), stock, strict=True):
                count = inventory.StockCount(on_hand=on_hand, reason="opening stock")
                self.attempt(
                    lambda: inventory.set_on_hand(app.uow(), self.caller, location, sku, count),  # noqa: B023
                    must_succeed=True,
                )

        @rule(
            location=st.sampled_from(sorted(LOCATIONS)),
            sku=st.sampled_from(PLAIN_SKUS),
            on_hand=st.integers(min_value=0, max_value=8),
            safety_stock=st.one_of(st.none(), st.integers(min_value=0, max_value=2)),
        )
        def set_stock(self, location: str, sku: str, on_hand: int, safety_stock: int | None) -> None:
            key = self.level_key(location, sku)
            _, reserved, safety_before = self.snap.level(key)
            count = inventory.StockCount(on_hand=on_hand, reason="cycle count", safety_stock=safety_stock)
            self.attempt(lambda: inventory.set_on_hand(app.uow(), self.caller, location, sku, count), must_succeed=True)
            expected_safety = safety_before if safety_stock is None else safety_stock
            assert self.snap.level(key) == (on_hand, reserved, expected_safety)

        @rule(
            location=st.sampled_from(sorted(LOCATIONS)),
            sku=st.sampled_from(ORDERABLE_SKUS),
            delta=st.integers(min_value=-6, max_value=6).filter(bool),
        )
        def adjust_stock(self, location: str, sku: str, delta: int) -> None:
            if sku == BUNDLE_SKU:  # a bundle has no stock of its own
                refused = inventory.StockAdjustment(delta=delta, reason="receipt")
                self.attempt(
                    lambda: inventory.adjust(app.uow(), self.caller, location, sku, refused), must_succeed=False
                )
                return
            key = self.level_key(location, sku)
            on_hand, reserved, safety = self.snap.level(key)
            adjustment = inventory.StockAdjustment(delta=delta, reason="receipt" if delta > 0 else "damaged")
            outcome = self.attempt(
                lambda: inventory.adjust(app.uow(), self.caller, location, sku, adjustment),
                must_succeed=on_hand + delta >= 0,
            )
            if outcome.accepted:
                assert self.snap.level(key) == (on_hand + delta, reserved, safety)

        # -- orders --

        @rule(target=placed, lines=order_line_specs, address=shipping_addresses(PLACES))
        def capture(self, lines: list[tuple[str, int]], address: dict[str, Any]) -> int:
            self.sequence += 1
            new = orders.NewOrder(
                channel="direct",
                external_id=f"sm-{self.sequence}",
                currency="VND",
                lines=[orders.NewLine(sku, quantity, Decimal("10.00")) for sku, quantity in lines],
                shipping_address=address,
            )
            outcome = self.attempt(lambda: orders.capture_order(app.uow(), self.caller, new), must_succeed=True)
            captured: orders.Captured = outcome.value
            assert captured.created is True
            assert self.snap.orders[captured.order_id] == (S.PENDING.value, True)
            assert sorted(
                (line.line_number, line.quantity) for line in self.snap.lines_of(captured.order_id).values()
            ) == [(number, quantity) for number, (_, quantity) in enumerate(lines, start=1)]
            self.captured[captured.order_id] = new
            return captured.order_id

        @rule(order_id=placed)
        def capture_again_changes_nothing(self, order_id: int) -> None:
            new = self.captured[order_id]
            outcome = self.attempt(lambda: orders.capture_order(app.uow(), self.caller, new), must_succeed=True)
            assert outcome.value == orders.Captured(order_id, created=False)

        @rule(auto_release=st.booleans())
        def allocate(self, auto_release: bool) -> None:
            self.run_allocator(auto_release=auto_release)

        def run_allocator(self, *, auto_release: bool) -> None:
            def run() -> None:
                allocation.requeue_backorders(app.uow())
                allocation.allocate_batch(app.uow(), auto_release=auto_release)

            before = self.snap
            self.attempt(run, must_succeed=True)
            snap = self.snap
            waiting = [order_id for order_id, (_, needs) in snap.orders.items() if needs]
            assert waiting == [], "the allocator left orders in its queue"
            for key, (on_hand, reserved, safety) in snap.levels.items():
                if reserved > before.level(key)[1]:  # invariant 1: reserving never makes available negative
                    assert on_hand - reserved - safety >= 0, key
            # No stock left idle: every rise in availability re-queues the orders waiting for it, so after
            # a run no waiting line could still take one whole unit from any active location.
            active = [i for i in self.location_ids.values() if i not in self.inactive_ids]
            for order_id in self.orders_in({S.BACKORDERED, S.PARTIALLY_ALLOCATED}):
                for line_id, line in snap.lines_of(order_id).items():
                    if snap.cancellable(line_id) - snap.reserved_for(line_id) <= 0:
                        continue
                    for location_id in active:
                        fits = all(snap.available((location_id, sku)) >= units for sku, units in line.components)
                        assert not fits, (order_id, line.line_number, location_id)

        @rule(order_id=placed)
        def cancel_everything(self, order_id: int) -> None:
            self.cancel_everything_of(order_id)

        @precondition(lambda self: bool(self.orders_in({S.RELEASED, S.PARTIALLY_SHIPPED})))
        @rule(pick=st.integers(min_value=0, max_value=1000), everything=st.booleans())
        def cancel_an_order_being_shipped(self, pick: int, everything: bool) -> None:
            shipping = self.orders_in({S.RELEASED, S.PARTIALLY_SHIPPED})
            order_id = shipping[pick % len(shipping)]
            if everything:
                self.cancel_everything_of(order_id)
                return
            open_lines = [line_id for line_id in self.snap.lines_of(order_id) if self.snap.cancellable(line_id) > 0]
            line_id = open_lines[pick % len(open_lines)]
            self.cancel_some_of(order_id, self.snap.lines[line_id].line_number, 1)

        def cancel_everything_of(self, order_id: int) -> None:
            status = self.status_of(order_id)
            lines = self.snap.lines_of(order_id)
            cancellable = sum(self.snap.cancellable(line_id) for line_id in lines)
            request = orders.CancelRequest(reason=orders.CancelReason.CUSTOMER)
            outcome = self.attempt(
                lambda: orders.cancel(app.uow(), self.caller, order_id, request),
                must_succeed=status in CANCELLABLE and cancellable > 0,
            )
            if outcome.accepted:
                assert sum(a.quantity for a in self.snap.allocations_of(order_id)) == 0
                for line_id, line in self.snap.lines_of(order_id).items():
                    assert line.cancelled == line.quantity - self.snap.shipped_for(line_id)
                assert self.status_of(order_id) in {S.CANCELLED, S.SHIPPED, S.DELIVERED}

        @rule(
            order_id=placed,
            line_number=st.integers(min_value=1, max_value=3),
            quantity=st.integers(min_value=1, max_value=3),
        )
        def cancel_some(self, order_id: int, line_number: int, quantity: int) -> None:
            self.cancel_some_of(order_id, line_number, quantity)

        def cancel_some_of(self, order_id: int, line_number: int, quantity: int) -> None:
            status = self.status_of(order_id)
            lines = self.snap.lines_of(order_id)
            line_id = next((i for i, line in lines.items() if line.line_number == line_number), None)
            legal = status in CANCELLABLE and line_id is not None and quantity <= self.snap.cancellable(line_id)
            before = self.snap
            request = orders.CancelRequest(
                reason=orders.CancelReason.WAREHOUSE, lines=[orders.CancelLine(line_number, quantity)]
            )
            outcome = self.attempt(lambda: orders.cancel(app.uow(), self.caller, order_id, request), must_succeed=legal)
            if outcome.accepted:
                assert line_id is not None
                assert self.snap.lines[line_id].cancelled == before.lines[line_id].cancelled + quantity
                unreserved = before.cancellable(line_id) - before.reserved_for(line_id)
                released = max(quantity - unreserved, 0)
                assert self.snap.reserved_for(line_id) == before.reserved_for(line_id) - released

        @rule(order_id=placed)
        def hold(self, order_id: int) -> None:
            self.hold_order(order_id)

        def hold_order(self, order_id: int) -> None:
            status = self.status_of(order_id)
            legal = status is S.ON_HOLD or is_allowed(status, S.ON_HOLD)
            outcome = self.attempt(
                lambda: orders.hold(app.uow(), self.caller, order_id, "fraud check"), must_succeed=legal
            )
            if outcome.accepted:
                assert self.snap.orders[order_id] == (S.ON_HOLD.value, False)

        @rule(order_id=placed)
        def release_hold(self, order_id: int) -> None:
            self.release_hold_of(order_id)

        def release_hold_of(self, order_id: int) -> None:
            status = self.status_of(order_id)
            legal = status in {S.ON_HOLD, S.PENDING}
            outcome = self.attempt(lambda: orders.release_hold(app.uow(), self.caller, order_id), must_succeed=legal)
            if outcome.accepted:
                assert self.snap.orders[order_id] == (S.PENDING.value, True)

        @rule(order_id=placed)
        def complete(self, order_id: int) -> None:
            self.complete_order(order_id)

        def complete_order(self, order_id: int) -> None:
            status = self.status_of(order_id)
            legal = status in {S.SHIPPED, S.DELIVERED, S.COMPLETED}
            self.attempt(lambda: orders.complete(app.uow(), self.caller, order_id), must_succeed=legal)

        # -- fulfilment --

        @rule(order_id=placed)
        def release(self, order_id: int) -> None:
            self.release_order(order_id)

        def release_order(self, order_id: int) -> None:
            status = self.status_of(order_id)
            outcome = self.attempt(
                lambda: fulfilment.release(app.uow(), self.caller, order_id),
                must_succeed=status in {S.ALLOCATED, S.RELEASED},
            )
            if outcome.accepted:
                assert self.status_of(order_id) is S.RELEASED
                live = [a for a in self.snap.allocations_of(order_id) if a.quantity > 0]
                assert live != []
                for row in live:
                    assert row.shipment_id is not None
                    assert self.snap.shipments[row.shipment_id].location_id == row.location_id

        def shipments_in(self, statuses: set[ShipmentStatus], *, order_id: int | None = None) -> list[int]:
            return sorted(
                i
                for i, shipment in self.snap.shipments.items()
                if shipment.status in statuses and order_id in (None, shipment.order_id)
            )

        @precondition(lambda self: bool(self.snap.shipments))
        @rule(pick=st.integers(min_value=0, max_value=1000), report=st.sampled_from(SHIPMENT_REPORTS))
        def report_any_shipment(self, pick: int, report: ShipmentStatus) -> None:
            shipment_ids = sorted(self.snap.shipments)  # cancelled and delivered ones included
            self.report(shipment_ids[pick % len(shipment_ids)], report)

        @precondition(lambda self: bool(self.orders_in(OPEN_STATUSES)))
        @rule(pick=st.integers(min_value=0, max_value=1000), deliver_first=st.booleans())
        def advance_an_order(self, pick: int, deliver_first: bool) -> None:
            """Take one open order one step along the happy path (the other rules wander off it)."""
            open_orders = self.orders_in(OPEN_STATUSES)
            order_id = open_orders[pick % len(open_orders)]
            status = self.status_of(order_id)
            if status is S.ON_HOLD:
                self.release_hold_of(order_id)
            elif status in AWAITING_STOCK:
                self.run_allocator(auto_release=False)
            elif status is S.ALLOCATED:
                self.release_order(order_id)
            elif status in {S.RELEASED, S.PARTIALLY_SHIPPED, S.SHIPPED}:
                waiting = self.shipments_in({SH.PENDING, SH.PICKED, SH.PACKED}, order_id=order_id)
                underway = self.shipments_in({SH.SHIPPED}, order_id=order_id)
                if underway and (deliver_first or not waiting):
                    self.report(underway[0], SH.DELIVERED)
                elif waiting:
                    self.report(waiting[0], SH.SHIPPED)
                else:
                    self.complete_order(order_id)
            else:
                self.complete_order(order_id)

        def report(self, shipment_id: int, report: ShipmentStatus) -> None:
            current = ShipmentStatus(self.snap.shipments[shipment_id].status)
            legal = report in SHIPMENT_TRANSITIONS[current]
            mine = [a for a in self.snap.allocations.values() if a.shipment_id == shipment_id and a.quantity > 0]
            if legal and report is SH.SHIPPED:
                needed: dict[LevelKey, int] = defaultdict(int)
                for row in mine:
                    for sku_id, per_unit in self.snap.lines[row.line_id].components:
                        needed[(row.location_id, sku_id)] += row.quantity * per_unit
                # a count below what is reserved can leave too few units on the shelf to ship
                legal = all(self.snap.level(key)[0] >= units for key, units in needed.items())
            update = fulfilment.ShipmentUpdate(
                status=report,
                carrier="GHN" if report is SH.SHIPPED else None,
                tracking_number=f"TRK{shipment_id}" if report is SH.SHIPPED else None,
            )
            outcome = self.attempt(
                lambda: fulfilment.record_shipment_event(app.uow(), self.caller, shipment_id, update),
                must_succeed=legal,
            )
            if outcome.accepted:
                assert self.snap.shipments[shipment_id].status == report.value
                if report is SH.SHIPPED:
                    after = [a for a in self.snap.allocations.values() if a.shipment_id == shipment_id]
                    assert all(a.quantity == 0 for a in after)

        # -- invariants --

        @invariant()
        def levels_are_sound_and_equal_their_ledger(self) -> None:
            snap = self.snap
            for key, (on_hand, reserved, safety) in snap.levels.items():
                assert on_hand >= 0, key
                assert reserved >= 0, key
                assert safety >= 0, key
            for key in snap.levels.keys() | snap.ledger.keys():
                assert snap.level(key) == snap.ledger.get(key, (0, 0, 0)), key

        @invariant()
        def reserved_is_what_live_allocations_promise(self) -> None:
            snap = self.snap
            promised: dict[LevelKey, int] = defaultdict(int)
            for row in snap.allocations.values():
                assert row.quantity >= 0
                assert row.shipped >= 0
                for sku_id, per_unit in snap.lines[row.line_id].components:
                    promised[(row.location_id, sku_id)] += row.quantity * per_unit
            for key in snap.levels.keys() | promised.keys():
                assert snap.level(key)[1] == promised.get(key, 0), key
            assert {row.location_id for row in snap.allocations.values()} & self.inactive_ids == set()

        @invariant()
        def no_line_has_more_units_accounted_than_ordered(self) -> None:
            snap = self.snap
            for line_id, line in snap.lines.items():
                assert 0 <= line.cancelled <= line.quantity
                assert snap.reserved_for(line_id) + snap.shipped_for(line_id) + line.cancelled <= line.quantity

        @invariant()
        def order_status_is_legal_recorded_and_what_its_numbers_call_for(self) -> None:
            snap = self.snap
            trail: dict[int, list[EventRow]] = defaultdict(list)
            for event in snap.events:
                if event.to_status is not None:
                    trail[event.order_id].append(event)
            for order_id, (status_value, _) in snap.orders.items():
                status = OrderStatus(status_value)  # ValueError for anything but a legal status
                events = trail[order_id]
                assert events[0].type == "created"
                assert (events[0].from_status, events[0].to_status) == (None, S.PENDING.value)
                for previous, event in pairwise(events):
                    assert event.from_status == previous.to_status, (order_id, event)
                    assert is_allowed(OrderStatus(event.from_status), OrderStatus(event.to_status)), event
                assert status.value == events[-1].to_status

                lines = snap.lines_of(order_id)
                live = [s for s in snap.shipments.values() if s.order_id == order_id and s.status != SH.CANCELLED]
                expected = derive_status(
                    status,
                    open_units=sum(line.quantity - line.cancelled for line in lines.values()),
                    reserved_units=sum(snap.reserved_for(line_id) for line_id in lines),
                    shipped_units=sum(snap.shipped_for(line_id) for line_id in lines),
                    released=bool(live),
                    all_delivered=bool(live) and all(s.status == SH.DELIVERED for s in live),
                )
                assert expected is status, (order_id, status, expected)

        @invariant()
        def shipments_are_legal_and_hold_their_own_allocations(self) -> None:
            snap = self.snap
            for shipment_id, shipment in snap.shipments.items():
                ShipmentStatus(shipment.status)
                for row in snap.allocations.values():
                    if row.shipment_id == shipment_id:
                        assert (row.order_id, row.location_id) == (shipment.order_id, shipment.location_id)

    return StockAndOrders


def test_stock_and_orders_keep_every_invariant_under_any_sequence_of_operations(app: Application) -> None:
    run_state_machine_as_test(stock_machine(app), settings=MACHINE_SETTINGS)


# --- scenarios the machine found once, kept as plain examples ----------------------------------------


def test_cancelling_the_rest_after_the_shipped_part_was_delivered_ends_delivered(
    app: Application, caller: Caller
) -> None:
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput("SKU-A", "Item A")])
    for code in ("HCM", "HAN"):
        latitude, longitude, _ = LOCATIONS[code]
        catalog.upsert_location(
            app.uow(), caller, code, catalog.LocationInput(name=code, latitude=latitude, longitude=longitude)
        )
        inventory.set_on_hand(app.uow(), caller, code, "SKU-A", inventory.StockCount(on_hand=1, reason="count"))
    new = orders.NewOrder(
        channel="direct",
        external_id="split-1",
        currency="VND",
        lines=[orders.NewLine("SKU-A", 2, Decimal("10.00"))],
        shipping_address={"latitude": 10.8, "longitude": 106.7},
    )
    order_id = orders.capture_order(app.uow(), caller, new).order_id
    allocation.allocate_batch(app.uow())
    fulfilment.release(app.uow(), caller, order_id)
    snap = read_snapshot(app, caller.tenant_id)
    assert snap.orders[order_id][0] == S.RELEASED.value
    first, second = sorted(snap.shipments)  # one unit from each location
    shipped = fulfilment.ShipmentUpdate(SH.SHIPPED, carrier="GHN", tracking_number="TRK1")
    fulfilment.record_shipment_event(app.uow(), caller, first, shipped)
    fulfilment.record_shipment_event(app.uow(), caller, first, fulfilment.ShipmentUpdate(SH.DELIVERED))
    assert read_snapshot(app, caller.tenant_id).orders[order_id][0] == S.PARTIALLY_SHIPPED.value

    orders.cancel(app.uow(), caller, order_id, orders.CancelRequest(reason=orders.CancelReason.WAREHOUSE))

    snap = read_snapshot(app, caller.tenant_id)
    assert snap.orders[order_id][0] == S.DELIVERED.value
    assert snap.shipments[first].status == SH.DELIVERED.value
    assert snap.shipments[second].status == SH.CANCELLED.value
    assert sorted(level[1] for level in snap.levels.values()) == [0, 0]  # nothing left reserved
