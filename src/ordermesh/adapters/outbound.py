"""Calling other systems: how a response turns into "done", "try later" or "never like this", and how fast to call.

Every outbound call (a marketplace, a carrier, an ERP) goes through the outbox, whose dispatcher retries
``TransientDeliveryError`` with backoff and dead-letters ``PermanentDeliveryError`` at once. ``call`` is the one place
that decides which is which, so every adapter classifies failures the same way.
"""

from __future__ import annotations

import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
BODY_SNIPPET = 300


class TransientDeliveryError(Exception):
    """The destination may accept the message later (5xx, 429, timeout). ``retry_after`` is its own hint, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """The destination will never accept this message as it is (a 4xx that is not a rate limit)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def call(client: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send one request; return the response if it is a success, raise the right delivery error otherwise."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise TransientDeliveryError(f"{method} {url}: timed out ({type(error).__name__})") from error
    except httpx.TransportError as error:
        raise TransientDeliveryError(f"{method} {url}: {type(error).__name__}: {error}") from error
    raise_for_delivery(response)
    return response


def raise_for_delivery(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    request = response.request
    what = f"{request.method} {request.url.copy_with(query=None)} answered {status}: {_snippet(response)}"
    if status in RETRYABLE_STATUSES:
        raise TransientDeliveryError(what, retry_after=retry_after_seconds(response.headers.get("retry-after")))
    raise PermanentDeliveryError(what, status=status)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _snippet(response: httpx.Response) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return "<unreadable body>"
    text = " ".join(text.split())
    return text[:BODY_SNIPPET] + ("…" if len(text) > BODY_SNIPPET else "")


class RateLimiter:
    """A token bucket: ``rate_per_second`` tokens flow in, at most ``burst`` are kept. Thread-safe."""

    def __init__(self, rate_per_second: float, burst: int, *, clock: Any = time.monotonic) -> None:
        if rate_per_second <= 0 or burst < 1:
            raise ValueError("a rate limiter needs a positive rate and a burst of at least 1")
        self.rate = float(rate_per_second)
        self.burst = int(burst)
        self._clock = clock
        self._tokens = float(burst)
        self._stamp = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def try_acquire(self, tokens: int = 1) -> bool:
        self._check(tokens)
        with self._lock:
            self._refill()
            if self._tokens >= tokens:
                self._tokens -= tokens
                return True
            return False

    def acquire(self, tokens: int = 1) -> float:
        """Block until ``tokens`` are available; returns the seconds waited."""
        self._check(tokens)
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= tokens:
                    self._tokens -= tokens
                    return waited
                pause = (tokens - self._tokens) / self.rate
            time.sleep(pause)
            waited += pause

    def _check(self, tokens: int) -> None:
        if tokens < 1 or tokens > self.burst:
            raise ValueError(f"cannot take {tokens} tokens from a bucket of {self.burst}")
