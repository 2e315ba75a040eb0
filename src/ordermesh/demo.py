"""``make demo``: a demo tenant, three warehouses, a few dozen SKUs, a burst of orders through the
HTTP API of a real embedded server (API + workers in one process, SQLite by default), then a summary.
Phase two connects the four marketplace simulators and lets simulated buyers order on them
(``ordermesh.demo_channels``)."""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from decimal import Decimal
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ordermesh import demo_channels
from ordermesh.adapters.secrets import SecretBox
from ordermesh.bootstrap import bootstrap
from ordermesh.services import tenants

console = Console()

WAREHOUSES = [
    # code, name, latitude, longitude, daily capacity, cut-off
    ("HCM-01", "Ho Chi Minh City — Thu Duc DC", 10.8494, 106.7537, 5000, "15:00"),
    ("HAN-01", "Ha Noi — Long Bien DC", 21.0450, 105.8890, 4000, "14:00"),
    ("DAD-01", "Da Nang — Hoa Khanh 3PL", 16.0710, 108.1500, 1500, "13:00"),
]
CITIES = [
    # province, latitude, longitude, share of buyers
    ("Ho Chi Minh", 10.7769, 106.7009, 0.38),
    ("Ha Noi", 21.0278, 105.8342, 0.30),
    ("Da Nang", 16.0544, 108.2022, 0.08),
    ("Hai Phong", 20.8449, 106.6881, 0.07),
    ("Can Tho", 10.0452, 105.7469, 0.07),
    ("Khanh Hoa", 12.2388, 109.1967, 0.05),
    ("Nghe An", 18.6790, 105.6813, 0.05),
]
CATEGORIES = ["Serum", "Cleanser", "Toner", "Sunscreen", "Lip tint", "Sheet mask"]
FLASH_SKU = "FLASH-SERUM-30ML"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``ordermesh serve`` (API and workers in one process, as in production's embedded mode) in a
    child process, so the load generator below never shares an interpreter lock with the server."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.port = _free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordermesh.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, "ORDERMESH_LOG_LEVEL": "warning", **self.env},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("the server did not answer /healthz within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<28}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[rate]}"),
        console=console,
    )


