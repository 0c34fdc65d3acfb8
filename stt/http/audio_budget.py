"""Each request's share of the memory budget (stt/memory_budget.py), and a bound on the decoded audio held.

Every request gets a ``Hold`` on the app's ``MemoryBudget`` (``memory_hold(request)``): the body as it is read,
its inflated bytes, the decoded audio and the windows in flight are reserved in it before they are allocated,
and the middleware gives back whatever is left when the handler returns, however it ends. A reservation over
``limits.max_held_bytes`` is answered 503 with Retry-After (``OverBudget`` -> ``Overloaded``).

Decoded audio is 64 kB per second (16 kHz float32); it is also counted in seconds against
``limits.max_held_audio_seconds``, as before. One request alone is always admitted by both, so a single upload
up to ``max_audio_seconds`` still runs. Decoding itself runs at most ``DECODERS`` at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from stt.errors import Overloaded
from stt.memory_budget import (RETRY_AFTER_S, TRIM_AFTER_BYTES, Hold, MemoryBudget, OverBudget,
                               give_back_to_the_system)

BYTES_PER_SECOND = 16000 * 4  # float32 at 16 kHz
HELD = web.RequestKey("held_audio_bytes", int)
MEMORY = web.RequestKey("memory_hold", Hold)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def overloaded(exc: OverBudget) -> Overloaded:
    return Overloaded(f"The server holds too much for other requests ({exc}); retry later",
                      retry_after_s=RETRY_AFTER_S)


class AudioBudget:
    def __init__(self, max_seconds: float, decoders: int, memory: MemoryBudget | None = None) -> None:
        self._max_bytes = int(max_seconds * BYTES_PER_SECOND)
        self.held = 0  # bytes
        self.decoding = asyncio.Semaphore(decoders)
        self.memory = memory if memory is not None else MemoryBudget(1 << 62)

    def hold(self, request: web.Request, nbytes: int) -> None:
        if self.held and self.held + nbytes > self._max_bytes:
            raise Overloaded(f"Too much audio in flight: {self.held // BYTES_PER_SECOND} s decoded and waiting, "
                             f"the limit is {self._max_bytes // BYTES_PER_SECOND} s; retry later",
                             retry_after_s=RETRY_AFTER_S)
        self.held += nbytes
        request[HELD] = request.get(HELD, 0) + nbytes

    def middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def release(request: web.Request, handler: Handler) -> web.StreamResponse:
            hold = request[MEMORY] = self.memory.hold()
            try:
                return await handler(request)
            except OverBudget as exc:
                raise overloaded(exc) from exc
            finally:
                self.held -= request.get(HELD, 0)
                hold.close()
                if hold.peak_held >= TRIM_AFTER_BYTES:  # its buffers are freed: return them to the system
                    asyncio.get_running_loop().run_in_executor(None, give_back_to_the_system)

        return release


def memory_hold(request: web.Request) -> Hold:
    """The request's hold on the memory budget (one per request, given back when its handler returns)."""
    return request[MEMORY]


AUDIO_BUDGET = web.AppKey("audio_budget", AudioBudget)
