"""Live transcription: Deepgram's live API over a WebSocket at GET /listen and GET /v1/listen.

Auth happens in the auth middleware before the upgrade (header, or the subprotocol pair ["token", "<t>"]
that browsers can send), so a refused client gets 401/403 and never an open socket. Query parameters are
checked before the upgrade too (400). A stream takes its model at connect (``model=``); the streams on one model
share its Transcriber (their passes are batched together).
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from auth.middleware import offered_subprotocol_token
from stt.errors import BadRequest
from stt.http import live_streams
from stt.http.keys import LIVE_STREAMS, MODELS, SETTINGS
from stt.http import service
from stt.inference.transcriber import Transcriber
from stt.http import apidoc as doc
from stt.http.faces.deepgram.params import LIVE_ENDPOINTING_MS, LIVE_PARAMS, deepgram_model, live_values
from stt.http.params import bcp47_language
from stt.http.faces.deepgram.connection import (CLOSE_INTERNAL_ERROR, CLOSE_TRY_LATER, Identity, LiveOptions,
                                                LiveStream, Limits)
from stt.http.stats import request_stats
from stt.live.session import StreamConfig, StreamSession

log = logging.getLogger("stt.live")
routes = web.RouteTableDef()

MAX_ENDPOINTING_MS = 60_000


def _operation(operation_id: str, error_schema: str) -> dict[str, Any]:
    """A WebSocket upgrade: OpenAPI cannot describe the messages, so the description points to them."""
    return doc.op("live", "Live transcription over a WebSocket (Deepgram's live API)",
                  "Upgrade with `Authorization: Token|Bearer <t>` or the subprotocol pair `[\"token\", \"<t>\"]`; "
                  "send binary audio, `KeepAlive`, `Finalize`, `CloseStream`; receive `Results`, `SpeechStarted`, "
                  "`UtteranceEnd` and `Metadata` (see the README's Live transcription section). `model` is chosen "
                  "at connect. Other Deepgram parameters are accepted and ignored. A plain GET without the "
                  "upgrade is a 400.",
                  operationId=operation_id, parameters=doc.query(LIVE_PARAMS),
                  responses={"101": {"description": "Switching to the WebSocket protocol"},
                             **doc.errors(error_schema, (400, 401, 403, 429))})


@routes.get("/listen")
@routes.get("/v1/listen")
@doc.describe(per_path={"/listen": _operation("listenSeed", "Error"),
                        "/v1/listen": _operation("listenLive", "DeepgramError")})
async def listen(request: web.Request) -> web.StreamResponse:
    # The model is chosen at connect (``model=``) and held for the stream's life: never unloaded under it.
    # It loads (if need be) before the upgrade, so a refusal is still an HTTP answer.
    name = deepgram_model(live_values(request.query)["model"], request.app[MODELS].sources)
    async with service.model(request, name) as transcriber:
        return await _listen(request, transcriber)


async def _listen(request: web.Request, transcriber: Transcriber) -> web.StreamResponse:
    options, config = parse_query(request.query, multilingual=transcriber.engine.multilingual)
    ws = web.WebSocketResponse(protocols=_echoed_protocols(request), max_msg_size=4 * 1024 * 1024)
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint takes a WebSocket connection (Deepgram's live API)")
    await ws.prepare(request)
    live_streams.bound_receive_buffer(request)
    app = request.app
    streams = app[LIVE_STREAMS]
    limits = app[SETTINGS].limits
    if len(streams) >= limits.max_streams:
        await ws.close(code=CLOSE_TRY_LATER,
                       message=f"too many live streams: the limit is {limits.max_streams}, retry later".encode())
        return ws
    engine = transcriber.engine
    sessions = [StreamSession(config) for _ in range(options.channels if options.multichannel else 1)]
    stream = LiveStream(ws, sessions, transcriber.passes, options,
                        Limits(idle_s=limits.stream_idle_seconds, max_seconds=limits.max_stream_seconds),
                        Identity(request_stats(request).request_id, engine.name, engine.model_name),
                        transport=request.transport,
                        speakers=transcriber.live_speakers if options.diarize else None)
    streams.add(stream)
    try:
        await stream.run()
    except Exception:  # after the upgrade an HTTP error response can no longer be sent: close the socket
        log.exception("%s: live stream failed", request_stats(request).request_id)
        await ws.close(code=CLOSE_INTERNAL_ERROR, message=b"internal server error")
    finally:
        streams.discard(stream)
    return ws


def _echoed_protocols(request: web.Request) -> tuple[str, ...]:
    """The auth subprotocol exactly as offered ("token", "Token", "bearer"...): a browser refuses a handshake
    that does not echo one of the subprotocols it offered."""
    pair = offered_subprotocol_token(request)
    return (pair[0],) if pair else ()


def parse_query(query: MultiMapping[str], multilingual: bool = True) -> tuple[LiveOptions, StreamConfig]:
    """Deepgram's query parameters (validated by params.LIVE_PARAMS) -> options and stream config."""
    v = live_values(query)
    language = _language(v["language"], multilingual)
    options = LiveOptions(
        encoding=v["encoding"], sample_rate=v["sample_rate"], channels=v["channels"],
        interim_results=v["interim_results"], vad_events=v["vad_events"],
        punctuate=v["punctuate"] or v["smart_format"], multichannel=v["multichannel"], diarize=v["diarize"],
        # Digits are written in the stream's language; with language=multi a pass's language is not known here.
        numerals_language=language if v["numerals"] or v["smart_format"] else None,
    )
    if options.multichannel and options.encoding != "linear16":
        raise BadRequest("multichannel: needs encoding=linear16 (raw interleaved channels)", param="multichannel")
    utterance_end = v["utterance_end_ms"]
    config = StreamConfig(
        language=language,
        endpointing_s=_endpointing(v["endpointing"]),
        utterance_end_s=utterance_end / 1000 if utterance_end else None,
    )
    return options, config


def _language(value: str, multilingual: bool) -> str | None:
    """"multi" detects per pass; otherwise a tag Whisper knows, checked before the upgrade (a bad one would fail
    every pass of the batch it joins)."""
    if not multilingual:
        if value not in ("multi", "en") and bcp47_language(value) != "en":
            raise BadRequest(f"The loaded model is English-only; language={value!r} is not available",
                             param="language")
        return "en"
    return None if value == "multi" else bcp47_language(value)


def _endpointing(raw: str) -> float | None:
    """Deepgram's endpointing: milliseconds, or false (off), or true (the default)."""
    low = raw.strip().lower()
    if low == "false":
        return None
    if low == "true":
        return LIVE_ENDPOINTING_MS / 1000
    # isdigit() alone accepts "①" and other Unicode digits that int() refuses (a 500, not a 400).
    if not (low.isascii() and low.isdigit()) or not 0 <= int(low) <= MAX_ENDPOINTING_MS:
        raise BadRequest(f"endpointing: invalid value {raw!r}, expected milliseconds (0 to "
                         f"{MAX_ENDPOINTING_MS}), true or false", param="endpointing")
    return int(low) / 1000


def setup(app: web.Application) -> None:
    live_streams.setup(app)
