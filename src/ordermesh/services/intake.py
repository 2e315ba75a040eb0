"""Group-committed order intake: concurrent captures share one transaction.

Under a flash sale hundreds of requests arrive at once, and ``orders.capture_order`` would give
each its own read transaction, its own write transaction and its own commit (a disk flush). Here a
request hands its order to the process's ``GroupCommitter`` and waits; a few writer
threads each take every order queued so far and write them together:

- one query each for the batch's channels, SKUs and bundle components;
- one ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` for the orders (a repeat comes back as
  nothing, and only then is the stored order looked up), one statement each for their lines,
  their ``created`` events and their outbox messages (``adapters/store/bulk.py``), one allocator
  wake-up, one commit.

Each caller is answered only after the commit that holds its order. The outcome per order is the
same as ``capture_order``'s: a new order (201 with its view), the order already stored for that
(channel, external id) (``created=False``), or the same ``InvalidInput`` for an unknown channel
or SKU, which fails that order only. If the group's transaction fails as a whole (a value the
database refuses, a lost connection), every order in it is retried alone through
``capture_order``, so one bad order never fails the others.

Why writer threads rather than leader election among request threads: an async route awaits its
future without holding a thread (no worker-thread hop per request), and a finished group wakes
its own callers with one call into their event loop instead of waking every waiting thread
(measured in the flash-sale profile: thread hops and wake-ups cost more CPU than the group's SQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from ordermesh.adapters.store.bulk import any_of, detached_row, insert_rows, table_of
from ordermesh.adapters.store.tables import Channel, Order, OrderEvent, OrderLine, Sku, SkuComponent
from ordermesh.adapters.store.tables_sla_returns import OrderCharges
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput
from ordermesh.domain.lifecycle import OrderStatus
from ordermesh.services import outbox
from ordermesh.services.order_views import build_order_view
from ordermesh.services.orders import Captured, NewOrder, _check_order, _money, capture_order
from ordermesh.services.unit_of_work import Caller, UnitOfWork

ORDERS, CHANNELS, SKUS, COMPONENTS = table_of(Order), table_of(Channel), table_of(Sku), table_of(SkuComponent)
OrderKey = tuple[int, int, str]  # (tenant id, channel id, external id): what makes an order the same order


@dataclass(eq=False, slots=True)
class _Pending:
    caller: Caller
    new: NewOrder
    result: Captured | None = None
    error: BaseException | None = None
    done: bool = False
    # Who waits: a blocking caller's event, or an async caller's future on its event loop.
    event: threading.Event | None = None
    future: asyncio.Future[Captured] | None = None
    abandoned: bool = False  # the async caller went away before its group began


class GroupCommitter:
    """One per process. ``capture`` (blocking) and ``capture_async`` return once committed.

    ``leaders``: writer threads, so one group can be written while the next gathers;
    ``max_batch``: the most orders in one transaction."""

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
        self._waiting: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False
        # What happened, for tests and metrics: groups written and orders in them.
        self.groups = 0
        self.grouped_orders = 0
        self.fallbacks = 0
        self._channel_ids: dict[tuple[int, str], int] = {}  # see _channels

    def _channels(self, session: Any, codes: dict[int, set[str]]) -> dict[tuple[int, str], int]:
        """(tenant, code) -> id of the channels with those codes. Channels are never deleted and
        never change code, so an id once found stays right: each is read once per process."""
        missing = {
            tenant_id: sorted(code for code in wanted if (tenant_id, code) not in self._channel_ids)
            for tenant_id, wanted in codes.items()
        }
        connection = session.connection()
        for tenant_id, wanted in sorted(missing.items()):
            if wanted:
                query = select(CHANNELS.c.id, CHANNELS.c.code).where(
                    CHANNELS.c.tenant_id == tenant_id, any_of(session, CHANNELS.c.code, wanted)
                )
                for channel_id, code in connection.execute(query):
                    self._channel_ids[(tenant_id, code)] = channel_id
        return {
            (tenant_id, code): self._channel_ids[(tenant_id, code)]
            for tenant_id, wanted in codes.items()
            for code in wanted
            if (tenant_id, code) in self._channel_ids
        }

    def _submit(self, item: _Pending) -> None:
        _check_order(item.new)  # malformed orders never join a group
        with self._cond:
            if self._closed:
                raise RuntimeError("order intake is closed")
            self._waiting.append(item)
            if len(self._threads) < self.leaders:
                self._start_writer()
            self._cond.notify()

    def capture(self, caller: Caller, new: NewOrder) -> Captured:
        item = _Pending(caller, new, event=threading.Event())
        self._submit(item)
        assert item.event is not None
        item.event.wait()
        return _outcome(item)

    async def capture_async(self, caller: Caller, new: NewOrder) -> Captured:
        item = _Pending(caller, new, future=asyncio.get_running_loop().create_future())
        self._submit(item)
        assert item.future is not None
        try:
            return await item.future
        except asyncio.CancelledError:
            item.abandoned = True
            raise

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in list(self._threads):
            thread.join(timeout)

    def _serve(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._waiting and not self._closed:
                        self._cond.wait()
                    if not self._waiting:
                        return
                    batch = [self._waiting.popleft() for _ in range(min(self.max_batch, len(self._waiting)))]
                # A caller that gave up before its group began (a client that went away) is not written.
                batch = [item for item in batch if not item.abandoned]
                if batch:
                    self._run(batch)  # answers every caller in the batch, whatever happens
        finally:
            # Should this thread ever die, the next capture starts another instead of waiting forever.
            with self._cond:
                self._threads.remove(threading.current_thread())
                if self._waiting and not self._closed:
                    self._start_writer()

    def _start_writer(self) -> None:
        """Start one more writer thread (call with ``_cond`` held)."""
        thread = threading.Thread(target=self._serve, name="intake-writer", daemon=True)
        self._threads.append(thread)
        thread.start()

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
            _wake(batch)

    def _write(self, batch: Sequence[_Pending]) -> None:
        """All of ``batch`` in one transaction. Sets each item's result or error only once it is
        committed (an exception before that leaves every item undecided for the fallback)."""
        outcomes: dict[int, Captured | BaseException] = {}
        uow = self._uow()
        with uow:
            session = uow.session
            # Looked up per tenant by code (a group is nearly always one tenant): a row-value IN
            # list of (tenant, code) pairs was planned as a scan of the catalogue, 3-8 ms a group.
            # The lookups were a third of the writer's CPU in a steady profile, so channels are
            # remembered and a SKU's id and bundle components come back in one statement.
            channel_codes: dict[int, set[str]] = defaultdict(set)
            sku_codes: dict[int, set[str]] = defaultdict(set)
            for item in batch:
                channel_codes[item.caller.tenant_id].add(item.new.channel)
                sku_codes[item.caller.tenant_id].update(line.sku for line in item.new.lines)
            channels = self._channels(session, channel_codes)
            sku_ids, components = _skus(session, sku_codes)

            now = utcnow()
            to_insert: dict[OrderKey, _Pending] = {}
            unknown_sku: dict[int, tuple[OrderKey, InvalidInput]] = {}
            for index, item in enumerate(batch):
                tenant_id, new = item.caller.tenant_id, item.new
                channel_id = channels.get((tenant_id, new.channel))
                if channel_id is None:
                    outcomes[index] = InvalidInput(
                        f"unknown channel {new.channel!r}", code="unknown_channel", field="channel"
                    )
                    continue
                unknown = next(
                    ((n, line.sku) for n, line in enumerate(new.lines) if (tenant_id, line.sku) not in sku_ids), None
                )
                key = (tenant_id, channel_id, new.external_id)
                if unknown is not None:
                    # Unless the order is stored already (a repeat answers with it, as capture_order does).
                    unknown_sku[index] = (
                        key,
                        InvalidInput(
                            f"unknown SKU {unknown[1]!r}",
                            code="unknown_sku",
                            field=f"lines.{unknown[0]}.sku",
                            sku=unknown[1],
                        ),
                    )
                    continue
                to_insert.setdefault(key, item)

            inserted: dict[OrderKey, int] = {}
            order_rows = {key: _order_row(item, key[1], now) for key, item in to_insert.items()}
            if order_rows:
                for order_id, tenant_id, channel_id, external_id in insert_rows(
                    session,
                    ORDERS,
                    list(order_rows.values()),
                    returning=("id", "tenant_id", "channel_id", "external_id"),
                    skip_conflicts_on=("tenant_id", "channel_id", "external_id"),
                ):
                    inserted[(tenant_id, channel_id, external_id)] = order_id
            # Stored before (a repeat), or committed meanwhile by another process: answered with that order.
            stored = _existing(session, (set(to_insert) - set(inserted)) | {key for key, _ in unknown_sku.values()})
            for index, (key, error) in unknown_sku.items():
                outcomes[index] = Captured(stored[key], created=False) if key in stored else error

            views: dict[OrderKey, dict[str, Any]] = {}
            if inserted:
                views = _write_children(session, to_insert, order_rows, inserted, channels, sku_ids, components, now)
                uow.wake_allocator = True
            uow.commit()

        for index, item in enumerate(batch):
            if index in outcomes:
                continue
            key = (item.caller.tenant_id, channels[(item.caller.tenant_id, item.new.channel)], item.new.external_id)
            if key in inserted and to_insert[key] is item:
                outcomes[index] = Captured(inserted[key], created=True, view=views[key])
            else:
                outcomes[index] = Captured(inserted.get(key) or stored[key], created=False)
        for index, item in enumerate(batch):
            outcome = outcomes[index]
            if isinstance(outcome, Captured):
                item.result = outcome
            else:
                item.error = outcome
            item.done = True


def _outcome(item: _Pending) -> Captured:
    if item.error is not None:
        raise item.error
    assert item.result is not None
    return item.result


def _wake(batch: list[_Pending]) -> None:
    """Tell every caller of a finished group: one thread-safe call per event loop for the whole
    group (not one per order), and the event of each blocking caller."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Pending]] = defaultdict(list)
    for item in batch:
        if item.event is not None:
            item.event.set()
        elif item.future is not None:
            by_loop[item.future.get_loop()].append(item)
    for loop, items in by_loop.items():
        with contextlib.suppress(RuntimeError):  # that loop has closed: nobody is left to tell
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[_Pending]) -> None:
    for item in items:
        future = item.future
        if future is None or future.done():  # cancelled meanwhile
            continue
        if item.error is not None:
            future.set_exception(item.error)
        else:
            future.set_result(item.result)  # type: ignore[arg-type]


