"""``POST /v1/cloudevents``: the inference logs of KServe (``spec.predictor.logger``) and Seldon
Core v1 (request logger), as prediction records and labels.

Answers 200 on success and only then: KServe's logger counts any other status, 202 included, as
an error and does not retry. A half is answered only once it is committed to the database, where
it waits for the other half (``jobs.cloudevents``): a restart loses nothing, and the other half
may reach another replica.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from monitor.api.auth import TokenChecker
from monitor.api.body import content_coding, header_value, receive_body
from monitor.api.openapi import problems
from monitor.api.problems import ProblemError
from monitor.ingest import cloudevents as ce
from monitor.ingest.payload import inflate
from monitor.service import Service


def build_cloudevents_router(service: Service) -> APIRouter:
    router = APIRouter()
    tokens = TokenChecker(service.config.server.auth)
    ingest = [Depends(tokens.dependency("ingest"))]
    server = service.config.server

    async def read_body(request: Request) -> bytes:
        encoding = content_coding(header_value(request.headers.getlist("content-encoding")))
        data = await receive_body(
            request.stream(),
            content_length=request.headers.get("content-length"),
            expect=request.headers.get("expect"),
            max_bytes=server.max_body_bytes,
            timeout_seconds=server.body_timeout.total_seconds(),
        )
        if encoding == "gzip":
            return inflate(data, max_bytes=server.max_decompressed_bytes)
        return data

    def bad(exc: ce.CloudEventError) -> ProblemError:
        if exc.status == 400:
            return ProblemError(400, "Malformed CloudEvent", str(exc), kind="malformed-cloudevent")
        return ProblemError(422, "Unusable CloudEvent", str(exc), kind="invalid-cloudevent")

    @router.post(
        "/v1/cloudevents",
        dependencies=ingest,
        tags=["ingest"],
        responses=problems(
            400,
            404,
            408,
            413,
            415,
            422,
            503,
            say={
                400: "Not a CloudEvent: a required attribute or header is missing or malformed",
                404: "No configured model has the event's inference service",
                422: "A CloudEvent, but its data does not fit the model",
            },
        ),
    )
    async def post_cloudevent(request: Request) -> JSONResponse:
        """A CloudEvent of KServe's inference logger or Seldon Core v1's request logger, in
        binary or structured content mode. A request and its response (paired by ``ce-id``,
        Seldon's by ``ce-requestid``) become one prediction record per row, id ``<ce-id>`` (or
        ``<ce-id>-<row>`` for several rows); Seldon feedback's ``truth`` becomes their labels."""
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
        pairing = service.cloudevents
        try:
            if event.kind == "feedback":
                key = event.request_id or event.id
                labels = ce.labels_of(key, ce.truth_rows(model, event), event.time)
                received = await run_in_threadpool(pairing.feedback, model.name, event, labels)
            else:
                payload = (
                    ce.pack(ce.request_rows(model, event))
                    if event.kind == "request"
                    else ce.pack_response(
                        ce.response_rows(model, event), ce.response_version(event)
                    )
                )
                received = await run_in_threadpool(pairing.half, model.name, event, payload)
        except ce.CloudEventError as exc:
            raise bad(exc) from None
        result = received.result
        if result is None:
            return JSONResponse({**out, "status": received.status})
        if event.kind == "feedback":
            return JSONResponse({**out, "status": "stored", "labels": result.accepted})
        return JSONResponse(
            {
                **out,
                "status": "stored",
                "accepted": result.accepted,
                "duplicates": result.duplicates,
            }
        )

    return router
