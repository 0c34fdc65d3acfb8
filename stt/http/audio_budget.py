"""A bound on the decoded audio that requests in flight hold, queued or running.

Decoded audio is 64 kB per second (16 kHz float32): at the default ``max_audio_seconds`` of 4 h one request
holds 0.9 GB, and with ``max_queue`` 64 queued requests could hold 59 GB. Each request's decoded audio is
counted from the moment it is decoded until its handler returns; a request whose audio would take the total
over ``limits.max_held_audio_seconds`` is refused with 503 and Retry-After (its decoded copy is dropped at
once). One request alone is always admitted, so a single upload up to ``max_audio_seconds`` still runs.
Decoding itself runs at most ``DECODERS`` at a time, which bounds the memory in flight before the count.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from stt.errors import Overloaded

BYTES_PER_SECOND = 16000 * 4  # float32 at 16 kHz
HELD = web.RequestKey("held_audio_bytes", int)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class AudioBudget:
    def __init__(self, max_seconds: float, decoders: int) -> None:
        self._max_bytes = int(max_seconds * BYTES_PER_SECOND)
        self.held = 0  # bytes
        self.decoding = asyncio.Semaphore(decoders)

    def hold(self, request: web.Request, nbytes: int) -> None:
        if self.held and self.held + nbytes > self._max_bytes:
            raise Overloaded(f"Too much audio in flight: {self.held // BYTES_PER_SECOND} s decoded and waiting, "
                             f"the limit is {self._max_bytes // BYTES_PER_SECOND} s; retry later",
                             retry_after_s=5)
        self.held += nbytes
        request[HELD] = request.get(HELD, 0) + nbytes

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def release(request: web.Request, handler: Handler) -> web.StreamResponse:
            try:
                return await handler(request)
            finally:
                self.held -= request.get(HELD, 0)

        return release


AUDIO_BUDGET = web.AppKey("audio_budget", AudioBudget)
