"""Channel stock sync benchmark (``python bench/channel_stock.py``).

Four channel connections (two Shopify shops, two Shopee shops, each its own local simulator with the
adapters' real HTTP calls and signatures), one location, ``--skus`` SKUs listed on every shop. The
embedded worker runs in background threads. A burst of ``--changes`` stock changes (random SKU, new
on-hand count) is made through the inventory service as fast as it goes; for every change and every
shop, the latency is the time from the change's commit until that shop accepted a value at least as
new as the change (coalescing means intermediate values may never be sent). Reported: p50, p99 and
max per shop kind, the number of platform calls, and whether every shop ended at the true value.
Each shop's rate limit is the adapter's default (Shopify 2 calls/s with a bucket of 40; Shopee
10/s), so a burst larger than the bucket shows the bounded staleness the limit causes. Results go to
bench/results/<date>-channel-stock.json.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from ordermesh.adapters.secrets import SecretBox
from ordermesh.adapters.store import migrate
from ordermesh.bootstrap import bootstrap
from ordermesh.config import Settings
from ordermesh.services import catalog, channels, inventory, tenants
from ordermesh.services.unit_of_work import Caller
from ordermesh.simulators import shopee, shopify
from ordermesh.simulators.common import running
from ordermesh.workers.runner import Worker

RESULTS = Path(__file__).parent / "results"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skus", type=int, default=20)
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    pick = random.Random(args.seed)
    directory = tempfile.mkdtemp(prefix="om-bench-")
    url = f"sqlite:///{directory}/bench.db"
    migrate.upgrade(url)
    settings = Settings(database_url=url, secret_key=SecretBox.generate_key(), worker_poll_seconds=0.05)  # type: ignore[arg-type]
    app = bootstrap(settings)
    tenant = tenants.create_tenant(app.uow(), "bench")
    caller = Caller(tenant.tenant_id, "admin", "bench")
    catalog.upsert_location(app.uow(), caller, "HN", catalog.LocationInput("HN"))
    codes = [f"SKU-{n:03d}" for n in range(args.skus)]
    catalog.upsert_skus(app.uow(), caller, [catalog.SkuInput(code, code) for code in codes])
    for code in codes:
        inventory.set_on_hand(app.uow(), caller, "HN", code, inventory.StockCount(100, "bench"))
    shopify_credentials = {"shop_domain": "bench.myshopify.com", "access_token": "tok", "client_secret": "s"}
    shopee_credentials = {"partner_id": "1", "partner_key": "k", "shop_id": "2", "access_token": "tok"}
    sims = [
        ("shopify-1", "shopify", shopify.create_app(**shopify_credentials), shopify_credentials),
        ("shopify-2", "shopify", shopify.create_app(**shopify_credentials), shopify_credentials),
        ("shopee-1", "shopee", shopee.create_app(**shopee_credentials), shopee_credentials),
        ("shopee-2", "shopee", shopee.create_app(**shopee_credentials), shopee_credentials),
    ]
    with (
        running(sims[0][2]) as url0,
        running(sims[1][2]) as url1,
        running(sims[2][2]) as url2,
        running(sims[3][2]) as url3,
        httpx.Client(timeout=30) as http,
    ):
        urls = [url0, url1, url2, url3]
        for (code, kind, _, credentials), base in zip(sims, urls, strict=True):
            if kind == "shopify":
                variants = [{"sku": c, "available": 0} for c in codes]
                http.post(f"{base}/_sim/products", json={"title": "P", "variants": variants}).raise_for_status()
            else:
                for c in codes:
                    http.post(f"{base}/_sim/items", json={"item_name": c, "item_sku": c}).raise_for_status()
            data = channels.ConnectionInput(kind=kind, base_url=base, credentials=credentials)
            channels.put_connection(app.uow(), caller, app.secrets, code, data)
        from ordermesh.services.channel_runtime import connect

        for code, _, _, _ in sims:
            with app.read_uow() as uow:
                channel_id = channels.load(uow, caller, code)[0].id
            found = list(connect(app, channel_id).adapter.listings())
            channels.import_listings(app.uow(), caller, code, found)
        worker = Worker(app, name="bench")
        worker.start()
        try:
            _wait_in_sync(http, urls, dict.fromkeys(codes, 100), timeout=120)
            before = {base: _sets(http, base) for base in urls}
            truth = dict.fromkeys(codes, 100)
            changes: list[tuple[float, str, int]] = []
            started = time.time()
            for _ in range(args.changes):
                code = pick.choice(codes)
                value = pick.randint(0, 200)
                inventory.set_on_hand(app.uow(), caller, "HN", code, inventory.StockCount(value, "bench"))
                changes.append((time.time(), code, value))
                truth[code] = value
            burst_seconds = time.time() - started
            in_sync = _wait_in_sync(http, urls, truth, timeout=600)
        finally:
            worker.stop()
        latencies: dict[str, list[float]] = {"shopify": [], "shopee": []}
        calls: dict[str, int] = {}
        for (code, kind, _, _), base in zip(sims, urls, strict=True):
            accepted = [s for s in _sets(http, base) if s not in before[base]]
            calls[code] = len(accepted)
            for at, sku, _value in changes:
                later = [s["at"] for s in accepted if s["sku"] == sku and s["at"] >= at]
                # The first accepted value for that SKU after the change that equals a value set at or
                # after the change: coalescing may skip straight to a newer one.
                newer_values = {v for t, s, v in changes if s == sku and t >= at}
                hits = [
                    s["at"] for s in accepted if s["sku"] == sku and s["at"] >= at and s["quantity"] in newer_values
                ]
                if hits:
                    latencies[kind].append(min(hits) - at)
                elif later:
                    latencies[kind].append(min(later) - at)
    result: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "skus": args.skus,
        "changes": args.changes,
        "burst_seconds": round(burst_seconds, 3),
        "all_shops_in_sync": in_sync,
        "platform_calls": calls,
        "latency_seconds": {
            kind: {
                "p50": round(statistics.median(values), 3),
                "p99": round(percentile(values, 0.99), 3),
                "max": round(max(values), 3),
                "samples": len(values),
            }
            for kind, values in latencies.items()
            if values
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{datetime.now(UTC).date()}-channel-stock.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def _sets(http: httpx.Client, base: str) -> list[dict[str, Any]]:
    """Every value the shop accepted: sku, quantity, at (the simulator's clock, same machine)."""
    return list(http.get(f"{base}/_sim/stock-sets").json())


def _wait_in_sync(http: httpx.Client, urls: list[str], truth: dict[str, int], *, timeout: float) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(all(http.get(f"{base}/_sim/stock").json().get(c) == v for c, v in truth.items()) for base in urls):
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    main()
