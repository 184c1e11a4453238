"""``POST /v1/models/{model}/predictions`` and ``.../labels``: a plain ASGI endpoint.

These two routes carry a model server's whole traffic, often one record per request. Served
through FastAPI, its request path (middleware stack, routing, dependency solving, Request and
Response objects) cost about two thirds of the event loop's time per request, capping small
batches well below what the writer can store (see ``bench/ingest.py``). So ``IngestMiddleware``
answers them in front of the router, with the same pieces as every other route: the token check
(``auth.TokenChecker``), the body limits (``body.ingest_body``) and the problem+json bodies
(``problems.problem_for``). Everything else goes on to FastAPI. The OpenAPI document describes
both routes (``operations``), so ``/docs`` still shows them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from starlette.requests import ClientDisconnect

from monitor.api.auth import TokenChecker
from monitor.api.body import RECORD_TYPES, ingest_body, small_body
from monitor.api.openapi import problems
from monitor.api.problems import PROBLEM_JSON, Problem, ProblemError, log_problem, problem_for
from monitor.api.schemas import IngestOut, LabelIn, LabelIngestOut, PredictionIn, body_doc
from monitor.api.slots import DecodeSlots
from monitor.service import Service

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PATH = re.compile(r"/v1/models/([^/]+)/(predictions|labels)")
_JSON = (b"content-type", b"application/json")


class IngestMiddleware:
    def __init__(self, app: ASGIApp, *, service: Service, slots: DecodeSlots | None = None) -> None:
        self.app = app
        self.service = service
        self.tokens = TokenChecker(service.config.server.auth)
        self.slots = slots or DecodeSlots(slots=service.config.server.max_concurrent_large_bodies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        scope["route_template"] = f"/v1/models/{{model}}/{match[2]}"  # for request metrics
        try:
            status, body = await self._handle(scope, receive, match[1], match[2])
        except ClientDisconnect:
            return  # nobody to answer; nothing of the body was stored
        except Exception as exc:
            problem = problem_for(exc)
            if problem is None:
                log.exception("%s %s failed", scope["method"], scope["path"])
                problem = Problem(500, "Internal Server Error", "the request failed; see the log")
            else:
                log_problem(problem, exc, scope["method"], scope["path"])
            headers = [(b"content-type", PROBLEM_JSON.encode())]
            headers += [(k.lower().encode(), v.encode()) for k, v in problem.headers.items()]
            await _respond(send, problem.status, problem.body(scope["path"]), headers)
            return
        await _respond(send, status, body, [_JSON])

    async def _handle(
        self, scope: Scope, receive: Receive, model: str, kind: str
    ) -> tuple[int, bytes]:
        if scope["method"] != "POST":
            raise ProblemError(
                405, "Method Not Allowed", "Method Not Allowed", headers={"Allow": "POST"}
            )
        headers = _headers(scope)
        self.tokens.check(headers.get("authorization"), "ingest")
        payload = await ingest_body(
            self.service,
            model,
            _chunks(receive),
            content_type=headers.get("content-type"),
            content_length=headers.get("content-length"),
            content_encoding=headers.get("content-encoding"),
            expect=headers.get("expect"),
            accepted=RECORD_TYPES,
        )
        media_type = payload.media_type
        body = small_body(self.service, model, payload)
        if kind == "predictions":
            if body is not None:
                result = await self.service.store_predictions_body(model, body, media_type)
            else:
                async with self.slots.hold():
                    result = await self.service.store_large_predictions_body(model, payload)
            out: dict[str, int] = {"accepted": result.accepted, "duplicates": result.duplicates}
        else:
            if body is not None:
                result = await self.service.store_labels_body(model, body, media_type)
            else:
                async with self.slots.hold():
                    result = await self.service.store_large_labels_body(model, payload)
            out = {
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "corrections": result.corrections,
            }
        return 202, orjson.dumps(out)


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers this endpoint reads, by lower-case name (ASGI gives them so); a
    header sent several times is one list, its values joined with ``", "`` (RFC 9110 5.3)."""
    fields: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        if name in _READ_HEADERS:
            fields.setdefault(name.decode("latin-1"), []).append(value.decode("latin-1"))
    return {name: ", ".join(values) for name, values in fields.items()}


_READ_HEADERS = frozenset(
    (b"authorization", b"content-type", b"content-length", b"content-encoding", b"expect")
)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def _respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def operations(*, auth: bool) -> dict[str, dict[str, Any]]:
    """OpenAPI path items of the two routes, for the app's document; with ``auth`` (tokens
    are set), they need a bearer token of the ingest (or admin) scope."""

    def operation(summary: str, description: str, record: type, out: type) -> dict[str, Any]:
        return {
            "post": {
                "tags": ["ingest"],
                "summary": summary,
                "description": description,
                "operationId": f"{summary.lower().replace(' ', '_')}",
                "parameters": [
                    {
                        "name": "model",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "A model name from the config.",
                    }
                ],
                **body_doc(record, RECORD_TYPES),
                **({"security": [{"bearer": []}]} if auth else {}),
                "responses": {
                    "202": {
                        "description": "Stored",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": f"#/components/schemas/{out.__name__}"}
                            }
                        },
                    },
                    **{
                        str(status): response
                        for status, response in problems(
                            400,
                            404,
                            408,
                            413,
                            415,
                            422,
                            503,
                            say={
                                415: "Content-Type neither JSON nor NDJSON, or a "
                                "Content-Encoding other than gzip",
                                422: "Invalid records (each named); nothing of the batch "
                                "was stored",
                            },
                        ).items()
                    },
                },
            }
        }

    return {
        "/v1/models/{model}/predictions": operation(
            "Post predictions",
            "Store a batch of prediction records, all or nothing.",
            PredictionIn,
            IngestOut,
        ),
        "/v1/models/{model}/labels": operation(
            "Post labels",
            "Store ground-truth labels; they join predictions by id, in either order.",
            LabelIn,
            LabelIngestOut,
        ),
    }
