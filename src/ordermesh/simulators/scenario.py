"""The scenario driver: buyers placing orders on simulated shops at a chosen rate.

Each order goes through a simulator's buyer API (``POST /_sim/orders``), so the platform side does
what it would for a real sale (stock falls there, a signed push goes to ordermesh). Used by
``ordermesh simulate scenario`` and by tests.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx


@dataclass(frozen=True, slots=True)
class Shop:
    kind: str  # shopify | shopee | lazada | tiktok
    base_url: str


@dataclass
class ScenarioReport:
    placed: dict[str, int] = field(default_factory=dict)  # shop base URL -> orders placed
    refused: list[str] = field(default_factory=list)  # what a simulator refused, and why
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.placed.values())


def run_scenario(
    shops: Sequence[Shop],
    skus: Sequence[str],
    *,
    orders: int,
    rate_per_second: float,
    max_quantity: int = 2,
    seed: int | None = None,
    client: httpx.Client | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ScenarioReport:
    """Place ``orders`` orders round-robin over ``shops``, ``rate_per_second`` of them per second,
    each for one random SKU of ``skus`` (1 to ``max_quantity`` units)."""
    if not shops or not skus:
        raise ValueError("a scenario needs at least one shop and one SKU")
    if orders < 0 or rate_per_second <= 0 or max_quantity < 1:
        raise ValueError("orders >= 0, rate_per_second > 0 and max_quantity >= 1")
    pick = random.Random(seed)
    report = ScenarioReport()
    own = client is None
    http = client or httpx.Client(timeout=10)
    started = time.monotonic()
    try:
        for index, shop in zip(range(orders), itertools.cycle(shops), strict=False):
            due = started + index / rate_per_second
            wait = due - time.monotonic()
            if wait > 0:
                sleep(wait)
            sku = pick.choice(list(skus))
            # Shopify and Shopee simulators name the seller SKU "sku", Lazada and TikTok "seller_sku".
            line = {"sku": sku, "seller_sku": sku, "quantity": pick.randint(1, max_quantity)}
            response = http.post(f"{shop.base_url.rstrip('/')}/_sim/orders", json={"lines": [line]})
            if response.status_code == 200:
                report.placed[shop.base_url] = report.placed.get(shop.base_url, 0) + 1
            else:
                report.refused.append(f"{shop.kind} {shop.base_url}: {response.status_code} {response.text[:200]}")
    finally:
        if own:
            http.close()
        report.seconds = time.monotonic() - started
    return report
