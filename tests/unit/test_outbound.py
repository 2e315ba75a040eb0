"""How an outbound response is classified (retry later / never like this), and the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ordermesh.adapters.outbound import (
    PermanentDeliveryError,
    RateLimiter,
    TransientDeliveryError,
    call,
    retry_after_seconds,
)


def client_answering(status: int, body: str = "", headers: dict[str, str] | None = None) -> httpx.Client:
    return httpx.Client(
        transport=httpx.MockTransport(lambda request: httpx.Response(status, text=body, headers=headers))
    )


@pytest.mark.parametrize("status", [200, 201, 204, 302])
def test_a_success_returns_the_response(status: int) -> None:
    assert call(client_answering(status), "POST", "https://shop.example/admin").status_code == status


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_rate_limits_timeouts_and_server_errors_are_worth_retrying(status: int) -> None:
    with pytest.raises(TransientDeliveryError, match=f"answered {status}"):
        call(client_answering(status, "busy"), "GET", "https://partner.shopeemobile.com/api/v2/order/get_order_list")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
def test_other_client_errors_are_permanent_and_carry_the_platform_message(status: int) -> None:
    body = '{"error": "error_param", "message": "item_id 123 does not exist"}'
    with pytest.raises(PermanentDeliveryError, match="item_id 123 does not exist") as raised:
        call(
            client_answering(status, body),
            "POST",
            "https://partner.shopeemobile.com/api/v2/product/update_stock?sign=s3cret",
        )
    assert raised.value.status == status
    assert "s3cret" not in str(raised.value)  # query strings carry signatures and tokens: never logged


def test_retry_after_is_read_as_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after_seconds(later) or 0) <= 30
    with pytest.raises(TransientDeliveryError) as raised:
        call(client_answering(429, headers={"Retry-After": "7"}), "POST", "https://x.example/")
    assert raised.value.retry_after == 7.0


def test_timeouts_and_refused_connections_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def stall(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    for handler in (refuse, stall):
        with pytest.raises(TransientDeliveryError):
            call(httpx.Client(transport=httpx.MockTransport(handler)), "GET", "https://x.example/")


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    bucket = RateLimiter(rate_per_second=2, burst=4, clock=clock)
    assert [bucket.try_acquire() for _ in range(5)] == [True, True, True, True, False]
    clock.now += 0.5
    assert (bucket.try_acquire(), bucket.try_acquire()) == (True, False)
    clock.now += 10
    assert bucket.try_acquire(4) is True  # refills to the burst, never beyond
    assert bucket.try_acquire() is False


def test_the_bucket_refuses_impossible_requests() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        RateLimiter(0, 1)
    with pytest.raises(ValueError, match="cannot take 5"):
        RateLimiter(1, 4).try_acquire(5)
