"""Optional bearer tokens with three scopes: ingest, read and admin (admin may do all)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from monitor.api.problems import ProblemError
from monitor.config import AuthConfig

Scope = Literal["ingest", "read", "admin"]

# Declares the scheme in the OpenAPI document (and each route using it); never refuses by
# itself: ``TokenChecker.check`` does, with our problem bodies.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token of server.auth: ingest_tokens, read_tokens or admin_tokens "
    "(admin tokens may do everything).",
)


class TokenChecker:
    def __init__(self, auth: AuthConfig) -> None:
        self.enabled = auth.enabled
        self._tokens: dict[Scope, list[bytes]] = {
            "ingest": [t.get_secret_value().encode() for t in auth.ingest_tokens],
            "read": [t.get_secret_value().encode() for t in auth.read_tokens],
            "admin": [t.get_secret_value().encode() for t in auth.admin_tokens],
        }

    def scopes_of(self, token: bytes) -> set[Scope]:
        """Every scope the token holds; each comparison takes constant time."""
        found: set[Scope] = set()
        for scope, tokens in self._tokens.items():
            for candidate in tokens:
                if hmac.compare_digest(candidate, token):
                    found.add(scope)
        return found

    def check(self, authorization: str | None, scope: Scope) -> None:
        """Raise the 401 or 403 problem unless ``authorization`` (the header's value) holds a
        bearer token with ``scope`` or admin; nothing to check when no tokens are set."""
        if not self.enabled:
            return
        kind, _, token = (authorization or "").partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            raise ProblemError(
                401,
                "Unauthorized",
                "a bearer token is required",
                kind="unauthorized",
                headers={"WWW-Authenticate": 'Bearer realm="drift-monitor"'},
            )
        scopes = self.scopes_of(token.strip().encode())
        if not scopes:
            raise ProblemError(
                401,
                "Unauthorized",
                "the bearer token is not valid",
                kind="unauthorized",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        if "admin" not in scopes and scope not in scopes:
            raise ProblemError(
                403, "Forbidden", f"this endpoint needs a {scope} token", kind="forbidden"
            )

    def dependency(self, scope: Scope) -> Callable[..., Awaitable[None]]:
        """The check as a FastAPI dependency. With tokens set, it also puts the bearer
        scheme on the route in the OpenAPI document (``api.openapi`` adds the 401 and 403
        there); without, the route is open and documented so."""

        async def check(
            request: Request,
            _scheme: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
        ) -> None:
            self.check(request.headers.get("authorization"), scope)

        async def open_route() -> None:
            return None

        return check if self.enabled else open_route
