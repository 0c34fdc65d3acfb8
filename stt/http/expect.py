"""``Expect: 100-continue`` answered after auth and the size check, and other expectations refused as JSON.

aiohttp runs a route's expect handler before any middleware: its default said "100 Continue" to a client with
no token or a body over the limit (inviting it to send the body), and answered ``Expect: 200-ok`` with a
plain-text 417 without a request id. Here the routes' expect handler does nothing (stt/http/aiohttp_patches.py);
the middleware refuses unknown expectations in the API's error shape, and ``send_continue`` (called by stt/http/bodies.py once the
request passed auth and its declared size was checked) invites the body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http import HttpVersion11

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@web.middleware
async def expect_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    expect = request.headers.get("Expect")
    if expect is not None and expect.strip().lower() != "100-continue":
        raise web.HTTPExpectationFailed(reason=f"Unsupported Expect header: {expect[:40]!r} (only 100-continue)")
    return await handler(request)


async def send_continue(request: web.Request) -> None:
    """Invite the body of a client that waits for it (curl does for bodies over 1 MB)."""
    if request.version == HttpVersion11 and request.headers.get("Expect", "").strip().lower() == "100-continue":
        await request.writer.write(CONTINUE)
        request.writer.output_size = 0  # the response proper has not started (as aiohttp's own handler does)
