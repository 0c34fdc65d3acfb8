"""The app's open live streams, whatever face they speak (Deepgram's /v1/listen, OpenAI's /v1/realtime): one
set, so ``limits.max_streams`` counts every face's streams together, and one shutdown hook that flushes them."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Protocol

from aiohttp import web

from stt.http.keys import LIFECYCLE, LIVE_STREAMS

log = logging.getLogger("stt.live")

# The kernel's receive buffer for a live socket (8 s of 16 kHz linear16): a stream that stops reading while its
# passes catch up (back-pressure) slows a fast sender within seconds, instead of after the megabytes Linux's
# autotuning would buffer (minutes of audio the client believes sent). 40x real time at a 100 ms round trip.
RECEIVE_BUFFER_BYTES = 256 * 1024


class LiveConnection(Protocol):
    done: asyncio.Event

    def stop_for_shutdown(self) -> None:
        """Stop receiving; flush what was heard, then close with 1001."""

    def abort(self) -> None:
        """Cut the connection (shutdown ran out of time, or the client does not read)."""


def bound_receive_buffer(request: web.Request) -> None:
    """After the upgrade: see RECEIVE_BUFFER_BYTES."""
    sock = request.transport.get_extra_info("socket") if request.transport is not None else None
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        except OSError:  # not a TCP socket (a test transport): nothing to bound
            pass


async def close_streams(app: web.Application) -> None:
    """on_shutdown: every stream stops receiving, sends the results for what it heard and closes with 1001,
    within the shutdown budget; a stream still not done then (a client that does not read) has its connection
    cut, so it cannot hold the process."""
    streams: list[LiveConnection] = list(app.get(LIVE_STREAMS, ()))
    if not streams:
        return
    for stream in streams:
        stream.stop_for_shutdown()
    budget = max(0.0, app[LIFECYCLE].deadline() - time.monotonic())
    waits = [asyncio.ensure_future(s.done.wait()) for s in streams]
    _, pending = await asyncio.wait(waits, timeout=budget)
    for wait in pending:
        wait.cancel()
    late = [s for s in streams if not s.done.is_set()]
    if late:
        log.warning("shutdown timeout: cutting %d live stream(s) that did not finish", len(late))
        for stream in late:
            stream.abort()


def setup(app: web.Application) -> None:
    """Once per app, whichever live face asks first."""
    if LIVE_STREAMS in app:
        return
    app[LIVE_STREAMS] = set()
    app.on_shutdown.append(close_streams)
