"""Errors to RFC 9457 ``application/problem+json`` responses, in one place.

``problem_for`` maps an exception to its problem; the FastAPI handlers and the plain ASGI
ingest endpoint (``api.ingest``) both answer with it, so an error reads the same on every route.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from monitor.errors import (
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    RouteNotFoundError,
    ServiceNotReadyError,
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


@dataclass(frozen=True)
class Problem:
    status: int
    title: str
    detail: str
    kind: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self, instance: str) -> bytes:
        return orjson.dumps(
            {
                "type": _TYPE + self.kind if self.kind else "about:blank",
                "title": self.title,
                "status": self.status,
                "detail": self.detail,
                "instance": instance,
                **self.extra,
            }
        )

    def response(self, instance: str) -> Response:
        return Response(
            self.body(instance),
            status_code=self.status,
            media_type=PROBLEM_JSON,
            headers=self.headers,
        )


def problem_for(exc: Exception) -> Problem | None:
    """The problem that answers ``exc``; None for an unexpected error (a 500)."""
    if isinstance(exc, ProblemError):
        return Problem(exc.status, exc.title, exc.detail, exc.kind, exc.headers, exc.extra)
    if isinstance(exc, InvalidRecordsError):
        errors = [{"index": i.index, "field": i.field, "reason": i.reason} for i in exc.issues]
        return Problem(
            422, "Invalid records", str(exc), "invalid-records", extra={"errors": errors}
        )
    if isinstance(exc, ModelNotFoundError):
        return Problem(
            404, "Model not found", str(exc), "model-not-found", extra={"model": exc.model}
        )
    if isinstance(exc, RouteNotFoundError):
        return Problem(
            404, "Webhook not found", str(exc), "webhook-not-found", extra={"route": exc.route}
        )
    if isinstance(exc, PayloadTooLargeError):
        # Closing the connection is what lets us refuse without reading the rest of the body.
        return Problem(
            413,
            "Payload too large",
            str(exc),
            "payload-too-large",
            headers={"Connection": "close"},
            extra={"limit_bytes": exc.limit_bytes},
        )
    if isinstance(exc, PayloadError):
        return Problem(400, "Malformed body", str(exc), "malformed-body")
    if isinstance(exc, ServiceNotReadyError):
        return Problem(
            503,
            "Service not ready",
            str(exc),
            "not-ready",
            headers={"Retry-After": str(exc.retry_after_seconds)},
        )
    if isinstance(exc, StorageError):
        return Problem(503, "Storage unavailable", str(exc), "storage")
    if isinstance(exc, OperationalError):  # unreachable, locked, out of space...: try again
        return Problem(
            503,
            "Storage unavailable",
            "the database could not be used; nothing of this request was stored",
            "storage",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "reason": e["msg"]} for e in exc.errors()
        ]
        return Problem(
            422,
            "Invalid request",
            "the request's parameters are invalid",
            "invalid-request",
            extra={"errors": errors},
        )
    if isinstance(exc, StarletteHTTPException):
        return Problem(
            exc.status_code,
            _reason(exc.status_code),
            str(exc.detail),
            headers=dict(exc.headers or {}),
        )
    return None


def install_problem_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        found = problem_for(exc)
        if found is None:  # not registered for such an exception; kept for the type checker
            raise exc
        return found.response(request.url.path)

    for kind in (
        ProblemError,
        InvalidRecordsError,
        ModelNotFoundError,
        RouteNotFoundError,
        PayloadError,  # PayloadTooLargeError included
        ServiceNotReadyError,
        StorageError,
        OperationalError,
        RequestValidationError,
        StarletteHTTPException,
    ):
        app.add_exception_handler(kind, handle)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
