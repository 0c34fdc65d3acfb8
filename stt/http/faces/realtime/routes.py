"""GET /v1/realtime?intent=transcription: OpenAI's Realtime API, transcription sessions, over a WebSocket.

Auth happens in the auth middleware before the upgrade: ``Authorization: Bearer <t>`` (OpenAI's SDKs), or the
``openai-insecure-api-key.<t>`` subprotocol browsers offer beside ``realtime`` (echoed, as OpenAI does). A
refused client gets 401 and never an open socket. The stream takes one of the app's live-stream slots
(``limits.max_streams``, shared with /v1/listen) and runs on the same live session core and scheduler.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from stt.errors import BadRequest
from stt.http import apidoc as doc
from stt.http import live_streams
from stt.http.faces.openai.params import ALIAS, openai_model
from stt.http.faces.realtime.connection import (CLOSE_INTERNAL_ERROR, CLOSE_TRY_LATER, Language, Limits,
                                                RealtimeStream)
from stt.http.faces.realtime.errors import EventError
from stt.http.faces.realtime.events import Events, new_id
from stt.http import service
from stt.http.keys import LIVE_STREAMS, MODELS, SETTINGS
from stt.inference.pass_batcher import PassBatcher
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
    "README's Realtime section). `model` (query) picks the session's model at connect, as the OpenAI face "
    "maps names; a `transcription.model` naming another configured model switches to it before any audio is "
    "appended. A plain GET without the upgrade is a 400.",
    operationId="realtimeTranscription",
    parameters=[{"name": "intent", "in": "query", "required": True,
                 "schema": {"type": "string", "enum": ["transcription"]}},
                {"name": "model", "in": "query", "required": False,
                 "description": "A configured model (`GET /v1/models`); `whisper-1` and OpenAI's own model names "
                 "mean the default. Another name: 404 `model_not_found`, before the upgrade.",
                 "schema": {"type": "string", "default": ALIAS}}],
    responses={"101": {"description": "Switching to the WebSocket protocol"},
               **doc.errors("OpenAIError", (400, 401, 429)),
               "404": {"description": "`model_not_found`: no such model (see `GET /v1/models`)",
                       "content": {"application/json": {"schema": doc.ref("OpenAIError")}}}}))
async def realtime(request: web.Request) -> web.StreamResponse:
    intent = request.query.get("intent")
    if intent != "transcription":
        raise BadRequest("intent: this server serves transcription sessions only: connect with "
                         "?intent=transcription", param="intent")
    requested = request.query.get("model", ALIAS)
    name = openai_model(requested, request.app[MODELS].sources)  # unknown: 404 model_not_found, no upgrade
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    ws = web.WebSocketResponse(protocols=("realtime",) if "realtime" in offered else (),
                               max_msg_size=MAX_MESSAGE_BYTES)
    if not ws.can_prepare(request).ok:
        raise BadRequest("This endpoint takes a WebSocket connection (OpenAI's Realtime API)")
    # The model loads (if need be) before the upgrade, so a refusal is still an HTTP answer.
    async with SessionModels(request).open(name) as models:
        await ws.prepare(request)
        live_streams.bound_receive_buffer(request)  # back-pressure reaches a fast sender within seconds
        return await _session(request, ws, models, offered, requested)


class SessionModels:
    """The session's model lease: chosen at connect, switched (``switch``) by a ``session.update`` naming another
    configured model before any audio. The new model is leased before the old one is released, so a refused
    switch keeps the session on its model."""

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self.names = tuple(request.app[MODELS].sources)
        self.current = ""
        self.transcriber: Transcriber | None = None
        self._exit: contextlib.AsyncExitStack | None = None

    @contextlib.asynccontextmanager
    async def open(self, name: str | None) -> AsyncIterator[SessionModels]:
        self.current = name or self._request.app[MODELS].default
        stack = contextlib.AsyncExitStack()
        self.transcriber = await stack.enter_async_context(service.model(self._request, name))
        self._exit = stack
        try:
            yield self
        finally:
            await self._exit.aclose()

    async def switch(self, name: str, language: str | None, param: str) -> tuple[PassBatcher, Language]:
        # The current model is released first: the new one may need its room (max_loaded_models). A refused
        # switch leases the current one again (still loaded, barring a race with its eviction).
        assert self._exit is not None
        await self._exit.aclose()
        try:
            transcriber = await self._lease(name)
            check = _language_check(transcriber.engine.multilingual)
            if language is not None:
                check(language, param)
        except BaseException:
            if self._exit is not None:
                await self._exit.aclose()
            try:
                self.transcriber = await self._lease(self.current)
            except Exception as exc:
                raise RuntimeError(f"model {self.current!r} could not be leased again") from exc
            raise
        self.current = name
        return transcriber.passes, check

    async def _lease(self, name: str) -> Transcriber:
        stack = contextlib.AsyncExitStack()
        self._exit = stack
        limits = self._request.app[SETTINGS].limits
        self.transcriber = await stack.enter_async_context(self._request.app[MODELS].lease(
            name, limits.queue_timeout_seconds))
        return self.transcriber


async def _session(request: web.Request, ws: web.WebSocketResponse, models: SessionModels,
                   offered: list[str], requested: str) -> web.WebSocketResponse:
    assert models.transcriber is not None
    transcriber = models.transcriber
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
                            "beta" if beta else "ga", transport=request.transport, models=models,
                            model=requested)
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
