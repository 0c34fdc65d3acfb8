"""SessionRunner: one live stream's sessions driven on the shared PassBatcher, whatever protocol the client speaks.

A face (Deepgram's live API, OpenAI's Realtime API) decodes its messages into 16 kHz samples, hands them to
``feed`` and renders the events the runner gives its ``emit`` callback. The runner owns what every face needs
the same way: one lane per channel (its StreamSession, the lock between a feed and a pass, its passes in
flight), the pass loop that starts the decoding passes a session asks for (an interim and an urgent one at
most) while the face keeps receiving, speech detection on the scheduler's detection threads (off the event
loop), and the flush that decodes everything heard so far before it returns (nothing at the end is lost).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence

import numpy as np

from stt import metrics
from stt.diarization.live import LiveSpeakers
from stt.engines.windows import WindowResult
from stt.errors import ApiError
from stt.inference.pass_batcher import PassBatcher
from stt.live.session import Event, Pass, StreamSession, Transcribed

log = logging.getLogger("stt.live")

# Audio a lane's session may hold undecoded (its open utterance, and finals waiting for their pass) before the
# stream stops reading the socket until the passes catch up: a sender faster than real time is paced by TCP.
MAX_PENDING_SECONDS = 30.0
# Past this (only when no pass could bring it down), the stream is closed with 1008.
HARD_PENDING_SECONDS = 2 * MAX_PENDING_SECONDS

# The face's sink for a lane's events: (events, channel index), awaited in order (back-pressure on a slow reader).
Emit = Callable[[list[Event], int], Awaitable[None]]


@dataclasses.dataclass
class Lane:
    """One channel's session and its passes in flight (a mono stream has one lane)."""

    index: int
    session: StreamSession
    guard: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)  # feed (in a thread) vs passes
    passes: set[asyncio.Task[None]] = dataclasses.field(default_factory=set)  # the session allows two
    wake: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)  # audio came, or a pass ended
    # Held while its events go out: batches from a feed and from passes reach the face in the order the session
    # made them (a face awaiting a send for one batch must not see the next batch's events first).
    emitting: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    speakers: LiveSpeakers | None = None  # diarize=true: this channel's speakers


