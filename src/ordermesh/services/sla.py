"""SLA policies per channel, every open order's ship-by and SLA state, the monitor that acts on
them, and the board.

The monitor (a periodic worker job) reads every open order, fixes its ship-by on first sight (the
marketplace's deadline, or the channel rule on the calendar of the node it is assigned to, else the
policy's own time zone, country and closed days), forecasts its node's handover (next cut-off plus
one working day per full day of backlog ahead of it), and when the state changes acts per policy:
at risk -> reroute off a node that cannot make it, release at once / re-queue (raise priority),
``order.sla_at_risk``; breached -> ``order.sla_breached``, cancel the unshipped rest (sla_breach).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from ordermesh.adapters.store.locks import lock_order
from ordermesh.adapters.store.tables import Allocation, Channel, Location, Order
from ordermesh.adapters.store.tables_sla_returns import OrderSla, SlaPolicy
from ordermesh.adapters.store.types import utcnow
from ordermesh.domain.errors import InvalidInput, NotFound, OrdermeshError
from ordermesh.domain.lifecycle import AWAITING_STOCK, OrderStatus
from ordermesh.domain.routing import MONDAY_TO_SATURDAY, NodeCalendar
from ordermesh.domain.routing.calendar import next_handover
from ordermesh.domain.sla import ShipBySource, SlaActions, SlaRule, SlaState, evaluate, forecast_handover, rule_ship_by
from ordermesh.services import order_history, orders
from ordermesh.services.fulfilment import release_allocated
from ordermesh.services.order_state import OrderState
from ordermesh.services.routing_inputs import node_of, public_holidays
from ordermesh.services.stock_ledger import StockLedger, level_of
from ordermesh.services.unit_of_work import Caller, UnitOfWork

ACTOR = "worker:sla"
log = logging.getLogger("ordermesh.sla")
# Orders whose deadline still matters: nothing of them has left, or only part of it.
OPEN = frozenset(
    {
        OrderStatus.PENDING,
        OrderStatus.ON_HOLD,
        OrderStatus.BACKORDERED,
        OrderStatus.PARTIALLY_ALLOCATED,
        OrderStatus.ALLOCATED,
        OrderStatus.RELEASED,
        OrderStatus.PARTIALLY_SHIPPED,
    }
)
OPEN_VALUES = sorted(status.value for status in OPEN)


@dataclass(frozen=True, slots=True)
class ChannelSla:
    """A channel's policy: the rule, and the calendar used before an order has a node."""

    rule: SlaRule = field(default_factory=SlaRule)
    time_zone: str = "UTC"
    country: str | None = None  # public holidays of this country (the node's country once assigned)
    working_weekdays: frozenset[int] = MONDAY_TO_SATURDAY
    closed_dates: frozenset[date] = frozenset()  # the tenant's own closed days

    def calendar(self, location: Location | None, now: datetime) -> NodeCalendar:
        """Working days for the rule: the node's (its zone, weekdays, closed days and country's
        holidays) when known, else the policy's; the tenant's closed days count in both."""
        if location is not None:
            node = node_of(location, now)
            if node.calendar is not None:
                return NodeCalendar(
                    time_zone=node.calendar.time_zone,
                    cutoff=self.rule.cutoff,
                    working_weekdays=node.calendar.working_weekdays,
                    closed_dates=node.calendar.closed_dates | self.closed_dates,
                )
        closed = set(self.closed_dates)
        if self.country:
            for year in (now.year - 1, now.year, now.year + 1):
                closed |= public_holidays(self.country, year)
        return NodeCalendar(self.time_zone, self.rule.cutoff, self.working_weekdays, frozenset(closed))

    def to_dict(self) -> dict[str, Any]:
        actions = self.rule.actions
        return {
            "handling_days": self.rule.handling_days,
            "cutoff": self.rule.cutoff.strftime("%H:%M"),
            "deadline": self.rule.deadline.strftime("%H:%M"),
            "at_risk_share": self.rule.at_risk_share,
            "use_marketplace_ship_by": self.rule.use_marketplace_ship_by,
            "time_zone": self.time_zone,
            "country": self.country,
            "working_weekdays": sorted(self.working_weekdays),
            "closed_dates": sorted(day.isoformat() for day in self.closed_dates),
            "actions": {
                "raise_priority": actions.raise_priority,
                "reroute": actions.reroute,
                "notify": actions.notify,
                "auto_cancel": actions.auto_cancel,
            },
        }


