"""The second phase of ``make demo``: the four marketplace simulators connected to ordermesh.

Simulated buyers order on Shopify, Shopee, Lazada and TikTok Shop (each simulator a child process, so
they never share an interpreter lock with this driver); each platform pushes the order to ordermesh's
webhook, ordermesh captures and allocates it, and the stock change goes back to every shop under that
shop's rules. At the end every shop must show what ordermesh says it should, every order a platform
accepted must be in ordermesh, and no SKU may be reserved beyond what is on hand.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from ordermesh.simulators.common import free_port
from ordermesh.simulators.scenario import ScenarioReport, Shop, run_scenario

HOT_SKU = "MKT-HOT-CUSHION"
SHOP_SKUS = [f"MKT-{n:03d}" for n in range(1, 6)]
FEEDING = ["HCM-01", "HAN-01"]  # the warehouses that feed the marketplaces


@dataclass(frozen=True)
class ChannelSpec:
    code: str
    kind: str
    credentials: dict[str, str]  # in the platform's terms: the connection's and the simulator's alike
    stock_rules: dict[str, int]

    @property
    def rules_text(self) -> str:
        words = {"buffer": "buffer {}", "share_percent": "share {}%", "max_exposed": "max {}"}
        return ", ".join(words[k].format(v) for k, v in self.stock_rules.items()) or "all available"


CHANNELS = [
    ChannelSpec(
        "shopify-vn",
        "shopify",
        {"shop_domain": "demo-shop.myshopify.com", "access_token": "shpat_demo", "client_secret": "demo-hush"},
        {},
    ),
    ChannelSpec(
        "shopee-vn",
        "shopee",
        {"partner_id": "2001887", "partner_key": "demo_partner_key", "shop_id": "600000", "access_token": "demo_tok"},
        {"buffer": 2},
    ),
    ChannelSpec(
        "lazada-vn",
        "lazada",
        {"app_key": "100200", "app_secret": "demo-lazada-secret", "access_token": "demo-lazada-token"},
        {"share_percent": 50},
    ),
    ChannelSpec(
        "tiktok-vn",
        "tiktok",
        {
            "app_key": "demo-tts-key",
            "app_secret": "demo-tts-secret",
            "access_token": "demo-tts-token",
            "shop_cipher": "ROW_demo",
        },
        {"max_exposed": 25},
    ),
]


class DemoFailure(Exception):
    """Something disagreed after the bounded wait; the message is the one-line reason."""


# What ``ordermesh simulate channel KIND`` runs, without importing the whole CLI (about 3 s a process).
_SERVE_SIMULATOR = """
import json, sys
from ordermesh.simulators.common import serve
from ordermesh.simulators.launch import build_channel_simulator
serve(build_channel_simulator(sys.argv[1], **json.loads(sys.argv[3])), port=int(sys.argv[2]))
"""


class SimulatorProcess:
    """A marketplace simulator (``simulators.launch.build_channel_simulator``) in a child process."""

    def __init__(self, spec: ChannelSpec, push_url: str, port: int) -> None:
        self.spec, self.port = spec, port
        self.url = f"http://127.0.0.1:{port}"
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process; closed in stop())
        options = json.dumps({**spec.credentials, "push_url": push_url})
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVE_SIMULATOR, spec.kind, str(port), options],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "ORDERMESH_LOG_LEVEL": "warning"},
        )

    def wait_ready(self, client: httpx.Client, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.seek(0)
                output = self.log.read().decode(errors="replace").strip().splitlines()
                raise DemoFailure(f"the {self.spec.kind} simulator exited: {output[-1] if output else 'no output'}")
            try:
                if client.get(f"{self.url}/_sim/stock", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise DemoFailure(f"the {self.spec.kind} simulator did not start on port {self.port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


@dataclass
class Connected:
    spec: ChannelSpec
    sim: SimulatorProcess
    report: ScenarioReport = field(default_factory=ScenarioReport)


def _ok(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        raise DemoFailure(
            f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:300]}"
        )
    return response.json()


@contextlib.contextmanager
def connect_marketplaces(api: httpx.Client, server_url: str, *, hot_units: int) -> Iterator[list[Connected]]:
    """SKUs and stock for the shops, the four connections, their simulators (child processes) and listings."""
    skus = [{"code": HOT_SKU, "name": "Flash-sale cushion foundation", "weight_grams": 90}]
    skus += [{"code": code, "name": f"Marketplace item {code[-3:]}", "weight_grams": 200} for code in SHOP_SKUS]
    _ok(api.post("/v1/skus", json={"skus": skus}))
    for location in FEEDING:
        for sku in skus:
            units = hot_units // len(FEEDING) if sku["code"] == HOT_SKU else 150
            body = {"on_hand": units, "reason": "marketplace opening stock"}
            _ok(api.put(f"/v1/inventory/{location}/{sku['code']}", json=body))
    sims: list[SimulatorProcess] = []
    try:
        connected = []
        for spec in CHANNELS:
            port = free_port()
            body = {
                "kind": spec.kind,
                "name": f"Demo {spec.kind}",
                "base_url": f"http://127.0.0.1:{port}",
                "credentials": spec.credentials,
                "locations": FEEDING,
                "stock_rules": spec.stock_rules,
            }
            answer = _ok(api.put(f"/v1/channels/{spec.code}", json=body))
            sim = SimulatorProcess(spec, f"{server_url}{answer['webhook_path']}", port)
            sims.append(sim)
            connected.append(Connected(spec, sim))
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=10) as http:
            for shop in connected:
                shop.sim.wait_ready(http, deadline)
                _list_products(http, shop)
        for shop in connected:
            _ok(api.post(f"/v1/channels/{shop.spec.code}/listings/import"))
        yield connected
    finally:
        for sim in sims:
            sim.stop()


def _list_products(http: httpx.Client, shop: Connected) -> None:
    url, codes = shop.sim.url, [HOT_SKU, *SHOP_SKUS]
    if shop.spec.kind == "shopify":
        _ok(http.post(f"{url}/_sim/config", json={"sell_beyond_stock": False}))
        product = {"title": "Demo catalogue", "variants": [{"sku": code, "price": "250000"} for code in codes]}
        _ok(http.post(f"{url}/_sim/products", json=product))
    elif shop.spec.kind == "shopee":
        _ok(http.post(f"{url}/_sim/config", json={"sell_beyond_stock": False}))
        for code in codes:
            _ok(http.post(f"{url}/_sim/items", json={"item_name": code, "item_sku": code, "price": 250000}))
    else:  # Lazada and TikTok never sell beyond sellable stock
        product = {"name": "Demo catalogue", "skus": [{"seller_sku": code, "price": "250000"} for code in codes]}
        _ok(http.post(f"{url}/_sim/products", json=product))


def shown_on_shop(http: httpx.Client, shop: Connected) -> dict[str, int]:
    """What buyers can buy on the simulated shop now, per seller SKU."""
    stock = _ok(http.get(f"{shop.sim.url}/_sim/stock"))
    if shop.spec.kind in ("lazada", "tiktok"):
        return {sku: int(row["sellable"]) for sku, row in stock.items()}
    return {sku: int(units) for sku, units in stock.items()}


def desired_by_ordermesh(api: httpx.Client, shop: Connected) -> dict[str, int | None]:
    """What ordermesh says each listing should show (sellable after the channel's rules)."""
    listings = _ok(api.get(f"/v1/channels/{shop.spec.code}/listings"))
    return {row["seller_sku"]: row["stock"]["desired"] for row in listings if row["sku"] is not None}


def disagreements(api: httpx.Client, http: httpx.Client, shops: list[Connected]) -> list[str]:
    found = []
    for shop in shops:
        shown, desired = shown_on_shop(http, shop), desired_by_ordermesh(api, shop)
        for sku in [HOT_SKU, *SHOP_SKUS]:
            if desired.get(sku) is None or shown.get(sku) != desired[sku]:
                found.append(f"{shop.spec.code} shows {sku}={shown.get(sku)}, ordermesh says {desired.get(sku)}")
    return found


def wait_until(check: Callable[[], list[str]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        problems = check()
        if not problems:
            return
        if time.monotonic() > deadline:
            raise DemoFailure(f"{what} after {seconds:.0f} s: {problems[0]} ({len(problems)} problem(s))")
        time.sleep(0.5)


def count_orders(api: httpx.Client, **filters: str) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 200, **filters}
        if cursor:
            params["cursor"] = cursor
        page = _ok(api.get("/v1/orders", params=params))
        total += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return total


def drive_buyers(
    shops: list[Connected],
    *,
    orders: int,
    rate: float,
    seed: int,
    on_progress: Callable[[int, int], None],
) -> None:
    """Round-robin buyers over the shops at ``rate`` orders a second; the hot SKU is asked for most."""
    targets = [Shop(shop.spec.kind, shop.sim.url) for shop in shops]
    by_url = {shop.sim.url: shop for shop in shops}
    wanted = [HOT_SKU] * 4 + SHOP_SKUS
    chunk = len(shops) * 5  # whole rounds, so every shop gets the same share
    done = refused = 0
    with httpx.Client(timeout=10) as http:
        for index, start in enumerate(range(0, orders, chunk)):
            batch = min(chunk, orders - start)
            part = run_scenario(targets, wanted, orders=batch, rate_per_second=rate, seed=seed + index, client=http)
            for url, placed in part.placed.items():
                report = by_url[url].report
                report.placed[url] = report.placed.get(url, 0) + placed
            for reason in part.refused:
                url = reason.split(" ", 2)[1].rstrip(":")
                by_url[url].report.refused.append(reason)
            done += batch
            refused += len(part.refused)
            on_progress(done, refused)


def check_captured(api: httpx.Client, shops: list[Connected]) -> list[str]:
    problems = []
    for shop in shops:
        placed, captured = shop.report.total, count_orders(api, channel=shop.spec.code)
        if captured != placed:
            problems.append(f"{shop.spec.code}: {placed} placed on the platform, {captured} in ordermesh")
    return problems


def oversold(api: httpx.Client) -> list[str]:
    """Every SKU at every location: reserved must never exceed on hand."""
    problems: list[str] = []
    after: str | None = None
    while True:
        skus = _ok(api.get("/v1/skus", params={"limit": 500, **({"after": after} if after else {})}))
        if not skus:
            return problems
        for sku in skus:
            if sku["components"]:
                continue
            for row in _ok(api.get(f"/v1/inventory/{sku['code']}"))["locations"]:
                if row["reserved"] > row["on_hand"]:
                    problems.append(
                        f"{sku['code']} at {row['location']}: {row['reserved']} reserved > {row['on_hand']}"
                    )
        after = skus[-1]["code"]


def summarise(console: Console, api: httpx.Client, shops: list[Connected], seconds: float) -> None:
    with httpx.Client(timeout=10) as http:
        table = Table(title=f"Marketplaces → ordermesh → marketplaces ({seconds:.1f} s of buying)")
        table.add_column("channel", no_wrap=True)
        table.add_column("stock rule", no_wrap=True)
        for column in (
            "placed on\nplatform",
            "refused\n(sold out)",
            "captured by\nordermesh",
            "allocated /\nbackordered",
            "order pushes\ndelivered",
            "stock pushes\nreceived",
        ):
            table.add_column(column, justify="right")
        for shop in shops:
            code = shop.spec.code
            allocated = count_orders(api, channel=code, status="allocated")
            backordered = count_orders(api, channel=code, status="backordered")
            table.add_row(
                code,
                shop.spec.rules_text,
                f"{shop.report.total:,}",
                f"{len(shop.report.refused):,}",
                f"{count_orders(api, channel=code):,}",
                f"{allocated:,} / {backordered:,}",
                _pushes_delivered(http, shop),
                f"{_stock_pushes(http, shop):,}",
            )
        console.print(table)

        stock = Table(title="What each shop shows vs what ordermesh says it should (sellable after the rules)")
        stock.add_column("SKU", no_wrap=True)
        stock.add_column("available\n(HCM+HAN)", justify="right")
        for shop in shops:
            stock.add_column(f"{shop.spec.code}\nshop / ordermesh", justify="right")
        shown = {shop.spec.code: shown_on_shop(http, shop) for shop in shops}
        desired = {shop.spec.code: desired_by_ordermesh(api, shop) for shop in shops}
        for sku in [HOT_SKU, *SHOP_SKUS[:3]]:
            available = sum(
                row["available"]
                for row in _ok(api.get(f"/v1/inventory/{sku}"))["locations"]
                if row["location"] in FEEDING
            )
            cells = []
            for shop in shops:
                have, want = shown[shop.spec.code].get(sku), desired[shop.spec.code].get(sku)
                colour = "green" if have == want else "red"
                cells.append(f"[{colour}]{have} / {want}[/{colour}]")
            stock.add_row(sku, f"{available:,}", *cells)
        console.print(stock)


def _pushes_delivered(http: httpx.Client, shop: Connected) -> str:
    if shop.spec.kind not in ("shopify", "shopee"):
        return "n/a"  # the Lazada and TikTok simulators do not expose their push log
    sent = _ok(http.post(f"{shop.sim.url}/_sim/flush"))["sent"]
    return f"{sum(1 for _, status in sent if status is not None and status < 300):,} of {len(sent):,}"


def _stock_pushes(http: httpx.Client, shop: Connected) -> int:
    if shop.spec.kind in ("shopify", "shopee"):
        return len(_ok(http.get(f"{shop.sim.url}/_sim/stock-sets")))
    calls = _ok(http.get(f"{shop.sim.url}/_sim/calls"))
    return sum(1 for call in calls if "stock" in call["path"] or "inventory" in call["path"])
