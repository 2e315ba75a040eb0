"""PostgreSQL's own ceiling for draining a hot-SKU backlog with the facts ordermesh keeps per order.

Part of ``bench/flash.py``'s hot-sku scenario (issue 7 asks for "PostgreSQL's own ceiling on this
machine for the same work"). pgbench's one-row decrement is the ceiling of the row-lock design;
this is the ceiling of the batch design *with ordermesh's per-order facts*: on a copy of the
post-intake database, plain psycopg drains the backlog in batches, one statement per table per
batch, with no routing, no ORM and nothing computed in Python beyond which level serves an order.
Each batch, in one transaction:

- claims the next orders (``FOR UPDATE SKIP LOCKED``, ordermesh's claim order) and their lines;
- locks the SKU's levels and takes units from them, first come first served;
- writes per order what the allocator writes: a routing decision carrying a trace of the size
  ordermesh stores (copied from a decision ordermesh made for this backlog), the status change
  event and, for a served order, the ``allocated`` event, the allocation and the ledger row; an
  outbox message per event and one per level changed; the order's new status;
- writes each level once;

then marks every message due, the orders' ``created`` ones included, delivered (one statement),
as a dispatcher with nothing to call would. ordermesh's drain does all of this plus the routing
engine, leases and subscribers, so this is an upper bound for it, not a competitor.
"""

from __future__ import annotations

import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ACTOR = "floor"


def samples(url: str) -> dict[str, tuple[str, str, str]]:
    """outcome -> (explanation, trace as JSON text, profile name) of one decision ordermesh stored
    for the backlog, so the floor writes rows of the same size."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT DISTINCT ON (outcome) outcome, explanation, trace::text, profile_name"
            " FROM routing_decisions ORDER BY outcome, id"
        ).fetchall()
    return {outcome: (explanation, trace, profile) for outcome, explanation, trace, profile in rows}


def drain(
    url: str, decisions: dict[str, tuple[str, str, str]], *, batch: int = 500, connections: int = 1
) -> dict[str, Any]:
    """Drain every order that needs allocation, with ``connections`` loops at once (each claims
    with SKIP LOCKED, as ordermesh's workers do); orders/s."""
    served_with = next((v for k, v in decisions.items() if k != "none"), None)
    refused_with = decisions.get("none", served_with)
    if served_with is None or refused_with is None:
        raise SystemExit("error: the floor needs a decision ordermesh stored for this backlog to copy")

    def loop(_: int) -> tuple[int, int]:
        orders = batches = 0
        with psycopg.connect(url) as connection:
            while True:
                with connection.transaction():
                    drained = _batch(connection, batch, served_with, refused_with)
                if not drained:
                    return orders, batches
                with connection.transaction():
                    connection.execute(
                        "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = now()"
                        " WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' FOR UPDATE SKIP LOCKED)"
                    )
                orders += drained
                batches += 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="floor") as pool:
        counts = list(pool.map(loop, range(connections)))  # a loop's exception is raised here
    seconds = time.perf_counter() - started
    orders = sum(n for n, _ in counts)
    return {
        "orders": orders,
        "batch": batch,
        "connections": connections,
        "batches": sum(b for _, b in counts),
        "seconds": round(seconds, 2),
        "orders_per_second": round(orders / seconds, 1) if seconds else 0.0,
    }


