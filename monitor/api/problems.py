"""Errors to RFC 9457 ``application/problem+json`` responses, in one place."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from monitor.errors import (
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    StorageError,
)

PROBLEM_JSON = "application/problem+json"
_TYPE = "urn:drift-monitor:problem:"


class ProblemError(Exception):
    """Raised by routes for an HTTP error that has no domain exception of its own."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str = "",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind
        self.headers = headers or {}
        self.extra = extra
        super().__init__(detail)


def problem(
    request: Request,
    status: int,
    title: str,
    detail: str,
    *,
    kind: str = "",
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = {
        "type": _TYPE + kind if kind else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return Response(
        orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> Response:
        return problem(
            request,
            exc.status,
            exc.title,
            exc.detail,
            kind=exc.kind,
            headers=exc.headers,
            **exc.extra,
        )

    @app.exception_handler(InvalidRecordsError)
    async def _invalid(request: Request, exc: InvalidRecordsError) -> Response:
        errors = [{"index": i.index, "field": i.field, "reason": i.reason} for i in exc.issues]
        return problem(
            request, 422, "Invalid records", str(exc), kind="invalid-records", errors=errors
        )

    @app.exception_handler(ModelNotFoundError)
    async def _not_found(request: Request, exc: ModelNotFoundError) -> Response:
        return problem(
            request, 404, "Model not found", str(exc), kind="model-not-found", model=exc.model
        )

    @app.exception_handler(PayloadTooLargeError)
    async def _too_large(request: Request, exc: PayloadTooLargeError) -> Response:
        # Closing the connection is what lets us refuse without reading the rest of the body.
        return problem(
            request,
            413,
            "Payload too large",
            str(exc),
            kind="payload-too-large",
            headers={"Connection": "close"},
            limit_bytes=exc.limit_bytes,
        )

    @app.exception_handler(PayloadError)
    async def _bad_payload(request: Request, exc: PayloadError) -> Response:
        return problem(request, 400, "Malformed body", str(exc), kind="malformed-body")

    @app.exception_handler(StorageError)
    async def _storage(request: Request, exc: StorageError) -> Response:
        return problem(request, 503, "Storage unavailable", str(exc), kind="storage")

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
        ]
        return problem(
            request,
            422,
            "Invalid request",
            "the request's parameters are invalid",
            kind="invalid-request",
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return problem(
            request,
            exc.status_code,
            _reason(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )


def _reason(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
