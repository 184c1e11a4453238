"""The OpenAPI document: FastAPI's, completed with what it cannot see.

Every error the API answers is an ``application/problem+json`` body (``api.problems``), and
the document says so for each status an operation can return, so that a generated client (or
``schemathesis run --checks all``) finds no status, media type or body it was not told of:

- routes list their own problem statuses with ``responses=problems(...)``;
- ``complete`` then, once for the whole document: adds the ``Problem`` schema, the 401 and
  403 of every operation that needs a token (FastAPI marks those with ``security``, see
  ``api.auth``), gives FastAPI's own 422 (a ``RequestValidationError``, answered by
  ``api.problems`` as ``invalid-request``) the ``Problem`` body instead of FastAPI's
  ``HTTPValidationError``, and keeps ``application/problem+json`` the only media type of an
  error that is a problem.
"""

from __future__ import annotations

from typing import Any

from monitor import timestamps
from monitor.api.problems import PROBLEM_JSON, PROBLEM_SCHEMA

PROBLEM_REF = "#/components/schemas/Problem"

_DESCRIPTIONS = {
    400: "Malformed body: not JSON, NDJSON or CSV as declared, or not valid gzip",
    401: "A bearer token is required, or the token sent is not valid",
    403: "The token does not have the scope this operation needs",
    404: "No such model (or other resource named in the path)",
    408: "The body was not received in time",
    413: "Body over server.max_body_bytes, or over server.max_decompressed_bytes decompressed",
    415: "Content-Type not accepted, or a Content-Encoding other than gzip",
    422: "Invalid parameters or records, each named in errors; nothing was stored",
    503: "The database is unavailable; nothing of the request was stored; retry later",
}

# Unix seconds of 9999-12-31T23:59:59Z, the last instant an RFC 3339 date-time can write.
LAST_INSTANT = int(timestamps.LATEST)

INSTANT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "number", "minimum": 0, "maximum": LAST_INSTANT},
    ],
    "description": "An RFC 3339 date-time with offset, or Unix seconds",
}


def problems(*statuses: int, say: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with the ``Problem`` body, described as
    ``say`` has it or as usual."""
    say = say or {}
    return {
        status: {
            "description": say.get(status, _DESCRIPTIONS[status]),
            "content": {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}},
        }
        for status in statuses
    }


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's) completed as the module's docstring says; changed in place."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422, never sent
        schemas.pop(name, None)
    for path_item in document.get("paths", {}).values():
        for operation in path_item.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if operation.get("security"):
                for status, response in problems(401, 403).items():
                    responses.setdefault(str(status), response)
            for status, response in responses.items():
                if int(status) >= 400 and _is_problem(response):
                    response["content"] = {PROBLEM_JSON: {"schema": {"$ref": PROBLEM_REF}}}
            operation["responses"] = dict(sorted(responses.items()))
    return document


def _is_problem(response: dict[str, Any]) -> bool:
    """A problem declared by ``problems``, or FastAPI's 422; not a JSON error body of its
    own (``/readyz``'s 503 is one)."""
    content: dict[str, Any] = response.get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    return PROBLEM_JSON in content or schema == {"$ref": "#/components/schemas/HTTPValidationError"}