def _batch(
    connection: psycopg.Connection[Any],
    limit: int,
    served_with: tuple[str, str, str],
    refused_with: tuple[str, str, str],
) -> int:
    claimed = connection.execute(
        "UPDATE orders SET needs_allocation = false WHERE id IN (SELECT id FROM orders WHERE needs_allocation"
        " ORDER BY ship_by NULLS LAST, placed_at, id LIMIT %s FOR UPDATE SKIP LOCKED)"
        " RETURNING id, tenant_id, channel_id, external_id",
        (limit,),
    ).fetchall()
    if not claimed:
        return 0
    claimed.sort()
    tenant = claimed[0][1]
    ids = [row[0] for row in claimed]
    lines = connection.execute(
        "SELECT order_id, id, sku_id, quantity FROM order_lines WHERE order_id = ANY(%s) ORDER BY id", (ids,)
    ).fetchall()
    levels = connection.execute(
        "SELECT id, location_id, sku_id, on_hand - reserved - safety_stock FROM inventory_levels"
        " WHERE sku_id = ANY(%s) ORDER BY id FOR UPDATE",
        (sorted({line[2] for line in lines}),),
    ).fetchall()
    available = {level_id: left for level_id, _, _, left in levels}
    by_sku: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for level_id, location_id, sku_id, _ in levels:
        by_sku[sku_id].append((level_id, location_id))
    # The one decision made in Python: which level serves each line, first come first served.
    rows: dict[str, list[Any]] = defaultdict(list)
    taken: dict[int, int] = defaultdict(int)
    for order_id, line_id, sku_id, quantity in lines:
        location = 0
        for level_id, location_id in by_sku[sku_id]:
            if available[level_id] >= quantity:
                available[level_id] -= quantity
                taken[level_id] += quantity
                location = location_id
                break
        for name, value in (("o", order_id), ("l", line_id), ("s", sku_id), ("q", quantity), ("loc", location)):
            rows[name].append(value)
    arrays = "unnest(%(o)s::bigint[], %(l)s::bigint[], %(s)s::bigint[], %(q)s::int[], %(loc)s::bigint[])"
    given = f"{arrays} AS u(o, l, s, q, loc)"

    def served(loc: str = "loc") -> str:
        return f"{loc} <> 0"

    parameters = dict(rows) | {
        "tenant": tenant,
        "actor": ACTOR,
        "profile": served_with[2],
        "served_reason": served_with[0],
        "served_trace": served_with[1],
        "refused_reason": refused_with[0],
        "refused_trace": refused_with[1],
    }

    def status(loc: str = "loc") -> str:
        return f"CASE WHEN {served(loc)} THEN 'allocated' ELSE 'backordered' END"

    def reason(loc: str = "loc") -> str:
        return f"CASE WHEN {served(loc)} THEN %(served_reason)s ELSE %(refused_reason)s END"

    outcome = f"CASE WHEN {served()} THEN 'single_node' ELSE 'none' END"
    routing = (
        f"jsonb_build_object('outcome', {outcome}, 'profile', %(profile)s || ' v1', 'trace',"
        " '/v1/orders/' || o || '/routing')"
    )
    placed = (
        "jsonb_build_object('allocations', jsonb_build_array("
        "jsonb_build_object('units', q, 'line_number', 1, 'location_id', loc)))"
    )
    execute = connection.execute
    execute(
        "INSERT INTO routing_decisions (tenant_id, order_id, profile_name, profile_version, outcome, explanation,"
        f" trace, created_at) SELECT %(tenant)s, o, %(profile)s, 1, {outcome}, {reason()},"
        f" (CASE WHEN {served()} THEN %(served_trace)s ELSE %(refused_trace)s END)::json, now() FROM {given}",
        parameters,
    )
    execute(
        "INSERT INTO allocations (tenant_id, order_id, order_line_id, location_id, quantity, shipped_quantity,"
        f" created_at) SELECT %(tenant)s, o, l, loc, q, 0, now() FROM {given} WHERE {served()}",
        parameters,
    )
    execute(
        "INSERT INTO inventory_movements (tenant_id, location_id, sku_id, reason, on_hand_delta, reserved_delta,"
        " safety_stock_delta, reference, actor, created_at) SELECT %(tenant)s, loc, s, 'reserve', 0, q, 0,"
        f" 'order:' || o, %(actor)s, now() FROM {given} WHERE {served()}",
        parameters,
    )
    # The served order's "allocated" event, then every order's status change (and their messages).
    events = (
        f"SELECT o, 1 AS k, 'allocated' AS t, NULL AS f, NULL AS st, {routing} || {placed} AS d, loc, q"
        f" FROM {given} WHERE {served()} UNION ALL SELECT o, 2, 'status_changed', 'pending', {status()}, {routing},"
        f" loc, q FROM {given}"
    )
    execute(
        "INSERT INTO order_events (tenant_id, order_id, type, from_status, to_status, actor, reason, data, created_at)"
        f" SELECT %(tenant)s, o, t, f, st, %(actor)s, {reason()}, d, now() FROM ({events}) e ORDER BY o, k",
        parameters,
    )
    execute(
        "INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload, transaction_id, status,"
        " attempts, next_attempt_at, created_at) SELECT %(tenant)s, 'order', e.o::text, 'order.' || e.t,"
        f" e.d || jsonb_build_object('order_id', e.o, 'channel_id', r.channel_id, 'external_id', r.external_id,"
        f" 'status', {status('e.loc')}, 'from_status', 'pending', 'reason',"
        f" {reason('e.loc')}), pg_current_xact_id()::text::bigint, 'pending', 0, now(), now()"
        f" FROM ({events}) e JOIN orders r ON r.id = e.o ORDER BY e.o, e.k",
        parameters,
    )
    execute(f"UPDATE orders SET status = {status()}, updated_at = now() FROM {given} WHERE orders.id = u.o", parameters)
    for level_id, location_id, sku_id, _ in levels:
        if taken[level_id]:
            execute(
                "UPDATE inventory_levels SET reserved = reserved + %s, updated_at = now() WHERE id = %s",
                (taken[level_id], level_id),
            )
            execute(
                "INSERT INTO outbox (tenant_id, aggregate_type, aggregate_id, event_type, payload, transaction_id,"
                " status, attempts, next_attempt_at, created_at) VALUES (%s, 'inventory', %s,"
                " 'inventory.level_changed', %s, pg_current_xact_id()::text::bigint, 'pending', 0, now(), now())",
                (tenant, f"{location_id}:{sku_id}", Jsonb({"location_id": location_id, "sku_id": sku_id})),
            )
    return len(claimed)
