"""Carrier adapters (GHN, GHTK, Ninja Van) behind one contract: see base.py."""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from ordermesh.adapters.carriers.base import CarrierAdapter
from ordermesh.adapters.carriers.ghn import GhnAdapter
from ordermesh.adapters.carriers.ghtk import GhtkAdapter
from ordermesh.adapters.carriers.ninjavan import NinjaVanAdapter

ADAPTERS: dict[str, type[GhnAdapter] | type[GhtkAdapter] | type[NinjaVanAdapter]] = {
    GhnAdapter.kind: GhnAdapter,
    GhtkAdapter.kind: GhtkAdapter,
    NinjaVanAdapter.kind: NinjaVanAdapter,
}
KINDS = tuple(sorted(ADAPTERS))


def adapter_for(kind: str, base_url: str, credentials: Mapping[str, str], client: httpx.Client) -> CarrierAdapter:
    return ADAPTERS[kind](base_url, credentials, client)


__all__ = ["ADAPTERS", "KINDS", "CarrierAdapter", "adapter_for"]
