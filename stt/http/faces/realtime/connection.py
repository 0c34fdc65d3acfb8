"""One Realtime transcription session: OpenAI's client events in, the shared live session core in the middle
(``stt.live.runner.SessionRunner``: the same StreamSession, passes, priorities and limits as ``/v1/listen``),
OpenAI's server events out.

Items. Audio appended since the last commit is the input buffer. With ``turn_detection: server_vad`` each
turn the session opens (``stt.live.session``: speech after a pause, up to ``silence_duration_ms`` of silence)
is one item: ``speech_started`` when speech begins, ``speech_stopped`` and ``committed`` at its endpoint, the
deltas and ``completed`` once its final text is decoded (as OpenAI, the next item's ``speech_started`` may come
before that). The session ends every turn exactly once, with one ``speech_final`` final (perhaps empty: noise),
so every item started is stopped, committed and completed exactly once, in that order. With
``turn_detection: null`` the client's ``input_audio_buffer.commit`` flushes the session (everything heard so
far is decoded; the stream goes on) and the item holds the text of everything appended since the last commit.
Inside an item the session still cuts the speech into utterances at pauses, so a long buffer is decoded as it
arrives and a commit waits only for its last words.

Deltas come from the final text, never from interim hypotheses (those change; a delta cannot be taken back):
one delta per final utterance of the item, sent after ``committed`` as OpenAI orders them, and their
concatenation is exactly the ``completed`` transcript.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

from aiohttp import WSMessage, WSMsgType, web

from stt.errors import ApiError, AudioError
from stt.http.faces.openai.params import OPENAI_MODELS
from stt.http.faces.realtime.config import (SessionConfig, Shape, apply_beta, apply_ga, is_beta_session)
from stt.http.faces.realtime.errors import EventError
from stt.http.faces.realtime.events import Events, new_id
from stt.inference.pass_batcher import PassBatcher
from stt.live.audio_in import PcmDecoder, StreamDecoder
from stt.live.g711 import G711Decoder
from stt.live.intake import Intake, MessageRate
from stt.live.runner import HARD_PENDING_SECONDS, MAX_PENDING_SECONDS, SessionRunner
from stt.live.session import Event, SpeechStarted, SpeechStopped, StreamConfig, StreamSession, Transcribed

log = logging.getLogger("stt.live")

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008  # a limit of this stream was reached
CLOSE_IDLE = 1011
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_LATER = 1013

ENDING_ERRORS = {CLOSE_POLICY: "audio_limit_reached", CLOSE_IDLE: "idle_timeout"}
MIN_COMMIT_S = 0.1  # OpenAI refuses to commit less than 100 ms of audio
THREAD_JSON_CHARS = 64 * 1024  # larger events (audio) are parsed off the event loop
MANUAL_ENDPOINTING_S = 0.4  # turn_detection null: the session still cuts utterances at pauses inside an item
PREROLL_S = 0.5  # audio kept before detected speech; OpenAI's prefix_padding_ms only widens it
# A Realtime client never sees an interim hypothesis (deltas come from final text only), so an open utterance
# is decoded again only as often as the session's cut of an over-long utterance needs words two passes agree
# on, not every 0.3 s of new speech as for /v1/listen's interims: the cores go to the finals of every session.
INTERIM_INTERVAL_S = 2.0

Language = Callable[[str, str], str]  # (value, param) -> Whisper's code, or EventError
UNSUPPORTED = {"response.create", "response.cancel", "conversation.item.create", "conversation.item.delete",
               "conversation.item.truncate", "conversation.item.retrieve", "output_audio_buffer.clear"}
CLIENT_EVENTS = ("session.update", "transcription_session.update", "input_audio_buffer.append",
                 "input_audio_buffer.commit", "input_audio_buffer.clear")


class Models(Protocol):
    """The session's model lease (``routes.SessionModels``): chosen at connect (``?model=``), switched by a
    ``transcription.model`` naming another configured model before any audio is appended."""

    names: Collection[str]  # the configured models
    current: str  # the leased one

    async def switch(self, name: str, language: str | None, param: str) -> tuple[PassBatcher, Language]:
        """Lease ``name`` in place of the current model (kept when this raises: EventError, ApiError); the
        session's ``language`` is checked against the new model (``param`` names it in the error)."""
        ...


