"""Allocation benchmarks (``make bench``).

1. routing: ``route_order`` for one order of 5 lines across 50 nodes, median and p99 per order.
2. drain: a backlog of pending orders for one hot SKU (and, separately, a Zipf mix over many SKUs)
   allocated by the real batch allocator (``allocate_batch``) on SQLite and PostgreSQL, orders/s.

The backlog is inserted with bulk SQL (capture is measured by the HTTP benchmark, not here), then
the clock runs only over allocation. Results go to bench/results/<date>-allocation.json and a
markdown table on stdout (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import func, insert, select

from ordermesh.adapters.store import migrate
from ordermesh.adapters.store.tables import Channel, InventoryLevel, InventoryMovement, Location, Order, OrderLine, Sku
from ordermesh.bootstrap import bootstrap
from ordermesh.config import Settings
from ordermesh.domain.routing import Destination, LineDemand, Node, route_order
from ordermesh.services import allocation, catalog, tenants
from ordermesh.services.unit_of_work import Caller

console = Console(stderr=True)
RESULTS = Path(__file__).parent / "results"
PG_ADMIN = os.environ.get("ORDERMESH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def bench_routing(samples: int = 5000) -> dict[str, float]:
    rng = random.Random(7)
    nodes = [Node(i, f"N{i:02d}", rng.uniform(8, 22), rng.uniform(102, 110)) for i in range(50)]
    skus = list(range(1, 201))
    stock = {(n.id, s): rng.choice((0, 0, 3, 10, 50)) for n in nodes for s in skus}
    timings = []
    for _ in range(samples):
        lines = [LineDemand(i, rng.randint(1, 3), {rng.choice(skus): 1}) for i in range(5)]
        destination = Destination(rng.uniform(8, 22), rng.uniform(102, 110))
        started = time.perf_counter()
        route_order(lines, nodes, stock, destination)
        timings.append(time.perf_counter() - started)
    q = statistics.quantiles(timings, n=100)
    return {"orders": samples, "median_us": statistics.median(timings) * 1e6, "p99_us": q[98] * 1e6}


def _database(backend: str) -> tuple[str, Any]:
    if backend == "sqlite":
        path = Path(tempfile.mkdtemp()) / "bench.db"
        return f"sqlite:///{path}", lambda: None
    name = f"om_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", drop


def bench_drain(backend: str, scenario: str, orders: int, batch: int) -> dict[str, Any]:
    url, cleanup = _database(backend)
    try:
        migrate.upgrade(url)
        app = bootstrap(Settings(database_url=url, allocation_batch_size=batch))
        created = tenants.create_tenant(app.uow(), "bench")
        caller = Caller(created.tenant_id, "admin", "bench")
        sku_count = 1 if scenario == "hot-sku" else 2000
        catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput(f"S{i}", f"SKU {i}") for i in range(sku_count)])
        for code, lat, lon in (("HCM", 10.8, 106.7), ("HAN", 21.0, 105.8), ("DAD", 16.0, 108.2)):
            catalog.upsert_location(app.uow(), caller, code, catalog.LocationInput(code, latitude=lat, longitude=lon))
        with app.uow() as uow:
            locations = uow.session.scalars(select(Location.id).where(Location.tenant_id == caller.tenant_id)).all()
            sku_ids = uow.session.scalars(
                select(Sku.id).where(Sku.tenant_id == caller.tenant_id).order_by(Sku.id)
            ).all()
        units_per_level = (5000 // 3 + 1) if scenario == "hot-sku" else 30
        now = datetime.now(UTC)
        with app.uow() as uow:
            # Opening stock as counts, level and ledger together (as the services would write them).
            uow.session.execute(
                insert(InventoryLevel),
                [
                    {
                        "tenant_id": caller.tenant_id,
                        "location_id": loc,
                        "sku_id": sku,
                        "on_hand": units_per_level,
                        "reserved": 0,
                        "safety_stock": 0,
                        "updated_at": now,
                    }
                    for loc in locations
                    for sku in sku_ids
                ],
            )
            uow.session.execute(
                insert(InventoryMovement),
                [
                    {
                        "tenant_id": caller.tenant_id,
                        "location_id": loc,
                        "sku_id": sku,
                        "reason": "count",
                        "on_hand_delta": units_per_level,
                        "reserved_delta": 0,
                        "safety_stock_delta": 0,
                        "reference": "bench",
                        "actor": "bench",
                        "created_at": now,
                    }
                    for loc in locations
                    for sku in sku_ids
                ],
            )
            uow.commit()
        _insert_backlog(app, caller, sku_ids, orders, scenario)
        started = time.perf_counter()
        processed = 0
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"{backend} {scenario} drain", total=orders)
            while True:
                outcome = allocation.allocate_batch(app.uow(), limit=batch)
                if outcome.claimed == 0:
                    break
                processed += outcome.claimed
                progress.update(task, completed=processed)
        seconds = time.perf_counter() - started
        with app.uow() as uow:
            reserved = uow.session.scalar(select(func.sum(InventoryLevel.reserved)))
            oversold = uow.session.scalar(select(func.count()).where(InventoryLevel.reserved > InventoryLevel.on_hand))
        app.close()
        return {
            "backend": backend,
            "scenario": scenario,
            "orders": orders,
            "batch": batch,
            "seconds": round(seconds, 3),
            "orders_per_second": round(orders / seconds),
            "units_reserved": int(reserved or 0),
            "levels_oversold": int(oversold or 0),
        }
    finally:
        cleanup()


def _insert_backlog(app: Any, caller: Caller, sku_ids: list[int], orders: int, scenario: str) -> None:
    rng = random.Random(11)
    weights = [1 / (rank + 1) for rank in range(len(sku_ids))]  # Zipf, s = 1
    now = datetime.now(UTC)
    with app.uow() as uow:
        channel_id = uow.session.scalar(select(Channel.id).where(Channel.tenant_id == caller.tenant_id))
        chunk = 2000
        for start in range(0, orders, chunk):
            rows = [
                {
                    "tenant_id": caller.tenant_id,
                    "channel_id": channel_id,
                    "external_id": f"B{n}",
                    "status": "pending",
                    "currency": "VND",
                    "total_amount": 0,
                    "shipping_address": {
                        "country": "VN",
                        "latitude": 10 + rng.random() * 11,
                        "longitude": 105 + rng.random() * 3,
                    },
                    "placed_at": now + timedelta(microseconds=n),
                    "needs_allocation": True,
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(start, min(start + chunk, orders))
            ]
            ids = uow.session.scalars(insert(Order).returning(Order.id), rows).all()
            lines = []
            for order_id in ids:
                picks = [sku_ids[0]] if scenario == "hot-sku" else rng.choices(sku_ids, weights, k=rng.randint(1, 5))
                for number, sku in enumerate(dict.fromkeys(picks), start=1):
                    lines.append(
                        {
                            "tenant_id": caller.tenant_id,
                            "order_id": order_id,
                            "line_number": number,
                            "sku_id": sku,
                            "quantity": 1,
                            "unit_price": 0,
                            "cancelled_quantity": 0,
                            "components": {str(sku): 1},
                        }
                    )
            uow.session.execute(insert(OrderLine), lines)
        uow.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--backends", default="postgresql,sqlite")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "routing": bench_routing(),
        "drain": [],
    }
    for backend in args.backends.split(","):
        for scenario in ("hot-sku", "zipf-mix"):
            results["drain"].append(bench_drain(backend, scenario, args.orders, args.batch))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-allocation.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    routing = results["routing"]
    print(f"Machine: {results['machine']}; date {results['date']}; command `make bench`\n")
    print(
        "Routing v1 (nearest first, kept as a reference), one order of 5 lines over 50 nodes: "
        f"median {routing['median_us']:.0f} µs, "
        f"p99 {routing['p99_us']:.0f} µs ({routing['orders']} orders)\n"
    )
    print("| backend | scenario | orders | batch | drain time | orders/s | units reserved | oversold levels |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in results["drain"]:
        print(
            f"| {row['backend']} | {row['scenario']} | {row['orders']:,} | {row['batch']} | {row['seconds']:.1f} s "
            f"| {row['orders_per_second']:,} | {row['units_reserved']:,} | {row['levels_oversold']} |"
        )
    console.print(f"results written to {out}")


if __name__ == "__main__":
    main()