class SessionRunner:
    def __init__(self, sessions: Sequence[StreamSession], batcher: PassBatcher, emit: Emit, request_id: str,
                 speakers: Callable[[], LiveSpeakers] | None = None) -> None:
        self._batcher, self._emit, self._request_id = batcher, emit, request_id
        self.lanes = [Lane(i, s, speakers=speakers() if speakers else None) for i, s in enumerate(sessions)]
        self._arrivals = metrics.ArrivalClock()  # times finals from the end of their speech
        self._loops: list[asyncio.Task[None]] = []
        self._offset = 0.0  # seconds heard by sessions that were replaced (see replace)

    @property
    def offset(self) -> float:
        """Where the current sessions' time 0 lies on the stream's timeline (their events' times add it)."""
        return self._offset

    @property
    def seconds(self) -> float:
        """Audio heard since the stream began (every lane hears the same length)."""
        return self._offset + self.lanes[0].session.seconds

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._pass_loop(lane)) for lane in self.lanes]

    def stop(self) -> None:
        """Cancel the pass loops and the passes in flight (the stream is over, or the client is gone)."""
        for task in self._loops + [t for lane in self.lanes for t in lane.passes]:
            task.cancel()

    # -- audio in -----------------------------------------------------------------------------------

    async def feed(self, samples: np.ndarray) -> None:
        """Mono samples, or (channels, samples) for a multichannel stream: each row to its own lane."""
        rows = samples if samples.ndim == 2 else samples[np.newaxis]
        if len(self.lanes) == 1:  # no gather (a task per lane) for the common case
            await self._feed(self.lanes[0], rows[0])
            return
        await asyncio.gather(*(self._feed(lane, row) for lane, row in zip(self.lanes, rows)))

    async def _feed(self, lane: Lane, samples: np.ndarray) -> None:
        if lane.speakers is not None:
            lane.speakers.hear(samples)
        async with lane.guard:
            session = lane.session
            events = await self._batcher.detect(lambda: session.feed(samples))
            if lane.index == 0:
                self._arrivals.heard(session.seconds)
        await self._send(events, lane)
        lane.wake.set()

    @property
    def pending_seconds(self) -> float:
        """Undecoded audio the stream holds (its busiest channel): what back-pressure bounds."""
        return max(lane.session.held_seconds for lane in self.lanes)

    async def pace(self, max_pending_s: float = MAX_PENDING_SECONDS,
                   hard_pending_s: float = HARD_PENDING_SECONDS) -> bool:
        """Back-pressure, called between feeds: while a lane holds more than ``max_pending_s`` of undecoded
        audio, wait for its passes (the face does not read its socket meanwhile). False when it is still over
        ``hard_pending_s`` with nothing left to wait for (the face ends the stream)."""
        for lane in self.lanes:
            while lane.session.held_seconds > max_pending_s:
                await self._start_passes(lane)
                if not lane.passes:
                    break
                await asyncio.wait(set(lane.passes), return_when=asyncio.FIRST_COMPLETED)
        return all(lane.session.held_seconds <= hard_pending_s for lane in self.lanes)

    # -- decoding passes ----------------------------------------------------------------------------

    async def _pass_loop(self, lane: Lane) -> None:
        while True:
            await lane.wake.wait()
            lane.wake.clear()
            await self._start_passes(lane)

    async def _start_passes(self, lane: Lane) -> None:
        """Every pass the session wants now, started without waiting for those in flight (an urgent pass
        runs beside an interim one)."""
        while True:
            async with lane.guard:
                session = lane.session
                step = session.next_pass()
            if step is None:
                return
            task = asyncio.create_task(self._run_pass(lane, session, step))
            lane.passes.add(task)
            task.add_done_callback(lane.passes.discard)

    async def _run_pass(self, lane: Lane, session: StreamSession, step: Pass) -> None:
        result = await self._decode(step, lambda: lane.session is session and session.wants(step))
        async with lane.guard:
            if lane.session is not session:
                return  # the session was replaced (cleared) while this pass ran
            events = session.apply(step, result)
        await self._send(events, lane)
        lane.wake.set()  # the session may want the next pass now

    async def drain(self, lane: Lane) -> None:
        """Passes until the session wants none and none is in flight (a flush: every final out)."""
        while True:
            await self._start_passes(lane)
            if not lane.passes:
                return
            await asyncio.wait(set(lane.passes), return_when=asyncio.FIRST_COMPLETED)

    async def _decode(self, step: Pass, wanted: Callable[[], bool]) -> WindowResult | None:
        try:
            return await self._batcher.decode(step.request, urgent=step.urgent, wanted=wanted)
        except ApiError as exc:  # overloaded or engine failure: skip this interim, keep the stream alive
            log.warning("%s: live pass failed: %s", self._request_id, exc.message)
            return None
        except Exception:  # a bug must not leave the pass in the session's flight forever (no final ever again)
            log.exception("%s: live pass failed", self._request_id)
            return None

    # -- flushing and replacing -----------------------------------------------------------------------

    async def flush(self, from_finalize: bool, channel: int | None = None) -> None:
        """Everything heard so far (on every channel, or on ``channel`` only) comes out, its finals emitted,
        before this returns."""
        lanes = self.lanes if channel is None else [self.lanes[channel]]
        await asyncio.gather(*(self._flush_lane(lane, from_finalize) for lane in lanes))

    async def _flush_lane(self, lane: Lane, from_finalize: bool) -> None:
        async with lane.guard:
            session = lane.session
            events = await self._batcher.detect(lambda: session.flush(from_finalize))
        await self._send(events, lane)
        await self.drain(lane)

    async def replace(self, make: Callable[[], StreamSession]) -> None:
        """Drop what every lane holds undecoded and go on with fresh sessions (the passes in flight are
        cancelled, their results never emitted). The stream's timeline goes on: ``seconds`` keeps counting."""
        for lane in self.lanes:
            async with lane.guard:
                for task in list(lane.passes):
                    task.cancel()
                if lane.index == 0:
                    self._offset += lane.session.seconds
                lane.session = make()
        self._arrivals = metrics.ArrivalClock()  # its entries were on the old sessions' clock

    # -- events out ---------------------------------------------------------------------------------

    async def _send(self, events: list[Event], lane: Lane) -> None:
        """Called right after the session made ``events`` (no await in between): the lock is taken in that order."""
        if not events:
            return
        async with lane.emitting:
            out: list[Event] = []
            for event in events:
                if isinstance(event, Transcribed) and event.is_final:
                    self._arrivals.final(event.end)
                    if lane.speakers is not None:
                        event = dataclasses.replace(event, words=await lane.speakers.label(event.words))
                out.append(event)
            await self._emit(out, lane.index)
