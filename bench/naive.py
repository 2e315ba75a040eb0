"""The naive baseline for bench/flash.py: the conventional design, for comparison only.

One HTTP request = one transaction that stores the order, locks the SKU's inventory rows
(``SELECT ... FOR UPDATE``), reserves a unit at the first location that has one and commits.
FastAPI on uvicorn, psycopg 3, one connection per server thread: the same stack as ordermesh
without its intake/allocation split. ``--init`` creates the tables and the opening stock.

Environment: NAIVE_DATABASE_URL (postgresql://...), NAIVE_STOCK (units per location, "1667,1667,1666").
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from typing import Any

import psycopg
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

URL = os.environ.get("NAIVE_DATABASE_URL", "")
_local = threading.local()


def connection() -> psycopg.Connection[Any]:
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(URL)
    return conn


def init() -> None:
    stock = [int(n) for n in os.environ.get("NAIVE_STOCK", "1667,1667,1666").split(",")]
    with psycopg.connect(URL, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE naive_orders (id bigserial PRIMARY KEY, external_id text NOT NULL UNIQUE,"
            " payload jsonb NOT NULL, status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        conn.execute(
            "CREATE TABLE naive_stock (sku text NOT NULL, location int NOT NULL, on_hand int NOT NULL,"
            " reserved int NOT NULL, PRIMARY KEY (sku, location))"
        )
        conn.execute(
            "CREATE TABLE naive_allocations (id bigserial PRIMARY KEY, order_id bigint NOT NULL"
            " REFERENCES naive_orders, sku text NOT NULL, location int NOT NULL, quantity int NOT NULL)"
        )
        for location, units in enumerate(stock, start=1):
            conn.execute("INSERT INTO naive_stock VALUES ('HOT', %s, %s, 0)", (location, units))


app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/orders")
async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    from starlette.concurrency import run_in_threadpool

    status, answer = await run_in_threadpool(_capture_and_reserve, body)
    return JSONResponse(answer, status_code=status)


def _capture_and_reserve(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    conn = connection()
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO naive_orders (external_id, payload, status) VALUES (%s, %s, 'pending')"
            " ON CONFLICT (external_id) DO NOTHING RETURNING id",
            (body["external_id"], json.dumps(body)),
        ).fetchone()
        if row is None:
            existing = conn.execute("SELECT id FROM naive_orders WHERE external_id = %s", (body["external_id"],))
            return 200, {"id": existing.fetchone()[0]}  # type: ignore[index]
        order_id = row[0]
        status = "allocated"
        for line in body["lines"]:
            levels = conn.execute(
                "SELECT location, on_hand - reserved FROM naive_stock WHERE sku = %s ORDER BY location FOR UPDATE",
                (line["sku"],),
            ).fetchall()
            location = next((loc for loc, available in levels if available >= line["quantity"]), None)
            if location is None:
                status = "backordered"
                continue
            conn.execute(
                "UPDATE naive_stock SET reserved = reserved + %s WHERE sku = %s AND location = %s",
                (line["quantity"], line["sku"], location),
            )
            conn.execute(
                "INSERT INTO naive_allocations (order_id, sku, location, quantity) VALUES (%s, %s, %s, %s)",
                (order_id, line["sku"], location, line["quantity"]),
            )
        conn.execute("UPDATE naive_orders SET status = %s WHERE id = %s", (status, order_id))
    return 201, {"id": order_id, "status": status}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--init", action="store_true")
    parser.add_argument("--port", type=int, default=8100)
    args = parser.parse_args()
    if args.init:
        init()
        return
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
