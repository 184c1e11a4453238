"""Errors to RFC 9457 ``application/problem+json`` responses, in one place.

``problem_for`` maps an exception to its problem; the FastAPI handlers and the plain ASGI
ingest endpoint (``api.ingest``) both answer with it, so an error reads the same on every route.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from monitor.errors import (
    InvalidRecordsError,
    ModelNotFoundError,
    PayloadError,
    PayloadTooLargeError,
    RouteNotFoundError,
    ServiceNotReadyError,
    StorageError,
    StorageUnavailableError,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
_TYPE = "urn:drift-monitor:problem:"

# The body of every problem below, for the OpenAPI document (``api.openapi``): the RFC 9457
# members, then the extension members some problems carry. Open to further members, as RFC 9457
# lets a client ignore the ones it does not know.
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "An RFC 9457 problem: what went wrong, and the fields to blame.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {
            "type": "string",
            "description": "urn:drift-monitor:problem:<kind> (e.g. invalid-records), or "
            "about:blank for a plain HTTP error",
        },
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "The HTTP status, repeated."},
        "detail": {"type": "string"},
        "instance": {"type": "string", "description": "The path of the request."},
        "errors": {
            "type": "array",
            "description": "invalid-records and invalid-request: every field at fault",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {
                    "index": {
                        "type": "integer",
                        "description": "The record's position in the batch (records only).",
                    },
                    "field": {
                        "type": "string",
                        "description": "Dotted path, e.g. features.age or query.since.",
                    },
                    "reason": {"type": "string"},
                },
            },
        },
        "model": {"type": "string", "description": "model-not-found: the name asked for"},
        "route": {"type": "string", "description": "webhook-not-found: the name asked for"},
        "limit_bytes": {"type": "integer", "description": "payload-too-large: the limit"},
    },
}


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
    # The database's own message stays in the log: it may name tables, values or hosts.
    if isinstance(exc, StorageUnavailableError):  # unreachable, locked, out of space...
        return Problem(
            503,
            "Storage unavailable",
            "the database could not be used; nothing of this request was stored",
            "storage",
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, StorageError):
        return Problem(
            500,
            "Storage error",
            "the database refused the request; nothing of this request was stored",
            "storage-error",
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


def log_problem(problem: Problem, exc: Exception, method: str, path: str) -> None:
    """Server-side failures (5xx) are logged with the error's own message, which the client
    does not see; refusals of bad requests (4xx) are the client's to read, not the log's."""
    if problem.status >= 500:
        log.warning("%s %s answered %d: %s", method, path, problem.status, exc)


def install_problem_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        found = problem_for(exc)
        if found is None:  # not registered for such an exception; kept for the type checker
            raise exc
        log_problem(found, exc, request.method, request.url.path)
        if found.status == 405:
            found = replace(found, headers={**found.headers, "Allow": _allowed(request)})
        return found.response(request.url.path)

    for kind in (
        ProblemError,
        InvalidRecordsError,
        ModelNotFoundError,
        RouteNotFoundError,
        PayloadError,  # PayloadTooLargeError included
        ServiceNotReadyError,
        StorageError,  # StorageUnavailableError included
        RequestValidationError,
        StarletteHTTPException,
    ):
        app.add_exception_handler(kind, handle)


def _allowed(request: Request) -> str:
    """Every method some route serves at the request's path. Starlette's 405 names only the
    first such route's (``GET`` of ``/v1/models/{m}/reference`` and not its ``PUT``)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