def parse_policy(definition: dict[str, Any]) -> ChannelSla:
    """A policy from its JSON shape (see ``ChannelSla.to_dict``); missing fields take the defaults."""
    default = ChannelSla()
    try:
        actions = SlaActions(**definition.get("actions", {}))
        rule = SlaRule(
            handling_days=int(definition.get("handling_days", default.rule.handling_days)),
            cutoff=time.fromisoformat(definition.get("cutoff", "14:00")),
            deadline=time.fromisoformat(definition.get("deadline", "23:59")),
            at_risk_share=float(definition.get("at_risk_share", default.rule.at_risk_share)),
            use_marketplace_ship_by=bool(definition.get("use_marketplace_ship_by", True)),
            actions=actions,
        )
        policy = ChannelSla(
            rule=rule,
            time_zone=definition.get("time_zone", "UTC"),
            country=definition.get("country"),
            working_weekdays=frozenset(definition.get("working_weekdays", sorted(MONDAY_TO_SATURDAY))),
            closed_dates=frozenset(date.fromisoformat(day) for day in definition.get("closed_dates", ())),
        )
        NodeCalendar(policy.time_zone, rule.cutoff, policy.working_weekdays)  # validates zone and weekdays
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"invalid SLA policy: {error}", code="invalid_sla_policy") from None
    return policy


def put_policy(uow: UnitOfWork, caller: Caller, channel: str, definition: dict[str, Any]) -> dict[str, Any]:
    policy = parse_policy(definition)
    with uow:
        session = uow.session
        if (
            session.scalar(select(Channel.id).where(Channel.tenant_id == caller.tenant_id, Channel.code == channel))
            is None
        ):
            raise NotFound(f"no channel {channel!r}", code="channel_not_found")
        row = session.scalar(
            select(SlaPolicy)
            .where(SlaPolicy.tenant_id == caller.tenant_id, SlaPolicy.channel_code == channel)
            .with_for_update()
        )
        if row is None:
            row = SlaPolicy(tenant_id=caller.tenant_id, channel_code=channel)
            session.add(row)
        row.definition, row.actor, row.updated_at = policy.to_dict(), caller.actor, utcnow()
        uow.record_result("sla_policy", channel)
        uow.commit()
        return {"channel": channel, **policy.to_dict(), "updated_at": row.updated_at}


def get_policy(uow: UnitOfWork, caller: Caller, channel: str) -> dict[str, Any]:
    with uow:
        session = uow.session
        if (
            session.scalar(select(Channel.id).where(Channel.tenant_id == caller.tenant_id, Channel.code == channel))
            is None
        ):
            raise NotFound(f"no channel {channel!r}", code="channel_not_found")
        row = session.scalar(
            select(SlaPolicy).where(SlaPolicy.tenant_id == caller.tenant_id, SlaPolicy.channel_code == channel)
        )
        policy = parse_policy(row.definition) if row else ChannelSla()
        return {"channel": channel, **policy.to_dict(), "updated_at": row.updated_at if row else None}


# -- the monitor -----------------------------------------------------------------------------------


@dataclass
class MonitorReport:
    evaluated: int = 0
    by_state: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    notified: int = 0
    released: int = 0
    requeued: int = 0
    rerouted: int = 0
    cancelled: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class _Verdict:
    order_id: int
    tenant_id: int
    ship_by: datetime
    source: ShipBySource
    state: SlaState
    location_id: int | None
    handover: datetime | None
    previous: SlaState | None


