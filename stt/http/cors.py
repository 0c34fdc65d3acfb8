"""CORS for browser clients: off unless ``server.http.cors_origins`` lists allowed origins (or ``"*"``).

A small middleware rather than aiohttp-cors: that library wants every route registered with it one by one,
while the API faces add their routes in their own modules; one app-wide rule also covers error responses
(401/413/503 ...) so a browser can read them. Preflight (OPTIONS) needs no token, as browsers send none.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from stt.http.faces.native.errors import native_error_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Request-Id"
EXPOSED_HEADERS = "X-Request-Id, Retry-After"
MAX_AGE_S = "600"


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)
        self._any = "*" in self._origins

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin value for this request's Origin, or None when not allowed."""
        if not origin:
            return None
        if self._any:
            return "*"
        return origin if origin in self._origins else None


def setup_cors(app: web.Application, origins: Iterable[str]) -> None:
    """Answer preflights and add CORS headers to every response; does nothing when ``origins`` is empty."""
    policy = CorsPolicy(origins)
    if not policy.enabled:
        return
    # Right after the request-id middleware (first): a preflight gets an id and an access-log line, and is
    # answered before auth, which would refuse it for lack of a token.
    app.middlewares.insert(1, _preflight_middleware(policy))

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        allowed = policy.allow_origin(request.headers.get("Origin"))
        response.headers.add("Vary", "Origin")
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS

    app.on_response_prepare.append(add_headers)


def _is_preflight(request: web.Request) -> bool:
    return (request.method == "OPTIONS" and "Origin" in request.headers
            and "Access-Control-Request-Method" in request.headers)


def _preflight_middleware(policy: CorsPolicy) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not _is_preflight(request):
            return await handler(request)
        if policy.allow_origin(request.headers.get("Origin")) is None:
            return web.json_response(native_error_body("Origin not allowed", "forbidden"), status=403)
        # Allow-Origin itself is added by the on_response_prepare hook, like on every other response.
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": MAX_AGE_S,
        })

    return middleware