def _check(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


def _set_up(client: httpx.Client, rng: random.Random) -> list[str]:
    for code, name, lat, lon, capacity, cutoff in WAREHOUSES:
        _check(
            client.put(
                f"/v1/locations/{code}",
                json={
                    "name": name,
                    "kind": "3pl" if "3PL" in name else "warehouse",
                    "latitude": lat,
                    "longitude": lon,
                    "daily_capacity": capacity,
                    "cutoff_time": cutoff,
                    "time_zone": "Asia/Ho_Chi_Minh",
                },
            )
        )
    skus = [{"code": FLASH_SKU, "name": "Flash-sale vitamin C serum 30 ml", "weight_grams": 120}]
    for index in range(35):
        category = CATEGORIES[index % len(CATEGORIES)]
        skus.append(
            {"code": f"SKU-{index + 1:03d}", "name": f"{category} #{index + 1}", "weight_grams": rng.randint(50, 600)}
        )
    skus.append({"code": "BUNDLE-GLOW", "name": "Glow set: serum + toner", "components": {"SKU-001": 1, "SKU-003": 1}})
    _check(client.post("/v1/skus", json={"skus": skus}))
    for sku in skus[:-1]:
        for code, *_ in WAREHOUSES:
            units = 100 if sku["code"] == FLASH_SKU else rng.randint(20, 140)
            _check(
                client.put(
                    f"/v1/inventory/{code}/{sku['code']}", json={"on_hand": units, "reason": "opening stock count"}
                )
            )
    return [str(s["code"]) for s in skus]


def _order(rng: random.Random, skus: list[str], number: int, run: str) -> dict[str, Any]:
    province, lat, lon, _ = rng.choices(CITIES, weights=[c[3] for c in CITIES])[0]
    picks = {FLASH_SKU} if rng.random() < 0.3 else set()
    while len(picks) < rng.choice((1, 1, 2, 3)):
        picks.add(rng.choice(skus[1:]))
    return {
        "channel": "direct",
        "external_id": f"DEMO-{run}-{number:06d}",
        "currency": "VND",
        "lines": [
            {"sku": sku, "quantity": rng.choice((1, 1, 1, 2)), "unit_price": str(Decimal(rng.randint(9, 90) * 10_000))}
            for sku in sorted(picks)
        ],
        "shipping_address": {
            "name": f"Buyer {number}",
            "phone": f"09{rng.randint(10_000_000, 99_999_999)}",
            "address_lines": [f"{rng.randint(1, 400)} Duong {rng.randint(1, 60)}"],
            "province": province,
            "country": "VN",
            "latitude": round(lat + rng.uniform(-0.08, 0.08), 5),
            "longitude": round(lon + rng.uniform(-0.08, 0.08), 5),
        },
    }


def run_demo(
    *,
    orders: int = 3000,
    concurrency: int = 16,
    seed: int = 11_11,
    shop_orders: int = 300,
    shop_rate: float = 20.0,
    hot_units: int = 60,
) -> None:
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:6]
    console.rule("[bold]ordermesh demo")
    application = bootstrap()
    created = tenants.create_tenant(application.uow(), f"demo-{run}")
    database = application.engine.url.render_as_string(hide_password=True)
    application.close()
    # Marketplace credentials are sealed with this key; a fresh one unless the caller set their own.
    key = os.environ.get("ORDERMESH_SECRET_KEY") or SecretBox.generate_key()
    with ServerProcess({"ORDERMESH_SECRET_KEY": key}) as server:
        headers = {"Authorization": f"Bearer {created.api_key}"}
        console.print(f"server {server.url} (API + workers) on {database}; tenant demo-{run}")
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            skus = _set_up(client, rng)
            console.print(f"3 warehouses, {len(skus)} SKUs (one bundle), opening stock counted")
            payloads = [_order(rng, skus, n, run) for n in range(orders)]

        latencies: list[float] = []
        answers: Counter[int] = Counter()
        lock = threading.Lock()
        local = threading.local()

        def post(payload: dict[str, Any]) -> None:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(base_url=server.url, headers=headers, timeout=60)
            started = time.perf_counter()
            response = client.post("/v1/orders", json=payload)
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                answers[response.status_code] += 1

        intake_started = time.perf_counter()
        with _progress() as progress, ThreadPoolExecutor(concurrency) as pool:
            task = progress.add_task("capturing orders over HTTP", total=orders, rate="")
            for done, future in enumerate(as_completed(pool.submit(post, p) for p in payloads), start=1):
                future.result()
                elapsed = time.perf_counter() - intake_started
                progress.update(task, advance=1, rate=f"{done / elapsed:,.0f} orders/s")
        intake_seconds = time.perf_counter() - intake_started

        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
            with _progress() as progress:
                task = progress.add_task("allocating", total=orders, rate="")
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline:
                    pending = _count(client, "pending")
                    progress.update(task, completed=orders - pending)
                    if pending == 0:
                        break
                    time.sleep(0.25)
            drained_seconds = time.perf_counter() - intake_started
            _summarise(client, orders, answers, latencies, intake_seconds, drained_seconds)
        if shop_orders:
            _marketplaces(server.url, headers, shop_orders=shop_orders, rate=shop_rate, seed=seed, hot_units=hot_units)


