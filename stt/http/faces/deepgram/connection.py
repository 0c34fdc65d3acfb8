"""One live connection: WebSocket messages in, the live session core in the middle, Deepgram messages out.

The receive loop decodes audio and hands it to a ``stt.live.runner.SessionRunner`` (one session per channel,
the pass loop on the shared PassBatcher, flushing), the same core OpenAI's Realtime face drives. Flushing
(Finalize, CloseStream, limits) decodes everything heard, so the words at the very end of the audio always
come out before Metadata and the close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMessage, WSMsgType, web

from stt.inference.pass_batcher import PassBatcher
from stt.diarization.live import LiveSpeakers
from stt.errors import AudioError, BadRequest
from stt.http.faces.deepgram.messages import metadata, render
from stt.http.faces.deepgram.params import LIVE_PARAMS
from stt.live.audio_in import ContainerDecoder, PcmDecoder, StreamDecoder
from stt.live.runner import SessionRunner
from stt.live.session import Event, SpeechStarted, StreamSession, Transcribed

log = logging.getLogger("stt.live")

SAMPLE_RATE_PARAM = next(p for p in LIVE_PARAMS if p.name == "sample_rate")
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_BAD_DATA = 1007  # the audio cannot be decoded
CLOSE_POLICY = 1008  # a limit of this stream was reached
CLOSE_IDLE = 1011  # Deepgram's code when no audio arrives in time (NET-0001)
CLOSE_INTERNAL_ERROR = 1011  # the WebSocket code for an unexpected server failure
CLOSE_TRY_LATER = 1013  # the server is at its stream limit


@dataclasses.dataclass(frozen=True)
class LiveOptions:
    encoding: str | None = None  # None: a container (WebM/Ogg) the decoder recognises
    sample_rate: int = 16000
    channels: int = 1
    interim_results: bool = False
    vad_events: bool = False
    punctuate: bool = False
    multichannel: bool = False  # each linear16 channel transcribed on its own (one session per channel)
    diarize: bool = False  # speaker numbers on final words (per channel)


@dataclasses.dataclass(frozen=True)
class Limits:
    idle_s: float
    max_seconds: float
    # A send (or the close) that cannot drain for this long: the client stopped reading, the socket is cut.
    send_timeout_s: float = 10.0


@dataclasses.dataclass(frozen=True)
class Identity:
    request_id: str
    engine: str
    model_name: str


class LiveStream:
    def __init__(self, ws: web.WebSocketResponse, session: StreamSession | list[StreamSession],
                 batcher: PassBatcher, options: LiveOptions, limits: Limits, identity: Identity,
                 transport: asyncio.BaseTransport | None = None,
                 speakers: Callable[[], LiveSpeakers] | None = None) -> None:
        sessions = session if isinstance(session, list) else [session]
        self._ws = ws
        self._runner = SessionRunner(sessions, batcher, self._send, identity.request_id, speakers)
        self._channels = len(sessions)
        self._options, self._limits, self._id = options, limits, identity
        self._decoder: StreamDecoder | None = None
        self._hash = hashlib.sha256()
        self._first_message = True
        self._transport = transport  # cut when the client does not read, or shutdown runs out of time
        self._stop = asyncio.Event()  # shutdown: stop receiving, flush, close 1001
        self.done = asyncio.Event()

    async def run(self) -> None:
        self._runner.start()
        try:
            code, reason = await self._receive_loop()
            if code is not None:
                await self._finish(code, reason)
        finally:
            self._runner.stop()
            if isinstance(self._decoder, ContainerDecoder):
                self._decoder.close()  # idempotent after _finish; the only way out when the client vanished
            self.done.set()

    def stop_for_shutdown(self) -> None:
        """Stop receiving; the stream then flushes its final Results and Metadata and closes with 1001."""
        self._stop.set()

    def abort(self) -> None:
        """Cut the connection (shutdown ran out of time, or the client does not read what is sent)."""
        if self._transport is not None:
            self._transport.abort()

    # -- receiving ----------------------------------------------------------------------------------

    async def _receive_loop(self) -> tuple[int | None, str]:
        """Returns the close code and reason once the stream should end (None: the client is gone)."""
        loop = asyncio.get_running_loop()
        while True:
            # Idle means no audio and no text message: the deadline is not restarted by the pings aiohttp
            # answers inside receive() (a client pinging every 5 s would otherwise hold a slot forever).
            deadline = loop.time() + self._limits.idle_s
            try:
                msg = await self._next_message(deadline)
            except TimeoutError:
                return CLOSE_IDLE, f"no audio or KeepAlive received for {self._limits.idle_s:g} s"
            if msg is None:
                return CLOSE_GOING_AWAY, "server shutting down"
            if msg.type == WSMsgType.BINARY:
                if not msg.data:
                    return CLOSE_NORMAL, "stream closed by client"
                try:
                    await self._audio(msg.data)
                except AudioError as exc:
                    return CLOSE_BAD_DATA, exc.message
                if self._runner.seconds >= self._limits.max_seconds:
                    return CLOSE_POLICY, f"stream reached its limit of {self._limits.max_seconds:g} s of audio"
            elif msg.type == WSMsgType.TEXT:
                try:
                    action = await self._control(msg.data)
                except BadRequest as exc:  # a "sample rate:" handshake with a bad rate
                    return CLOSE_BAD_DATA, exc.message
                if action == "close":
                    return CLOSE_NORMAL, "stream closed by client"
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client went away, nothing is left to send to
                return None, ""
            self._first_message = False

    async def _next_message(self, deadline: float) -> WSMessage | None:
        """The next audio or text message, or None once shutdown asks the stream to stop. Only the wait for
        a message is interrupted, never the handling of one (a feed may be running in a thread)."""
        if self._stop.is_set():
            return None
        receive = asyncio.ensure_future(self._ws.receive())
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            async with asyncio.timeout_at(deadline):
                await asyncio.wait((receive, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            receive.cancel()  # no effect when it is done
        return receive.result() if receive.done() and not receive.cancelled() else None

    async def _control(self, text: str) -> str | None:
        if self._first_message and text.strip().lower().startswith("sample rate:"):
            # The Flask microphone tutorial's handshake: raw Int16 mono at the given rate follows.
            rate = SAMPLE_RATE_PARAM.parse(text.split(":", 1)[1])  # same bounds as the sample_rate parameter
            self._decoder = PcmDecoder(rate, 1)
            return None
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError, RecursionError):  # RecursionError: deeply nested JSON
            kind = None
        if kind == "CloseStream":
            return "close"
        if kind == "Finalize":
            await self._flush(from_finalize=True)
        elif kind != "KeepAlive":
            log.info("%s: ignored text message of type %r", self._id.request_id, kind)
        return None

    async def _audio(self, data: bytes) -> None:
        self._hash.update(data)
        decoder = self._decoder or self._make_decoder()
        samples = decoder.feed(data)
        if samples.size:
            await self._runner.feed(samples)

    def _make_decoder(self) -> StreamDecoder:
        o = self._options
        self._decoder = (PcmDecoder(o.sample_rate, o.channels, keep_channels=self._channels > 1)
                         if o.encoding == "linear16" else ContainerDecoder())
        return self._decoder

    # -- ending -------------------------------------------------------------------------------------

    async def _flush(self, from_finalize: bool) -> str | None:
        """Returns why the audio could not be decoded, if it could not."""
        error = None
        # PCM keeps going after Finalize; a container's bytes end there (a new one may follow).
        if self._decoder is not None and (not from_finalize or isinstance(self._decoder, ContainerDecoder)):
            decoder, self._decoder = self._decoder, None
            try:
                tail = await asyncio.to_thread(decoder.finish)
            except AudioError as exc:
                tail, error = np.zeros(0, dtype=np.float32), exc.message
            if tail.size:
                await self._runner.feed(tail)
        await self._runner.flush(from_finalize)
        return error

    async def _finish(self, code: int, reason: str) -> None:
        error = await self._flush(from_finalize=False)
        if error is not None and code == CLOSE_NORMAL:
            code, reason = CLOSE_BAD_DATA, error
        await self._send_json(metadata(request_id=self._id.request_id, sha256=self._hash.hexdigest(),
                                       seconds=self._runner.seconds, engine=self._id.engine,
                                       model_name=self._id.model_name, channels=self._channels))
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:  # the close frame never drained, or the client never answered it
            self.abort()

    async def _send(self, events: list[Event], channel: int = 0) -> None:
        for event in events:
            if isinstance(event, Transcribed) and not event.is_final and not self._options.interim_results:
                continue
            if isinstance(event, SpeechStarted) and not self._options.vad_events:
                continue
            await self._send_json(render(event, request_id=self._id.request_id, engine=self._id.engine,
                                         model_name=self._id.model_name, punctuate=self._options.punctuate,
                                         channel=(channel, self._channels)))

    async def _send_json(self, payload: dict[str, Any]) -> None:
        if not self._ws.closed:
            try:
                async with asyncio.timeout(self._limits.send_timeout_s):
                    await self._ws.send_json(payload)
            except ConnectionError:
                pass  # the client left; the receive loop sees the close
            except TimeoutError:
                log.info("%s: client does not read what is sent: connection cut", self._id.request_id)
                self.abort()
