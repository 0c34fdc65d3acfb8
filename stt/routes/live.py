"""Live transcription: Deepgram's live API over a WebSocket at GET /listen and GET /v1/listen.

Auth happens in the auth middleware before the upgrade (header, or the subprotocol pair ["token", "<t>"]
that browsers can send), so a refused client gets 401/403 and never an open socket. Query parameters are
checked before the upgrade too (400). Sessions share the app's engine and scheduler through one PassBatcher.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping

from aiohttp import web

from stt.batching import PassBatcher
from stt.errors import BadRequest
from stt.keys import ENGINE, LIVE_BATCHER, LIVE_STREAMS, SCHEDULER, SETTINGS
from stt.live_stream import CLOSE_TRY_LATER, Identity, LiveOptions, LiveStream, Limits
from stt.stats import request_stats
from stt.stream_audio import ENCODINGS
from stt.streaming import StreamConfig, StreamSession

log = logging.getLogger("stt.live")
routes = web.RouteTableDef()

DEFAULT_ENDPOINTING_MS = 400  # Deepgram's default (10 ms) is shorter than our speech detector can judge
MAX_SAMPLE_RATE = 192_000
MAX_CHANNELS = 8


@routes.get("/listen")
@routes.get("/v1/listen")
async def listen(request: web.Request) -> web.StreamResponse:
    options, config = parse_query(request.query, multilingual=request.app[ENGINE].multilingual)
    ws = web.WebSocketResponse(protocols=("token",), max_msg_size=4 * 1024 * 1024)
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint takes a WebSocket connection (Deepgram's live API)")
    await ws.prepare(request)
    app = request.app
    streams = app[LIVE_STREAMS]
    limits = app[SETTINGS].limits
    if len(streams) >= limits.max_streams:
        await ws.close(code=CLOSE_TRY_LATER,
                       message=f"too many live streams: the limit is {limits.max_streams}, retry later".encode())
        return ws
    engine = app[ENGINE]
    stream = LiveStream(ws, StreamSession(config), app[LIVE_BATCHER], options,
                        Limits(idle_s=limits.stream_idle_seconds, max_seconds=limits.max_stream_seconds),
                        Identity(request_stats(request).request_id, engine.name, engine.model_name))
    streams.add(stream)
    try:
        await stream.run()
    finally:
        streams.discard(stream)
    return ws


def parse_query(query: Mapping[str, str], multilingual: bool = True) -> tuple[LiveOptions, StreamConfig]:
    """Deepgram's query parameters -> options; unknown ones (model, tier, ...) are accepted and ignored."""
    encoding = query.get("encoding") or None
    if encoding is not None and encoding not in ENCODINGS:
        raise BadRequest(f"Unsupported encoding {encoding!r}: use linear16, or omit it for WebM/Ogg containers",
                         param="encoding")
    options = LiveOptions(
        encoding=encoding,
        sample_rate=_int(query, "sample_rate", 16000, 1, MAX_SAMPLE_RATE),
        channels=_int(query, "channels", 1, 1, MAX_CHANNELS),
        interim_results=_bool(query, "interim_results", False),
        vad_events=_bool(query, "vad_events", False),
        punctuate=_bool(query, "punctuate", False) or _bool(query, "smart_format", False),
    )
    utterance_end = query.get("utterance_end_ms")
    config = StreamConfig(
        language=_language(query.get("language", "en"), multilingual),
        endpointing_s=_endpointing(query),
        utterance_end_s=_int(query, "utterance_end_ms", 0, 1, 60_000) / 1000 if utterance_end else None,
    )
    return options, config


def _language(value: str, multilingual: bool) -> str | None:
    language = None if value == "multi" else value.split("-")[0].lower()  # "en-US" -> "en"
    if not multilingual and language not in (None, "en"):
        raise BadRequest(f"The loaded model is English-only; language={value!r} is not available",
                         param="language")
    return language if multilingual else "en"


def _endpointing(query: Mapping[str, str]) -> float | None:
    value = query.get("endpointing")
    if value is not None and value.lower() == "false":
        return None
    if value is not None and value.lower() == "true":
        return DEFAULT_ENDPOINTING_MS / 1000
    return _int(query, "endpointing", DEFAULT_ENDPOINTING_MS, 0, 60_000) / 1000


def _int(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be an integer, got {raw!r}", param=name) from None
    if not low <= value <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {value}", param=name)
    return value


def _bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"{name} must be true or false, got {raw!r}", param=name)


async def _live_ctx(app: web.Application) -> AsyncIterator[None]:
    app[LIVE_STREAMS] = set()
    app[LIVE_BATCHER] = PassBatcher(app[SCHEDULER], app[ENGINE])
    yield


async def _close_streams(app: web.Application) -> None:
    """on_shutdown: tell live clients the server is going away instead of dropping their sockets."""
    streams = list(app.get(LIVE_STREAMS, ()))
    await asyncio.gather(*(s.close_for_shutdown() for s in streams), return_exceptions=True)


def setup(app: web.Application) -> None:
    """Call after the engine and scheduler contexts are registered: the batcher needs both."""
    app.add_routes(routes)
    app.cleanup_ctx.append(_live_ctx)
    app.on_shutdown.append(_close_streams)