def _skus(session: Any, codes: dict[int, set[str]]) -> tuple[dict[tuple[int, str], int], dict[int, dict[str, int]]]:
    """(tenant, code) -> id of the SKUs with those codes, and each bundle's components as captured
    lines store them (component id as text -> units per bundle). One statement per tenant."""
    ids: dict[tuple[int, str], int] = {}
    components: dict[int, dict[str, int]] = defaultdict(dict)
    connection = session.connection()
    for tenant_id, wanted in sorted(codes.items()):
        query = (
            select(SKUS.c.id, SKUS.c.code, COMPONENTS.c.component_sku_id, COMPONENTS.c.quantity)
            .select_from(SKUS.outerjoin(COMPONENTS, COMPONENTS.c.bundle_sku_id == SKUS.c.id))
            .where(SKUS.c.tenant_id == tenant_id, any_of(session, SKUS.c.code, sorted(wanted)))
        )
        for sku_id, code, component_id, quantity in connection.execute(query):
            ids[(tenant_id, code)] = sku_id
            if component_id is not None:
                components[sku_id][str(component_id)] = quantity
    return ids, components


def _existing(session: Any, keys: set[OrderKey]) -> dict[OrderKey, int]:
    by_channel: dict[tuple[int, int], list[str]] = defaultdict(list)
    for tenant_id, channel_id, external_id in sorted(keys):
        by_channel[(tenant_id, channel_id)].append(external_id)
    return {
        (tenant_id, channel_id, external_id): order_id
        for (tenant_id, channel_id), external_ids in by_channel.items()
        for order_id, external_id in session.execute(
            select(Order.id, Order.external_id).where(
                Order.tenant_id == tenant_id,
                Order.channel_id == channel_id,
                any_of(session, Order.external_id, external_ids),
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
    to_insert: dict[OrderKey, _Pending],
    order_rows: dict[OrderKey, dict[str, Any]],
    inserted: dict[OrderKey, int],
    channels: dict[tuple[int, str], int],
    sku_ids: dict[tuple[int, str], int],
    components: dict[int, dict[str, int]],
    now: Any,
) -> dict[OrderKey, dict[str, Any]]:
    """Lines, charges, ``created`` events and outbox messages of the orders just inserted (one
    statement each); their views, built from the rows in hand."""
    channel_codes = {channel_id: code for (_, code), channel_id in channels.items()}
    line_rows: list[dict[str, Any]] = []
    charge_rows: list[dict[str, Any]] = []
    event_rows: list[dict[str, Any]] = []
    messages: list[outbox.Message] = []
    orders: dict[OrderKey, Order] = {}
    for key, order_id in inserted.items():
        item = to_insert[key]
        tenant_id = item.caller.tenant_id
        order = detached_row(Order, id=order_id, **order_rows[key])
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
        payload = {
            "order_id": order_id,
            "channel_id": key[1],
            "external_id": order.external_id,
            "status": OrderStatus.PENDING.value,
            "from_status": None,
            "reason": None,
            **data,
        }
        messages.append(outbox.Message(tenant_id, "order", str(order_id), "order.created", payload))
    insert_rows(session, table_of(OrderLine), line_rows)
    insert_rows(session, table_of(OrderCharges), charge_rows)
    # One "created" event per order: its id is found by its order's.
    event_ids = {
        order_id: event_id
        for event_id, order_id in insert_rows(session, table_of(OrderEvent), event_rows, returning=("id", "order_id"))
    }
    outbox.append_many(session, messages)
    lines_by_order: dict[int, list[OrderLine]] = defaultdict(list)
    for row in line_rows:
        lines_by_order[row["order_id"]].append(detached_row(OrderLine, id=None, **row))
    events = {row["order_id"]: detached_row(OrderEvent, id=event_ids[row["order_id"]], **row) for row in event_rows}
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
