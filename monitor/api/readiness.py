"""Refuse the database's routes while the service has not reached its database.

``monitor serve`` answers HTTP before its database is reachable (``monitor.startup``). Until
the service has started, every ``/v1/...`` request (all of them read or write the database)
is answered ``503`` problem+json with ``Retry-After`` (``ServiceNotReadyError``) and never
reaches a route, so nothing touches tables that may not be migrated yet. ``/healthz``,
``/readyz``, ``/metrics`` and the API documents answer as usual.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from monitor.api.problems import problem_for
from monitor.errors import ServiceNotReadyError
from monitor.service import Service

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GATED_PREFIX = "/v1/"


class ReadinessGate:
    def __init__(self, app: ASGIApp, *, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.service.started
            or scope["type"] != "http"
            or not scope["path"].startswith(GATED_PREFIX)
        ):
            await self.app(scope, receive, send)
            return
        problem = problem_for(ServiceNotReadyError())
        assert problem is not None
        await problem.response(scope["path"])(scope, receive, send)
