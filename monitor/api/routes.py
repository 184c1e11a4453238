"""Routes: reference, model summaries, drift and performance, health and metrics. The ingest
routes (predictions, labels) are served in front of these by ``api.ingest``."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from prometheus_client.exposition import choose_encoder
from pydantic import WithJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response, StreamingResponse

from monitor import timestamps
from monitor.api.auth import TokenChecker
from monitor.api.body import (
    REFERENCE_TYPES,
    decompressed_body,
    header_value,
    ingest_body,
    small_body,
)
from monitor.api.openapi import INSTANT_SCHEMA, problems
from monitor.api.problems import ProblemError
from monitor.api.schemas import (
    AlertEventOut,
    AlertOut,
    DeliveryOut,
    EvaluationHistoryOut,
    EvaluationOut,
    ModelOut,
    PerformanceHistoryOut,
    ReadyOut,
    ReferenceOut,
    ReferenceRecordIn,
    body_doc,
)
from monitor.api.slots import DecodeSlots
from monitor.errors import (
    ModelNotFoundError,
)
from monitor.evaluation import OUTPUT_NAMES
from monitor.evaluation.document import to_document
from monitor.ingest.payload import Payload
from monitor.metrics import WithoutCreated
from monitor.service import Service

ModelName = Annotated[str, Path(description="A model name from the config.")]
# what ``_instant`` reads, for the document
Instant = WithJsonSchema(INSTANT_SCHEMA)


def build_router(service: Service, *, slots: DecodeSlots) -> APIRouter:
    router = APIRouter()
    tokens = TokenChecker(service.config.server.auth)
    read = [Depends(tokens.dependency("read"))]
    admin = [Depends(tokens.dependency("admin"))]
    server = service.config.server

    async def payload_of(request: Request, model: str, accepted: tuple[str, ...]) -> Payload:
        return await ingest_body(
            service,
            model,
            request.stream(),
            content_type=request.headers.get("content-type"),
            content_length=request.headers.get("content-length"),
            content_encoding=header_value(request.headers.getlist("content-encoding")),
            expect=request.headers.get("expect"),
            accepted=accepted,
        )

    @router.put(
        "/v1/models/{model}/reference",
        status_code=201,
        response_model=ReferenceOut,
        dependencies=admin,
        tags=["reference"],
        openapi_extra=body_doc(ReferenceRecordIn, REFERENCE_TYPES, min_records=1),
        responses=problems(400, 404, 408, 413, 415, 422, 503),
    )
    async def put_reference(request: Request, model: ModelName) -> JSONResponse:
        """Replace the model's reference data set; earlier versions are kept."""
        payload = await payload_of(request, model, REFERENCE_TYPES)
        small = small_body(service, model, payload)

        def work() -> ReferenceOut:
            body = decompressed_body(service, model, payload) if small is None else small
            return ReferenceOut.of(
                service.store_reference_body(model, body, payload.media_type, source="upload")
            )

        if small is not None:
            out = await run_in_threadpool(work)  # refusals are counted by the service
        else:
            async with slots.hold():  # a large reference is decoded in a slot
                out = await run_in_threadpool(work)
        return JSONResponse(out.model_dump(), status_code=201)

    @router.get(
        "/v1/models/{model}/reference",
        response_model=ReferenceOut,
        dependencies=read,
        tags=["reference"],
        responses=problems(404, 503, say={404: "No such model, or it has no reference yet"}),
    )
    def get_reference(model: ModelName) -> ReferenceOut:
        info = service.reference(model)
        if info is None:
            raise ProblemError(
                404, "No reference", f"model {model!r} has no reference yet", kind="no-reference"
            )
        return ReferenceOut.of(info)

    @router.get(
        "/v1/models",
        response_model=list[ModelOut],
        dependencies=read,
        tags=["models"],
        responses=problems(503),
    )
    def list_models() -> list[ModelOut]:
        return [ModelOut.of(m, reference=service.reference(m.name)) for m in service.config.models]

    @router.get(
        "/v1/models/{model}",
        response_model=ModelOut,
        dependencies=read,
        tags=["models"],
        responses=problems(404, 503),
    )
    def get_model(model: ModelName) -> ModelOut:
        config = service.model(model)
        return ModelOut.of(config, reference=service.reference(model), counts=service.counts(model))

    @router.post(
        "/v1/models/{model}/evaluate",
        response_model=EvaluationOut,
        dependencies=admin,
        tags=["drift"],
        responses=problems(404, 422, 503),
    )
    async def post_evaluate(
        model: ModelName,
        at: Annotated[
            str | None,
            Instant,
            Query(description="evaluate as of this time (RFC 3339 or Unix seconds), not now"),
        ] = None,
        webhooks: Annotated[
            bool, Query(description="false: record alert events without sending them")
        ] = True,
    ) -> JSONResponse:
        """Evaluate the model's current window now (or as of ``at``, as ``monitor replay``
        does); answers with the evaluation."""
        service.model(model)
        when = _instant(at, "at")
        if when is not None:  # it becomes the window's end and the evaluation's time
            when = _in_range(
                when,
                "at",
                now=service.clock(),
                max_future_seconds=server.max_timestamp_skew.total_seconds(),
            )
        evaluation = await run_in_threadpool(
            functools.partial(service.evaluate, model, at=when, webhooks=webhooks)
        )
        return JSONResponse(to_document(evaluation))

    @router.get(
        "/v1/models/{model}/drift",
        response_model=EvaluationOut,
        dependencies=read,
        tags=["drift"],
        responses=problems(404, 503, say={404: "No such model, or it was not evaluated yet"}),
    )
    def get_drift(model: ModelName) -> JSONResponse:
        """The latest evaluation."""
        document = service.latest_evaluation(model)
        if document is None:
            raise ProblemError(
                404, "No evaluation", f"model {model!r} was not evaluated yet", kind="no-evaluation"
            )
        return JSONResponse(document)

    @router.get(
        "/v1/models/{model}/drift/history",
        response_model=EvaluationHistoryOut,
        dependencies=read,
        tags=["drift"],
        responses=problems(404, 422, 503, say={404: "No such model, or no such feature"}),
    )
    def get_drift_history(
        model: ModelName,
        since: Annotated[str | None, Instant, Query(description="from (excluded)")] = None,
        until: Annotated[str | None, Instant, Query(description="to (included)")] = None,
        feature: Annotated[str | None, Query(description="only this feature")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> JSONResponse:
        """Evaluations oldest first (the newest ``limit`` of them)."""
        config = service.model(model)
        known = {f.name for f in config.features} | set(OUTPUT_NAMES)
        if feature is not None and feature not in known:
            raise ProblemError(
                404,
                "Feature not found",
                f"model {model!r} has no feature {feature!r}",
                kind="feature-not-found",
            )
        documents = service.evaluation_history(
            model, since=_instant(since, "since"), until=_instant(until, "until"), limit=limit
        )
        if feature is not None:
            for document in documents:
                for group in ("features", "outputs"):
                    document[group] = {k: v for k, v in document[group].items() if k == feature}
        return JSONResponse({"model": model, "evaluations": documents})

    @router.get(
        "/v1/models/{model}/performance/history",
        response_model=PerformanceHistoryOut,
        dependencies=read,
        tags=["performance"],
        responses=problems(404, 422, 503),
    )
    def get_performance_history(
        model: ModelName,
        since: Annotated[str | None, Instant, Query(description="from (excluded)")] = None,
        until: Annotated[str | None, Instant, Query(description="to (included)")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> JSONResponse:
        """Performance and label health of stored evaluations, oldest first."""
        documents = service.evaluation_history(
            model, since=_instant(since, "since"), until=_instant(until, "until"), limit=limit
        )
        return JSONResponse(
            {
                "model": model,
                "evaluations": [
                    {
                        "evaluated_at": d["evaluated_at"],
                        "window": d["window"],
                        "performance": d.get("performance"),
                        "labels": d.get("labels"),
                    }
                    for d in documents
                ],
            }
        )

    @router.get(
        "/v1/models/{model}/export",
        dependencies=read,
        tags=["models"],
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"application/x-ndjson": {}, "text/csv": {}},
                "description": "The window's records, oldest first",
            },
            **problems(404, 422, 503),
        },
    )
    def get_export(
        model: ModelName,
        start: Annotated[str, Instant, Query(description="from (excluded)")],
        end: Annotated[str, Instant, Query(description="to (included)")],
        format: Annotated[
            Literal["jsonl", "csv"], Query(description="jsonl (default) or csv")
        ] = "jsonl",
    ) -> StreamingResponse:
        """A window's predictions with their features, scores and labels, as JSON Lines or
        CSV: what a retraining pipeline fetches when an alert names the window."""
        service.model(model)
        first, last = _instant(start, "start"), _instant(end, "end")
        assert first is not None and last is not None
        media_type = "text/csv" if format == "csv" else "application/x-ndjson"
        body = service.export(model, start=first, end=last, media_type=media_type)
        return StreamingResponse(body, media_type=media_type)

    @router.get(
        "/v1/alerts",
        response_model=list[AlertOut],
        dependencies=read,
        tags=["alerts"],
        responses=problems(404, 503, say={404: "No such model"}),
    )
    def get_alerts(
        model: Annotated[str | None, Query(description="Only this model's alerts.")] = None,
    ) -> list[AlertOut]:
        """Active alerts: pending (breaching, not yet for long enough) and firing."""
        return [AlertOut.of(a) for a in service.active_alerts(model)]

    @router.get(
        "/v1/alerts/history",
        response_model=list[AlertEventOut],
        dependencies=read,
        tags=["alerts"],
        responses=problems(404, 422, 503, say={404: "No such model"}),
    )
    def get_alert_history(
        model: Annotated[str | None, Query(description="Only this model's events.")] = None,
        since: Annotated[str | None, Instant, Query(description="from (excluded)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[AlertEventOut]:
        """Alert events (firing, escalated, resolved), newest first."""
        entries = service.alert_history(model=model, since=_instant(since, "since"), limit=limit)
        return [AlertEventOut.of(e) for e in entries]

    @router.post(
        "/v1/webhooks/{route}/test",
        status_code=202,
        dependencies=admin,
        tags=["webhooks"],
        responses=problems(404, 503, say={404: "No such webhook"}),
    )
    def post_test_event(
        route: Annotated[str, Path(description="A webhook name from the config.")],
    ) -> dict[str, str]:
        """Queue a signed ``webhook.test`` event for the route, to check a receiver."""
        return {"event_id": service.send_test_event(route)}

    @router.get(
        "/v1/deliveries",
        response_model=list[DeliveryOut],
        dependencies=read,
        tags=["webhooks"],
        responses=problems(422, 503),
    )
    def get_deliveries(
        status: Annotated[
            Literal["pending", "delivered", "failed"] | None,
            Query(description="Only deliveries in this state (failed: given up)."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[DeliveryOut]:
        """Webhook deliveries in the outbox, newest first, with their events."""
        return [DeliveryOut.of(d) for d in service.deliveries(status=status, limit=limit)]

    @router.post(
        "/v1/deliveries/{event_id}/resend",
        status_code=202,
        dependencies=admin,
        tags=["webhooks"],
        responses=problems(
            404, 422, 503, say={404: "No delivered or failed delivery of the event (to route)"}
        ),
    )
    def post_resend(
        event_id: str,
        route: Annotated[str | None, Query(description="Only this route's delivery.")] = None,
    ) -> dict[str, int]:
        """Send a delivered or failed event again (the same id and body), due now."""
        # no stored id holds a NUL, and PostgreSQL refuses one even to compare with
        stored = "\x00" not in event_id + (route or "")
        queued = service.resend(event_id, route) if stored else 0
        if not queued:
            raise ProblemError(
                404,
                "No delivery to resend",
                f"no delivered or failed delivery of event {event_id!r}"
                + (f" to {route!r}" if route else ""),
                kind="delivery-not-found",
            )
        return {"queued": queued}

    @router.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get(
        "/readyz",
        tags=["health"],
        responses={
            503: {
                "description": "Not ready: the checks say what is not",
                "model": ReadyOut,
            }
        },
        response_model=ReadyOut,
    )
    def readyz() -> JSONResponse:
        """The service has started (migrated its database, loaded its references) and the
        database answers. While ``monitor serve`` is still trying to reach the database the
        database check reads ``starting`` (and is not probed again here)."""
        if not service.started:
            checks = {"config": "ok", "database": "starting"}
        else:
            checks = {
                "config": "ok",
                "database": "ok" if service.database_ready() else "unreachable",
            }
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse(
            {"status": "ok" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    metrics_deps = read if server.auth.protect_metrics else []

    @router.get(
        "/metrics",
        dependencies=metrics_deps,
        tags=["health"],
        response_class=Response,
        responses={
            200: {
                "description": "The metrics",
                "content": {
                    "text/plain": {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            }
        },
    )
    def metrics(request: Request) -> Response:
        """Prometheus text format, or OpenMetrics when the Accept header asks for it."""
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encoder(WithoutCreated(service.registry)), media_type=content_type)

    return router


def _instant(value: str | None, field: str) -> float | None:
    """RFC 3339 (with offset) or a finite number of Unix seconds; 422 naming the parameter
    otherwise."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # every bound is a time in the accepted range (``monitor.timestamps``)
        return _in_range(seconds, field, now=None, max_future_seconds=0.0)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise _invalid(field, "not a date-time")
    # any date-time RFC 3339 writes is a time (years 1 to 9999); ``at`` is checked further
    return parsed.timestamp()


def _in_range(seconds: float, field: str, *, now: float | None, max_future_seconds: float) -> float:
    """``seconds`` if ``monitor.timestamps`` accepts it; 422 naming the parameter otherwise."""
    try:
        return timestamps.check(seconds, now=now, max_future_seconds=max_future_seconds)
    except timestamps.TimestampRangeError as exc:
        raise _invalid(field, str(exc)) from None


def _invalid(field: str, reason: str) -> ProblemError:
    return ProblemError(
        422,
        "Invalid request",
        f"{field} must be an RFC 3339 date-time with offset or Unix seconds: {reason}",
        kind="invalid-request",
        errors=[{"field": f"query.{field}", "reason": reason}],
    )


__all__ = ["ModelNotFoundError", "build_router"]
