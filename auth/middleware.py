"""aiohttp middleware: every route needs ``Authorization: Token <t>`` (or ``Bearer <t>``) unless marked public.

Failures are raised as aiohttp HTTP exceptions; the app's error middleware renders them in the error shape of
the API face that was called, so this module knows nothing of response formats.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiohttp import web

from auth.client_address import client_address
from auth.throttle import FailureThrottle
from auth.tokens import TokenStore

SCHEMES = ("token", "bearer")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
F = TypeVar("F", bound=Callable[..., Any])


def public(handler: F) -> F:
    """Mark a handler as reachable without a token (health checks, the static browser page)."""
    setattr(handler, "__stt_public__", True)
    return handler


def is_public(handler: Any) -> bool:
    return bool(getattr(handler, "__stt_public__", False))


def token_from_header(value: str | None) -> str | None:
    """The token in an Authorization header value, or None when the value is malformed or of another scheme."""
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() not in SCHEMES or not token or " " in token:
        return None
    return token


def token_from_subprotocol(request: web.Request) -> str | None:
    """Browsers cannot set headers on a WebSocket: they offer the subprotocols ["token", "<t>"] instead
    (Deepgram's convention). The handler echoes "token" when it accepts the upgrade."""
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) == 2 and offered[0].lower() == "token" and offered[1]:
        return offered[1]
    return None


def auth_middleware(store: TokenStore, throttle: FailureThrottle,
                    extract: Callable[[web.Request], str | None] | None = None) -> Any:
    """``extract`` may supply a token from elsewhere (the WebSocket subprotocol) when the header is absent."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS" or is_public(request.match_info.handler):
            return await handler(request)
        address = client_address(request)  # behind trusted proxies: the forwarded client
        wait = throttle.retry_after(address)
        if wait > 0:
            raise web.HTTPTooManyRequests(reason="Too many failed authentication attempts",
                                          headers={"Retry-After": str(math.ceil(wait))})
        header = request.headers.get("Authorization")
        token = token_from_header(header) if header is not None else (extract(request) if extract else None)
        if header is None and token is None:
            throttle.record_failure(address)
            raise web.HTTPUnauthorized(reason="Missing Authorization header: send 'Authorization: Token <token>'",
                                       headers={"WWW-Authenticate": 'Token realm="stt"'})
        if token is None or not store.is_valid(token):
            throttle.record_failure(address)
            raise web.HTTPForbidden(reason="Invalid token or Authorization scheme (use 'Token <t>' or 'Bearer <t>')")
        throttle.record_success(address)
        return await handler(request)

    return middleware
