"""``POST /v1/cloudevents``: the inference logs of KServe (``spec.predictor.logger``) and Seldon
Core v1 (request logger), as prediction records and labels.

Answers 200 on success and only then: KServe's logger counts any other status, 202 included, as
an error and does not retry. The pairing state lives in memory (``ingest.cloudevents.PairStore``):
halves still waiting are lost on restart, and expired ones are counted at the next event.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from monitor.api.auth import TokenChecker
from monitor.api.problems import ProblemError
from monitor.errors import PayloadTooLargeError
from monitor.ingest import cloudevents as ce
from monitor.service import Service


def _now() -> float:
    """The pairing clock (tests replace it)."""
    return time.monotonic()


def build_cloudevents_router(service: Service) -> APIRouter:
    router = APIRouter()
    tokens = TokenChecker(service.config.server.auth)
    ingest = [Depends(tokens.dependency("ingest"))]
    server = service.config.server
    store = ce.PairStore(server.cloudevents.pair_timeout.total_seconds(), clock=lambda: _now())

    async def read_body(request: Request) -> bytes:
        limit = server.max_body_bytes
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise PayloadTooLargeError(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise PayloadTooLargeError(limit)
            chunks.append(chunk)
        return b"".join(chunks)

    def bad(exc: ce.CloudEventError) -> ProblemError:
        if exc.status == 400:
            return ProblemError(400, "Malformed CloudEvent", str(exc), kind="malformed-cloudevent")
        return ProblemError(422, "Unusable CloudEvent", str(exc), kind="invalid-cloudevent")

    @router.post("/v1/cloudevents", dependencies=ingest, tags=["ingest"])
    async def post_cloudevent(request: Request) -> JSONResponse:
        """A CloudEvent of KServe's inference logger or Seldon Core v1's request logger, in
        binary or structured content mode. A request and its response (paired by ``ce-id``,
        Seldon's by ``ce-requestid``) become one prediction record per row, id ``<ce-id>`` (or
        ``<ce-id>-<row>`` for several rows); Seldon feedback's ``truth`` becomes their labels."""
        for half in store.expire():
            service.metrics.cloudevents_unpaired.labels(half.model, half.kind).inc()
        body = await read_body(request)
        headers = {name.lower(): value for name, value in request.headers.items()}
        try:
            event = ce.parse_event(headers, body)
        except ce.CloudEventError as exc:
            raise bad(exc) from None
        name = ce.service_name(event)
        model = ce.find_model(service.config.models, name)
        if model is None:
            raise ProblemError(
                404,
                "Unknown inference service",
                f"no configured model has inference_service (or name) {name!r}",
                kind="model-not-found",
            )
        out: dict[str, Any] = {"model": model.name, "id": event.id, "type": event.type}
        if store.seen(event):
            return JSONResponse({**out, "status": "duplicate"})
        try:
            if event.kind == "feedback":
                key = event.request_id or event.id
                labels = ce.labels_of(key, ce.truth_rows(model, event), event.time)
                result = await run_in_threadpool(service.store_labels, model.name, labels)
                store.mark_seen(event)
                return JSONResponse({**out, "status": "stored", "labels": result.accepted})
            half = ce.Half(
                model=model.name,
                kind=event.kind,
                event=event,
                rows=ce.request_rows(model, event) if event.kind == "request" else None,
                outputs=ce.response_rows(model, event) if event.kind == "response" else None,
            )
            partner = store.match(half)
            if partner is None:
                store.mark_seen(event)
                return JSONResponse({**out, "status": "pending"})
            request_half, response_half = (
                (half, partner) if half.kind == "request" else (partner, half)
            )
            assert request_half.rows is not None and response_half.outputs is not None
            records = ce.records_of(
                event.pair_key,
                request_half.rows,
                response_half.outputs,
                request_half.event.time or response_half.event.time,
            )
        except ce.CloudEventError as exc:
            raise bad(exc) from None
        result = await run_in_threadpool(service.store_predictions, model.name, records)
        store.mark_seen(event)
        store.done(event)
        return JSONResponse(
            {
                **out,
                "status": "stored",
                "accepted": result.accepted,
                "duplicates": result.duplicates,
            }
        )

    return router
