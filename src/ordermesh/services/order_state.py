"""An order's lines, allocations and shipments loaded together, and the status their numbers imply."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import LevelKey
from ordermesh.adapters.store.tables import Allocation, Order, OrderLine, Shipment
from ordermesh.domain.lifecycle import SHIPMENT_NOT_YET_SHIPPED, OrderStatus, ShipmentStatus, derive_status
from ordermesh.services import order_history


@dataclass
class OrderState:
    order: Order
    lines: list[OrderLine]
    allocations: list[Allocation]
    shipments: list[Shipment]

    @classmethod
    def load(cls, session: Session, order: Order) -> OrderState:
        lines = list(
            session.scalars(select(OrderLine).where(OrderLine.order_id == order.id).order_by(OrderLine.line_number))
        )
        allocations = list(
            session.scalars(select(Allocation).where(Allocation.order_id == order.id).order_by(Allocation.id))
        )
        shipments = list(session.scalars(select(Shipment).where(Shipment.order_id == order.id).order_by(Shipment.id)))
        return cls(order, lines, allocations, shipments)

    def line(self, line_number: int) -> OrderLine | None:
        return next((line for line in self.lines if line.line_number == line_number), None)

    def reserved(self, line: OrderLine) -> int:
        return sum(a.quantity for a in self.allocations if a.order_line_id == line.id)

    def shipped(self, line: OrderLine) -> int:
        return sum(a.shipped_quantity for a in self.allocations if a.order_line_id == line.id)

    def open_units(self, line: OrderLine) -> int:
        return line.quantity - line.cancelled_quantity

    def unreserved(self, line: OrderLine) -> int:
        return self.open_units(line) - self.reserved(line) - self.shipped(line)

    def component_keys(self) -> set[LevelKey]:
        """Inventory levels this order's live reservations touch."""
        by_line = {line.id: line for line in self.lines}
        return {
            (a.location_id, int(sku_id))
            for a in self.allocations
            if a.quantity > 0
            for sku_id in by_line[a.order_line_id].components
        }

    def resync_status(self, session: Session, actor: str, *, reason: str | None = None) -> None:
        live = [s for s in self.shipments if s.status != ShipmentStatus.CANCELLED]
        target = derive_status(
            OrderStatus(self.order.status),
            open_units=sum(self.open_units(line) for line in self.lines),
            reserved_units=sum(self.reserved(line) for line in self.lines),
            shipped_units=sum(self.shipped(line) for line in self.lines),
            released=bool(live),
            all_delivered=bool(live) and all(s.status == ShipmentStatus.DELIVERED for s in live),
        )
        order_history.transition(session, self.order, target, actor, reason=reason)

    def unshipped_shipments(self) -> list[Shipment]:
        return [s for s in self.shipments if s.status in SHIPMENT_NOT_YET_SHIPPED]
