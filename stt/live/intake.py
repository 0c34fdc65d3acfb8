"""What a live stream's messages become before a session hears them: bounded pieces of decoded audio.

A WebSocket message may carry any amount of audio (a 4 MiB message holds 2 minutes of 16 kHz PCM, a compressed
container far more), and a session's checks (end of speech, utterance length) run once per ``feed``: one feed of
two minutes merged every utterance into one window the decoder cut to its last 30 s. So every message is split into
pieces of at most ``PIECE_SAMPLES``, and tiny messages are coalesced until a speech-detector frame is complete
(feeding less cannot produce an event, and each feed costs a hop to a detection thread).

A container's bytes go to FFmpeg's thread through a pipe whose backlog is bounded: while FFmpeg has more than
``MAX_BACKLOG`` bytes unread, the intake waits (the caller is then not reading the socket: TCP pushes back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np

from stt.audio import SAMPLE_RATE
from stt.live.audio_in import ContainerDecoder, StreamDecoder
from stt.live.speech_detector import FRAME

PIECE_SAMPLES = SAMPLE_RATE // 2  # 0.5 s: the longest audio one feed gives a session
MIN_FEED = FRAME  # fewer samples cannot complete a speech-detector frame: they wait for the next message
SLICE_BYTES = 64 * 1024  # a message goes to FFmpeg this much at a time, each slice after the backlog drained
MAX_BACKLOG = 512 * 1024  # bytes FFmpeg has not read yet before the intake waits for it
POLL_S = 0.005  # how often a waiting intake looks at FFmpeg's progress
END_TIMEOUT_S = 10.0  # the most a container's end waits for FFmpeg to decode what it holds
# A microphone sends 10 to 50 messages a second; a file streamed at 100x real time in 20 ms frames, 5,000.
MAX_MESSAGES_PER_S = 5000
MESSAGE_BURST = 1000
YIELD_EVERY = 32  # messages handled before the event loop is handed to others


class Intake:
    def __init__(self, decoder: StreamDecoder) -> None:
        self.decoder = decoder
        self._held: list[np.ndarray] = []  # fewer than MIN_FEED samples (or frames, for multichannel)
        self._held_count = 0

    async def push(self, data: bytes) -> AsyncIterator[np.ndarray]:
        """The pieces this message's audio makes (AudioError when it cannot be decoded)."""
        decoder = self.decoder
        if not isinstance(decoder, ContainerDecoder):
            for piece in self._pieces(decoder.feed(data)):
                yield piece
            return
        for start in range(0, len(data), SLICE_BYTES):
            decoder.write(data[start:start + SLICE_BYTES])
            while True:
                for piece in self._pieces(decoder.take()):
                    yield piece
                if decoder.backlog <= MAX_BACKLOG:
                    break
                if decoder.ended:  # FFmpeg stopped reading: the pipe was freed, the next write refuses
                    break
                await asyncio.sleep(POLL_S)

    def held(self) -> list[np.ndarray]:
        """The coalesced samples not given out yet (Finalize: they belong to what is flushed)."""
        if not self._held_count:
            return []
        out = _join(self._held)
        self._held, self._held_count = [], 0
        return list(_split(out))

    async def finish(self) -> AsyncIterator[np.ndarray]:
        """The end of the decoder's input: the pieces it still holds (AudioError when decoding failed)."""
        decoder = self.decoder
        if not isinstance(decoder, ContainerDecoder):
            for piece in self._pieces(await asyncio.to_thread(decoder.finish), final=True):
                yield piece
            return
        decoder.end_input()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + END_TIMEOUT_S
        while True:
            ended = decoder.ended  # read before taking: what it emitted before ending is in this take
            for piece in self._pieces(decoder.take(), final=ended):
                yield piece
            if ended or loop.time() > deadline:
                break
            await asyncio.sleep(POLL_S)
        for piece in self.held():
            yield piece

    def _pieces(self, samples: np.ndarray, final: bool = False) -> list[np.ndarray]:
        count = samples.shape[-1]
        if count == 0 and not (final and self._held_count):
            return []
        if self._held_count:
            samples = _join(self._held + [samples])
            self._held, self._held_count = [], 0
            count = samples.shape[-1]
        if count < MIN_FEED and not final:
            self._held, self._held_count = [samples], count
            return []
        return list(_split(samples))


def _join(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)


def _split(samples: np.ndarray) -> list[np.ndarray]:
    """Pieces of at most PIECE_SAMPLES along the time axis (the last one: (channels, samples) or (samples,))."""
    count = samples.shape[-1]
    return [samples[..., i:i + PIECE_SAMPLES] for i in range(0, count, PIECE_SAMPLES)]


class MessageRate:
    """Every message a stream receives takes a token: at most ``rate`` a second on average (the socket is not read
    while the stream waits, so TCP pushes back), which bounds the CPU a flood of tiny messages can take. Messages
    already received are handled without a real wait, so the stream also hands the event loop to others every
    ``YIELD_EVERY`` messages: a flood would otherwise hold it (``/ping`` waited seconds)."""

    def __init__(self, rate: float = MAX_MESSAGES_PER_S, burst: int = MESSAGE_BURST) -> None:
        self._rate, self._burst = rate, float(burst)
        self._tokens = self._burst
        self._last = time.monotonic()
        self._count = 0

    async def take(self) -> None:
        self._count += 1
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate) - 1
        self._last = now
        if self._tokens < 0:  # wait until half the burst is back: one timer for many messages
            await asyncio.sleep((self._burst / 2 - self._tokens) / self._rate)
        elif self._count % YIELD_EVERY == 0:
            await asyncio.sleep(0)