def _marketplaces(
    server_url: str, headers: dict[str, str], *, shop_orders: int, rate: float, seed: int, hot_units: int
) -> None:
    """Phase two: simulated buyers on four marketplaces -> pushes -> ordermesh -> stock back to every shop."""
    console.rule("[bold]marketplaces: Shopify, Shopee, Lazada, TikTok Shop")
    try:
        with (
            httpx.Client(base_url=server_url, headers=headers, timeout=30) as api,
            httpx.Client(timeout=10) as http,
            demo_channels.connect_marketplaces(api, server_url, hot_units=hot_units) as shops,
        ):
            console.print(
                f"4 simulators (child processes) connected; {1 + len(demo_channels.SHOP_SKUS)} SKUs listed on each, "
                f"{demo_channels.HOT_SKU} limited to {hot_units} units"
            )
            with _progress() as progress:
                progress.add_task("shops receiving opening stock", total=None, rate="")
                demo_channels.wait_until(
                    lambda: demo_channels.disagreements(api, http, shops), 60, "the shops did not get their stock"
                )
            started = time.perf_counter()
            with _progress() as progress:
                task = progress.add_task("buyers ordering on the shops", total=shop_orders, rate="")

                def advance(done: int, refused: int) -> None:
                    elapsed = time.perf_counter() - started
                    rate_text = f"{done / elapsed:,.0f} orders/s, {refused} refused (sold out)"
                    progress.update(task, completed=done, rate=rate_text)

                demo_channels.drive_buyers(shops, orders=shop_orders, rate=rate, seed=seed, on_progress=advance)
            buying_seconds = time.perf_counter() - started
            unsettled: demo_channels.DemoFailure | None = None
            with _progress() as progress:
                progress.add_task("captures and stock pushes settling", total=None, rate="")
                try:
                    demo_channels.wait_until(
                        lambda: demo_channels.check_captured(api, shops), 90, "orders accepted by a shop are missing"
                    )
                    demo_channels.wait_until(
                        lambda: demo_channels.disagreements(api, http, shops), 60, "a shop shows the wrong stock"
                    )
                except demo_channels.DemoFailure as failure:
                    unsettled = failure  # show the tables (disagreements in red) before failing
            demo_channels.summarise(console, api, shops, buying_seconds)
            if unsettled is not None:
                raise unsettled
            problems = demo_channels.oversold(api)
            if problems:
                raise demo_channels.DemoFailure(f"oversold: {problems[0]} ({len(problems)} SKU/location(s))")
            console.print("oversell check: no SKU is reserved beyond its on-hand stock at any location")
    except demo_channels.DemoFailure as failure:
        raise SystemExit(f"error: {failure}") from None
    console.print(
        "[green]marketplaces: every order a shop accepted reached ordermesh, and every shop shows what ordermesh "
        "says it should.[/green]"
    )


def _count(client: httpx.Client, status: str) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"status": status, "limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = _check(client.get("/v1/orders", params=params))
        total += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def _summarise(
    client: httpx.Client,
    orders: int,
    answers: Counter[int],
    latencies: list[float],
    intake_seconds: float,
    drained_seconds: float,
) -> None:
    statuses = ["allocated", "partially_allocated", "backordered", "pending"]
    by_status = {status: _count(client, status) for status in statuses}
    table = Table(title="Orders by status", show_footer=True)
    table.add_column("status", footer="total")
    table.add_column("orders", justify="right", footer=f"{sum(by_status.values()):,}")
    for status, count in by_status.items():
        table.add_row(status, f"{count:,}")
    console.print(table)

    per_location: Counter[str] = Counter()
    on_hand: Counter[str] = Counter()
    cursor = None
    while True:
        skus = _check(client.get("/v1/skus", params={"limit": 500, **({"after": cursor} if cursor else {})}))
        if not skus:
            break
        for sku in skus:
            if sku["components"]:
                continue
            for row in _check(client.get(f"/v1/inventory/{sku['code']}"))["locations"]:
                per_location[row["location"]] += row["reserved"]
                on_hand[row["location"]] += row["on_hand"]
        cursor = skus[-1]["code"]
    stock = Table(title="Units reserved per location")
    stock.add_column("location")
    stock.add_column("reserved", justify="right")
    stock.add_column("on hand", justify="right")
    stock.add_column("share reserved", justify="right")
    for code, *_ in WAREHOUSES:
        share = per_location[code] / on_hand[code] if on_hand[code] else 0.0
        stock.add_row(code, f"{per_location[code]:,}", f"{on_hand[code]:,}", f"{share:.0%}")
    console.print(stock)

    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    timing = Table(title="Time taken")
    timing.add_column("measure")
    timing.add_column("value", justify="right")
    timing.add_row("orders posted", f"{orders:,} ({', '.join(f'{n} x {c}' for c, n in sorted(answers.items()))})")
    timing.add_row("intake", f"{intake_seconds:.1f} s ({orders / intake_seconds:,.0f} orders/s)")
    timing.add_row("capture latency p50 / p99", f"{quantiles[49] * 1000:.0f} ms / {quantiles[98] * 1000:.0f} ms")
    timing.add_row("until every order was allocated", f"{drained_seconds:.1f} s")
    console.print(timing)
    failed = sum(n for code, n in answers.items() if code >= 300)
    if failed or by_status["pending"]:
        raise SystemExit(f"error: {failed} order(s) were not accepted, {by_status['pending']} still pending")
    console.print("[green]demo finished: every order was captured and allocated or backordered.[/green]")
