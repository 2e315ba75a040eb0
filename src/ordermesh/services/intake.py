"""Group-committed order intake: concurrent captures share one transaction.

Under a flash sale hundreds of requests arrive at once, and ``orders.capture_order`` would give
each its own read transaction, its own write transaction and its own commit (a disk flush). Here a
request thread hands its order to the process's ``GroupCommitter`` and waits; one waiting thread
at a time per slot (the leader) takes every order queued so far and writes them together:

- one query each for the batch's channels, SKUs, bundle components and already-stored orders;
- one multi-row ``INSERT ... ON CONFLICT DO NOTHING`` for the orders, one for their lines, one for
  their ``created`` events, their outbox messages, one allocator wake-up, one commit.

Each caller is answered only after the commit that holds its order. The outcome per order is the
same as ``capture_order``'s: a new order (201 with its view), the order already stored for that
(channel, external id) (``created=False``), or the same ``InvalidInput`` for an unknown channel
or SKU, which fails that order only. If the group's transaction fails as a whole (a value the
database refuses, a lost connection), every order in it is retried alone through
``capture_order``, so one bad order never fails the others.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import insert, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite

from ordermesh.adapters.store.tables import Channel, Order, OrderEvent, OrderLine, Sku, SkuComponent
from ordermesh.adapters.store.tables_sla_returns import OrderCharges
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.lifecycle import OrderStatus
from ordermesh.services import outbox
from ordermesh.services.order_views import build_order_view
from ordermesh.services.orders import Captured, NewOrder, _check_order, _money, capture_order
from ordermesh.services.unit_of_work import Caller, UnitOfWork


@dataclass(eq=False, slots=True)
class _Pending:
    caller: Caller
    new: NewOrder
    result: Captured | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    """One per process. ``capture`` is called from request threads and blocks until committed.

    ``leaders``: how many groups may be in flight at once (one writes while the next one gathers
    and resolves); ``max_batch``: the most orders in one transaction."""

    def __init__(
        self,
        uow: Callable[[], UnitOfWork],
        read_uow: Callable[[], UnitOfWork],
        *,
        max_batch: int = 256,
        leaders: int = 2,
    ) -> None:
        self._uow = uow
        self._read_uow = read_uow
        self.max_batch = max_batch
        self.leaders = leaders
        self._waiting: list[_Pending] = []
        self._active = 0
        self._cond = threading.Condition()
        # What happened, for tests and metrics: groups written and orders in them.
        self.groups = 0
        self.grouped_orders = 0
        self.fallbacks = 0

    def capture(self, caller: Caller, new: NewOrder) -> Captured:
        _check_order(new)  # malformed orders never join a group
        item = _Pending(caller, new)
        with self._cond:
            self._waiting.append(item)
            while True:
                if item.done:
                    break
                if self._active < self.leaders and self._waiting:
                    batch = self._waiting[: self.max_batch]
                    del self._waiting[: self.max_batch]
                    self._active += 1
                    self._cond.release()
                    try:
                        self._run(batch)
                    finally:
                        self._cond.acquire()
                        self._active -= 1
                        self._cond.notify_all()
                    continue
                self._cond.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _run(self, batch: list[_Pending]) -> None:
        try:
            try:
                self._write(batch)
                self.groups += 1
                self.grouped_orders += len(batch)
            except Exception:
                # The group as a whole failed: each order alone, so only a bad one fails.
                self.fallbacks += 1
                for item in batch:
                    if item.done:
                        continue
                    try:
                        item.result = capture_order(self._uow(), item.caller, item.new, lookup=self._read_uow())
                    except Exception as error:
                        item.error = error
                    item.done = True
        except BaseException as error:  # never leave a waiter hanging
            for item in batch:
                if not item.done:
                    item.error, item.done = error, True
            raise
        finally:
            for item in batch:
                item.done = True

    def _write(self, batch: Sequence[_Pending]) -> None:
        """All of ``batch`` in one transaction. Sets each item's result or error only once it is
        committed (an exception before that leaves every item undecided for the fallback)."""
        outcomes: dict[int, Captured | BaseException] = {}
        uow = self._uow()
        with uow:
            session = uow.session
            channel_keys = {(item.caller.tenant_id, item.new.channel) for item in batch}
            channels = {
                (tenant_id, code): channel_id
                for channel_id, tenant_id, code in session.execute(
                    select(Channel.id, Channel.tenant_id, Channel.code).where(
                        tuple_(Channel.tenant_id, Channel.code).in_(sorted(channel_keys))
                    )
                )
            }
            sku_keys = {(item.caller.tenant_id, line.sku) for item in batch for line in item.new.lines}
            sku_ids = {
                (tenant_id, code): sku_id
                for sku_id, tenant_id, code in session.execute(
                    select(Sku.id, Sku.tenant_id, Sku.code).where(tuple_(Sku.tenant_id, Sku.code).in_(sorted(sku_keys)))
                )
            }
            components: dict[int, dict[str, int]] = defaultdict(dict)
            if sku_ids:
                for bundle_id, component_id, quantity in session.execute(
                    select(SkuComponent.bundle_sku_id, SkuComponent.component_sku_id, SkuComponent.quantity).where(
                        SkuComponent.bundle_sku_id.in_(sorted(set(sku_ids.values())))
                    )
                ):
                    components[bundle_id][str(component_id)] = quantity
            order_keys = {
                (item.caller.tenant_id, channels[(item.caller.tenant_id, item.new.channel)], item.new.external_id)
                for item in batch
                if (item.caller.tenant_id, item.new.channel) in channels
            }
            existing = _existing(session, order_keys)

            now = utcnow()
            to_insert: dict[tuple[int, int, str], _Pending] = {}
            for index, item in enumerate(batch):
                tenant_id, new = item.caller.tenant_id, item.new
                channel_id = channels.get((tenant_id, new.channel))
                if channel_id is None:
                    outcomes[index] = InvalidInput(
                        f"unknown channel {new.channel!r}", code="unknown_channel", field="channel"
                    )
                    continue
                key = (tenant_id, channel_id, new.external_id)
                if key in existing:
                    outcomes[index] = Captured(existing[key], created=False)
                    continue
                unknown = next(
                    ((n, line.sku) for n, line in enumerate(new.lines) if (tenant_id, line.sku) not in sku_ids), None
                )
                if unknown is not None:
                    outcomes[index] = InvalidInput(
                        f"unknown SKU {unknown[1]!r}",
                        code="unknown_sku",
                        field=f"lines.{unknown[0]}.sku",
                        sku=unknown[1],
                    )
                    continue
                if key not in to_insert:
                    to_insert[key] = item

            inserted: dict[tuple[int, int, str], int] = {}
            if to_insert:
                dialect = postgresql if uow.dialect == "postgresql" else sqlite
                rows = [_order_row(item, key[1], now) for key, item in to_insert.items()]
                for order_id, tenant_id, channel_id, external_id in session.execute(
                    dialect.insert(Order)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["tenant_id", "channel_id", "external_id"])
                    .returning(Order.id, Order.tenant_id, Order.channel_id, Order.external_id)
                ):
                    inserted[(tenant_id, channel_id, external_id)] = order_id
            # Committed meanwhile by another process: answered with that order, like a repeat.
            late = _existing(session, set(to_insert) - set(inserted))

            views: dict[tuple[int, int, str], dict[str, Any]] = {}
            if inserted:
                views = _write_children(session, to_insert, inserted, channels, sku_ids, components, now)
                uow.wake_allocator = True
            uow.commit()

        for index, item in enumerate(batch):
            if index in outcomes:
                continue
            key = (item.caller.tenant_id, channels[(item.caller.tenant_id, item.new.channel)], item.new.external_id)
            if key in inserted and to_insert[key] is item:
                outcomes[index] = Captured(inserted[key], created=True, view=views[key])
            else:
                outcomes[index] = Captured(inserted.get(key) or late[key], created=False)
        for index, item in enumerate(batch):
            outcome = outcomes[index]
            if isinstance(outcome, Captured):
                item.result = outcome
            else:
                item.error = outcome
            item.done = True


def _existing(session: Any, keys: set[tuple[int, int, str]]) -> dict[tuple[int, int, str], int]:
    if not keys:
        return {}
    return {
        (tenant_id, channel_id, external_id): order_id
        for order_id, tenant_id, channel_id, external_id in session.execute(
            select(Order.id, Order.tenant_id, Order.channel_id, Order.external_id).where(
                tuple_(Order.tenant_id, Order.channel_id, Order.external_id).in_(sorted(keys))
            )
        )
    }


def _order_row(item: _Pending, channel_id: int, now: Any) -> dict[str, Any]:
    new = item.new
    return {
        "tenant_id": item.caller.tenant_id,
        "channel_id": channel_id,
        "external_id": new.external_id,
        "status": OrderStatus.PENDING.value,
        "currency": new.currency.upper(),
        "total_amount": _money(sum((line.unit_price * line.quantity for line in new.lines), Decimal(0))),
        "shipping_address": new.shipping_address,
        "placed_at": new.placed_at or now,
        "ship_by": new.ship_by,
        "tags": sorted(set(new.tags)) or None,
        "needs_allocation": True,
        "avoid_locations": None,
        "hold_reason": None,
        "created_at": now,
        "updated_at": now,
    }


def _write_children(
    session: Any,
    to_insert: dict[tuple[int, int, str], _Pending],
    inserted: dict[tuple[int, int, str], int],
    channels: dict[tuple[int, str], int],
    sku_ids: dict[tuple[int, str], int],
    components: dict[int, dict[str, int]],
    now: Any,
) -> dict[tuple[int, int, str], dict[str, Any]]:
    """Lines, ``created`` events and outbox messages of the orders just inserted; their views."""
    channel_codes = {channel_id: code for (_, code), channel_id in channels.items()}
    line_rows: list[dict[str, Any]] = []
    charge_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    orders: dict[tuple[int, int, str], Order] = {}
    for key, order_id in inserted.items():
        item = to_insert[key]
        tenant_id = item.caller.tenant_id
        order = Order(id=order_id, **_order_row(item, key[1], now))
        orders[key] = order
        for number, line in enumerate(item.new.lines, start=1):
            sku_id = sku_ids[(tenant_id, line.sku)]
            line_rows.append(
                {
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "line_number": number,
                    "sku_id": sku_id,
                    "quantity": line.quantity,
                    "unit_price": _money(line.unit_price),
                    "cancelled_quantity": 0,
                    "components": components.get(sku_id) or {str(sku_id): 1},
                }
            )
        if item.new.discount or item.new.shipping_fee:  # as capture_order stores them, for refunds
            charge_rows.append(
                {
                    "tenant_id": tenant_id,
                    "order_id": order_id,
                    "discount": _money(item.new.discount),
                    "shipping_fee": _money(item.new.shipping_fee),
                }
            )
        # As order_history.record writes a "created" event: the audit row and its outbox message.
        data = {"channel": channel_codes[key[1]], "lines": len(item.new.lines)}
        event_rows.append(
            {
                "tenant_id": tenant_id,
                "order_id": order_id,
                "type": "created",
                "from_status": None,
                "to_status": OrderStatus.PENDING.value,
                "actor": item.caller.actor,
                "reason": None,
                "data": data,
                "created_at": now,
            }
        )
        outbox.append(
            session,
            tenant_id=tenant_id,
            aggregate_type="order",
            aggregate_id=str(order_id),
            event_type="order.created",
            payload={
                "order_id": order_id,
                "channel_id": key[1],
                "external_id": order.external_id,
                "status": OrderStatus.PENDING.value,
                "from_status": None,
                "reason": None,
                **data,
            },
        )
    session.execute(insert(OrderLine), line_rows)
    if charge_rows:
        session.execute(insert(OrderCharges), charge_rows)
    event_ids = {
        order_id: event_id
        for event_id, order_id in session.execute(
            insert(OrderEvent).returning(OrderEvent.id, OrderEvent.order_id, sort_by_parameter_order=True), event_rows
        )
    }
    session.flush()  # the outbox messages
    lines_by_order: dict[int, list[OrderLine]] = defaultdict(list)
    for row in line_rows:
        lines_by_order[row["order_id"]].append(OrderLine(**row))
    events = {row["order_id"]: OrderEvent(id=event_ids[row["order_id"]], **row) for row in event_rows}
    sku_codes: dict[int, dict[int, str]] = defaultdict(dict)
    for (tenant_id, code), sku_id in sku_ids.items():
        sku_codes[tenant_id][sku_id] = code
    views = {}
    for key, order in orders.items():
        views[key] = build_order_view(
            order,
            channel_code=channel_codes[key[1]],
            lines=lines_by_order[order.id],
            sku_codes=sku_codes[key[0]],
            allocations={},
            location_codes={},
            shipments=[],
            events=[events[order.id]],
        )
    return views
