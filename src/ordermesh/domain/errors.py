"""The error tree of ordermesh.

    OrdermeshError                      base; every error has a stable ``code`` and structured ``details``
    ├── NotFound                        the thing does not exist for this tenant (404)
    ├── Conflict                        the request contradicts the current state (409)
    │   ├── IllegalTransition           an order cannot move from its status to the requested one
    │   ├── InsufficientStock           a stock change would break the reservation invariant
    │   └── IdempotencyKeyReused        same Idempotency-Key, different request
    ├── InvalidInput                    the request is well-formed but breaks a business rule (422)
    ├── Unauthenticated                 no or unknown credentials (401)
    └── Forbidden                       the credentials' role may not do this (403)

Only the API layer maps these to HTTP, in one handler (``ordermesh.api.errors``).
"""

from __future__ import annotations

from typing import Any


class OrdermeshError(Exception):
    code: str = "error"
    title: str = "Error"

    def __init__(self, detail: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.details = details


class NotFound(OrdermeshError):
    code = "not_found"
    title = "Not found"


class Conflict(OrdermeshError):
    code = "conflict"
    title = "Conflict"


class IllegalTransition(Conflict):
    code = "illegal_transition"
    title = "Illegal status transition"

    def __init__(self, current: str, target: str, *, subject: str = "order", subject_id: int | None = None) -> None:
        super().__init__(
            f"{subject} cannot move from {current} to {target}",
            current=current,
            target=target,
            subject=subject,
            id=subject_id,
        )


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    title = "Insufficient stock"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    title = "Idempotency-Key reused with a different request"


class InvalidInput(OrdermeshError):
    code = "invalid_input"
    title = "Invalid input"


class Unauthenticated(OrdermeshError):
    code = "unauthenticated"
    title = "Authentication required"


class Forbidden(OrdermeshError):
    code = "forbidden"
    title = "Forbidden"
