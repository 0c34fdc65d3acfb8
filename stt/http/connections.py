"""A bound on open connections, and a quiet log when the process runs out of file descriptors anyway.

aiohttp accepts every connection and keeps each idle keep-alive one open: 18,797 clients sending a request
every 50 s were all held, and with the common 1,024 open-file limit 1,100 of them left no descriptor for a
new client (``/ping`` timed out) while asyncio logged a traceback per failed accept() (92 MB in 30 s).

``LimitedAppRunner`` is aiohttp's AppRunner with a protocol factory in front of its Server: beyond
``max_connections`` a new connection gets a 503 JSON answer (with a request id) and is closed at once, without
its request being read. ``serve`` runs the app with it the way ``web.run_app`` would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import ssl
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import web

from stt.http.faces.native.errors import native_error_body
from stt.http.observability import REQUEST_ID_HEADER, SERVER_NAME

log = logging.getLogger("stt.http.connections")
RESERVED_FDS = 128  # descriptors kept for model files, threads' pipes, log files, the refusals themselves
LOG_EVERY_S = 60.0  # at most one log line per minute about refused connections or failed accepts


def effective_limit(configured: int) -> int:
    """The configured limit, lowered to leave RESERVED_FDS of the process's open-file limit free."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return configured
    ceiling = max(1, soft - RESERVED_FDS)
    if configured > ceiling:
        log.warning("server.http.max_connections %d is over what the open-file limit (%d) allows: using %d",
                    configured, soft, ceiling)
    return min(configured, ceiling)


class _Throttled:
    """Counts events and logs one line per LOG_EVERY_S with how many happened."""

    def __init__(self, message: str) -> None:
        self._message, self._count, self._last = message, 0, float("-inf")

    def __call__(self, level: int = logging.WARNING) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= LOG_EVERY_S:
            log.log(level, self._message, self._count)
            self._count, self._last = 0, now


class _Refusal(asyncio.Protocol):
    """Answers 503 to whatever connects and closes. The request is read and dropped until the client closes
    (at most LINGER_S): closing a socket with unread input sends a reset, which can destroy the 503 before
    the client reads it."""

    LINGER_S = 0.5

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._closer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        body = json.dumps(native_error_body(
            f"Too many open connections (the limit is {self._limit}): retry later", "overloaded")).encode()
        head = ("HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nRetry-After: 1\r\nServer: {SERVER_NAME}\r\n"
                f"{REQUEST_ID_HEADER}: {uuid.uuid4()}\r\n\r\n").encode()
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(head + body)
        if transport.can_write_eof():
            transport.write_eof()  # the answer is complete; the client sees the end of it at once
        self._closer = asyncio.get_running_loop().call_later(self.LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the request is not parsed: it gets the same answer whatever it is

    def eof_received(self) -> bool:
        return False  # the client closed its side: close ours

    def connection_lost(self, exc: Exception | None) -> None:
        if self._closer is not None:
            self._closer.cancel()


class _ConnectionLimit:
    """The protocol factory the listening sockets use: aiohttp's Server, up to ``limit`` connections."""

    def __init__(self, server: web.Server, limit: int) -> None:
        self._server = server
        self._limit = limit
        self._refused = _Throttled("refused %d connection(s) over server.http.max_connections")

    def __call__(self) -> asyncio.BaseProtocol:
        if len(self._server.connections) >= self._limit:
            self._refused()
            return _Refusal(self._limit)
        return self._server()

    def __getattr__(self, name: str) -> Any:  # the runner's other uses of its Server (shutdown, counts)
        return getattr(self._server, name)


class LimitedAppRunner(web.AppRunner):
    def __init__(self, app: web.Application, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _ConnectionLimit(server, self._max_connections)  # type: ignore[return-value]


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """asyncio logs a traceback for every accept() that fails for lack of descriptors (and retries each
    second per socket): keep one line per minute with a count instead."""
    failed = _Throttled("accept() failed %d time(s): out of file descriptors (see server.http.max_connections)")
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if "out of system resource" in str(context.get("message", "")):
            failed(logging.ERROR)
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


async def _run(app: web.Application, *, host: str, port: int, ssl_context: ssl.SSLContext | None,
               max_connections: int, on_ready: Callable[[], None], **server_options: Any) -> None:
    quiet_accept_errors(asyncio.get_running_loop())
    runner = LimitedAppRunner(app, effective_limit(max_connections), handle_signals=True, **server_options)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
        on_ready()
        await asyncio.Event().wait()  # until SIGTERM/SIGINT raise GracefulExit in the loop
    finally:
        await runner.cleanup()


def serve(app: web.Application, **kwargs: Any) -> None:
    """``web.run_app`` with LimitedAppRunner: same signals, same graceful shutdown (see stt/http/lifecycle.py)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    main = loop.create_task(_run(app, **kwargs))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not main.done():
            main.cancel()  # its finally runs the graceful shutdown
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(main)
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
