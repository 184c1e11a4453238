"""Request counts and latency by route: an ASGI middleware around the whole app.

``drift_monitor_http_request_duration_seconds{route,method,code}``: ``route`` is the route's
path template (``/v1/models/{model}/predictions``), never the raw path, and ``code`` the status
class (``2xx``, ``4xx``...), so the label values are bounded by the API, not by requests.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import Histogram

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNMATCHED = "unmatched"


class RequestMetrics:
    def __init__(self, app: ASGIApp, *, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = scope.get("route_template") or getattr(route, "path", None) or UNMATCHED
            self.histogram.labels(template, scope["method"], f"{status // 100}xx").observe(
                time.perf_counter() - started
            )