@dataclasses.dataclass(frozen=True)
class Limits:
    idle_s: float
    max_seconds: float
    send_timeout_s: float = 10.0  # a send that cannot drain for this long: the client stopped reading
    close_timeout_s: float = 2.0  # the close handshake at the end (a client that never reads is cut)
    max_pending_s: float = MAX_PENDING_SECONDS  # back-pressure, as /v1/listen (stt/live/runner.py)
    hard_pending_s: float = HARD_PENDING_SECONDS


def stream_config(config: SessionConfig) -> StreamConfig:
    vad = config.turn_detection
    if vad is None:
        return StreamConfig(language=config.language, endpointing_s=MANUAL_ENDPOINTING_S, prompt=config.prompt,
                            interim_interval_s=INTERIM_INTERVAL_S)
    return StreamConfig(language=config.language, prompt=config.prompt, interim_interval_s=INTERIM_INTERVAL_S,
                        endpointing_s=vad.silence_duration_ms / 1000, vad_threshold=vad.threshold,
                        preroll_s=max(PREROLL_S, vad.prefix_padding_ms / 1000))


def make_decoder(config: SessionConfig) -> StreamDecoder:
    if config.format == "pcm16":
        return PcmDecoder(24000, 1)
    return G711Decoder("ulaw" if config.format == "g711_ulaw" else "alaw")


@dataclasses.dataclass
class _Item:
    """A user item the input buffer becomes: its id, where its audio begins on the stream's timeline, its final
    texts so far, whether speech_started announced it, and where it was committed (None: not yet)."""

    id: str
    start_s: float
    texts: list[str] = dataclasses.field(default_factory=list)
    announced: bool = False
    end_s: float | None = None