def run_monitor(uow: UnitOfWork, *, now: datetime | None = None, limit: int = 5000) -> MonitorReport:
    """One pass over open orders (oldest deadline first, up to ``limit``). Writes only what changed,
    each order in its own transaction (so one order's trouble never blocks the rest)."""
    now = now or utcnow()
    report = MonitorReport()
    verdicts, policies = _evaluate_all(uow, now, limit)
    quiet = []
    for verdict in verdicts:
        report.evaluated += 1
        report.by_state[verdict.state.value] += 1
        if verdict.previous is verdict.state:
            continue
        if verdict.state is SlaState.ON_TRACK:
            quiet.append(verdict)  # nothing to do but remember it: all of them in one transaction
        else:
            try:
                _act(uow, verdict, policies[(verdict.tenant_id, verdict.order_id)], now, report)
            except OrdermeshError as error:  # one order's trouble never stops the pass; retried next pass
                report.failed += 1
                log.warning("SLA action on order %s failed: %s", verdict.order_id, error)
    if quiet:
        _remember(uow, quiet, now)
    with uow:  # orders that shipped, were cancelled or completed leave the board
        uow.session.execute(
            update(OrderSla)
            .where(
                OrderSla.is_open.is_(True),
                OrderSla.order_id.in_(select(Order.id).where(Order.status.not_in(OPEN_VALUES))),
            )
            .values(is_open=False)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
    return report


def _evaluate_all(
    uow: UnitOfWork, now: datetime, limit: int
) -> tuple[list[_Verdict], dict[tuple[int, int], ChannelSla]]:
    with uow:
        session = uow.session
        open_orders = session.execute(
            select(Order, OrderSla, Channel.code)
            .join(Channel, Channel.id == Order.channel_id)
            .outerjoin(OrderSla, OrderSla.order_id == Order.id)
            .where(Order.status.in_(OPEN_VALUES))
            .order_by(OrderSla.ship_by.asc().nulls_first(), Order.id)
            .limit(limit)
        ).all()
        if not open_orders:
            return [], {}
        tenants = {order.tenant_id for order, _, _ in open_orders}
        policies = {
            (row.tenant_id, row.channel_code): parse_policy(row.definition)
            for row in session.scalars(select(SlaPolicy).where(SlaPolicy.tenant_id.in_(tenants)))
        }
        locations = {row.id: row for row in session.scalars(select(Location).where(Location.tenant_id.in_(tenants)))}
        node_by_location = {location_id: node_of(location, now) for location_id, location in locations.items()}
        waiting_at = _nodes_waited_on(session, [order.id for order, _, _ in open_orders])
        # First pass: every order's deadline, so backlogs can be ordered by it.
        deadlines: dict[int, tuple[datetime, ShipBySource]] = {}
        chosen: dict[tuple[int, int], ChannelSla] = {}
        for order, sla, channel in open_orders:
            policy = policies.get((order.tenant_id, channel), ChannelSla())
            chosen[(order.tenant_id, order.id)] = policy
            if sla is not None:
                deadlines[order.id] = (sla.ship_by, ShipBySource(sla.source))
            elif order.ship_by is not None and policy.rule.use_marketplace_ship_by:
                deadlines[order.id] = (order.ship_by, ShipBySource.MARKETPLACE)
            else:
                node = locations.get(min(waiting_at.get(order.id, [0]))) if waiting_at.get(order.id) else None
                calendar = policy.calendar(node, now)
                deadlines[order.id] = (rule_ship_by(policy.rule, calendar, order.placed_at), ShipBySource.RULE)
        queue: dict[int, list[datetime]] = defaultdict(list)  # location -> deadlines of orders waiting there
        for order_id, nodes in waiting_at.items():
            for location_id in nodes:
                queue[location_id].append(deadlines[order_id][0])
        verdicts = []
        for order, sla, _ in open_orders:
            ship_by, source = deadlines[order.id]
            policy = chosen[(order.tenant_id, order.id)]
            # The node that will be latest decides (one that never hands over is latest of all).
            forecasts: list[tuple[datetime | None, int]] = []
            for location_id in sorted(waiting_at.get(order.id, ())):
                location, node = locations[location_id], node_by_location[location_id]
                ahead = sum(1 for other in queue[location_id] if other < ship_by)
                backlog_days = ahead // location.daily_capacity if location.daily_capacity else 0
                handover = forecast_handover(node.calendar, now, backlog_days) if node.active else None
                forecasts.append((handover, location_id))
            node_known = bool(forecasts)
            worst: tuple[datetime | None, int | None] = (None, None)
            if forecasts:
                never = [f for f in forecasts if f[0] is None]
                worst = never[0] if never else max(forecasts, key=lambda f: (f[0], f[1]))
            state = evaluate(
                policy.rule,
                placed_at=order.placed_at,
                ship_by=ship_by,
                now=now,
                handover=worst[0],
                node_known=node_known,
            )
            previous = SlaState(sla.state) if sla is not None else None
            verdicts.append(_Verdict(order.id, order.tenant_id, ship_by, source, state, worst[1], worst[0], previous))
        return verdicts, chosen


def _nodes_waited_on(session: Session, order_ids: list[int]) -> dict[int, set[int]]:
    """Locations holding units of each order that have not shipped yet."""
    found: dict[int, set[int]] = defaultdict(set)
    for order_id, location_id in session.execute(
        select(Allocation.order_id, Allocation.location_id)
        .where(Allocation.order_id.in_(order_ids), Allocation.quantity > 0)
        .distinct()
    ):
        found[order_id].add(location_id)
    return found


def _remember(uow: UnitOfWork, verdicts: list[_Verdict], now: datetime) -> None:
    """Store on-track verdicts (no action needed) in one transaction; a first deadline also becomes
    the order's ship-by when it had none, so the allocator serves it by its deadline."""
    with uow:
        session = uow.session
        known = sla_of(session, [v.order_id for v in verdicts])
        for verdict in verdicts:
            row = known.get(verdict.order_id)
            if row is None:
                row = OrderSla(order_id=verdict.order_id, tenant_id=verdict.tenant_id, ship_by=verdict.ship_by)
                session.add(row)
            row.source, row.state = verdict.source.value, verdict.state.value
            row.location_id, row.forecast_handover = verdict.location_id, verdict.handover
            row.is_open, row.evaluated_at = True, now
        fresh = [v for v in verdicts if v.order_id not in known]
        if fresh:
            session.flush()
            orders_table = cast(Table, Order.__table__)
            session.connection().execute(
                update(orders_table)
                .where(orders_table.c.id == bindparam("order_id"), orders_table.c.ship_by.is_(None))
                .values(ship_by=bindparam("deadline")),
                [{"order_id": v.order_id, "deadline": v.ship_by} for v in fresh],
            )
        uow.commit()


def _act(uow: UnitOfWork, verdict: _Verdict, policy: ChannelSla, now: datetime, report: MonitorReport) -> None:
    actions = policy.rule.actions
    with uow:
        session = uow.session
        order = lock_order(session, verdict.tenant_id, verdict.order_id)
        if order is None or OrderStatus(order.status) not in OPEN:
            return
        row = session.get(OrderSla, order.id, with_for_update=True)
        if row is None:
            row = OrderSla(order_id=order.id, tenant_id=order.tenant_id, ship_by=verdict.ship_by)
            session.add(row)
            if order.ship_by is None:
                order.ship_by = verdict.ship_by  # the allocator serves the earliest deadline first
        elif row.state == verdict.state.value:
            return  # another monitor got here first
        row.source, row.state = verdict.source.value, verdict.state.value
        row.location_id, row.forecast_handover = verdict.location_id, verdict.handover
        row.is_open, row.evaluated_at = True, now
        data = {
            "ship_by": verdict.ship_by.isoformat(),
            "source": verdict.source.value,
            "location_id": verdict.location_id,
            "forecast_handover": verdict.handover.isoformat() if verdict.handover else None,
        }
        caller = Caller(order.tenant_id, "system", ACTOR)
        if verdict.state is SlaState.AT_RISK:
            rerouted = actions.reroute and _reroute(session, order, verdict, now)
            report.rerouted += int(rerouted)
            if actions.raise_priority and not rerouted:
                status = OrderStatus(order.status)
                if status is OrderStatus.ALLOCATED:
                    release_allocated(session, order, ACTOR)
                    report.released += 1
                elif status in AWAITING_STOCK and not order.needs_allocation:
                    order.needs_allocation = True
                    uow.wake_allocator = True
                    report.requeued += 1
            if actions.notify:
                order_history.record(session, order, "sla_at_risk", ACTOR, reason="ship-by at risk", data=data)
                report.notified += 1
        elif verdict.state is SlaState.BREACHED:
            if actions.notify:
                order_history.record(session, order, "sla_breached", ACTOR, reason="ship-by passed", data=data)
                report.notified += 1
            if actions.auto_cancel:
                request = orders.CancelRequest(orders.CancelReason.SLA_BREACH, "ship-by passed; the policy cancels")
                outcome = orders.cancel_locked(uow, caller, order, request)
                report.cancelled += sum(outcome.units.values())
        uow.commit()


def _reroute(session: Session, order: Order, verdict: _Verdict, now: datetime) -> bool:
    """Take the order's unreleased reservations back from a node that cannot hand over by ship-by,
    when another active node still can; the allocator then routes them (never to that node)."""
    late = verdict.location_id
    if late is None or (verdict.handover is not None and verdict.handover <= verdict.ship_by):
        return False
    others = session.scalars(
        select(Location).where(Location.tenant_id == order.tenant_id, Location.id != late, Location.active.is_(True))
    ).all()
    if not any(_can_make_it(location, verdict.ship_by, now) for location in others):
        return False
    state = OrderState.load(session, order)
    mine = [a for a in state.allocations if a.location_id == late and a.quantity > 0 and a.shipment_id is None]
    if not mine:
        return False
    lines = {line.id: line for line in state.lines}
    ledger = StockLedger(session, order.tenant_id, ACTOR)
    ledger.lock((late, int(sku_id)) for a in mine for sku_id in lines[a.order_line_id].components)
    for allocation in mine:
        for sku_id, per_unit in lines[allocation.order_line_id].components.items():
            key = (late, int(sku_id))
            movement = level_of(ledger.levels[key]).release(allocation.quantity * per_unit)
            ledger.apply(key, movement, reference=f"order:{order.id}", note="SLA: node cannot make ship-by")
        allocation.quantity = 0
    order.avoid_locations = sorted({*(order.avoid_locations or ()), late})
    order_history.record(
        session,
        order,
        "rerouted",
        ACTOR,
        reason="SLA: node cannot hand over before ship-by",
        data={"location_id": late},
    )
    state.resync_status(session, ACTOR, reason="SLA reroute")
    order.needs_allocation = True
    ledger.finish()
    return True


def _can_make_it(location: Location, ship_by: datetime, now: datetime) -> bool:
    handover = next_handover(node_of(location, now).calendar, now)
    return handover is not None and handover.astimezone(UTC) <= ship_by


# -- reading ---------------------------------------------------------------------------------------


def sla_of(session: Session, order_ids: list[int]) -> dict[int, OrderSla]:
    return {row.order_id: row for row in session.scalars(select(OrderSla).where(OrderSla.order_id.in_(order_ids)))}


def board(
    uow: UnitOfWork, caller: Caller, *, channel: str | None = None, location: str | None = None, limit: int = 50
) -> dict[str, Any]:
    """Open orders' SLA states: counts by channel and node, and the at-risk and breached orders,
    soonest deadline first."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be 1 to 500", field="limit")
    with uow:
        session = uow.session
        query = (
            select(OrderSla, Order.external_id, Order.status, Channel.code, Location.code)
            .join(Order, Order.id == OrderSla.order_id)
            .join(Channel, Channel.id == Order.channel_id)
            .outerjoin(Location, Location.id == OrderSla.location_id)
            .where(OrderSla.tenant_id == caller.tenant_id, OrderSla.is_open.is_(True))
            .order_by(OrderSla.ship_by, OrderSla.order_id)
        )
        if channel:
            query = query.where(Channel.code == channel)
        if location:
            query = query.where(Location.code == location)
        rows = session.execute(query).all()
        empty = {state.value: 0 for state in SlaState}
        counts = dict(empty)
        by_channel: dict[str, dict[str, int]] = defaultdict(lambda: dict(empty))
        by_node: dict[str, dict[str, int]] = defaultdict(lambda: dict(empty))
        lists: dict[str, list[dict[str, Any]]] = {SlaState.AT_RISK.value: [], SlaState.BREACHED.value: []}
        for sla, external_id, status, channel_code, location_code in rows:
            counts[sla.state] += 1
            by_channel[channel_code][sla.state] += 1
            by_node[location_code or "unassigned"][sla.state] += 1
            if sla.state in lists and len(lists[sla.state]) < limit:
                lists[sla.state].append(
                    {
                        "order_id": sla.order_id,
                        "external_id": external_id,
                        "status": status,
                        "channel": channel_code,
                        "location": location_code,
                        "ship_by": sla.ship_by,
                        "forecast_handover": sla.forecast_handover,
                        "state": sla.state,
                    }
                )
        return {
            "counts": counts,
            "by_channel": [{"channel": code, **c} for code, c in sorted(by_channel.items())],
            "by_node": [{"location": code, **c} for code, c in sorted(by_node.items())],
            "at_risk": lists[SlaState.AT_RISK.value],
            "breached": lists[SlaState.BREACHED.value],
        }
