"""Build the FastAPI application around a Service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from monitor import __version__
from monitor.api.cloudevents import build_cloudevents_router
from monitor.api.ingest import IngestMiddleware, operations
from monitor.api.openapi import complete
from monitor.api.problems import install_problem_handlers
from monitor.api.readiness import ReadinessGate
from monitor.api.request_metrics import RequestMetrics
from monitor.api.routes import build_router
from monitor.api.schemas import (
    IngestOut,
    LabelIn,
    LabelIngestOut,
    PredictionIn,
    ReferenceRecordIn,
)
from monitor.api.slots import DecodeSlots
from monitor.service import Service
from monitor.startup import StorageConnector


def create_app(
    service: Service,
    *,
    manage_service: bool = True,
    stop_service: bool | None = None,
    connector: StorageConnector | None = None,
) -> FastAPI:
    """The API for ``service``. With ``manage_service``, startup and shutdown of the app
    start and stop the service (migrations, reference loading, scheduled jobs);
    ``stop_service`` (default: the same) stops it at shutdown only, for a service started
    beforehand. Stopping there, not after the server returns, matters: on SIGTERM uvicorn
    re-raises the signal once the app has shut down, which ends a process that is not PID 1
    before any code after the server would run.

    ``connector`` (with ``manage_service`` false) starts the service in the background
    instead, retrying while the database is unavailable; the app serves meanwhile and
    answers the database's routes 503 until the service has started (``ReadinessGate``)."""
    stop = manage_service if stop_service is None else stop_service

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_service:
            service.start()
        if connector is not None:
            connector.start()
        try:
            yield
        finally:
            if connector is not None:  # first, so that no attempt starts a stopped service
                connector.stop()
            if stop:
                service.stop()

    app = FastAPI(
        title="drift-monitor",
        version=__version__,
        lifespan=lifespan,
        description="Drift and performance monitoring for machine-learning models.",
    )
    install_problem_handlers(app)
    slots = DecodeSlots(slots=service.config.server.max_concurrent_large_bodies)
    app.include_router(build_router(service, slots=slots))
    app.include_router(build_cloudevents_router(service))
    app.add_middleware(IngestMiddleware, service=service, slots=slots)
    app.add_middleware(ReadinessGate, service=service)  # in front of ingest
    app.add_middleware(RequestMetrics, histogram=service.metrics.request_duration)  # outermost
    app.state.service = service

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            auth = service.config.server.auth.enabled
            schema["paths"] = {**operations(auth=auth), **schema["paths"]}
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for model in (PredictionIn, LabelIn, ReferenceRecordIn, IngestOut, LabelIngestOut):
                components[model.__name__] = model.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            app.openapi_schema = complete(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
