"""The HTTP API: ``create_app(service)`` builds it; nothing happens at import."""

from __future__ import annotations

from monitor.api.app import create_app

__all__ = ["create_app"]
