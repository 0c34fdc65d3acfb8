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


def offered_subprotocol_token(request: web.Request) -> tuple[str, str] | None:
    """Browsers cannot set headers on a WebSocket: they offer a subprotocol pair instead, ["token", "<t>"]
    (Deepgram's API keys) or ["bearer", "<t>"] (Deepgram's JS SDK 5.x with an access token), the scheme in
    any case. Returns (scheme as offered, token); only on a WebSocket upgrade, never on a plain HTTP request."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if len(offered) == 2 and offered[0].lower() in SCHEMES and offered[1]:
        return offered[0], offered[1]
    return None


OPENAI_KEY_PROTOCOL = "openai-insecure-api-key."


def openai_subprotocol_token(request: web.Request) -> str | None:
    """OpenAI's Realtime API in a browser: the key rides in a subprotocol, ``openai-insecure-api-key.<t>``,
    offered beside ``realtime`` (which the handler echoes). Only on a WebSocket upgrade."""
    if request.headers.get("Upgrade", "").lower() != "websocket":
        return None
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    tokens = [p[len(OPENAI_KEY_PROTOCOL):] for p in offered if p.startswith(OPENAI_KEY_PROTOCOL)]
    return tokens[0] if len(tokens) == 1 and tokens[0] else None


def token_from_subprotocol(request: web.Request) -> str | None:
    """The handler echoes the offered scheme (see offered_subprotocol_token) when it accepts the upgrade."""
    pair = offered_subprotocol_token(request)
    return pair[1] if pair else openai_subprotocol_token(request)


def auth_middleware(store: TokenStore, throttle: FailureThrottle,
                    extract: Callable[[web.Request], str | None] | None = None,
                    wrong_token_is_401: Callable[[web.Request], bool] = lambda request: False) -> Any:
    """``extract`` may supply a token from elsewhere (the WebSocket subprotocol) when the header is absent.
    A wrong token is 403 (the native API) unless ``wrong_token_is_401`` says the face answers 401 for it
    (OpenAI and Deepgram do, and their SDKs raise AuthenticationError only on 401)."""

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
            reason = "Invalid token or Authorization scheme (use 'Token <t>' or 'Bearer <t>')"
            if wrong_token_is_401(request):
                raise web.HTTPUnauthorized(reason=reason, headers={"WWW-Authenticate": 'Token realm="stt"'})
            raise web.HTTPForbidden(reason=reason)
        # A success does not wipe this address's failures: they age out of the window, so guesses between
        # valid requests still add up to 429.
        return await handler(request)

    return middleware
