"""GET /v1/realtime?intent=transcription: OpenAI's Realtime API, transcription sessions, over a WebSocket.

Auth happens in the auth middleware before the upgrade: ``Authorization: Bearer <t>`` (OpenAI's SDKs), or the
``openai-insecure-api-key.<t>`` subprotocol browsers offer beside ``realtime`` (echoed, as OpenAI does). A
refused client gets 401 and never an open socket. The stream takes one of the app's live-stream slots
(``limits.max_streams``, shared with /v1/listen) and runs on the same live session core and scheduler.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from stt.errors import BadRequest
from stt.http import apidoc as doc
from stt.http import live_streams
from stt.http.faces.realtime.connection import CLOSE_INTERNAL_ERROR, CLOSE_TRY_LATER, Limits, RealtimeStream
from stt.http.faces.realtime.errors import EventError
from stt.http.faces.realtime.events import Events, new_id
from stt.http import service
from stt.http.keys import LIVE_STREAMS, SETTINGS
from stt.inference.transcriber import Transcriber
from stt.http.params import bcp47_language
from stt.http.stats import request_stats

log = logging.getLogger("stt.live")
routes = web.RouteTableDef()

PATH = "/v1/realtime"
MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # an append of 4 MiB of base64 holds 65 s of 24 kHz PCM
BETA_PROTOCOL = "openai-beta.realtime-v1"


@routes.get(PATH)
@doc.describe(doc.op(
    "live", "Realtime transcription session over a WebSocket (OpenAI's Realtime API)",
    "Upgrade with `?intent=transcription` and `Authorization: Bearer <t>` (or the subprotocols `realtime` and "
    "`openai-insecure-api-key.<t>`). Send `session.update` / `transcription_session.update`, "
    "`input_audio_buffer.append` (base64 PCM16 24 kHz, G.711 μ-law or A-law), `input_audio_buffer.commit` and "
    "`.clear`; receive `session.created`/`updated`, `input_audio_buffer.speech_started`/`speech_stopped`/"
    "`committed`/`cleared`, `conversation.item.input_audio_transcription.delta`/`completed` and `error` (see the "
    "README's Realtime section). A plain GET without the upgrade is a 400.",
    operationId="realtimeTranscription",
    parameters=[{"name": "intent", "in": "query", "required": True,
                 "schema": {"type": "string", "enum": ["transcription"]}}],
    responses={"101": {"description": "Switching to the WebSocket protocol"},
               **doc.errors("OpenAIError", (400, 401, 429))}))
async def realtime(request: web.Request) -> web.StreamResponse:
    intent = request.query.get("intent")
    if intent != "transcription":
        raise BadRequest("intent: this server serves transcription sessions only: connect with "
                         "?intent=transcription", param="intent")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    ws = web.WebSocketResponse(protocols=("realtime",) if "realtime" in offered else (),
                               max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint takes a WebSocket connection (OpenAI's Realtime API)")
    await ws.prepare(request)
    live_streams.bound_receive_buffer(request)  # back-pressure reaches a fast sender within seconds
    # The session's model is the server's default: transcription.model arrives after the upgrade and is
    # echoed, not used to switch models in the middle of a session.
    async with service.model(request, None) as transcriber:
        return await _session(request, ws, transcriber, offered)


async def _session(request: web.Request, ws: web.WebSocketResponse, transcriber: Transcriber,
                   offered: list[str]) -> web.WebSocketResponse:
    app, request_id = request.app, request_stats(request).request_id
    limits = app[SETTINGS].limits
    streams = app[LIVE_STREAMS]
    if len(streams) >= limits.max_streams:
        message = f"too many live streams: the limit is {limits.max_streams}, retry later"
        await ws.send_json(Events(new_id("sess")).error(EventError("server_busy", message, kind="server_error")))
        await ws.close(code=CLOSE_TRY_LATER, message=message.encode())
        return ws
    beta = "realtime=v1" in request.headers.get("OpenAI-Beta", "") or BETA_PROTOCOL in offered
    stream = RealtimeStream(ws, transcriber.passes,
                            Limits(idle_s=limits.stream_idle_seconds, max_seconds=limits.max_stream_seconds),
                            request_id, _language_check(transcriber.engine.multilingual),
                            "beta" if beta else "ga", transport=request.transport)
    streams.add(stream)
    try:
        await stream.run()
    except Exception:  # after the upgrade an HTTP error can no longer be sent: close the socket
        log.exception("%s: realtime session failed", request_id)
        await ws.close(code=CLOSE_INTERNAL_ERROR, message=b"internal server error")
    finally:
        streams.discard(stream)
    return ws


def _language_check(multilingual: bool) -> Any:
    """ISO-639-1 (or a BCP-47 tag) -> Whisper's code; an English-only model takes only English."""

    def check(value: str, param: str) -> str:
        try:
            language = bcp47_language(value)
        except BadRequest as exc:
            raise EventError("invalid_value", f"{param}: {exc.message.removeprefix('language: ')}", param) from None
        if not multilingual and language != "en":
            raise EventError("invalid_value", f"{param}: the loaded model is English-only; {value!r} is not "
                             "available", param)
        return language

    return check


def setup(app: web.Application) -> None:
    live_streams.setup(app)
