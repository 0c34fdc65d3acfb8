"""Graceful shutdown bookkeeping: which requests are in flight, when shutdown began, what it had to cut off.

aiohttp's ``run_app`` does the mechanics on SIGTERM/SIGINT: it closes the listening sockets, lets each
in-flight handler run for up to ``shutdown_timeout`` seconds, cancels those still running, then runs the
app's cleanup (where the scheduler drains and the engine closes). This module makes the outcome visible:
a log line when shutdown starts, and whether anything accepted was lost (then the exit code is not 0).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger("stt.http.lifecycle")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclasses.dataclass
class Lifecycle:
    timeout_s: float
    in_flight: int = 0
    stopping_since: float | None = None  # time.monotonic() when shutdown began
    cut_off: int = 0  # requests cancelled after shutdown began: accepted but not answered

    def deadline(self) -> float:
        """When the shutdown budget runs out (monotonic clock)."""
        start = self.stopping_since if self.stopping_since is not None else time.monotonic()
        return start + self.timeout_s

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def track(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.in_flight += 1
            try:
                return await handler(request)
            except asyncio.CancelledError:
                # Cancelled before the deadline: the client went away. At the deadline: shutdown cut it off.
                if self.stopping_since is not None and time.monotonic() >= self.deadline() - 0.05:
                    self.cut_off += 1
                raise
            finally:
                self.in_flight -= 1

        return track

    async def on_shutdown(self, app: web.Application) -> None:
        self.stopping_since = time.monotonic()
        log.info("shutting down: no new connections; finishing %d accepted request(s), for up to %.0f s",
                 self.in_flight, self.timeout_s)