class RealtimeStream:
    def __init__(self, ws: web.WebSocketResponse, batcher: PassBatcher, limits: Limits, request_id: str,
                 language: Language, shape: Shape, transport: asyncio.BaseTransport | None = None,
                 models: Models | None = None, model: str | None = None) -> None:
        self._ws, self._limits, self._request_id, self._language = ws, limits, request_id, language
        self._config, self._shape = SessionConfig(**({"model": model} if model else {})), shape
        self._models = models
        self._heard = False  # audio was appended: the model can no longer change
        self._events = Events(new_id("sess"))
        self._runner = SessionRunner([StreamSession(stream_config(self._config))], batcher, self._on_events,
                                     request_id)
        self._intake = Intake(make_decoder(self._config))  # bounded pieces, tiny appends coalesced
        self._rate = MessageRate()
        # Server VAD: the items of the session's turns not completed yet, by turn (oldest first). A turn may open
        # before the one before it is decoded.
        self._turns: dict[int, _Item] = {}
        # The buffer's item for finals of no open turn (turn_detection null: everything until the client commits).
        self._loose: _Item | None = None
        self._buffer_start = 0.0  # where the uncommitted audio begins on the stream's timeline
        self._previous: str | None = None  # the last committed item
        self._transport = transport
        self._stop = asyncio.Event()
        self._waiting: asyncio.Timeout | None = None  # the wait for the next message, while it runs
        self.done = asyncio.Event()

    # -- the live-stream registry's interface (shutdown, slot accounting) --------------------------------

    def stop_for_shutdown(self) -> None:
        """Stop receiving; what was heard is committed and transcribed, then the socket closes with 1001."""
        self._stop.set()
        if self._waiting is not None:  # interrupt the wait for the next message (never the handling of one)
            self._waiting.reschedule(asyncio.get_running_loop().time())

    @property
    def pending_seconds(self) -> float:
        """Undecoded audio the session holds: what back-pressure bounds."""
        return self._runner.pending_seconds

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def run(self) -> None:
        self._runner.start()
        try:
            await self._send(self._events.session(self._config, self._shape, "session" if self._shape == "ga"
                                                  else "transcription_session", created=True))
            code, reason = await self._receive_loop()
            if code is not None:
                await self._finish(code, reason)
        finally:
            self._runner.stop()
            self.done.set()

    # -- receiving ----------------------------------------------------------------------------------

    async def _receive_loop(self) -> tuple[int | None, str]:
        loop = asyncio.get_running_loop()
        while True:
            try:
                msg = await self._next_message(loop.time() + self._limits.idle_s)
            except TimeoutError:
                if self._stop.is_set():
                    return CLOSE_GOING_AWAY, "server shutting down"
                return CLOSE_IDLE, f"no client event for {self._limits.idle_s:g} s: the session is closed"
            if msg is None:
                return CLOSE_GOING_AWAY, "server shutting down"
            await self._rate.take()
            if msg.type == WSMsgType.TEXT:
                ending = await self._client_event(msg.data)
                if ending is not None:
                    return ending
            elif msg.type == WSMsgType.BINARY:
                await self._send(self._events.error(EventError(
                    "invalid_value", "binary messages are not part of the Realtime API: send audio as base64 in "
                    "input_audio_buffer.append events")))
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the client went away, nothing is left to send to
                return None, ""

    async def _next_message(self, deadline: float) -> WSMessage | None:
        """The next message, or None once shutdown asks the stream to stop (TimeoutError at the deadline, or
        when shutdown interrupts the wait). One timer per message and no task, as /v1/listen."""
        if self._stop.is_set():
            return None
        async with asyncio.timeout_at(deadline) as self._waiting:
            try:
                return await self._ws.receive()
            finally:
                self._waiting = None

    async def _client_event(self, text: str) -> tuple[int, str] | None:
        event_id = None
        try:
            event = await self._parse(text)
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            return await self._dispatch(event)
        except EventError as exc:
            await self._send(self._events.error(exc, event_id[:100] if event_id else None))
            return None

    async def _parse(self, text: str) -> dict[str, Any]:
        try:
            event = (await asyncio.to_thread(json.loads, text) if len(text) > THREAD_JSON_CHARS
                     else json.loads(text))
        except (ValueError, RecursionError):
            raise EventError("invalid_json", "the event is not valid JSON") from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise EventError("invalid_value", "an event is a JSON object with a string 'type'", "type")
        return event

    async def _dispatch(self, event: dict[str, Any]) -> tuple[int, str] | None:
        kind = event["type"]
        if kind == "input_audio_buffer.append":
            return await self._append(event.get("audio"))
        if kind == "input_audio_buffer.commit":
            await self._commit()
        elif kind == "input_audio_buffer.clear":
            await self._clear()
        elif kind in ("session.update", "transcription_session.update"):
            await self._update(kind, event.get("session"))
        elif kind in UNSUPPORTED:
            raise EventError("invalid_value", f"{kind} is not available in a transcription session", "type")
        else:
            raise EventError("invalid_value", f"Invalid value: {kind[:60]!r}. Supported values are: "
                             f"{', '.join(CLIENT_EVENTS)}.", "type")
        return None

    # -- session configuration ------------------------------------------------------------------------

    async def _update(self, kind: str, session: Any) -> None:
        if not isinstance(session, dict):
            raise EventError("missing_required_parameter", "session: required, an object", "session")
        beta = kind == "transcription_session.update" or is_beta_session(session)
        config = (apply_beta if beta else apply_ga)(self._config, session, self._language)
        if config.model != self._config.model:
            await self._switch_model(config, "session.input_audio_transcription" if beta
                                     else "session.audio.input.transcription")
        self._shape = "beta" if beta else "ga"
        await self._reconfigure(config)
        await self._send(self._events.session(config, self._shape, kind.removesuffix(".update"), created=False))

    async def _switch_model(self, config: SessionConfig, param: str) -> None:
        """``transcription.model``, as the OpenAI face maps names: a configured model is used (the lease switches
        to it while no audio was appended; after, an error and the current model stays), OpenAI's own names keep
        the current model, another name is OpenAI's ``model_not_found``."""
        models, name = self._models, config.model
        if models is None:
            return
        if name not in models.names:
            if name in OPENAI_MODELS:
                return
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise EventError("model_not_found", f"{param}.model: the model `{shown}` does not exist or you do not "
                             f"have access to it (this server has: {', '.join(models.names)})", f"{param}.model")
        if name == models.current:
            return
        if self._heard:
            raise EventError("invalid_value", f"{param}.model: the model can change only before audio is appended; "
                             f"this session keeps {models.current!r}", f"{param}.model")
        try:
            batcher, self._language = await models.switch(name, config.language, f"{param}.language")
        except ApiError as exc:  # no room to load it in time, or it failed to load: the current one stays
            raise EventError(exc.code, f"{param}.model: {exc.message}", f"{param}.model",
                             kind="server_error") from None
        self._runner.stop()
        self._runner = SessionRunner([StreamSession(stream_config(self._config))], batcher, self._on_events,
                                     self._request_id)
        self._runner.start()

    async def _reconfigure(self, config: SessionConfig) -> None:
        """What was heard so far is decoded with the old settings (their events handled as they say) first."""
        old = self._config
        if config.format != old.format:
            intake, self._intake = self._intake, Intake(make_decoder(config))
            async for piece in intake.finish():
                await self._runner.feed(piece)
        if config.audio_changes(old):
            if self._runner.lanes[0].session.busy:
                await self._feed_held()
                await self._runner.flush(from_finalize=True)
            self._config = config
            await self._runner.replace(lambda: StreamSession(stream_config(config)))
            # The old session's open turns end here. Server VAD pairs each turn the new session opens with an
            # item, so what the old settings heard is committed now too; without it, it stays in the buffer.
            await self._commit_buffer(self._runner.seconds, loose=config.turn_detection is not None)
        self._config = config

    # -- the input audio buffer -------------------------------------------------------------------------

    async def _append(self, audio: Any) -> tuple[int, str] | None:
        if not isinstance(audio, str):
            raise EventError("missing_required_parameter", "audio: required, base64-encoded audio bytes", "audio")
        try:
            data = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("invalid_value", "audio: not valid base64", "audio") from None
        self._heard = self._heard or bool(data)
        try:
            async for piece in self._intake.push(data):
                await self._runner.feed(piece)
                if self._runner.seconds >= self._limits.max_seconds:
                    return CLOSE_POLICY, f"stream reached its limit of {self._limits.max_seconds:g} s of audio"
                if not await self._runner.pace(self._limits.max_pending_s, self._limits.hard_pending_s):
                    return CLOSE_POLICY, (f"more than {self._limits.hard_pending_s:g} s of audio waiting to be "
                                          "decoded: send at most in real time")
        except AudioError as exc:
            raise EventError("invalid_value", f"audio: {exc.message}", "audio") from None
        return None

    async def _feed_held(self) -> None:
        """The few samples the intake holds for a whole detector frame belong to what a commit flushes."""
        for piece in self._intake.held():
            await self._runner.feed(piece)

    async def _commit(self) -> None:
        """The client's commit: everything appended since the last commit is one item, decoded to its end."""
        buffered = self._runner.seconds - self._buffer_start
        if buffered < MIN_COMMIT_S:
            raise EventError("input_audio_buffer_commit_empty",
                             f"Error committing input audio buffer: buffer too small. Expected at least "
                             f"{MIN_COMMIT_S * 1000:.0f}ms of audio, but buffer only has {buffered * 1000:.2f}ms "
                             "of audio.")
        await self._feed_held()
        previous = self._previous
        await self._runner.flush(from_finalize=True)
        # The buffer is one item, even of silence, unless the flush already completed the turns it held.
        await self._commit_buffer(self._runner.seconds, empty=self._previous == previous)

    async def _commit_buffer(self, end_s: float, loose: bool = True, empty: bool = False) -> None:
        """Every open turn's item (each its own), the buffer's item when ``loose`` (or an ``empty`` one when
        there is none) committed and completed at ``end_s``, oldest first."""
        items = list(self._turns.values())
        self._turns = {}
        if loose and (self._loose is not None or empty):
            items.append(self._loose or _Item(new_id("item"), self._buffer_start))
            self._loose = None
        for item in sorted(items, key=lambda i: i.start_s):
            await self._complete(item, end_s)

    async def _clear(self) -> None:
        self._intake.held()  # dropped with the rest of the buffer
        await self._runner.replace(lambda: StreamSession(stream_config(self._config)))
        self._turns, self._loose = {}, None
        self._buffer_start = self._runner.seconds
        await self._send(self._events.cleared())

    # -- session events -> server events ----------------------------------------------------------------

    async def _on_events(self, events: list[Event], channel: int) -> None:
        """The session's events, in the order it made them (the runner emits one batch at a time)."""
        offset = self._runner.offset
        vad = self._config.turn_detection
        for event in events:
            if vad is None:  # the client commits: every final goes to the buffer's item
                if isinstance(event, Transcribed) and event.is_final:
                    self._buffered(event.text)
            elif isinstance(event, SpeechStarted) and event.opened:
                start_ms = max(0, round((offset + event.timestamp) * 1000) - vad.prefix_padding_ms)
                item = self._turns[event.turn] = _Item(new_id("item"), start_ms / 1000, announced=True)
                await self._send(self._events.speech_started(item.id, start_ms))
            elif isinstance(event, SpeechStopped):
                item = self._turns.get(event.turn)
                if item is not None and item.end_s is None:
                    await self._commit_item(item, offset + event.timestamp)
            elif isinstance(event, Transcribed) and event.is_final:
                await self._turn_final(event, offset)

    def _buffered(self, text: str) -> _Item:
        if self._loose is None:
            self._loose = _Item(new_id("item"), self._buffer_start)
        if text:
            self._loose.texts.append(text)
        return self._loose

    async def _turn_final(self, event: Transcribed, offset: float) -> None:
        """Server VAD: a final of the turn's item; the turn's last one (``speech_final``) completes it. A turn
        without an item (its item was committed by the client in the middle of it) goes to the buffer's item."""
        item = self._turns.get(event.turn)
        if item is None:
            if not event.text and self._loose is None:
                return  # the rest of a turn the client committed, and nothing was said in it
            item = self._buffered(event.text)
        elif event.text:
            item.texts.append(event.text)
        if not event.speech_final:
            return
        if item is self._loose:
            self._loose = None
        else:
            del self._turns[event.turn]
        await self._complete(item, offset + event.end)

    async def _commit_item(self, item: _Item, end_s: float) -> None:
        """``speech_stopped`` (an item speech_started announced) and ``committed``; the uncommitted buffer begins
        at ``end_s``."""
        item.end_s = end_s
        self._buffer_start = max(self._buffer_start, end_s)
        if item.announced:
            await self._send(self._events.speech_stopped(item.id, round(end_s * 1000)))
        await self._send(self._events.committed(item.id, self._previous))
        self._previous = item.id

    async def _complete(self, item: _Item, end_s: float) -> None:
        """``item``'s transcript (committed at ``end_s`` first if it was not yet)."""
        if item.end_s is None:
            await self._commit_item(item, end_s)
        deltas = [text if i == 0 else " " + text for i, text in enumerate(item.texts)]
        for delta in deltas:
            await self._send(self._events.delta(item.id, delta))
        seconds = max(0.0, (item.end_s or end_s) - item.start_s)
        await self._send(self._events.completed(item.id, "".join(deltas), seconds))

    # -- ending -------------------------------------------------------------------------------------

    async def _finish(self, code: int, reason: str) -> None:
        """Nothing accepted is lost: what was heard is decoded and committed before the close."""
        async for piece in self._intake.finish():
            await self._runner.feed(piece)
        await self._runner.flush(from_finalize=False)  # every turn ends: its item completes
        await self._commit_buffer(self._runner.seconds, loose=self._loose is not None and bool(self._loose.texts))
        # After the last transcripts, the reason the server ends the session (OpenAI sends an error too).
        if code in ENDING_ERRORS:
            await self._send(self._events.error(EventError(ENDING_ERRORS[code], reason)))
        try:
            async with asyncio.timeout(self._limits.close_timeout_s):
                await self._ws.close(code=code, message=reason.encode())
        except TimeoutError:  # the close frame never drained, or the client never answered it
            log.info("%s: the client did not complete the close in %g s: connection cut", self._request_id,
                     self._limits.close_timeout_s)
            self.abort()

    async def _send(self, payload: dict[str, Any]) -> None:
        if self._ws.closed:
            return
        try:
            async with asyncio.timeout(self._limits.send_timeout_s):
                await self._ws.send_json(payload)
        except ConnectionError:
            pass  # the client left; the receive loop sees the close
        except TimeoutError:
            log.info("%s: client does not read what is sent: connection cut", self._request_id)
            self.abort()
