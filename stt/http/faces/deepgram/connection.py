"""One live connection: WebSocket messages in, the live session core in the middle, Deepgram messages out.

The receive loop decodes audio and hands it to a ``stt.live.runner.SessionRunner`` (one session per channel,
the pass loop on the shared PassBatcher, back-pressure, flushing), the same core OpenAI's Realtime face
drives. Flushing (Finalize, CloseStream, limits) decodes everything heard, so the words at the very end of
the audio always come out before Metadata and the close.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from aiohttp import WSMessage, WSMsgType, web

from stt.inference.pass_batcher import PassBatcher
from stt.diarization.live import LiveSpeakers
from stt.errors import AudioError, BadRequest
from stt.http.faces.deepgram.control import LogBudget, read_control, safe_prefix
from stt.http.faces.deepgram.messages import error, metadata, render
from stt.http.faces.deepgram.params import LIVE_PARAMS
from stt.live.audio_in import ContainerDecoder, PcmDecoder
from stt.live.intake import Intake, MessageRate
from stt.live.runner import HARD_PENDING_SECONDS, MAX_PENDING_SECONDS, SessionRunner
from stt.live.session import Event, SpeechStarted, SpeechStopped, StreamSession, Transcribed

log = logging.getLogger("stt.live")
# MAX_PENDING_SECONDS: re-exported (the limits are the runner's, the tests import them from here).
__all__ = ["HARD_PENDING_SECONDS", "MAX_PENDING_SECONDS", "Identity", "Limits", "LiveOptions", "LiveStream"]

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
    numerals_language: str | None = None  # spelled numbers as digits in this language (None: as Whisper wrote them)


@dataclasses.dataclass(frozen=True)
class Limits:
    idle_s: float
    max_seconds: float
    # A send that cannot drain for this long: the client stopped reading, the socket is cut.
    send_timeout_s: float = 10.0
    # Metadata and the close handshake at the end: a client that does not answer the close (it never reads)
    # has its connection cut after this, so its slot frees right at the idle timeout.
    close_timeout_s: float = 2.0
    max_pending_s: float = MAX_PENDING_SECONDS
    hard_pending_s: float = HARD_PENDING_SECONDS


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
        self._intake: Intake | None = None
        self._log_budget = LogBudget()  # lines about a client's odd text messages, per stream
        self._rate = MessageRate()
        self._hash = hashlib.sha256()
        self._first_message = True
        self._transport = transport  # cut when the client does not read, or shutdown runs out of time
        self._stop = asyncio.Event()  # shutdown: stop receiving, flush, close 1001
        self._waiting: asyncio.Timeout | None = None  # the wait for the next message, while it runs
        self.done = asyncio.Event()

    async def run(self) -> None:
        self._runner.start()
        try:
            code, reason = await self._receive_loop()
            if code is not None:
                await self._finish(code, reason)
        finally:
            self._runner.stop()
            if self._intake is not None and isinstance(self._intake.decoder, ContainerDecoder):
                self._intake.decoder.close()  # idempotent after _finish; the only way out when the client vanished
            self.done.set()

    @property
    def pending_seconds(self) -> float:
        """Undecoded audio the stream holds (its busiest channel): what back-pressure bounds."""
        return self._runner.pending_seconds

    def stop_for_shutdown(self) -> None:
        """Stop receiving; the stream then flushes its final Results and Metadata and closes with 1001."""
        self._stop.set()
        if self._waiting is not None:  # interrupt the wait for the next message (never the handling of one)
            self._waiting.reschedule(asyncio.get_running_loop().time())

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
            try:
                msg = await self._next_message(loop.time() + self._limits.idle_s)
            except TimeoutError:
                if self._stop.is_set():
                    return CLOSE_GOING_AWAY, "server shutting down"
                return CLOSE_IDLE, f"no audio or KeepAlive received for {self._limits.idle_s:g} s"
            if msg is None:
                return CLOSE_GOING_AWAY, "server shutting down"
            await self._rate.take()
            if msg.type == WSMsgType.BINARY:
                if not msg.data:
                    return CLOSE_NORMAL, "stream closed by client"
                try:
                    ending = await self._audio(msg.data)
                except AudioError as exc:
                    await self._send_json(error("DATA-0000", exc.message))
                    return CLOSE_BAD_DATA, exc.message
                if ending is not None:
                    return ending
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
        """The next audio or text message, or None once shutdown asks the stream to stop (TimeoutError at the
        deadline, or when shutdown interrupts the wait). One timer per message and no task: a flood of tiny
        messages costs little each."""
        if self._stop.is_set():
            return None
        async with asyncio.timeout_at(deadline) as self._waiting:
            try:
                return await self._ws.receive()
            finally:
                self._waiting = None

    async def _control(self, text: str) -> str | None:
        if self._first_message and text[:20].strip().lower().startswith("sample rate:"):
            # The Flask microphone tutorial's handshake: raw Int16 mono at the given rate follows.
            rate = SAMPLE_RATE_PARAM.parse(text.split(":", 1)[1][:20])  # same bounds as the sample_rate parameter
            self._intake = Intake(PcmDecoder(rate, 1))
            return None
        control = read_control(text)
        if control.kind == "CloseStream":
            return "close"
        if control.kind == "Finalize" and control.channel is None:
            await self._flush(from_finalize=True)
        elif control.kind == "Finalize" and 0 <= control.channel < self._channels:
            await self._flush(from_finalize=True, channel=control.channel)  # only that channel, as Deepgram
        elif control.kind == "Finalize" and self._log_budget.allow():
            log.info("%s: ignored a Finalize for channel %s (the stream has %d)", self._id.request_id,
                     safe_prefix(str(control.channel)), self._channels)
        elif control.kind not in ("KeepAlive", "Finalize") and self._log_budget.allow():
            left_out = self._log_budget.take_suppressed()
            log.info("%s: ignored %s%s", self._id.request_id, control.note,
                     f" ({left_out} more ignored messages not logged)" if left_out else "")
        return None

    async def _audio(self, data: bytes) -> tuple[int, str] | None:
        """Feeds the message's audio piece by piece; returns a close code and reason when a limit ends the
        stream (the rest of the message is not heard)."""
        self._hash.update(data)
        intake = self._intake or self._make_intake()
        async for piece in intake.push(data):
            ending = await self._feed_piece(piece)
            if ending is not None:
                return ending
        return None

    async def _feed_piece(self, piece: np.ndarray) -> tuple[int, str] | None:
        await self._runner.feed(piece)
        if self._runner.seconds >= self._limits.max_seconds:
            return CLOSE_POLICY, f"stream reached its limit of {self._limits.max_seconds:g} s of audio"
        if not await self._runner.pace(self._limits.max_pending_s, self._limits.hard_pending_s):
            return CLOSE_POLICY, (f"more than {self._limits.hard_pending_s:g} s of audio waiting to be decoded: "
                                  "send at most in real time")
        return None

    def _make_intake(self) -> Intake:
        o = self._options
        self._intake = Intake(PcmDecoder(o.sample_rate, o.channels, keep_channels=self._channels > 1)
                              if o.encoding == "linear16" else ContainerDecoder())
        return self._intake

    # -- ending -------------------------------------------------------------------------------------

    async def _flush(self, from_finalize: bool, channel: int | None = None) -> str | None:
        """Every channel's speech so far decoded (or only ``channel``'s); returns why the audio could not be
        decoded, if it could not."""
        error_message = None
        intake = self._intake
        # PCM keeps going after Finalize; a container's bytes end there (a new one may follow).
        if intake is not None and (not from_finalize or isinstance(intake.decoder, ContainerDecoder)):
            self._intake = None
            try:
                async for piece in intake.finish():
                    await self._runner.feed(piece)
            except AudioError as exc:
                error_message = exc.message
        elif intake is not None:
            for piece in intake.held():  # the few samples waiting for a whole detector frame
                await self._runner.feed(piece)
        await self._runner.flush(from_finalize, channel)
        return error_message

    async def _finish(self, code: int, reason: str) -> None:
        error = await self._flush(from_finalize=False)
        if error is not None and code == CLOSE_NORMAL:
            code, reason = CLOSE_BAD_DATA, error
        try:
            async with asyncio.timeout(self._limits.close_timeout_s):
                await self._send_json(metadata(request_id=self._id.request_id, sha256=self._hash.hexdigest(),
                                               seconds=self._runner.seconds, engine=self._id.engine,
                                               model_name=self._id.model_name, channels=self._channels))
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:  # Metadata or the close frame never drained, or the client never answered the close
            log.info("%s: the client did not complete the close in %g s: connection cut", self._id.request_id,
                     self._limits.close_timeout_s)
            self.abort()

    async def _send(self, events: list[Event], channel: int = 0) -> None:
        for event in events:
            if isinstance(event, Transcribed) and not event.is_final and not self._options.interim_results:
                continue
            if isinstance(event, SpeechStarted) and not self._options.vad_events:
                continue
            if isinstance(event, SpeechStopped):  # Deepgram has no such message (its speech_final final says it)
                continue
            await self._send_json(render(event, request_id=self._id.request_id, engine=self._id.engine,
                                         model_name=self._id.model_name, punctuate=self._options.punctuate,
                                         channel=(channel, self._channels),
                                         numerals=self._options.numerals_language))

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
