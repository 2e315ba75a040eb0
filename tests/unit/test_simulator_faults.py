"""The simulators' shared fault switches and push sender, over real HTTP."""

from __future__ import annotations

import httpx
from fastapi import FastAPI, Request

from ordermesh.simulators.common import Faults, PushSender, install_faults, running


def platform() -> tuple[FastAPI, Faults]:
    app = FastAPI()
    faults = Faults()
    install_faults(app, faults)

    @app.get("/api/v2/shop/get_shop_info")
    def shop_info() -> dict[str, str]:
        return {"shop_name": "sim"}

    return app, faults


def test_injected_failures_hit_the_matching_paths_the_set_number_of_times() -> None:
    app, _ = platform()
    with running(app) as base, httpx.Client(base_url=base) as client:
        client.post("/_sim/faults", json={"fail": [{"status": 429, "count": 2, "path_prefix": "/api"}]})
        answers = [client.get("/api/v2/shop/get_shop_info") for _ in range(3)]
        assert [a.status_code for a in answers] == [429, 429, 200]
        assert answers[0].headers["retry-after"] == "1"
        assert client.get("/_sim/faults").json()["injected"] == 2
        client.post("/_sim/faults", json={"fail": [{"status": 503, "path_prefix": "/other"}]})
        assert client.get("/api/v2/shop/get_shop_info").status_code == 200
        assert client.post("/_sim/reset").json()["fail"] == []
        assert client.post("/_sim/faults", json={"fail": [{"status": 200}]}).status_code == 422


def test_pushes_can_be_dropped_duplicated_and_reordered() -> None:
    receiver = FastAPI()
    received: list[bytes] = []

    @receiver.post("/webhooks/shopee/main")
    async def hook(request: Request) -> dict[str, bool]:
        received.append(await request.body())
        return {"ok": True}

    faults = Faults()
    sender = PushSender(faults)
    try:
        with running(receiver) as base:
            url = f"{base}/webhooks/shopee/main"
            faults.settings.push.drop = 1
            sender.send(url, b"1", {})
            faults.settings.push.duplicate = 1
            sender.send(url, b"2", {})
            faults.settings.push.reorder = True
            sender.send(url, b"3", {})
            sender.send(url, b"4", {})
            assert sender.flush(10)
        assert received == [b"2", b"2", b"4", b"3"]
        assert sender.dropped == [b"1"]
        assert [s.status for s in sender.sent] == [200] * 4
    finally:
        sender.close()
