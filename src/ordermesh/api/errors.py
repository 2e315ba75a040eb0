"""The one place errors become HTTP: RFC 9457 ``application/problem+json`` with a stable ``code``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ordermesh.adapters.secrets import ConfigurationError, SecretError
from ordermesh.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    OrdermeshError,
    Unauthenticated,
)

log = logging.getLogger("ordermesh.api")
PROBLEM = "application/problem+json"

STATUS: list[tuple[type[OrdermeshError], int]] = [
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (Unauthenticated, 401),
    (Forbidden, 403),
]


def problem(status: int, code: str, title: str, detail: str, request: Request, **extra: Any) -> JSONResponse:
    body = {
        "type": f"https://ordermesh.dev/problems/{code.replace('_', '-')}",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        "code": code,
        **{k: v for k, v in extra.items() if v is not None},
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(OrdermeshError)
    async def _domain(request: Request, error: OrdermeshError) -> JSONResponse:
        status = next((code for kind, code in STATUS if isinstance(error, kind)), 400)
        return problem(status, error.code, error.title, error.detail, request, **_jsonable(error.details))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in item["loc"] if p not in ("body", "query", "path", "header")),
                "message": item["msg"],
            }
            for item in error.errors()
        ]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        if any(item.get("type") == "json_invalid" for item in error.errors()):
            return problem(400, "malformed_json", "Malformed JSON", "the request body is not valid JSON", request)
        detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return problem(422, "validation_failed", "Validation failed", detail, request, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthenticated"}.get(
            error.status_code, "http_error"
        )
        return problem(error.status_code, code, str(error.detail), str(error.detail), request)

    @app.exception_handler(DataError)
    async def _unstorable(request: Request, error: DataError) -> JSONResponse:
        # A value the database cannot hold slipped past validation: the request is at fault, not us.
        log.warning("database refused a value on %s %s: %s", request.method, request.url.path, error.orig)
        return problem(422, "unstorable_value", "Unstorable value", "a value in the request cannot be stored", request)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, error: OperationalError) -> JSONResponse:
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error.orig)
        response = problem(
            503, "database_unavailable", "Database unavailable", "the database is busy or unreachable; retry", request
        )
        response.headers["Retry-After"] = "1"
        return response

    @app.exception_handler(ConfigurationError)
    async def _not_configured(request: Request, error: ConfigurationError) -> JSONResponse:
        # The deployment lacks a setting this request needs (ORDERMESH_SECRET_KEY): nothing was changed.
        return problem(503, "not_configured", "Not configured", str(error), request)

    @app.exception_handler(SecretError)
    async def _sealed(request: Request, error: SecretError) -> JSONResponse:
        log.error("stored credentials cannot be opened on %s %s: %s", request.method, request.url.path, error)
        return problem(503, "credentials_unreadable", "Credentials unreadable", str(error), request)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "internal_error",
            "Internal error",
            "an unexpected error occurred; it has been logged",
            request,
        )


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, (str, int, float, bool, list, dict, type(None))) else str(v)) for k, v in details.items()
    }
